"""One self-contained HTML file: tables, plots (embedded as data URIs), ablation intervals, runs.

It opens from disk with no server; links to a run's predictions are relative paths from the
dashboard to the run directory (W&B runs link to their W&B page).
"""

from __future__ import annotations

import base64
import html
import os
from pathlib import Path

from rolecraft.report.aggregate import Table
from rolecraft.report.tables import MISSING, NOT_COMPARED, NOT_PUBLISHED, _digits, diff, diff_text, ours, paper_text

_CSS = """body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:.3em .6em;text-align:right}
td:first-child,th:first-child{text-align:left}th{background:#f3f3f3}.miss{color:#999}.neg{color:#b00}.pos{color:#070}
img{max-width:100%;border:1px solid #eee;margin:.5em 0}.note{color:#555;font-size:.9em}code{background:#f6f6f6}
.grey{color:#aaa;font-style:italic}.warn{background:#fff4d6;border-left:4px solid #e0a800;padding:.5em .8em}"""


def _img(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img alt="{html.escape(path.stem)}" src="data:image/png;base64,{data}">'


def render(t: Table, plots: list[Path], ablations: list[dict], problems: list[str], out_dir: Path) -> str:
    exp = t.experiment
    e = html.escape
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{e(exp.title)}</title>"
             f"<style>{_CSS}</style></head><body><h1>{e(exp.title)}</h1>",
             f"<p class='note'>experiment <code>{e(exp.name)}</code>; paper: {e(t.paper_source or 'no published values')}"
             f"; ours = mean ± std over seeds (n runs); {MISSING} = no run, {NOT_PUBLISHED} = not published.</p>"]
    if t.paper_note:
        parts.append(f"<p class='warn'><b>Not the paper's setup:</b> {e(t.paper_note)} (greyed, Δ {NOT_COMPARED}).</p>")
    head = "".join(f"<th>{e(c)} (ours)</th><th>paper</th><th>Δ</th>" for c in exp.columns)
    parts.append(f"<table><tr><th></th>{head}<th>runs (model, data)</th></tr>")
    for r in t.rows:
        tds = [f"<td>{e(r.label)}</td>"]
        for c in exp.columns:
            d = _digits(c)
            p = r.paper.get(c)
            dd = diff(r.cells[c], p)
            o = ours(r.cells[c], d)
            tds.append(f"<td class='{'miss' if o == MISSING else ''}'>{e(o)}</td>")
            if r.comparable is False and p is not None:
                note = e(t.paper_note or "")
                tds.append(f"<td class='grey' title='{note}'>{e(paper_text(r, c, d))}</td>")
                tds.append(f"<td class='grey' title='{note}'>{NOT_COMPARED}</td>")
                continue
            tds.append(f"<td class='{'miss' if p is None else ''}'>{e(paper_text(r, c, d))}</td>")
            cls = "miss" if dd is None else ("pos" if dd >= 0 else "neg")
            tds.append(f"<td class='{cls}'>{e(diff_text(r, c, d))}</td>")
        tds.append(f"<td class='note'>{e('; '.join(r.setups()) or MISSING)}</td>")
        parts.append("<tr>" + "".join(tds) + "</tr>")
    parts.append("</table>")
    if ablations:
        parts.append("<h2>Ablations: paired bootstrap over test items</h2><table><tr><th>comparison</th><th>metric</th>"
                     "<th>Δ (a − b)</th><th>95% CI</th><th>P(Δ ≤ 0)</th><th>items</th><th>runs a / b</th></tr>")
        for a in ablations:
            if a.get("diff") is None:
                parts.append(f"<tr><td>{e(a['label'])}</td><td>{e(a['metric'])}</td><td colspan='5' class='miss'>"
                             f"{e(a.get('reason', 'not available'))}</td></tr>")
                continue
            parts.append(f"<tr><td>{e(a['label'])}</td><td>{e(a['metric'])}</td><td>{a['diff']:+.4f}</td>"
                         f"<td>[{a['ci_low']:+.4f}, {a['ci_high']:+.4f}]</td><td>{a['p_diff_le_0']:.3f}</td>"
                         f"<td>{a['items']}</td><td>{a['runs_a']} / {a['runs_b']}</td></tr>")
        parts.append("</table>")
    for p in plots:
        parts.append(_img(p))
    parts.append("<h2>Runs</h2><table><tr><th>row</th><th>run</th><th>seed</th><th>predictions</th><th>base model</th>"
                 "<th>data (sha256)</th><th>code</th><th>overrides</th></tr>")
    seen = set()
    for r in t.rows:
        for cell in r.cells.values():
            for run in cell.runs:
                if run.name in seen:
                    continue
                seen.add(run.name)
                if run.predictions is not None:
                    href = os.path.relpath(run.predictions, out_dir)
                    link = f"<a href='{e(href)}'>{e(run.predictions.name)}</a>"
                elif run.url:
                    link = f"<a href='{e(run.url)}'>W&amp;B</a>"
                else:
                    link = "<span class='miss'>—</span>"
                pv = run.provenance
                sha = pv.get("data_sha256")
                data = f"{pv.get('data_root') or pv.get('data') or '?'}" + (f" ({sha[:12]})" if sha else "")
                model = pv.get("model") or "?"
                if pv.get("model_path") and pv.get("model_path") != model:
                    model += f" ({pv['model_path']})"
                parts.append(f"<tr><td>{e(r.label)}</td><td>{e(run.name)}</td><td>{e(str(run.seed or ''))}</td>"
                             f"<td>{link}</td><td>{e(model)}</td><td>{e(data)}</td><td>{e(pv.get('code') or '?')}</td>"
                             f"<td><code>{e(' '.join(pv.get('overrides') or []))}</code></td></tr>")
    parts.append("</table>")
    if problems:
        parts.append("<h2>Skipped</h2><ul>" + "".join(f"<li>{e(p)}</li>" for p in problems) + "</ul>")
    parts.append("</body></html>")
    return "\n".join(parts)
