"""A table as Markdown, LaTeX and CSV: ours (mean ± std, n) beside the paper's value and the difference.

A missing cell is shown as missing ("—"), a value the paper did not publish as "n/p": never 0.
"""

from __future__ import annotations

import csv
import io

from rolecraft.report.aggregate import Cell, Table

MISSING, NOT_PUBLISHED, NOT_COMPARED = "—", "n/p", "n/c"


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


def paper_text(row, metric: str, digits: int) -> str:
    """The paper's value; in parentheses where the row's runs are of another setup (not compared)."""
    p = row.paper.get(metric)
    if p is None:
        return NOT_PUBLISHED
    return f"({p:.{digits}f})" if row.comparable is False else f"{p:.{digits}f}"


def diff_text(row, metric: str, digits: int) -> str:
    if row.comparable is False and row.paper.get(metric) is not None:
        return NOT_COMPARED
    dd = diff(row.cells[metric], row.paper.get(metric))
    return MISSING if dd is None else f"{dd:+.{digits}f}"


def legend(t: Table) -> str:
    s = (f"Ours: mean ± std over seeds (n runs). Paper: {t.paper_source or 'no published values'}. "
         f"{MISSING} = no run; {NOT_PUBLISHED} = not published.")
    if t.paper_note:
        s += f" (x) / {NOT_COMPARED}: {t.paper_note}."
    return s


def _digits(metric: str) -> int:
    return 2 if metric.startswith(("human/", "judge/")) else 4


def markdown(t: Table) -> str:
    exp = t.experiment
    head = ["", *[h for c in exp.columns for h in (f"{c} (ours)", "paper", "Δ")], "runs"]
    lines = [f"### {exp.title}", ""]
    if t.paper_note:
        lines += [f"**Not the paper's setup:** {t.paper_note}.", ""]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in t.rows:
        cells = [r.label]
        for c in exp.columns:
            d = _digits(c)
            cells += [ours(r.cells[c], d), paper_text(r, c, d), diff_text(r, c, d)]
        cells.append("; ".join(r.setups()) or MISSING)
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", legend(t)]
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
            cells += [_tex(o), paper_text(r, c, d), diff_text(r, c, d)]
        out.append(" & ".join(_tex(c) if i else c for i, c in enumerate(cells)) + r" \\")
    out += [r"\bottomrule", r"\end{tabular}"]
    if t.paper_note:
        out.append(rf"\par\footnotesize (x), {NOT_COMPARED}: {_tex(t.paper_note)}.")
    out.append(r"\end{table}")
    return "\n".join(out) + "\n"


def csv_text(t: Table) -> str:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["experiment", "row", "metric", "mean", "std", "n", "paper", "diff", "paper_comparable", "runs"])
    for r in t.rows:
        for c in t.experiment.columns:
            cell, p = r.cells[c], r.paper.get(c)
            dd = None if r.comparable is False else diff(cell, p)
            w.writerow([t.experiment.name, r.label, c, "" if cell.mean is None else f"{cell.mean:.6f}",
                        "" if cell.std is None else f"{cell.std:.6f}", cell.n, "" if p is None else p,
                        "" if dd is None else f"{dd:.6f}", "" if r.comparable is None else str(r.comparable).lower(),
                        "; ".join(r.setups())])
    return buf.getvalue()
