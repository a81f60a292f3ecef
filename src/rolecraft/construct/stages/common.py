"""What every stage module shares: the plan a stage returns, the run's context, prompt helpers."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable

from rolecraft.construct.engine import Outcome, Task
from rolecraft.construct.templates import load_template
from rolecraft.data.schema import EMOTION_ZH, RoleInstruct


@dataclass(frozen=True)
class Stage:
    """One construction stage: its record in the table (:data:`rolecraft.construct.stages.STAGES`).

    ``plan(ds, ctx)`` returns the :class:`Plan` of work still missing; ``validate`` is the answer
    check (raises :class:`rolecraft.api.reask.Invalid`), which the planner binds per task;
    ``template`` names ``construct/templates/<template>.txt``; ``order`` places the stage in
    ``stage=all`` (each stage sees the previous ones' output); ``config`` is its section under
    ``construct.`` in the config.
    """

    name: str
    order: int
    plan: Callable[[RoleInstruct, "Context"], "Plan"]
    validate: Callable[..., Any]
    template: str
    summary: str
    config: str = ""

    def section(self, ctx: "Context"):
        return getattr(ctx.cfg, self.config or self.name)


@dataclass
class Context:
    cfg: Any  # the `construct` section
    model: str
    params: dict
    seed: int
    characters: list[str]

    def provenance(self, stage: str, attempts: int, **extra) -> dict:
        from rolecraft.construct.stages import STAGES

        t = load_template(STAGES[stage].template)
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
    from rolecraft.data.prompts import render_profile

    return render_profile(profile)


def _dialogues(ds: RoleInstruct, character: str) -> "OrderedDict[str, list]":
    out: OrderedDict[str, list] = OrderedDict()
    for u in ds.script_of(character):
        out.setdefault(u.dialogue, []).append(u)
    return out


