"""Agreement between emotion annotations: accuracy, Cohen's and Fleiss' kappa, confusion, P/R/F1.

Used to measure an (LLM) annotator against human gold, e.g. the CPED import
(``rolecraft data import cped``) against a run of the construction pipeline's annotator:
``rolecraft data agreement GOLD LLM [LLM2 ...]``. The first source is the reference.

A *source* is one of

* a canonical dataset directory (or ``embedded:demo``): the ``emotion`` of its script;
* a ``.jsonl`` file of objects with ``id`` and ``emotion`` (a ``script.jsonl`` is one);
* a ``.csv`` file with columns ``id`` and ``emotion``.

Labels are the ten of :data:`~rolecraft.data.schema.EMOTIONS`, in English (any case) or their
Chinese names (:data:`~rolecraft.data.schema.EMOTION_ZH`); an empty cell, ``null`` or a JSON
``null`` means "not labelled". Items are aligned by utterance id; only ids labelled in every
source count, the rest are reported as dropped.

The classification metrics here are plain Python over label sequences; the kappas live in
:mod:`rolecraft.stats` (shared with the human evaluation) and are re-exported here.

**Degenerate kappa.** Kappa is ``(p_o - p_e) / (1 - p_e)``. When ``p_e = 1`` (every rating in
every source is one and the same label) it is 0/0: undefined. The functions then return
``None`` (JSON ``null``; printed as "undefined"), never NaN and never a made-up number; the
observed agreement (accuracy) is still reported and is 1.0 in that case.
"""

from __future__ import annotations

import csv
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path

from rolecraft.data.emotions import EMOTION_ZH, EMOTIONS, normalise_emotion
from rolecraft.errors import DataError
from rolecraft.stats import cohen_kappa, fleiss_kappa, fleiss_kappa_from_counts

__all__ = ["accuracy", "agreement", "cohen_kappa", "confusion", "fleiss_kappa", "fleiss_kappa_from_counts",
           "format_report", "load_source", "macro_f1", "normalize_label", "per_label"]

_UNLABELLED = {"", "null", "none"}


# --------------------------------------------------------------------------------------
# Metrics
# --------------------------------------------------------------------------------------


def _check_pair(a: Sequence, b: Sequence) -> None:
    if len(a) != len(b):
        raise ValueError(f"label lists differ in length ({len(a)} vs {len(b)})")
    if not a:
        raise ValueError("no items to compare")


def accuracy(a: Sequence[Hashable], b: Sequence[Hashable]) -> float:
    """Observed agreement: the share of items with the same label in ``a`` and ``b``."""
    _check_pair(a, b)
    return sum(x == y for x, y in zip(a, b)) / len(a)


def confusion(a: Sequence[Hashable], b: Sequence[Hashable], labels: Sequence[Hashable]) -> list[list[int]]:
    """Counts: ``matrix[i][j]`` = items labelled ``labels[i]`` in ``a`` and ``labels[j]`` in ``b``
    (rows = the reference). A label outside ``labels`` raises ValueError."""
    _check_pair(a, b)
    index = {lab: i for i, lab in enumerate(labels)}
    matrix = [[0] * len(labels) for _ in labels]
    for x, y in zip(a, b):
        if x not in index or y not in index:
            raise ValueError(f"label {x if x not in index else y!r} is not among {list(labels)}")
        matrix[index[x]][index[y]] += 1
    return matrix


def per_label(a: Sequence[Hashable], b: Sequence[Hashable], labels: Sequence[Hashable]) -> dict:
    """Precision, recall and F1 of ``b`` against the reference ``a`` for each label.

    ``support`` = items with the label in ``a``, ``predicted`` = in ``b``. Precision is None
    when ``b`` never uses the label, recall None when ``a`` never does; F1 = 2tp/(2tp+fp+fn)
    (0 when either side has the label but they never agree, None when neither has it).
    """
    _check_pair(a, b)
    out = {}
    for lab in labels:
        tp = sum(1 for x, y in zip(a, b) if x == lab and y == lab)
        support = sum(1 for x in a if x == lab)
        predicted = sum(1 for y in b if y == lab)
        fp, fn = predicted - tp, support - tp
        out[lab] = {
            "precision": tp / predicted if predicted else None,
            "recall": tp / support if support else None,
            "f1": 2 * tp / (2 * tp + fp + fn) if (2 * tp + fp + fn) else None,
            "support": support,
            "predicted": predicted,
        }
    return out


def macro_f1(table: dict) -> float | None:
    """Mean F1 over the labels where it is defined (in the reference or the other source)."""
    f1s = [v["f1"] for v in table.values() if v["f1"] is not None]
    return sum(f1s) / len(f1s) if f1s else None


# --------------------------------------------------------------------------------------
# Sources
# --------------------------------------------------------------------------------------


@dataclass
class Source:
    name: str                      # as given on the command line
    path: Path
    kind: str                      # dataset | jsonl | csv
    labels: dict[str, str | None] = field(default_factory=dict)  # id -> label (None = unlabelled)


def normalize_label(raw: object, where: str) -> str | None:
    """An English label, its Chinese name or an "unlabelled" marker -> a canonical label or None."""
    if raw is None:
        return None
    if not isinstance(raw, str):
        raise DataError(f"{where}: emotion must be a string or null, got {type(raw).__name__} {raw!r:.40}")
    if raw.strip().lower() in _UNLABELLED:
        return None
    # the ten labels only: a stray spelling ("joy") in an annotation is an error to see, not to map
    label = normalise_emotion(raw, aliases=False)
    if label is None:
        raise DataError(f"{where}: unknown emotion label {raw!r}; use one of {', '.join(EMOTIONS)} "
                        f"(or their Chinese names {'/'.join(EMOTION_ZH.values())}; empty = unlabelled)")
    return label


def _put(src: Source, uid: object, label: str | None, where: str) -> None:
    if isinstance(uid, bool) or not isinstance(uid, (str, int)) or not str(uid).strip():
        raise DataError(f"{where}: missing or empty 'id'")
    uid = str(uid).strip()
    if uid in src.labels:
        raise DataError(f"{where}: duplicate id {uid!r}; each utterance may be labelled once per source")
    src.labels[uid] = label


def _read_csv(src: Source) -> None:
    from rolecraft.fileio import read_text

    text = read_text(src.path)
    reader = csv.reader(text.splitlines(keepends=True))
    try:
        header = [h.strip().lower() for h in next(reader)]
    except StopIteration:
        raise DataError(f"{src.path}: empty file; expected a CSV with columns id,emotion") from None
    missing = [c for c in ("id", "emotion") if c not in header]
    if missing:
        raise DataError(f"{src.path}: missing column(s) {', '.join(missing)}; an annotation CSV has columns id,emotion")
    i_id, i_emo = header.index("id"), header.index("emotion")
    from rolecraft.fileio import csv_records

    try:
        for start, row in csv_records(reader):
            where = f"{src.path}:{start}"
            if len(row) <= max(i_id, i_emo):
                raise DataError(f"{where}: row has {len(row)} field(s), the header has {len(header)}")
            _put(src, row[i_id], normalize_label(row[i_emo], where), where)
    except csv.Error as e:
        raise DataError(f"{src.path}:{e.line}: malformed CSV ({e})") from None


def _read_jsonl(src: Source) -> None:
    from rolecraft.fileio import read_jsonl

    for lineno, obj in read_jsonl(src.path):
        where = f"{src.path}:{lineno}"
        _put(src, obj.get("id"), normalize_label(obj.get("emotion"), where), where)


def load_source(arg: str) -> Source:
    """Read one annotation source (see the module docstring)."""
    from rolecraft.data import EMBEDDED_DEMO, resolve_data_root

    path = resolve_data_root(arg)
    if arg != EMBEDDED_DEMO and not path.exists():
        raise DataError(f"{path}: no such file or directory; give a dataset directory, a .jsonl or a .csv file")
    if path.is_dir():
        from rolecraft.data import schema

        ds = schema.load(path)
        src = Source(arg, path, "dataset")
        for u in ds.script:
            src.labels[u.id] = u.emotion
        return src
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        src = Source(arg, path, "jsonl")
        _read_jsonl(src)
    elif suffix == ".csv":
        src = Source(arg, path, "csv")
        _read_csv(src)
    else:
        raise DataError(f"{path}: unknown source type {suffix or '(no suffix)'!r}; "
                        f"give a dataset directory, a .jsonl or a .csv file")
    if not src.labels:
        raise DataError(f"{path}: no rows")
    return src


# --------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------


def _pair(a_name: str, b_name: str, a: list[str], b: list[str], labels: list[str]) -> dict:
    table = per_label(a, b, labels)
    return {
        "reference": a_name, "source": b_name, "n": len(a),
        "accuracy": accuracy(a, b), "cohen_kappa": cohen_kappa(a, b),
        "confusion": {"labels": labels, "rows": a_name, "columns": b_name, "matrix": confusion(a, b, labels)},
        "per_label": table, "macro_f1": macro_f1(table),
    }


def agreement(sources: list[Source]) -> dict:
    """Every metric for the aligned items of ``sources`` (the first is the reference)."""
    if len(sources) < 2:
        raise DataError("agreement needs at least 2 sources")
    names = [s.name for s in sources]
    for i, s in enumerate(sources):  # the same argument twice: keep names apart in the report
        if names.count(s.name) > 1:
            names[i] = f"{s.name}#{i + 1}"
    first = sources[0]
    order = list(first.labels) + [u for s in sources[1:] for u in s.labels if u not in first.labels]
    all_ids = list(dict.fromkeys(order))
    common = [u for u in first.labels if all(s.labels.get(u) is not None for s in sources)]
    if not common:
        raise DataError(f"no utterance id is labelled in every source ({', '.join(names)}); "
                        f"check that the sources annotate the same utterances (ids)")
    seqs = [[s.labels[u] for u in common] for s in sources]
    used = set().union(*map(set, seqs))
    labels = [e for e in EMOTIONS if e in used]
    report: dict = {
        "sources": [
            {"name": n, "path": str(s.path), "kind": s.kind, "items": len(s.labels),
             "labelled": sum(v is not None for v in s.labels.values()),
             "missing_or_unlabelled": sum(1 for u in all_ids if s.labels.get(u) is None)}
            for n, s in zip(names, sources)
        ],
        "n_items": len(common),
        "n_ids": len(all_ids),
        "dropped": len(all_ids) - len(common),
        "labels": labels,
        "label_counts": {n: {lab: c for lab in labels if (c := seq.count(lab))} for n, seq in zip(names, seqs)},
        "kappa_undefined": "null kappa = undefined (every rating is one and the same label)",
    }
    if len(sources) == 2:
        pair = _pair(names[0], names[1], seqs[0], seqs[1], labels)
        report.update({k: pair[k] for k in ("accuracy", "cohen_kappa", "confusion", "per_label", "macro_f1")})
    else:
        report["fleiss_kappa"] = fleiss_kappa(seqs)
        report["pairwise"] = [
            {"a": names[i], "b": names[j], "accuracy": accuracy(seqs[i], seqs[j]),
             "cohen_kappa": cohen_kappa(seqs[i], seqs[j])}
            for i, j in combinations(range(len(sources)), 2)
        ]
        report["against_reference"] = [_pair(names[0], names[k], seqs[0], seqs[k], labels)
                                       for k in range(1, len(sources))]
    return report


def _num(x: float | None, digits: int = 4) -> str:
    return "undefined" if x is None else f"{x:.{digits}f}"


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]

    def fmt(r: list[str]) -> str:  # first column left-aligned, numbers right-aligned
        return "  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w) for i, (c, w) in enumerate(zip(r, widths)))

    return "\n".join([fmt(header), "  ".join("-" * w for w in widths), *map(fmt, rows)])


def _confusion_text(conf: dict) -> str:
    labels = conf["labels"]
    rows = [[lab, *map(str, row), str(sum(row))] for lab, row in zip(labels, conf["matrix"])]
    cols = [sum(r[j] for r in conf["matrix"]) for j in range(len(labels))]
    rows.append(["total", *map(str, cols), str(sum(cols))])
    return (f"confusion (rows: {conf['rows']}, columns: {conf['columns']})\n"
            + _table(["", *labels, "total"], rows))


def _per_label_text(table: dict, macro: float | None) -> str:
    rows = [[lab, _num(v["precision"], 3), _num(v["recall"], 3), _num(v["f1"], 3), str(v["support"]), str(v["predicted"])]
            for lab, v in table.items()]
    return _table(["label", "precision", "recall", "f1", "support", "predicted"], rows) + f"\nmacro F1: {_num(macro)}"


def format_report(report: dict, show_labels: bool = False) -> str:
    """Plain-text tables of :func:`agreement`'s result."""
    out = []
    src_rows = [[s["name"], s["kind"], str(s["items"]), str(s["labelled"]), str(s["missing_or_unlabelled"])]
                for s in report["sources"]]
    out.append(_table(["source", "kind", "items", "labelled", "missing/unlabelled"], src_rows))
    out.append(f"aligned items: {report['n_items']} (labelled in every source); dropped: {report['dropped']} "
               f"of {report['n_ids']} ids missing or unlabelled in some source")
    if show_labels:
        names = list(report["label_counts"])
        rows = [[lab, *(str(report["label_counts"][n].get(lab, 0)) for n in names)] for lab in report["labels"]]
        out.append("label counts over the aligned items\n" + _table(["label", *names], rows))
    if "cohen_kappa" in report:
        out.append(f"accuracy: {_num(report['accuracy'])}   Cohen's kappa: {_num(report['cohen_kappa'])}")
        out.append(_confusion_text(report["confusion"]))
        out.append(f"per label ({report['sources'][1]['name']} against {report['sources'][0]['name']})\n"
                   + _per_label_text(report["per_label"], report["macro_f1"]))
    else:
        out.append(f"Fleiss' kappa ({len(report['sources'])} sources): {_num(report['fleiss_kappa'])}")
        rows = [[p["a"], p["b"], _num(p["accuracy"]), _num(p["cohen_kappa"])] for p in report["pairwise"]]
        out.append("pairwise\n" + _table(["a", "b", "accuracy", "Cohen's kappa"], rows))
        for pair in report["against_reference"]:
            out.append(_confusion_text(pair["confusion"]))
            if show_labels:
                out.append(f"per label ({pair['source']} against {pair['reference']})\n"
                           + _per_label_text(pair["per_label"], pair["macro_f1"]))
    if any(v is None for v in _kappas(report)):
        out.append("undefined kappa: every rating is one and the same label (expected agreement 1)")
    return "\n\n".join(out)


def _kappas(report: dict) -> list[float | None]:
    ks = [report.get("cohen_kappa", 0.0)] if "cohen_kappa" in report else []
    if "fleiss_kappa" in report:
        ks.append(report["fleiss_kappa"])
        ks.extend(p["cohen_kappa"] for p in report["pairwise"])
    return ks


def agreement_command(sources: list[str], json_out: str | None = None, show_labels: bool = False) -> int:
    """``rolecraft data agreement``: the tables on stdout, every number in ``json_out``."""
    report = agreement([load_source(a) for a in sources])
    print(format_report(report, show_labels=show_labels))
    if json_out:
        from rolecraft.fileio import write_json

        out = Path(json_out).expanduser()
        write_json(out, report)
        print(f"\nreport written to {out}")
    return 0
