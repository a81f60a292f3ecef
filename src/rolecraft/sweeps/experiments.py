"""Experiment definitions: one YAML file per paper table or figure (see experiments/README.md)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rolecraft.errors import ConfigError

PROGRAMS = {"train.py": "rolecraft.train", "evaluate.py": "rolecraft.evaluate", "construct.py": "rolecraft.construct.main"}
_KEYS = {"name", "title", "program", "grid", "seeds", "fixed", "rows", "row_labels", "columns", "metric", "goal",
         "paper", "paper_setup", "compare", "plot", "source"}
PLOTS = ("bars", "grouped_bars", "none")


@dataclass
class PaperSetup:
    text: str  # as shown beside the values, e.g. "ChatGLM3-6B on RoleInstruct"
    models: list[str] = field(default_factory=list)
    data: list[str] = field(default_factory=list)


@dataclass
class Experiment:
    name: str
    title: str
    program: str | None  # train.py | evaluate.py | None (results not produced by a grid, e.g. human ratings)
    grid: dict[str, list]  # Hydra override key -> values (a Cartesian grid)
    seeds: list[int]
    fixed: dict[str, Any]  # overrides every run gets
    rows: str  # what a run's row is: an override/choice/metric/config key, or "family:PREFIX"
    columns: list[str]  # metric names (train runs' "test/" prefix is found automatically)
    row_labels: dict[str, str] = field(default_factory=dict)
    metric: str | None = None
    goal: str = "maximize"
    paper: str | None = None  # key in rolecraft/report/paper_values.yaml
    compare: list[tuple[str, str]] = field(default_factory=list)  # (a, b): bootstrap CI of a - b
    plot: str = "grouped_bars"
    source: str = "runs"  # runs | human
    path: Path | None = None
    # what the paper's values were measured on: the paper's values sit beside a row only when its runs
    # used one of these base-model presets (empty: not checked) and datasets (meta.json names)
    paper_setup: PaperSetup | None = None

    def label(self, value: str) -> str:
        return str(self.row_labels.get(str(value), value))


def experiments_dir() -> Path:
    """experiments/ of a checkout, or the copy shipped inside the package."""
    here = Path(__file__).resolve().parent.parent
    for candidate in (here / "experiments", here.parent.parent / "experiments"):
        if candidate.is_dir() and any(candidate.glob("*.yaml")):
            return candidate
    raise ConfigError(f"no experiments/ directory found next to {here}")


def known_experiments() -> list[str]:
    return sorted(p.stem for p in experiments_dir().glob("*.yaml"))


def _yaml(path: Path) -> Any:
    import yaml

    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise ConfigError(f"{where}: not valid YAML ({getattr(e, 'problem', e)})") from None


def load_experiment(name_or_path: str) -> Experiment:
    """By name (``table5_emotions``) or by path to a YAML file."""
    p = Path(name_or_path)
    if p.suffix not in (".yaml", ".yml"):
        p = experiments_dir() / f"{name_or_path}.yaml"
        if not p.is_file():
            raise ConfigError(f"unknown experiment {name_or_path!r}; known: {', '.join(known_experiments())} "
                              f"(or give a path to an experiment .yaml)")
    elif not p.is_file():
        raise ConfigError(f"{p}: no such experiment file")
    raw = _yaml(p)
    if not isinstance(raw, dict):
        raise ConfigError(f"{p}: an experiment is a YAML mapping")
    unknown = sorted(set(raw) - _KEYS)
    if unknown:
        raise ConfigError(f"{p}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(_KEYS))}")
    for key in ("name", "rows", "columns"):
        if key not in raw:
            raise ConfigError(f"{p}: missing required key '{key}'")
    program = raw.get("program")
    if program is not None and program not in PROGRAMS:
        raise ConfigError(f"{p}: program {program!r}; use one of {', '.join(PROGRAMS)} (or null)")
    grid = raw.get("grid") or {}
    for k, v in grid.items():
        if not isinstance(v, list) or not v:
            raise ConfigError(f"{p}: grid.{k} must be a non-empty list of values")
    plot = raw.get("plot", "grouped_bars")
    if plot not in PLOTS:
        raise ConfigError(f"{p}: plot {plot!r}; use one of {', '.join(PLOTS)}")
    compare = []
    for pair in raw.get("compare") or []:
        if not isinstance(pair, list) or len(pair) != 2:
            raise ConfigError(f"{p}: each compare entry is a pair [a, b], got {pair!r}")
        compare.append((str(pair[0]), str(pair[1])))
    setup = raw.get("paper_setup")
    if setup is not None:
        if not isinstance(setup, dict) or not setup.get("text") or set(setup) - {"text", "models", "data"}:
            raise ConfigError(f"{p}: paper_setup is a mapping with 'text' (what the paper measured, e.g. "
                              "'ChatGLM3-6B on RoleInstruct') and optional lists 'models' (presets) and 'data' "
                              "(dataset names)")
        setup = PaperSetup(str(setup["text"]), [str(m) for m in setup.get("models") or []],
                           [str(d) for d in setup.get("data") or []])
    return Experiment(
        name=str(raw["name"]), title=str(raw.get("title") or raw["name"]), program=program,
        grid={str(k): list(v) for k, v in grid.items()},
        seeds=[int(s) for s in raw.get("seeds") or []], fixed={str(k): v for k, v in (raw.get("fixed") or {}).items()},
        rows=str(raw["rows"]), columns=[str(c) for c in raw["columns"]],
        row_labels={str(k): str(v) for k, v in (raw.get("row_labels") or {}).items()},
        metric=raw.get("metric"), goal=str(raw.get("goal", "maximize")), paper=raw.get("paper"), compare=compare,
        plot=plot, source=str(raw.get("source", "runs")), path=p, paper_setup=setup)


def override_text(value: Any) -> str:
    """How a value is written on the Hydra command line (what W&B's ``key={value}`` gives, too)."""
    return str(value)


def grid_points(exp: Experiment) -> list[list[str]]:
    """Every run's overrides, in W&B's grid order: parameters sorted by name, Cartesian product."""
    params = dict(exp.grid)
    if exp.seeds:
        params["seed"] = list(exp.seeds)
    constants = {**exp.fixed, "tags": f"[{exp.name}]"}
    names = sorted(set(params) | set(constants))
    swept = [n for n in names if n in params]
    points = []
    for combo in itertools.product(*(params[n] for n in swept)):
        values = dict(zip(swept, combo))
        points.append([f"{n}={override_text(values[n] if n in values else constants[n])}" for n in names])
    return points
