"""profile: a structured character profile from the template and the annotated dialogue."""

from __future__ import annotations

from functools import partial

from rolecraft.construct import validate
from rolecraft.construct.engine import Outcome, Task
from rolecraft.construct.stages.common import Context, Plan, Stage, _line, _messages, _profile_text
from rolecraft.construct.templates import load_template
from rolecraft.data.schema import RoleInstruct
from rolecraft.errors import ConfigError


def plan_profile(ds: RoleInstruct, ctx: Context) -> Plan:
    cfg = STAGE.section(ctx)
    fields = list(cfg.fields)
    if not fields:
        raise ConfigError("construct.profile.fields is empty; list the profile template's fields")
    t = load_template(STAGE.template)
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
        tasks.append(Task(STAGE.name, f"profile/{ch}", _messages(t.system_text(), user),
                          partial(STAGE.validate, fields=fields), expect_tokens=40 * len(fields)))
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
            c.profile, c.provenance = profile, ctx.provenance(STAGE.name, o.attempts, kept_fields=sorted(known))
            n += 1
        return n

    return Plan(STAGE.name, tasks, apply)


STAGE = Stage("profile", 20, plan_profile, validate.parse_profile, "profile",
              "a structured character profile from the annotated dialogue")
