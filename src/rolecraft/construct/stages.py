"""The four stages as plans: the tasks a dataset needs, and how their outcomes change it.

``plan_*(ds, ctx)`` looks at the dataset and returns a :class:`Plan`: only the work that is still
missing (unlabelled utterances, incomplete profiles, ...) unless the stage's ``overwrite`` is set.
``plan.apply(outcomes)`` writes the valid answers into the dataset, each record with its
provenance; failed tasks change nothing.
"""

from __future__ import annotations

import json
import random
from collections import OrderedDict
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Callable

from rolecraft.construct import validate
from rolecraft.construct.engine import Outcome, Task
from rolecraft.construct.templates import load_template
from rolecraft.data.schema import EMOTION_ZH, RoleInstruct, Sample, assign_split, split_key, stable_id
from rolecraft.errors import ConfigError, DataError


@dataclass
class Context:
    cfg: Any  # the `construct` section
    model: str
    params: dict
    seed: int
    characters: list[str]

    def provenance(self, stage: str, attempts: int, **extra) -> dict:
        t = load_template(stage)
        return {"stage": stage, "model": self.model, "params": dict(self.params), "template": t.name,
                "template_sha256": t.sha256[:16], "attempts": attempts, **extra}


@dataclass
class Plan:
    stage: str
    tasks: list[Task]
    apply: Callable[[list[Outcome]], int]
    notes: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # valid answers not added (e.g. a question already there)


def _messages(system: str, user: str) -> list[dict]:
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def _line(speaker: str, text: str, emotion: str | None) -> str:
    return f"{speaker}（{EMOTION_ZH[emotion]}）：{text}" if emotion else f"{speaker}：{text}"


def _profile_text(profile: dict[str, str]) -> str:
    return "\n".join(f"{k}：{v}" for k, v in profile.items())


def _dialogues(ds: RoleInstruct, character: str) -> "OrderedDict[str, list]":
    out: OrderedDict[str, list] = OrderedDict()
    for u in ds.script_of(character):
        out.setdefault(u.dialogue, []).append(u)
    return out


# ---- annotate ------------------------------------------------------------------------------


def plan_annotate(ds: RoleInstruct, ctx: Context) -> Plan:
    cfg = ctx.cfg.annotate
    if cfg.batch_size < 1:
        raise ConfigError(f"construct.annotate.batch_size={cfg.batch_size}: must be at least 1")
    t = load_template("annotate")
    tasks, batches = [], []
    for ch in ctx.characters:
        for dialogue, lines in _dialogues(ds, ch).items():
            todo = [u for u in lines if cfg.overwrite or u.emotion is None]
            for b in range(0, len(todo), cfg.batch_size):
                chunk = todo[b:b + cfg.batch_size]
                listing = "\n".join(f"[{i}] {u.speaker}：{u.text}" for i, u in enumerate(chunk, start=1))
                user = t.user_text(character=ch, dialogue=dialogue or "-", count=len(chunk), lines=listing)
                tasks.append(Task("annotate", f"annotate/{ch}/{dialogue}/{b // cfg.batch_size}",
                                  _messages(t.system_text(), user), partial(validate.parse_labels, n=len(chunk)),
                                  expect_tokens=12 * len(chunk) + 5))
                batches.append(chunk)

    def apply(outcomes: list[Outcome]) -> int:
        n = 0
        for o, chunk in zip(outcomes, batches):
            if not o.ok:
                continue
            prov = ctx.provenance("annotate", o.attempts)
            for u, label in zip(chunk, o.value):
                u.emotion, u.provenance = label, prov
                n += 1
        return n

    return Plan("annotate", tasks, apply)


# ---- profile -------------------------------------------------------------------------------


def plan_profile(ds: RoleInstruct, ctx: Context) -> Plan:
    cfg = ctx.cfg.profile
    fields = list(cfg.fields)
    if not fields:
        raise ConfigError("construct.profile.fields is empty; list the profile template's fields")
    t = load_template("profile")
    tasks, names = [], []
    for ch in ctx.characters:
        profile = ds.characters[ch].profile
        if not cfg.overwrite and all(profile.get(f, "").strip() for f in fields):
            continue
        known = {k: v for k, v in profile.items() if v.strip()}
        lines, used = [], 0
        for u in ds.script_of(ch):
            line = _line(u.speaker, u.text, u.emotion)
            if used + len(line) > cfg.dialogue_chars:
                break
            lines.append(line)
            used += len(line) + 1
        user = t.user_text(character=ch, fields="、".join(fields), known=_profile_text(known) or "（无）",
                           dialogue="\n".join(lines) or "（无）")
        tasks.append(Task("profile", f"profile/{ch}", _messages(t.system_text(), user),
                          partial(validate.parse_profile, fields=fields), expect_tokens=40 * len(fields)))
        names.append((ch, known))

    def apply(outcomes: list[Outcome]) -> int:
        n = 0
        for o, (ch, known) in zip(outcomes, names):
            if not o.ok:
                continue
            made = o.value
            profile = {f: made[f] for f in fields}
            profile.update({k: v for k, v in made.items() if k not in profile})
            profile.update(known)  # facts we were given win over generated ones
            c = ds.characters[ch]
            c.profile, c.provenance = profile, ctx.provenance("profile", o.attempts, kept_fields=sorted(known))
            n += 1
        return n

    return Plan("profile", tasks, apply)


# ---- qa (Context-Instruct) -----------------------------------------------------------------


def script_excerpt(ds: RoleInstruct, character: str, budget: int, rng: random.Random) -> tuple[str, list[str]]:
    """Dialogues in random order, line by line with emotions, until ``budget`` characters; blocks
    from different dialogues are separated by "……" (a discontinuous excerpt, as in the paper).
    Returns the text and the ids of its lines (recorded, so retrieval can be scored against them)."""
    dialogues = list(_dialogues(ds, character).values())
    rng.shuffle(dialogues)
    blocks, used, full, ids = [], 0, False, []
    for d in dialogues:
        block = []
        for u in d:
            line = _line(u.speaker, u.text, u.emotion)
            if used + len(line) > budget:
                full = True
                break
            block.append(line)
            ids.append(u.id)
            used += len(line) + 1
        if block:
            blocks.append("\n".join(block))
            used += 3
        if full:
            break
    if not blocks and dialogues:  # a single line longer than the budget: cut it
        u = dialogues[0][0]
        return _line(u.speaker, u.text, u.emotion)[:budget], [u.id]
    return "\n……\n".join(blocks), ids


def plan_qa(ds: RoleInstruct, ctx: Context) -> Plan:
    cfg = ctx.cfg.qa
    if cfg.questions < 1 or cfg.rounds < 0:
        raise ConfigError(f"construct.qa: questions={cfg.questions}, rounds={cfg.rounds}; need questions >= 1, rounds >= 0")
    t = load_template("qa")
    tasks, owners = [], []
    for ch in ctx.characters:
        for r in range(cfg.rounds):
            rng = random.Random(f"{ctx.seed}/qa/{ch}/{r}")
            excerpt, excerpt_ids = script_excerpt(ds, ch, cfg.excerpt_chars, rng)
            excerpt = excerpt or "（无剧本）"
            user = t.user_text(character=ch, profile=_profile_text(ds.characters[ch].profile), excerpt=excerpt,
                               n=cfg.questions)
            tasks.append(Task("qa", f"qa/{ch}/{r}", _messages(t.system_text(n=cfg.questions), user),
                              partial(validate.parse_qa, n=cfg.questions), expect_tokens=90 * cfg.questions))
            owners.append((ch, r, excerpt_ids))

    def apply(outcomes: list[Outcome]) -> int:
        seen = {(s.character, s.instruction) for s in ds.samples if s.kind == "specific"}
        n = 0
        for o, (ch, r, excerpt_ids) in zip(outcomes, owners):
            if not o.ok:
                continue
            for q, a in o.value:
                if (ch, q) in seen:
                    plan.skipped.append(f"{o.task.item}: question already in the dataset: {q[:60]}")
                    continue
                seen.add((ch, q))
                ds.samples.append(Sample(f"qa-{stable_id(ch, q)}", "specific", ch, q, [a],
                                         assign_split(split_key("specific", ch, q)),
                                         ctx.provenance("qa", o.attempts, round=r, excerpt=excerpt_ids)))
                n += 1
        return n

    plan = Plan("qa", tasks, apply)
    return plan


# ---- general instructions in character -----------------------------------------------------


def read_instructions(path: str) -> list[str]:
    p = Path(path).expanduser()
    if not p.is_file():
        raise ConfigError(f"construct.general.instructions={path!r}: no such file; give a .jsonl/.json/.txt file of instructions")
    text = p.read_text(encoding="utf-8")
    out: list[str] = []
    if p.suffix == ".txt":
        out = [ln.strip() for ln in text.splitlines() if ln.strip()]
    elif p.suffix == ".jsonl":
        for lineno, ln in enumerate(text.splitlines(), start=1):
            if not ln.strip():
                continue
            try:
                obj = json.loads(ln)
            except ValueError as e:
                raise DataError(f"{p}:{lineno}: not JSON ({e.msg}); one object per line") from None
            q = obj.get("instruction") if isinstance(obj, dict) else obj
            if not isinstance(q, str) or not q.strip():
                raise DataError(f"{p}:{lineno}: needs a non-empty 'instruction' string")
            out.append(q.strip())
    elif p.suffix == ".json":
        try:
            items = json.loads(text)
        except ValueError as e:
            raise DataError(f"{p}:{e.lineno}: not JSON ({e.msg})") from None
        if not isinstance(items, list):
            raise DataError(f"{p}: must hold a JSON list of instructions (strings or {{\"instruction\": ...}})")
        for i, obj in enumerate(items):
            q = obj.get("instruction") if isinstance(obj, dict) else obj
            if not isinstance(q, str) or not q.strip():
                raise DataError(f"{p}: item {i} needs a non-empty 'instruction' string")
            out.append(q.strip())
    else:
        raise ConfigError(f"construct.general.instructions={path!r}: use a .jsonl, .json or .txt file")
    return list(dict.fromkeys(out))


def plan_general(ds: RoleInstruct, ctx: Context) -> Plan:
    cfg = ctx.cfg.general
    if cfg.answers < 1 or cfg.shots < 0:
        raise ConfigError(f"construct.general: answers={cfg.answers}, shots={cfg.shots}; need answers >= 1, shots >= 0")
    if cfg.instructions:
        pool = read_instructions(cfg.instructions)
    else:
        pool = list(dict.fromkeys(s.instruction for s in ds.samples if s.kind in ("raw", "general")))
    if cfg.max_instructions is not None:
        pool = pool[:cfg.max_instructions]
    t = load_template("general")
    notes: list[str] = []
    # a pair is done when it has its answers, or when it came from elsewhere (hand-written, imported);
    # a constructed pair with fewer answers (some failed) is planned again: the journal replays the
    # answers it has and only the missing ones are asked
    existing = {(s.character, s.instruction) for s in ds.samples if s.kind == "general"
                and (len(s.references) >= cfg.answers or not s.provenance or s.provenance.get("stage") != "general")}
    tasks, keys = [], []
    for ch in ctx.characters:
        own = sorted((s for s in ds.samples if s.kind == "specific" and s.character == ch and s.split == "train"),
                     key=lambda s: s.id)
        shots = random.Random(f"{ctx.seed}/shots/{ch}").sample(own, min(cfg.shots, len(own)))
        if len(shots) < cfg.shots:
            notes.append(f"{ch}: only {len(shots)} specific Q&A for {cfg.shots} few-shot examples "
                         f"(run stage=qa first for more)")
        head = [{"role": "system", "content": t.system_text(character=ch, profile=_profile_text(ds.characters[ch].profile))}]
        for s in shots:
            head += [{"role": "user", "content": s.instruction}, {"role": "assistant", "content": s.references[0]}]
        for q in pool:
            if not cfg.overwrite and (ch, q) in existing:
                continue
            for k in range(cfg.answers):
                tasks.append(Task("general", f"general/{ch}/{stable_id(q)}/{k}",
                                  head + [{"role": "user", "content": t.user_text(instruction=q)}],
                                  partial(validate.parse_general, max_chars=cfg.max_chars), expect_tokens=80))
                keys.append((ch, q))

    def apply(outcomes: list[Outcome]) -> int:
        grouped: OrderedDict[tuple[str, str], list[Outcome]] = OrderedDict()
        for o, key in zip(outcomes, keys):
            grouped.setdefault(key, []).append(o)
        n = 0
        index = {(s.character, s.instruction): s for s in ds.samples if s.kind == "general"}
        for (ch, q), outs in grouped.items():
            refs = [o.value for o in outs if o.ok]
            if not refs:
                continue
            prov = ctx.provenance("general", max(o.attempts for o in outs if o.ok), answers=len(refs))
            sample = Sample(f"gen-{stable_id(ch, q)}", "general", ch, q, refs,
                            assign_split(split_key("general", ch, q)), prov)
            if (ch, q) in index:  # overwrite: replace in place, keeping the id and position
                old = index[(ch, q)]
                old.references, old.provenance = refs, prov
            else:
                ds.samples.append(sample)
            n += 1
        return n

    return Plan("general", tasks, apply, notes)


PLANNERS = {"annotate": plan_annotate, "profile": plan_profile, "qa": plan_qa, "general": plan_general}
