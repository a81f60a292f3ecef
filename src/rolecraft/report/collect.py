"""Runs as records: from local run directories (metrics.json + the Hydra record) or the W&B API."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rolecraft.errors import DataError
from rolecraft.provenance import describe
from rolecraft.provenance import read as read_provenance
from rolecraft.sweeps.experiments import Experiment

HUMAN_FORMAT = "rolecraft-human-results/1"


@dataclass
class RunRecord:
    name: str
    metrics: dict[str, Any]
    overrides: dict[str, str] = field(default_factory=dict)  # as typed (Hydra overrides / sweep params)
    choices: dict[str, str] = field(default_factory=dict)  # config-group choices (defaults included)
    config: dict = field(default_factory=dict)  # the resolved config
    tags: list[str] = field(default_factory=list)
    path: Path | None = None  # local run directory
    url: str | None = None  # W&B run page
    # what the run was made from (rolecraft.provenance.describe): model, data, data_sha256, code, overrides
    provenance: dict = field(default_factory=dict)

    def value(self, key: str) -> str | None:
        """A run's value for ``key``: an override, a group choice, a metric or a config path."""
        for table in (self.overrides, self.choices):
            if key in table:
                return str(table[key])
        if key in self.metrics and not isinstance(self.metrics[key], (dict, list)):
            return str(self.metrics[key])
        node: Any = self.config
        for part in key.split("."):
            if not isinstance(node, dict) or part not in node:
                return None
            node = node[part]
        return None if isinstance(node, (dict, list)) else str(node)

    def metric(self, name: str) -> float | None:
        from rolecraft.rundir import metric

        v = metric(self.metrics, name)
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return float(v)
        return None

    @property
    def seed(self) -> str | None:
        return self.value("seed")

    @property
    def predictions(self) -> Path | None:
        from rolecraft.rundir import samples_path

        return None if self.path is None else samples_path(self.path)


def _hydra_record(run_dir: Path) -> tuple[dict, dict]:
    overrides, choices = {}, {}
    ov = run_dir / ".hydra" / "overrides.yaml"
    if ov.is_file():
        from rolecraft.fileio import read_yaml

        for item in read_yaml(ov) or []:
            k, _, v = str(item).partition("=")
            overrides[k.lstrip("+~")] = v
    hy = run_dir / ".hydra" / "hydra.yaml"
    if hy.is_file():
        try:
            runtime = (read_yaml(hy) or {}).get("hydra", {}).get("runtime", {})
            choices = {k: str(v) for k, v in (runtime.get("choices") or {}).items() if not k.startswith("hydra/")}
        except DataError:
            pass
    return overrides, choices


def _config(run_dir: Path) -> dict:
    for p in (run_dir / "config.yaml", run_dir / ".hydra" / "config.yaml"):
        if p.is_file():
            from rolecraft.fileio import read_yaml

            try:
                cfg = read_yaml(p)
                return cfg if isinstance(cfg, dict) else {}
            except DataError:
                return {}
    return {}


def collect_local(runs_dir: Path, exp: Experiment) -> tuple[list[RunRecord], list[str]]:
    """Every run under ``runs_dir`` that belongs to ``exp``; unreadable ones become problems, not crashes."""
    runs_dir = Path(runs_dir)
    if exp.source == "human":
        return _collect_human(runs_dir)
    records, problems = [], []
    for mfile in sorted(runs_dir.rglob("metrics.json")):
        run_dir = mfile.parent
        if any(part in ("adapter", "checkpoints", "wandb") for part in run_dir.relative_to(runs_dir).parts):
            continue
        try:
            metrics = json.loads(mfile.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            problems.append(f"{mfile}: unreadable or partial ({type(e).__name__}: {str(e)[:80]}); skipped")
            continue
        if not isinstance(metrics, dict):
            problems.append(f"{mfile}: not a JSON object; skipped")
            continue
        overrides, choices = _hydra_record(run_dir)
        config = _config(run_dir)
        tags = [str(t) for t in (config.get("tags") or [])]
        records.append(RunRecord(str(run_dir.relative_to(runs_dir)), metrics, overrides, choices, config, tags,
                                 path=run_dir, provenance=describe(read_provenance(run_dir), config, overrides)))
    return _select(records, exp, problems)


def _select(records: list[RunRecord], exp: Experiment, problems: list[str]) -> tuple[list[RunRecord], list[str]]:
    tagged = [r for r in records if exp.name in r.tags]
    if tagged:
        chosen = tagged
    else:  # untagged runs (a plain `-m` grid): those that typed every grid key and no other fixed value
        def matches(r: RunRecord) -> bool:
            return (all(k in r.overrides for k in exp.grid)
                    and all(r.overrides[k] == str(v) for k, v in exp.fixed.items() if k in r.overrides))

        chosen = [r for r in records if matches(r)] if exp.grid else records
        if chosen:
            problems.append(f"no run is tagged {exp.name!r}; using {len(chosen)} untagged run(s) that set "
                            f"{', '.join(exp.grid) or 'any key'}")
    out = []
    for r in chosen:
        if all(r.metric(c) is None for c in exp.columns) and not exp.rows.startswith("family:"):
            problems.append(f"{r.name}: has none of {', '.join(exp.columns)} (unfinished or another kind of run); skipped")
            continue
        out.append(r)
    return out, problems


def _collect_human(runs_dir: Path) -> tuple[list[RunRecord], list[str]]:
    records, problems = [], []
    for f in sorted(runs_dir.rglob("*.json")):
        try:
            res = json.loads(f.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if not isinstance(res, dict) or res.get("format") != HUMAN_FORMAT:
            continue
        for model, crits in (res.get("scores") or {}).items():
            metrics = {f"human/{c}": e.get("mean") for c, e in crits.items() if isinstance(e, dict)}
            records.append(RunRecord(f"{f.relative_to(runs_dir)}:{model}", metrics, {"model": model}, path=f.parent,
                                     provenance=describe(None, {})))
    if not records:
        problems.append(f"{runs_dir}: no human evaluation results ({HUMAN_FORMAT}) found")
    return records, problems


def collect_wandb(path: str, exp: Experiment, api=None) -> tuple[list[RunRecord], list[str]]:
    """Runs of ENTITY/PROJECT tagged with the experiment, through W&B's public API (``wandb.Api``).
    Only ``api.runs(path, filters=...)`` and each run's ``name``, ``url``, ``tags``, ``config`` and
    ``summary`` are used, so a stub with those can stand in for it in tests."""
    if api is None:
        import wandb

        api = wandb.Api()
    records, problems = [], []
    for run in api.runs(path, filters={"tags": {"$in": [exp.name]}}):
        config = dict(run.config or {})
        hydra = config.pop("_hydra", {}) or {}
        overrides = {}
        for item in hydra.get("overrides") or []:
            k, _, v = str(item).partition("=")
            overrides[k.lstrip("+~")] = v
        summary = {k: v for k, v in dict(run.summary or {}).items() if not str(k).startswith("_")}
        prov = config.pop("_provenance", None)
        records.append(RunRecord(run.name, summary, overrides, dict(hydra.get("choices") or {}), config,
                                 list(run.tags or []), url=getattr(run, "url", None),
                                 provenance=describe(prov if isinstance(prov, dict) else None, config, overrides)))
    return _select(records, exp, problems)
