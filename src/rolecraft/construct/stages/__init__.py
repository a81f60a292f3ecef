"""The construction stages as one table: one module per stage, each exporting ``STAGE`` (a
:class:`Stage` record: name, order, planner, validator, template).

``STAGES`` is built from the modules of this package, in ``order``: a new stage is a new module
here plus its prompt template and its config section, and ``stage=all``, ``stage=NAME``, the dry
run, the provenance records and the test fake's dispatch (by stage name) pick it up.

Each planner looks at the dataset and returns a :class:`Plan`: only the work that is still missing
(unlabelled utterances, incomplete profiles, ...) unless the stage's ``overwrite`` is set.
``plan.apply(outcomes)`` writes the valid answers into the dataset, each record with its
provenance; failed tasks change nothing.
"""

from __future__ import annotations

import importlib
import pkgutil

from rolecraft.construct.stages.common import Context, Plan, Stage

__all__ = ["STAGES", "Context", "Plan", "Stage", "stage_table"]


def stage_table() -> dict[str, Stage]:
    """Every module of this package that exports ``STAGE``, by name, in ``order``."""
    found: list[Stage] = []
    for mod in pkgutil.iter_modules(__path__):
        if mod.name == "common":
            continue
        stage = getattr(importlib.import_module(f"{__name__}.{mod.name}"), "STAGE", None)
        if isinstance(stage, Stage):
            found.append(stage)
    found.sort(key=lambda s: (s.order, s.name))
    names = [s.name for s in found]
    if len(set(names)) != len(names):
        raise RuntimeError(f"two construction stages share a name: {names}")
    return {s.name: s for s in found}


STAGES: dict[str, Stage] = stage_table()
