"""The report: collect runs, build the table, write Markdown, LaTeX, CSV, plots, JSON and the dashboard."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rolecraft.errors import ConfigError


@dataclass
class ReportResult:
    out: Path
    table: object
    problems: list[str]
    ablations: list[dict]
    files: list[Path]


def report(experiment: str, runs_dir: str | None, out: str, wandb_path: str | None = None, api=None,
           resamples: int = 2000, force: bool = False, allow_empty: bool = False) -> ReportResult:
    from rolecraft.fileio import atomic_dir, check_output_dir, write_json, write_text
    from rolecraft.report import bootstrap, dashboard, plots, tables
    from rolecraft.report.aggregate import build_table
    from rolecraft.report.collect import collect_local, collect_wandb
    from rolecraft.sweeps.experiments import load_experiment

    exp = load_experiment(experiment)
    check_output_dir(out, force=force, inputs=[runs_dir])  # before the runs are read
    if not runs_dir and not wandb_path:
        raise ConfigError("report: give --runs DIR (local run directories) and/or --wandb ENTITY/PROJECT")
    runs, problems = [], []
    if runs_dir:
        if not Path(runs_dir).is_dir():
            raise ConfigError(f"--runs {runs_dir}: not a directory")
        r, p = collect_local(Path(runs_dir), exp)
        runs += r
        problems += p
    if wandb_path:
        r, p = collect_wandb(wandb_path, exp, api=api)
        runs += r
        problems += p
    if not runs and not allow_empty:
        where = " and ".join(x for x in (f"--runs {runs_dir}" if runs_dir else "",
                                         f"--wandb {wandb_path}" if wandb_path else "") if x)
        why = f" ({len(problems)} skipped: {problems[-1]})" if problems else ""
        raise ConfigError(f"report {exp.name}: no finished run of this experiment in {where}{why}; run its grid "
                          f"first (rolecraft sweep run-local sweeps/{exp.name}.yaml --runs-dir DIR), point --runs at "
                          "the runs, or pass --allow-empty to write the table with the paper's values only")
    table = build_table(exp, runs, problems)

    ablations = []
    for a, b in exp.compare:
        runs_a = [r for r in runs if r.value(exp.rows) == a]
        runs_b = [r for r in runs if r.value(exp.rows) == b]
        for metric in exp.columns:
            res = bootstrap.paired_bootstrap(runs_a, runs_b, metric, resamples=resamples)
            label = f"{exp.label(a)} − {exp.label(b)}"
            if res is None:
                ablations.append({"label": label, "a": a, "b": b, "metric": metric, "diff": None,
                                  "reason": "needs local runs of both with per-item predictions"})
            else:
                ablations.append({"label": label, "a": a, "b": b, **res})

    out_dir = Path(out).expanduser()
    with atomic_dir(out_dir, force=force, inputs=[runs_dir], writer="rolecraft report") as tmp:
        files = []
        for name, text in (("table.md", tables.markdown(table)), ("table.tex", tables.latex(table)),
                           ("table.csv", tables.csv_text(table))):
            write_text(tmp / name, text)
            files.append(out_dir / name)
        pngs = []
        if exp.plot != "none":
            p = plots.bars(table, tmp / "plots" / f"{exp.name}.png")
            if p:
                pngs.append(p)
        p = plots.loss_curves(table, tmp / "plots" / f"{exp.name}_loss.png")
        if p:
            pngs.append(p)
        setup = exp.paper_setup
        write_json(tmp / "report.json", {
            "experiment": exp.name, "title": exp.title, "paper_source": table.paper_source,
            "paper_setup": None if setup is None else {"text": setup.text, "models": setup.models, "data": setup.data},
            "paper_note": table.paper_note,
            "rows": [{"row": r.label, "key": r.key, "paper_comparable": r.comparable, "setups": r.setups(),
                      "cells": {c: {"mean": cell.mean, "std": cell.std, "n": cell.n, "paper": r.paper.get(c)}
                                for c, cell in r.cells.items()},
                      "runs": [{"name": run.name, **run.provenance} for run in r.runs()]} for r in table.rows],
            "ablations": ablations, "problems": problems, "runs": len(runs)})
        write_text(tmp / "index.html", dashboard.render(table, pngs, ablations, problems, out_dir))
        files += [out_dir / "report.json", out_dir / "index.html"]
        files += [out_dir / "plots" / p.name for p in pngs]
    return ReportResult(out_dir, table, problems, ablations, files)


def report_command(experiment: str, runs_dir: str | None, out: str, wandb_path: str | None = None,
                   resamples: int = 2000, force: bool = False, allow_empty: bool = False) -> int:
    """``rolecraft report``: notes on stderr; the table and each ablation's interval on stdout."""
    import sys

    from rolecraft.report.tables import markdown

    res = report(experiment, runs_dir, out, wandb_path=wandb_path, resamples=resamples, force=force,
                 allow_empty=allow_empty)
    for p in res.problems:
        print(f"note: {p}", file=sys.stderr)
    if res.table.paper_note:
        print(f"warning: not the paper's setup: {res.table.paper_note}", file=sys.stderr)
    if not res.table.filled():
        print(f"warning: no run of {experiment} found (--allow-empty): the table has the paper's values only",
              file=sys.stderr)
    print(markdown(res.table))
    for a in res.ablations:
        if a.get("diff") is not None:
            print(f"{a['label']} on {a['metric']}: {a['diff']:+.4f} [{a['ci_low']:+.4f}, {a['ci_high']:+.4f}] "
                  f"(95% CI, paired bootstrap over {a['items']} items; P(diff <= 0) = {a['p_diff_le_0']:.3f})")
    print(f"wrote {res.out} ({', '.join(p.name for p in res.files)}); open {res.out / 'index.html'}")
    return 0
