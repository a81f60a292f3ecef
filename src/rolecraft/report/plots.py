"""PNG plots: bars per row (Figure 6 style), grouped bars for ablations, and training loss curves."""

from __future__ import annotations

import csv
from pathlib import Path

from rolecraft.report.aggregate import Table


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams["font.sans-serif"] = ["Noto Sans CJK SC", "WenQuanYi Zen Hei", "SimHei", "DejaVu Sans"]
    plt.rcParams["axes.unicode_minus"] = False
    return plt


def _save(plt, fig, ax, out: Path) -> Path:
    ax.legend(fontsize=8)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def bars(t: Table, out: Path) -> Path | None:
    """One bar per row and metric, ours with std error bars, the paper's value as a hollow marker."""
    rows = [r for r in t.rows if any(c.n for c in r.cells.values())]
    if not rows:
        return None
    plt = _plt()
    cols = t.experiment.columns
    width = 0.8 / len(cols)
    fig, ax = plt.subplots(figsize=(max(4.0, 1.1 * len(rows) * max(1, len(cols)) ** 0.5 + 2), 3.6))
    for j, c in enumerate(cols):
        xs = [i + (j - (len(cols) - 1) / 2) * width for i in range(len(rows))]
        # a missing cell is not a bar of height 0: NaN draws nothing
        means = [r.cells[c].mean if r.cells[c].mean is not None else float("nan") for r in rows]
        errs = [r.cells[c].std if r.cells[c].std is not None else 0.0 for r in rows]
        ax.bar(xs, means, width * 0.9, yerr=errs, capsize=3, label=c)
        paper = [(x, r.paper[c]) for x, r in zip(xs, rows) if c in r.paper]
        if paper:
            ax.scatter([p[0] for p in paper], [p[1] for p in paper], marker="o", facecolors="none",
                       edgecolors="black", zorder=3, label="paper" if j == 0 else None)
    ax.set_xticks(range(len(rows)))
    ax.set_xticklabels([r.label for r in rows], rotation=20, ha="right")
    ax.set_title(t.experiment.title)
    return _save(plt, fig, ax, out)


def loss_curves(t: Table, out: Path) -> Path | None:
    """train/loss against step from each local run's logs/metrics.csv, one colour per row."""
    drawn = loss_figure(t)
    if drawn is None:
        return None
    plt, fig, ax = drawn
    return _save(plt, fig, ax, out)


def loss_figure(t: Table):
    """(pyplot, figure, axes) of the loss curves, not yet saved; None when no run logged a loss."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 3.6))
    drawn = 0
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, r in enumerate(t.rows):
        seen = set()
        for cell in r.cells.values():
            for run in cell.runs:
                if run.path is None or run.name in seen:
                    continue
                seen.add(run.name)
                f = run.path / "logs" / "metrics.csv"
                if not f.is_file():
                    continue
                steps, losses = [], []
                import io

                from rolecraft.fileio import read_text

                with io.StringIO(read_text(f), newline="") as fh:
                    for row in csv.DictReader(fh):
                        if row.get("train/loss") not in (None, "") and row.get("step") not in (None, ""):
                            steps.append(float(row["step"]))
                            losses.append(float(row["train/loss"]))
                if steps:
                    # markers: a run with one or two logged points is a dot or a short segment, not invisible
                    ax.plot(steps, losses, color=colours[i % len(colours)], alpha=0.8, marker="o",
                            markersize=4 if len(steps) <= 20 else 2, label=r.label if len(seen) == 1 else None)
                    drawn += 1
    if not drawn:
        plt.close(fig)
        return None
    ax.set_xlabel("step")
    ax.set_ylabel("train loss")
    ax.set_title(f"{t.experiment.title}: training loss")
    ax.legend(fontsize=8)
    return plt, fig, ax
