"""Runs -> a table: one row per row value, one cell per metric, seeds aggregated (mean, std, n)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from statistics import fmean, stdev

from rolecraft.report.collect import RunRecord
from rolecraft.sweeps.experiments import Experiment


@dataclass
class Cell:
    values: list[float] = field(default_factory=list)
    runs: list[RunRecord] = field(default_factory=list)

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float | None:
        return fmean(self.values) if self.values else None

    @property
    def std(self) -> float | None:
        return stdev(self.values) if len(self.values) > 1 else None


@dataclass
class Row:
    key: str  # the run value (e.g. "on"), or the label for rows that exist only in the paper
    label: str
    cells: dict[str, Cell]
    paper: dict[str, float]
    # True: the row's runs match the paper's declared setup (paper_setup), so the paper's values are
    # compared (Δ); False: shown for reference only, greyed, with ``Table.paper_note``; None: nothing to
    # compare (no paper value, or no run)
    comparable: bool | None = None

    def runs(self) -> list[RunRecord]:
        seen, out = set(), []
        for cell in self.cells.values():
            for run in cell.runs:
                if run.name not in seen:
                    seen.add(run.name)
                    out.append(run)
        return out

    def setups(self) -> list[str]:
        """The distinct (model, data) of the row's runs, as shown beside it."""
        return sorted({setup_text(r.provenance) for r in self.runs()})


@dataclass
class Table:
    experiment: Experiment
    rows: list[Row]
    paper_source: str | None
    # set when some row's runs do not match the paper's setup: "runs use model=tiny, data=embedded:demo;
    # paper: ChatGLM3-6B LoRA-tuned on RoleInstruct"
    paper_note: str | None = None

    def filled(self) -> int:
        return sum(1 for r in self.rows for c in r.cells.values() if c.n)


def load_paper_values(key: str | None) -> tuple[dict[str, dict[str, float]], str | None]:
    if not key:
        return {}, None
    from importlib import resources

    import yaml

    data = yaml.safe_load(resources.files("rolecraft.report").joinpath("paper_values.yaml").read_text(encoding="utf-8"))
    entry = data.get(key) or {}
    return {str(k): dict(v) for k, v in (entry.get("rows") or {}).items()}, entry.get("source")


def build_table(exp: Experiment, runs: list[RunRecord], duplicates: list[str] | None = None) -> Table:
    """``duplicates`` (if given) receives a note for every run that repeats a (row, seed) point."""
    duplicates = duplicates if duplicates is not None else []
    paper, source = load_paper_values(exp.paper)
    rows: dict[str, Row] = {}

    def row(key: str) -> Row:
        if key not in rows:
            label = exp.label(key)
            rows[key] = Row(key, label, {c: Cell() for c in exp.columns}, paper.get(label, {}))
        return rows[key]

    for key in (exp.grid.get(exp.rows) or []):  # grid order first, so tables read like the paper's
        row(str(key))
    if exp.rows.startswith("family:"):
        prefix = exp.rows.split(":", 1)[1]
        for r in runs:
            for k, v in r.metrics.items():
                if k.startswith(prefix) and isinstance(v, (int, float)) and not isinstance(v, bool):
                    cell = row(k[len(prefix):]).cells[exp.columns[0]]
                    cell.values.append(float(v))
                    cell.runs.append(r)
    else:
        latest: dict[tuple[str, str], RunRecord] = {}
        for r in runs:  # a point run twice (a rerun, W&B retries) counts once: the last one found
            key = r.value(exp.rows)
            if key is not None:
                ident = (key, r.seed or r.name)
                if ident in latest:
                    duplicates.append(f"{latest[ident].name} and {r.name} are the same point ({exp.rows}={key}, "
                                      f"seed {r.seed}); counted once ({r.name})")
                latest[ident] = r
        for r in latest.values():
            key = r.value(exp.rows)
            for c in exp.columns:
                v = r.metric(c)
                if v is not None and math.isfinite(v):
                    row(key).cells[c].values.append(v)
                    row(key).cells[c].runs.append(r)
    labels = {r.label for r in rows.values()}
    for label, values in paper.items():  # published rows we have no run for: shown, ours missing
        if label not in labels:
            rows[label] = Row(label, label, {c: Cell() for c in exp.columns}, values)
    table = Table(exp, list(rows.values()), source)
    mark_comparable(table)
    return table


def setup_text(prov: dict) -> str:
    """``model=tiny, data=embedded:demo`` for a run's provenance (``?`` where it was not recorded)."""
    return f"model={prov.get('model') or '?'}, data={prov.get('data_root') or prov.get('data') or '?'}"


def run_matches(setup, prov: dict) -> bool:
    """Whether a run used one of the declared base models and datasets (unknown never matches)."""
    if setup.models and prov.get("model") not in setup.models:
        return False
    if setup.data:
        root = str(prov.get("data_root") or "").rstrip("/")
        names = {prov.get("data"), root.rsplit("/", 1)[-1] if root else None}
        if not names & set(setup.data):
            return False
    return True


def mark_comparable(t: Table) -> None:
    """Decide per row whether the paper's values are compared with ours (see ``Row.comparable``).
    Without a declared ``paper_setup`` an experiment's rows are compared as before."""
    setup = t.experiment.paper_setup
    mismatched: list[str] = []
    for r in t.rows:
        runs = r.runs()
        if not r.paper or not runs:
            r.comparable = None
            continue
        if setup is None:
            r.comparable = True
            continue
        bad = [run for run in runs if not run_matches(setup, run.provenance)]
        r.comparable = not bad
        mismatched += [setup_text(run.provenance) for run in bad]
    if mismatched:
        used = sorted(set(mismatched))
        t.paper_note = (f"runs use {'; '.join(used[:3])}{' …' if len(used) > 3 else ''}; "
                        f"paper: {setup.text}: its values are shown for reference, not compared")
