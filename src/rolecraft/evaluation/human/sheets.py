"""Export: blinded annotation sheets from the answers of several models.

``export`` joins the runs of the models (any run directory: train.py or evaluate.py; see
:mod:`.runs`), samples questions (seeded, stratified across characters) and writes one CSV sheet
per annotator, in which the models hide behind opaque answer ids, plus ``key.json`` (the
unblinding key, kept away from the annotators) and ``README.txt`` (instructions and rubric).
Deterministic for the same runs and seed; written atomically.
"""

from __future__ import annotations

import csv
import hashlib
import random
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from rolecraft.evaluation.human.rubric import (
    CRITERIA,
    CRITERION_NAMES,
    DEFAULT_KINDS,
    KEY_FORMAT,
    KINDS,
    README,
    SCORE_MAX,
    SCORE_MIN,
    SHEET_COLUMNS,
    HumanEvalError,
)
from rolecraft.evaluation.human.runs import Run, join_runs, load_profiles, load_run, parse_answers_arg


def sample_keys(keys: Sequence[str], character_of: dict[str, str], n: int, seed: int) -> list[str]:
    """``n`` keys, spread evenly over characters (round robin over shuffled per-character lists).

    Characters take turns in a seeded random order; one with fewer questions than its share
    drops out and the others fill the remaining places. Deterministic for (keys, n, seed).
    """
    rng = random.Random(f"rolecraft-human-sample/{seed}")
    by_char: dict[str, list[str]] = {}
    for k in sorted(keys):
        by_char.setdefault(character_of[k], []).append(k)
    chars = sorted(by_char)
    rng.shuffle(chars)
    for c in chars:
        rng.shuffle(by_char[c])
    out: list[str] = []
    depth = 0
    while len(out) < min(n, len(keys)):
        for c in chars:
            if depth < len(by_char[c]) and len(out) < n:
                out.append(by_char[c][depth])
        depth += 1
    return out


_ID_FIRST = "ABCDEFGHJKMNPQRSTUVWXYZ"  # no I, L, O: ids are read and typed by people
_ID_REST = "23456789abcdefghjkmnpqrstuvwxyz"


def _answer_id(salt: str, item_id: str, model: str, attempt: int) -> str:
    """"A7f3k"-like: a keyed hash of (item, model), so it reveals neither the model nor the position.

    Starts with a letter, so spreadsheets never read it as a number or a date.
    """
    h = int.from_bytes(hashlib.sha256(f"{salt}\x1f{item_id}\x1f{model}\x1f{attempt}".encode()).digest()[:8], "big")
    chars = [_ID_FIRST[h % len(_ID_FIRST)]]
    h //= len(_ID_FIRST)
    for _ in range(4):
        chars.append(_ID_REST[h % len(_ID_REST)])
        h //= len(_ID_REST)
    return "".join(chars)


def _cell(text: str) -> str:
    """Text as a spreadsheet shows it: a leading = + - @ would start a formula, so prefix "'"."""
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text


@dataclass
class ExportSummary:
    out: Path
    models: list[str]
    joined: int
    items: int
    annotators: int
    notes: list[str]


def _check_options(answers: Sequence[str], out: Path, n: int, annotators: int, kinds: Sequence[str],
                   force: bool) -> list[tuple[str, Path]]:
    """Every option checked before anything is read or written; the (name, path) of each model."""
    if n < 1:
        raise HumanEvalError(f"--n {n}: the number of questions must be at least 1")
    if annotators < 1:
        raise HumanEvalError(f"--annotators {annotators}: need at least 1 annotator (2 or more for agreement)")
    bad = [k for k in kinds if k not in KINDS]
    if bad or not kinds:
        raise HumanEvalError(f"--kinds {','.join(kinds)}: unknown kind {','.join(bad) or '(none)'}; use a comma-separated "
                             f"subset of {','.join(KINDS)}")
    specs = [parse_answers_arg(s) for s in answers]
    names = [m for m, _ in specs]
    dup = sorted({m for m in names if names.count(m) > 1})
    if dup:
        raise HumanEvalError(f"--answers: model name {dup[0]!r} given twice; give each model a distinct NAME")
    if len(specs) < 2:
        raise HumanEvalError(f"human export needs answers of at least 2 models to compare, got {len(specs)} "
                             f"({', '.join(names) or 'none'}); repeat --answers NAME=PATH")
    out_abs = out.resolve()
    for m, p in specs:
        p_abs = p.resolve()
        if p_abs == out_abs or out_abs in p_abs.parents:
            raise HumanEvalError(f"--out {out}: holds the answers of {m} ({p}); write the sheets to another directory")
    from rolecraft.fileio import check_output_dir

    check_output_dir(out, force=force, inputs=[p for _, p in specs])
    return specs


def _blind(chosen: list[str], joined: dict, names: list[str], seed: int) -> tuple[dict, dict]:
    """Item ids Q001.. and per answer an opaque id: ({item_id: item}, {answer_id: {item_id, model}})."""
    salt = f"{random.Random(f'rolecraft-human-salt/{seed}').getrandbits(64):016x}"
    width = max(3, len(str(len(chosen))))
    items: dict[str, dict] = {}
    answer_map: dict[str, dict] = {}
    for i, k in enumerate(chosen, start=1):
        item_id = f"Q{i:0{width}d}"
        ids: dict[str, str] = {}
        for m in names:
            attempt = 0
            aid = _answer_id(salt, item_id, m, attempt)
            while aid in answer_map or aid in ids.values():
                attempt += 1
                aid = _answer_id(salt, item_id, m, attempt)
            ids[m] = aid
            answer_map[aid] = {"item_id": item_id, "model": m}
        a = joined[k][names[0]]
        items[item_id] = {"key": k, "character": a.character, "kind": a.kind, "question": a.question,
                          "answers": {aid: m for m, aid in ids.items()}}
    return items, answer_map


def _orders(items: dict, annotators: int, seed: int) -> dict[str, dict[str, list[str]]]:
    """Order of the answers of each item on each sheet: a seeded random permutation, rotated by
    one place per annotator, so (with annotators <= models) each answer sits at a different place
    on each sheet."""
    base_order: dict[str, list[str]] = {}
    for item_id, item in items.items():
        order = sorted(item["answers"])
        random.Random(f"rolecraft-human-order/{seed}/{item_id}").shuffle(order)
        base_order[item_id] = order
    sheets = [f"sheet_{a:02d}" for a in range(1, annotators + 1)]
    return {s: {item_id: order[a % len(order):] + order[:a % len(order)] for item_id, order in base_order.items()}
            for a, s in enumerate(sheets)}


def export(answers: Sequence[str], out: Path, n: int = 50, annotators: int = 3, seed: int = 0,
           kinds: Sequence[str] = DEFAULT_KINDS, profiles: str | None = None, force: bool = False) -> ExportSummary:
    """Write ``out``/sheet_NN.csv (one per annotator), key.json and README.txt, atomically.

    ``answers``: ``NAME=PATH`` per model, PATH a run directory (train.py or evaluate.py) or a
    samples .jsonl file.
    """
    from rolecraft.fileio import atomic_dir, atomic_path, write_json, write_text

    out = Path(out).expanduser()
    specs = _check_options(answers, out, n, annotators, kinds, force)
    names = [m for m, _ in specs]
    runs: dict[str, Run] = {m: load_run(m, p) for m, p in specs}
    notes = [note for r in runs.values() for note in r.notes]
    found_profiles: dict[str, str] = {}
    for r in runs.values():
        for c, text in r.profiles.items():
            found_profiles.setdefault(c, text)
    if profiles:
        found_profiles.update(load_profiles(profiles))
    joined = join_runs(runs, kinds)
    for m in names:
        used = {by_model[m].key for by_model in joined.values()}
        left = sum(1 for a in runs[m].answers.values() if a.kind in kinds and a.key not in used)
        if left:
            notes.append(f"{m}: {left} question(s) not answered by every model are left out")
    chosen = sample_keys(list(joined), {k: joined[k][names[0]].character for k in joined}, n, seed)
    if len(chosen) < n:
        notes.append(f"only {len(chosen)} questions answered by every model (asked for --n {n}): all are used")

    def profile_of(k: str) -> str:
        a = joined[k][names[0]]
        if a.character in found_profiles:
            return found_profiles[a.character]
        return next((joined[k][m].profile for m in names if joined[k][m].profile), "")

    first = {k: joined[k][names[0]] for k in chosen}
    no_profile = sorted({a.character for k, a in first.items() if a.character and not profile_of(k)})
    if no_profile:
        notes.append(f"no profile for {len(no_profile)} character(s) ({', '.join(no_profile[:5])}): the profile column "
                     f"is empty; put characters.json beside the answers or pass --profiles")

    items, answer_map = _blind(chosen, joined, names, seed)
    orders = _orders(items, annotators, seed)
    key_obj = {
        "format": KEY_FORMAT,
        "note": "the unblinding key: do not send this file to annotators",
        "settings": {"n": n, "items": len(chosen), "annotators": annotators, "seed": seed, "kinds": list(kinds),
                     "answers": {m: str(p.resolve()) for m, p in specs}, "profiles": profiles,
                     "joined_questions": len(joined)},
        "criteria": {c: CRITERION_NAMES[c] for c in CRITERIA},
        "scale": [SCORE_MIN, SCORE_MAX],
        "models": names,
        "sheets": list(orders),
        "items": items,
        "answers": answer_map,
        "orders": orders,
    }
    with atomic_dir(out, force=force, inputs=[p for _, p in specs] + ([profiles] if profiles else []),
                    writer="rolecraft human export") as tmp:
        for s, sheet_order in orders.items():
            with atomic_path(tmp / f"{s}.csv") as path, open(path, "w", encoding="utf-8-sig", newline="") as f:
                w = csv.writer(f)
                w.writerow(SHEET_COLUMNS)
                for item_id, order in sheet_order.items():
                    k = items[item_id]["key"]
                    q, char, prof = _cell(first[k].question), _cell(first[k].character), _cell(profile_of(k))
                    for aid in order:
                        pred = joined[k][answer_map[aid]["model"]].prediction
                        w.writerow([item_id, q, char, prof, aid, _cell(pred), "", "", ""])
        write_json(tmp / "key.json", key_obj)
        write_text(tmp / "README.txt", README.format(n_models=len(names)))
    return ExportSummary(out, names, len(joined), len(chosen), annotators, notes)


def export_command(answers: Sequence[str], out: str, n: int, annotators: int, seed: int, kinds: str,
                   profiles: str | None, force: bool) -> int:
    """``rolecraft human export``: notes on stderr, what was written on stdout."""
    kind_list = list(KINDS) if kinds.strip() == "all" else [k.strip() for k in kinds.split(",") if k.strip()]
    s = export(answers, Path(out), n=n, annotators=annotators, seed=seed, kinds=kind_list, profiles=profiles,
               force=force)
    for note in s.notes:
        print(f"note: {note}", file=sys.stderr)
    print(f"wrote {s.annotators} sheet(s) x {s.items} questions x {len(s.models)} answers to {s.out} "
          f"({s.joined} questions answered by every model)")
    print(f"send each annotator one sheet_NN.csv and README.txt; keep {s.out / 'key.json'} to yourself")
    return 0
