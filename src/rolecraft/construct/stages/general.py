"""general: general instructions answered in the character's voice, few-shot."""

from __future__ import annotations

import json
import random
from collections import OrderedDict
from functools import partial
from pathlib import Path

from rolecraft.construct import validate
from rolecraft.construct.engine import Outcome, Task
from rolecraft.construct.stages.common import Context, Plan, Stage, _profile_text
from rolecraft.construct.templates import load_template
from rolecraft.data.schema import RoleInstruct, Sample, assign_split, split_key, stable_id
from rolecraft.errors import ConfigError, DataError


def read_instructions(path: str) -> list[str]:
    p = Path(path).expanduser()
    if not p.is_file():
        raise ConfigError(f"construct.general.instructions={path!r}: no such file; give a .jsonl/.json/.txt file of instructions")
    from rolecraft.fileio import read_text

    text = read_text(p)
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
    cfg = STAGE.section(ctx)
    if cfg.answers < 1 or cfg.shots < 0:
        raise ConfigError(f"construct.general: answers={cfg.answers}, shots={cfg.shots}; need answers >= 1, shots >= 0")
    if cfg.instructions:
        pool = read_instructions(cfg.instructions)
    else:
        pool = list(dict.fromkeys(s.instruction for s in ds.samples if s.kind in ("raw", "general")))
    if cfg.max_instructions is not None:
        pool = pool[:cfg.max_instructions]
    t = load_template(STAGE.template)
    notes: list[str] = []
    # a pair is done when it has its answers, or when it came from elsewhere (hand-written, imported);
    # a constructed pair with fewer answers (some failed) is planned again: the journal replays the
    # answers it has and only the missing ones are asked
    existing = {(s.character, s.instruction) for s in ds.samples if s.kind == "general"
                and (len(s.references) >= cfg.answers or not s.provenance or s.provenance.get("stage") != STAGE.name)}
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
                tasks.append(Task(STAGE.name, f"general/{ch}/{stable_id(q)}/{k}",
                                  head + [{"role": "user", "content": t.user_text(instruction=q)}],
                                  partial(STAGE.validate, max_chars=cfg.max_chars), expect_tokens=80))
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
            prov = ctx.provenance(STAGE.name, max(o.attempts for o in outs if o.ok), answers=len(refs))
            sample = Sample(f"gen-{stable_id(ch, q)}", "general", ch, q, refs,
                            assign_split(split_key("general", ch, q)), prov)
            if (ch, q) in index:  # overwrite: replace in place, keeping the id and position
                old = index[(ch, q)]
                old.references, old.provenance = refs, prov
            else:
                ds.samples.append(sample)
            n += 1
        return n

    return Plan(STAGE.name, tasks, apply, notes)


STAGE = Stage("general", 40, plan_general, validate.parse_general, "general",
              "general instructions answered in the character's voice")
