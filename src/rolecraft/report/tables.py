"""A table as Markdown, LaTeX and CSV: ours (mean ± std, n) beside the paper's value and the difference.

A missing cell is shown as missing ("—"), a value the paper did not publish as "n/p": never 0.
"""

from __future__ import annotations

import csv
import io

from rolecraft.report.aggregate import Cell, Table

MISSING, NOT_PUBLISHED = "—", "n/p"


def _num(x: float | None, digits: int = 4) -> str:
    return MISSING if x is None else f"{x:.{digits}f}"


def ours(cell: Cell, digits: int = 4) -> str:
    if not cell.n:
        return MISSING
    s = f"{cell.mean:.{digits}f}"
    if cell.std is not None:
        s += f" ± {cell.std:.{digits}f}"
    return f"{s} (n={cell.n})"


def diff(cell: Cell, paper: float | None) -> float | None:
    return None if (cell.mean is None or paper is None) else cell.mean - paper


def _digits(metric: str) -> int:
    return 2 if metric.startswith(("human/", "judge/")) else 4


def markdown(t: Table) -> str:
    exp = t.experiment
    head = ["", *[h for c in exp.columns for h in (f"{c} (ours)", "paper", "Δ")]]
    lines = [f"### {exp.title}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in t.rows:
        cells = [r.label]
        for c in exp.columns:
            d = _digits(c)
            p = r.paper.get(c)
            cells += [ours(r.cells[c], d), NOT_PUBLISHED if p is None else f"{p:.{d}f}",
                      MISSING if diff(r.cells[c], p) is None else f"{diff(r.cells[c], p):+.{d}f}"]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", f"Ours: mean ± std over seeds (n runs). Paper: {t.paper_source or 'no published values'}. "
              f"{MISSING} = no run; {NOT_PUBLISHED} = not published."]
    return "\n".join(lines) + "\n"


def _tex(s: str) -> str:
    for a, b in (("\\", r"\textbackslash{}"), ("_", r"\_"), ("%", r"\%"), ("&", r"\&"), ("#", r"\#"), ("±", r"$\pm$"),
                 ("Δ", r"$\Delta$"), ("—", "--")):
        s = s.replace(a, b)
    return s


def latex(t: Table) -> str:
    exp = t.experiment
    cols = "l" + "rrr" * len(exp.columns)
    out = [r"\begin{table}[t]", r"\centering", rf"\caption{{{_tex(exp.title)}}}", rf"\begin{{tabular}}{{{cols}}}",
           r"\toprule",
           " & ".join([""] + [rf"\multicolumn{{3}}{{c}}{{{_tex(c)}}}" for c in exp.columns]) + r" \\",
           " & ".join([""] + ["ours & paper & $\\Delta$"] * len(exp.columns)) + r" \\", r"\midrule"]
    for r in t.rows:
        cells = [_tex(r.label)]
        for c in exp.columns:
            d = _digits(c)
            cell, p = r.cells[c], r.paper.get(c)
            o = MISSING if not cell.n else (f"{cell.mean:.{d}f}" + (f" ± {cell.std:.{d}f}" if cell.std is not None else ""))
            dd = diff(cell, p)
            cells += [_tex(o), NOT_PUBLISHED if p is None else f"{p:.{d}f}", MISSING if dd is None else f"{dd:+.{d}f}"]
        out.append(" & ".join(_tex(c) if i else c for i, c in enumerate(cells)) + r" \\")
    out += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(out) + "\n"


def csv_text(t: Table) -> str:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["experiment", "row", "metric", "mean", "std", "n", "paper", "diff"])
    for r in t.rows:
        for c in t.experiment.columns:
            cell, p = r.cells[c], r.paper.get(c)
            dd = diff(cell, p)
            w.writerow([t.experiment.name, r.label, c, "" if cell.mean is None else f"{cell.mean:.6f}",
                        "" if cell.std is None else f"{cell.std:.6f}", cell.n, "" if p is None else p,
                        "" if dd is None else f"{dd:.6f}"])
    return buf.getvalue()
