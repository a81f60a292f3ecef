"""annotate: one of the 10 emotion labels per script utterance (batches, index-aligned JSON)."""

from __future__ import annotations

from functools import partial

from rolecraft.construct import validate
from rolecraft.construct.engine import Outcome, Task
from rolecraft.construct.stages.common import Context, Plan, Stage, _dialogues, _messages
from rolecraft.construct.templates import load_template
from rolecraft.data.schema import RoleInstruct
from rolecraft.errors import ConfigError


def plan_annotate(ds: RoleInstruct, ctx: Context) -> Plan:
    cfg = STAGE.section(ctx)
    if cfg.batch_size < 1:
        raise ConfigError(f"construct.annotate.batch_size={cfg.batch_size}: must be at least 1")
    t = load_template(STAGE.template)
    tasks, batches = [], []
    for ch in ctx.characters:
        for dialogue, lines in _dialogues(ds, ch).items():
            todo = [u for u in lines if cfg.overwrite or u.emotion is None]
            for b in range(0, len(todo), cfg.batch_size):
                chunk = todo[b:b + cfg.batch_size]
                listing = "\n".join(f"[{i}] {u.speaker}：{u.text}" for i, u in enumerate(chunk, start=1))
                user = t.user_text(character=ch, dialogue=dialogue or "-", count=len(chunk), lines=listing)
                tasks.append(Task(STAGE.name, f"annotate/{ch}/{dialogue}/{b // cfg.batch_size}",
                                  _messages(t.system_text(), user), partial(STAGE.validate, n=len(chunk)),
                                  expect_tokens=12 * len(chunk) + 5))
                batches.append(chunk)

    def apply(outcomes: list[Outcome]) -> int:
        n = 0
        for o, chunk in zip(outcomes, batches):
            if not o.ok:
                continue
            prov = ctx.provenance(STAGE.name, o.attempts)
            for u, label in zip(chunk, o.value):
                u.emotion, u.provenance = label, prov
                n += 1
        return n

    return Plan(STAGE.name, tasks, apply)


STAGE = Stage("annotate", 10, plan_annotate, validate.parse_labels, "annotate",
              "one of the 10 emotion labels per script utterance")
