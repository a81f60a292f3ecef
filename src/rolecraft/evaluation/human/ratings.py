"""Import: filled sheets back, validated cell by cell, aggregated into results.

``read_sheets`` reads the filled sheets against the export's ``key.json`` (a bad cell raises with
file:line, row and column); ``aggregate`` gives per model and criterion the mean with a 95%
bootstrap interval over items, and per criterion the inter-annotator agreement (Krippendorff's
alpha, ordinal metric); ``format_table`` prints them. The statistics are :mod:`rolecraft.stats`.
"""

from __future__ import annotations

import csv
import io
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from rolecraft.evaluation.human.rubric import (
    CRITERIA,
    CRITERION_NAMES,
    CRITERION_SHORT,
    KEY_FORMAT,
    RESULTS_FORMAT,
    SCORE_MAX,
    SCORE_MIN,
    HumanEvalError,
)
from rolecraft.errors import RolecraftError
from rolecraft.stats import bootstrap_mean_ci, krippendorff_alpha


@dataclass
class Rating:
    annotator: str
    item_id: str
    answer_id: str
    model: str
    criterion: str
    score: int | None  # None: left empty
    where: str


def load_key(path: Path) -> dict:
    from rolecraft.fileio import read_json

    path = Path(path).expanduser()
    if path.is_dir():
        path = path / "key.json"
    if not path.is_file():
        raise HumanEvalError(f"--key {path}: no such file; pass the key.json written by `rolecraft human export`")
    key = read_json(path)
    if not isinstance(key, dict) or key.get("format") != KEY_FORMAT or not isinstance(key.get("answers"), dict):
        raise HumanEvalError(f"--key {path}: not a key written by `rolecraft human export` (format {KEY_FORMAT})")
    return key


def _decode(path: Path) -> str:
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        # a sheet saved by Excel as "CSV (comma delimited)" on a Chinese system is GBK; only the
        # ids and scores are read back, which are ASCII in every encoding
        try:
            return data.decode("gb18030")
        except UnicodeDecodeError:
            from rolecraft.fileio import decode

            try:
                decode(data, path)
            except RolecraftError as e:  # FILE:LINE: not UTF-8 (byte ..)
                raise HumanEvalError(f"{e}; save the sheet as \"CSV UTF-8 (comma delimited)\"") from None
            raise


_REQUIRED = ("item_id", "answer_id", *CRITERIA)


def _parse_score(raw: str) -> int | None:
    """'' -> None; '1'..'5' (full-width digits too) -> int; anything else -> ValueError."""
    text = unicodedata.normalize("NFKC", raw).strip()
    if not text:
        return None
    if re.fullmatch(r"[0-9]+", text) and SCORE_MIN <= int(text) <= SCORE_MAX:
        return int(text)
    raise ValueError(text)


def read_sheet(path: Path, key: dict, annotator: str | None = None) -> tuple[list[Rating], dict]:
    """The ratings of one filled sheet and its coverage counts; bad cells raise with file:line."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise HumanEvalError(f"{path}: no such sheet")
    annotator = annotator or path.stem
    text = _decode(path)
    first_line = text.split("\n", 1)[0]
    delim = max((",", ";", "\t"), key=lambda d: sum(c in [h.strip().lower() for h in first_line.split(d)]
                                                    for c in _REQUIRED))
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delim)
    try:
        header = next(reader)
    except StopIteration:
        raise HumanEvalError(f"{path}: empty file; expected a sheet written by `rolecraft human export`") from None
    cols = [h.strip().lower() for h in header]
    missing = [c for c in _REQUIRED if c not in cols]
    if missing:
        raise HumanEvalError(f"{path}:1: missing column(s) {', '.join(missing)} (header: {', '.join(header)[:120]}); "
                             f"keep the columns of the sheet written by `rolecraft human export`")
    idx = {c: cols.index(c) for c in _REQUIRED}
    answers = key["answers"]
    ratings: list[Rating] = []
    seen: dict[str, str] = {}
    line = reader.line_num + 1
    row_no = 1
    for row in reader:
        start, line = line, reader.line_num + 1  # the record's first physical line; the next one
        row_no += 1
        if not any(cell.strip() for cell in row):
            continue
        where = f"{path}:{start}"
        cells = {c: row[i] if i < len(row) else "" for c, i in idx.items()}
        aid = cells["answer_id"].strip()
        if aid not in answers:
            what = "empty answer_id" if not aid else f"unknown answer id {aid!r} (not in the key)"
            raise HumanEvalError(f"{where}: row {row_no}, column answer_id: {what}; this sheet does not belong to "
                                 f"this export, or the id was edited")
        if aid in seen:
            raise HumanEvalError(f"{where}: row {row_no}, column answer_id: {aid!r} appears twice (first at "
                                 f"{seen[aid]}); delete the duplicate row")
        seen[aid] = where
        item_id, model = answers[aid]["item_id"], answers[aid]["model"]
        if cells["item_id"].strip() != item_id:
            raise HumanEvalError(f"{where}: row {row_no}, column item_id: {cells['item_id'].strip()!r}, but answer "
                                 f"{aid} belongs to {item_id}; do not edit item_id or answer_id")
        for c in CRITERIA:
            try:
                score = _parse_score(cells[c])
            except ValueError as e:
                raise HumanEvalError(f"{where}: row {row_no}, column {c}: {str(e)!r} is not a score; enter a whole "
                                     f"number {SCORE_MIN}-{SCORE_MAX} or leave the cell empty") from None
            ratings.append(Rating(annotator, item_id, aid, model, c, score, where))
    coverage = {
        "answers": len(answers),
        "rows": len(seen),
        "missing_rows": len(answers) - len(seen),
        "rated": {c: sum(1 for r in ratings if r.criterion == c and r.score is not None) for c in CRITERIA},
    }
    return ratings, coverage


def read_sheets(paths: Sequence[Path], key: dict) -> tuple[list[Rating], dict[str, dict]]:
    """All sheets; the annotator id is the file name without its extension (must be unique)."""
    if not paths:
        raise HumanEvalError("human import: no sheets given; pass the filled sheet_NN.csv files")
    by_id: dict[str, Path] = {}
    for p in paths:
        p = Path(p).expanduser()
        if p.stem in by_id:
            raise HumanEvalError(f"{p}: annotator id {p.stem!r} (the file name) is also the name of {by_id[p.stem]}; "
                                 f"each annotator's sheet needs its own file name")
        by_id[p.stem] = p
    ratings: list[Rating] = []
    coverage: dict[str, dict] = {}
    for ann, p in by_id.items():
        r, cov = read_sheet(p, key, ann)
        ratings.extend(r)
        coverage[ann] = cov
    return ratings, coverage


def aggregate(ratings: Sequence[Rating], key: dict, coverage: dict[str, dict], resamples: int = 10000,
              seed: int = 0, level: float = 0.95) -> dict:
    """Per model and criterion: mean, n, 95% interval; per criterion: Krippendorff's alpha (ordinal)."""
    from statistics import fmean, pstdev

    if resamples < 100:
        raise HumanEvalError(f"--resamples {resamples}: use at least 100 bootstrap resamples (default 10000)")
    models: list[str] = list(key.get("models") or sorted({a["model"] for a in key["answers"].values()}))
    annotators = list(coverage)
    answers_of = {m: [aid for aid, a in key["answers"].items() if a["model"] == m] for m in models}
    scores: dict[str, dict] = {}
    flat: dict[str, object] = {}
    for m in models:
        scores[m] = {}
        for c in CRITERIA:
            by_item: dict[str, list[int]] = {}
            for r in ratings:
                if r.model == m and r.criterion == c and r.score is not None:
                    by_item.setdefault(r.item_id, []).append(r.score)
            vals = [s for g in by_item.values() for s in g]
            expected = len(answers_of[m]) * len(annotators)
            ci = bootstrap_mean_ci(list(by_item.values()), level, resamples, seed)
            entry = {
                "mean": fmean(vals) if vals else None,
                "n": len(vals),
                "n_items": len(by_item),
                "not_rated": expected - len(vals),
                "sd": pstdev(vals) if vals else None,
                "ci_low": ci[0] if ci else None,
                "ci_high": ci[1] if ci else None,
            }
            if ci is None:
                entry["ci_reason"] = "needs ratings of at least 2 items"
            scores[m][c] = entry
            for field in ("mean", "ci_low", "ci_high", "n"):
                flat[f"human/{c}/{m}/{field}"] = entry[field]
    agreement: dict[str, dict] = {}
    for c in CRITERIA:
        units: dict[str, list[int]] = {}
        for r in ratings:
            if r.criterion == c and r.score is not None:
                units.setdefault(r.answer_id, []).append(r.score)
        alpha, reason = krippendorff_alpha(units.values(), "ordinal")
        agreement[c] = {"alpha": alpha, "metric": "ordinal", "units": sum(1 for u in units.values() if len(u) >= 2),
                        "pairable_ratings": sum(len(u) for u in units.values() if len(u) >= 2)}
        if reason:
            agreement[c]["reason"] = reason
        flat[f"human/alpha/{c}"] = alpha
    return {
        "format": RESULTS_FORMAT,
        "criteria": {c: CRITERION_NAMES[c] for c in CRITERIA},
        "scale": [SCORE_MIN, SCORE_MAX],
        "models": models,
        "annotators": annotators,
        "items": len(key.get("items", {})),
        "ci": {"method": "percentile bootstrap over items (an item's ratings resampled together)",
               "level": level, "resamples": resamples, "seed": seed},
        "scores": scores,
        "agreement": agreement,
        "coverage": coverage,
        "flat": flat,
    }


def format_table(res: dict) -> str:
    """Means with intervals per model and criterion, then the agreement and coverage lines."""
    def fmt(e: dict) -> str:
        if e["mean"] is None:
            return "n/a"
        ci = f" [{e['ci_low']:.2f}, {e['ci_high']:.2f}]" if e["ci_low"] is not None else ""
        return f"{e['mean']:.2f}{ci} n={e['n']}"

    header = ["model", *(CRITERION_SHORT[c] for c in CRITERIA)]
    rows = [[m, *(fmt(res["scores"][m][c]) for c in CRITERIA)] for m in res["models"]]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in [header, *rows]]
    level = round(res["ci"]["level"] * 100)
    lines.insert(1, f"(mean [{level}% bootstrap interval over items], n = ratings)")
    parts = []
    for c in CRITERIA:
        a = res["agreement"][c]
        parts.append(f"{CRITERION_SHORT[c]} {a['alpha']:.3f}" if a["alpha"] is not None
                     else f"{CRITERION_SHORT[c]} n/a ({a['reason']})")
    lines.append("agreement (Krippendorff's alpha, ordinal): " + "; ".join(parts))
    cov = []
    for ann, cv in res["coverage"].items():
        rated = min(cv["rated"].values())
        extra = f", {cv['missing_rows']} rows missing" if cv["missing_rows"] else ""
        cov.append(f"{ann} {rated}/{cv['answers']}{extra}")
    lines.append(f"{len(res['annotators'])} annotators, {res['items']} questions; answers rated per sheet (fewest "
                 f"over the criteria): " + ", ".join(cov))
    return "\n".join(lines)


def results_path(key_arg: Path) -> Path:
    """Default ``--out`` of ``human import``: results.json beside the key."""
    key_arg = Path(key_arg).expanduser()
    return (key_arg if key_arg.is_dir() else key_arg.parent) / "results.json"


def import_command(sheets: Sequence[str], key: str, out: str | None, resamples: int, seed: int) -> int:
    """``rolecraft human import``: the results table on stdout, every number in the results JSON."""
    from rolecraft.fileio import write_json

    key_obj = load_key(Path(key))
    ratings, coverage = read_sheets([Path(p) for p in sheets], key_obj)
    res = aggregate(ratings, key_obj, coverage, resamples=resamples, seed=seed)
    path = Path(out).expanduser() if out else results_path(Path(key))
    write_json(path, res)
    print(format_table(res))
    print(f"results written to {path}")
    return 0
