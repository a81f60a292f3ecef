"""qa (Context-Instruct): character-specific Q&A from the profile and a script excerpt."""

from __future__ import annotations

import random
from functools import partial

from rolecraft.construct import validate
from rolecraft.construct.engine import Outcome, Task
from rolecraft.construct.stages.common import Context, Plan, Stage, _dialogues, _line, _messages, _profile_text
from rolecraft.construct.templates import load_template
from rolecraft.data.schema import RoleInstruct, Sample, assign_split, split_key, stable_id
from rolecraft.errors import ConfigError


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
    cfg = STAGE.section(ctx)
    if cfg.questions < 1 or cfg.rounds < 0:
        raise ConfigError(f"construct.qa: questions={cfg.questions}, rounds={cfg.rounds}; need questions >= 1, rounds >= 0")
    t = load_template(STAGE.template)
    tasks, owners = [], []
    for ch in ctx.characters:
        for r in range(cfg.rounds):
            rng = random.Random(f"{ctx.seed}/qa/{ch}/{r}")
            excerpt, excerpt_ids = script_excerpt(ds, ch, cfg.excerpt_chars, rng)
            excerpt = excerpt or "（无剧本）"
            user = t.user_text(character=ch, profile=_profile_text(ds.characters[ch].profile), excerpt=excerpt,
                               n=cfg.questions)
            tasks.append(Task(STAGE.name, f"qa/{ch}/{r}", _messages(t.system_text(n=cfg.questions), user),
                              partial(STAGE.validate, n=cfg.questions), expect_tokens=90 * cfg.questions))
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
                                         ctx.provenance(STAGE.name, o.attempts, round=r, excerpt=excerpt_ids)))
                n += 1
        return n

    plan = Plan(STAGE.name, tasks, apply)
    return plan


STAGE = Stage("qa", 30, plan_qa, validate.parse_qa, "qa",
              "character-specific Q&A from profile and script excerpt")
