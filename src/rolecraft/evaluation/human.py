"""Human evaluation as in RoleCraft-GLM: blinded annotation sheets out, filled sheets in.

Annotators rate each answer 1-5 on three criteria: Communication Effectiveness (``ce``),
Consistency with the character profile (``consistency``) and Expressive Diversity (``ed``).

``export`` joins the evaluation runs of several models on ``key``, samples questions
(seeded, stratified across characters) and writes one CSV sheet per annotator, in which the
models hide behind opaque answer ids, plus ``key.json`` (the unblinding key, kept away from the
annotators) and ``README.txt`` (instructions and rubric). ``read_sheets`` + ``aggregate`` read the
filled sheets back and compute per model and criterion the mean with a 95% bootstrap interval,
and per criterion the inter-annotator agreement (Krippendorff's alpha, ordinal metric).

Only the standard library and numpy: the ``rolecraft human`` commands start fast.
"""

from __future__ import annotations

import csv
import hashlib
import io
import random
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from rolecraft.errors import DataError

if TYPE_CHECKING:
    import numpy as np

CRITERIA = ("ce", "consistency", "ed")
CRITERION_NAMES = {"ce": "Communication Effectiveness", "consistency": "Consistency", "ed": "Expressive Diversity"}
CRITERION_SHORT = {"ce": "CE", "consistency": "Consistency", "ed": "ED"}
SHEET_COLUMNS = ("item_id", "question", "character", "profile", "answer_id", "answer", *CRITERIA)
KINDS = ("raw", "general", "specific")
DEFAULT_KINDS = ("general", "specific")
KEY_FORMAT = "rolecraft-human-key/1"
RESULTS_FORMAT = "rolecraft-human-results/1"
SCORE_MIN, SCORE_MAX = 1, 5


class HumanEvalError(DataError):
    """Bad input to ``rolecraft human`` (answers files, sheets, key)."""


# ---- loading evaluation runs -----------------------------------------------------------


@dataclass
class Answer:
    key: str
    character: str  # "" for a question without a role
    kind: str
    question: str
    prediction: str
    profile: str | None  # from the row, if it carries one
    where: str  # file:line


def parse_answers_arg(spec: str) -> tuple[str, Path]:
    """``NAME=PATH`` -> (name, path)."""
    name, sep, path = spec.partition("=")
    name, path = name.strip(), path.strip()
    if not sep or not name or not path:
        raise HumanEvalError(f"--answers {spec!r}: expected NAME=PATH (a model name, '=', an evaluation run "
                             f"directory or predictions .jsonl), e.g. --answers base=runs/eval-base")
    return name, Path(path).expanduser()


def _profile_text(value: object) -> str:
    """A profile as annotators read it: text as is, a {field: value} dict as "field：value" lines."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, dict):
        return "\n".join(f"{k}：{_profile_text(v)}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return "；".join(_profile_text(v) for v in value)
    return str(value)


# Rendered chat templates of the models in conf/model: the last user turn is the question.
_USER_TURN_PATTERNS = (
    re.compile(r"<\|im_start\|>user\n(.*?)<\|im_end\|>", re.DOTALL),  # ChatML: Qwen, InternLM, tiny
    re.compile(r"<\|start_header_id\|>user<\|end_header_id\|>\n\n(.*?)<\|eot_id\|>", re.DOTALL),  # Llama 3
    re.compile(r"<\|user\|>\n?(.*?)(?=<\|(?:assistant|user|system|observation)\|>|$)", re.DOTALL),  # GLM
    re.compile(r"<reserved_106>(.*?)(?=<reserved_10[67]>|$)", re.DOTALL),  # Baichuan 2
)


def _last_user_turn(prompt: object) -> str | None:
    if isinstance(prompt, list):
        users = [m.get("content") for m in prompt if isinstance(m, dict) and m.get("role") == "user"]
        return users[-1].strip() if users and isinstance(users[-1], str) and users[-1].strip() else None
    if isinstance(prompt, str):
        for pat in _USER_TURN_PATTERNS:
            found = pat.findall(prompt)
            if found and found[-1].strip():
                return found[-1].strip()
    return None


def _question_of(row: dict, where: str) -> str:
    for field in ("question", "instruction"):
        value = row.get(field)
        if isinstance(value, str) and value.strip():
            return value.strip()
    if "prompt" in row:
        q = _last_user_turn(row["prompt"])
        if q is not None:
            return q
        raise HumanEvalError(f"{where}: no question: no 'question' or 'instruction' field, and no user turn found in "
                             f"'prompt' (a list of chat messages, or a ChatML/GLM/Llama-3/Baichuan-2 rendered prompt); "
                             f"write the question into a 'question' field")
    raise HumanEvalError(f"{where}: no question: the row needs a non-empty 'question' (or 'instruction', or a 'prompt' "
                         f"with a user turn)")


def _item_key(kind: str, character: str, question: str) -> str:
    """The benchmark key of rows that carry none (as rolecraft.evaluation.benchmarks.item_key)."""
    return hashlib.sha1(f"{kind}\x1f{character}\x1f{question.strip()}".encode()).hexdigest()[:12]


def _read_answers_file(path: Path, name: str) -> dict[str, Answer]:
    from rolecraft.fileio import read_jsonl

    rows: dict[str, Answer] = {}
    for lineno, row in read_jsonl(path):
        where = f"{path}:{lineno}"
        kind = row.get("kind")
        if kind not in KINDS:
            raise HumanEvalError(f"{where}: 'kind' is {kind!r}; expected one of {', '.join(KINDS)}")
        character = row.get("character")
        if character is None:
            character = ""
        if not isinstance(character, str):
            raise HumanEvalError(f"{where}: 'character' must be a string, got {type(character).__name__}")
        question = _question_of(row, where)
        prediction = row.get("prediction")
        if prediction is None:
            prediction = ""
        if not isinstance(prediction, str):
            raise HumanEvalError(f"{where}: 'prediction' must be a string, got {type(prediction).__name__}")
        key = row.get("key", row.get("id"))
        if key is None:
            key = _item_key(kind, character, question)
        if not isinstance(key, str) or not key.strip():
            raise HumanEvalError(f"{where}: 'key' must be a non-empty string, got {key!r}")
        if key in rows:
            raise HumanEvalError(f"{where}: duplicate key {key!r} (first at {rows[key].where}); each question once per run")
        profile = row.get("profile")
        rows[key] = Answer(key, character.strip(), kind, question, prediction.strip(),
                           _profile_text(profile) if profile is not None else None, where)
    if not rows:
        raise HumanEvalError(f"{path}: no answers in this file (--answers {name}=...)")
    return rows


def _read_profiles(path: Path) -> dict[str, str]:
    """{name: profile text} from a characters.json mapping or a dataset's characters.jsonl."""
    from rolecraft.fileio import read_json, read_jsonl

    if path.suffix == ".jsonl":
        out: dict[str, str] = {}
        for lineno, row in read_jsonl(path):
            if not isinstance(row.get("name"), str):
                raise HumanEvalError(f"{path}:{lineno}: a character row needs a string 'name'")
            out[row["name"]] = _profile_text(row.get("profile"))
        return out
    obj = read_json(path)
    if not isinstance(obj, dict):
        raise HumanEvalError(f"{path}: expected a JSON object {{character name: profile}}, got {type(obj).__name__}")
    return {str(k): _profile_text(v) for k, v in obj.items()}


def load_profiles(spec: str) -> dict[str, str]:
    """``--profiles``: a JSON {name: profile} file, a dataset directory, or 'embedded:demo'."""
    if spec.startswith("embedded:"):
        from rolecraft.data import resolve_data_root

        path = resolve_data_root(spec)
    else:
        path = Path(spec).expanduser()
    if path.is_dir():
        for name in ("characters.json", "characters.jsonl"):
            if (path / name).is_file():
                return _read_profiles(path / name)
        raise HumanEvalError(f"--profiles {spec}: no characters.json or characters.jsonl in this directory")
    if not path.is_file():
        raise HumanEvalError(f"--profiles {spec}: no such file or directory")
    return _read_profiles(path)


def load_run(name: str, path: Path) -> tuple[dict[str, Answer], dict[str, str]]:
    """One model's answers (by key) and the profiles found beside them."""
    if path.is_dir():
        answers_file = path / "samples.jsonl"
        if not answers_file.is_file():
            raise HumanEvalError(f"--answers {name}={path}: no samples.jsonl in this directory; pass an evaluation run "
                                 f"directory (written by evaluate.py) or a predictions .jsonl file")
    elif path.is_file():
        answers_file = path
    else:
        raise HumanEvalError(f"--answers {name}={path}: no such file or directory")
    profiles: dict[str, str] = {}
    for cand in ("characters.json", "characters.jsonl"):
        if (answers_file.parent / cand).is_file():
            profiles = _read_profiles(answers_file.parent / cand)
            break
    return _read_answers_file(answers_file, name), profiles


def join_runs(runs: dict[str, dict[str, Answer]], kinds: Sequence[str]) -> list[str]:
    """Keys (sorted) of the questions of ``kinds`` that every model answered."""
    filtered = {m: {k for k, a in rows.items() if a.kind in kinds} for m, rows in runs.items()}
    common = set.intersection(*filtered.values())
    if not common:
        parts = []
        for m, keys in filtered.items():
            if keys:
                parts.append(f"{m} has {len(keys)} (e.g. {', '.join(sorted(keys)[:3])})")
            else:
                present = sorted({a.kind for a in runs[m].values()})
                parts.append(f"{m} has 0 of kind {','.join(kinds)} (kinds present: {','.join(present)})")
        raise HumanEvalError(f"no question of kind {','.join(kinds)} was answered by every model: {'; '.join(parts)}; "
                             f"the runs must answer the same benchmark (the same 'key' values)")
    models = list(runs)
    first = runs[models[0]]
    for k in sorted(common):
        for m in models[1:]:
            a, b = first[k], runs[m][k]
            if (a.character, a.kind) != (b.character, b.kind):
                raise HumanEvalError(f"key {k!r} is ({a.kind}, {a.character!r}) at {a.where} but ({b.kind}, "
                                     f"{b.character!r}) at {b.where}; the runs do not answer the same benchmark")
    return sorted(common)


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


# ---- export ------------------------------------------------------------------------------

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


README = """\
RoleCraft human evaluation — instructions for annotators
=======================================================

You received one sheet (sheet_NN.csv) and this file. Open the sheet in Excel, WPS, LibreOffice
or Numbers. Each question ("item_id") comes with the role's profile and {n_models} answers
written by different systems, in a random order, under opaque ids ("answer_id"). You do not
know, and should not try to guess, which system wrote which answer.

For every answer, fill the three score columns with a whole number from 1 (worst) to 5 (best):

  ce           Communication Effectiveness
  consistency  Consistency with the character profile
  ed           Expressive Diversity

Rate each criterion on its own (a well-written answer can still be out of character). Compare
each answer with the rubric below, not with the other answers to the same question. A longer
answer is not a better answer by itself. Leave a cell empty only if you really cannot judge it
(an empty cell counts as "not rated"). An empty answer gets 1 on every criterion.

Do not add, delete or rename columns, and do not edit item_id or answer_id. Sorting rows is
fine. Save as "CSV UTF-8 (comma delimited)" and send the file back under its original name:
the file name identifies you. Cells that start with = + - or @ have a ' in front of them, so
the spreadsheet shows them as text; ignore that '.

Rubric
------

Communication Effectiveness (ce): does the answer respond to what was asked, clearly and
naturally, as a reply in a conversation?
  5  responds fully and directly; clear, fluent and natural; nothing irrelevant
  4  responds well; a small gap, a little vague, or slightly awkward in places
  3  responds only in part; noticeable gaps, vagueness or clumsy wording
  2  mostly misses the point, or is hard to follow
  1  off topic, incoherent, empty, or a refusal without reason

Consistency (consistency): does the answer fit the character described in the profile —
personality, background, relationships, knowledge and way of speaking?
  5  fully in character throughout; matches the profile, contradicts nothing
  4  in character with a minor slip (a tone or detail slightly off)
  3  generic: anyone could have said it; neither clearly in nor out of character
  2  noticeably out of character, or contradicts a detail of the profile
  1  breaks character (e.g. "as an AI language model ...") or contradicts the profile outright

Expressive Diversity (ed): is the wording varied, vivid and expressive (emotion, tone,
personal touch), rather than templated, flat or repetitive?
  5  vivid and varied wording; emotion and personality come through; no repetition
  4  mostly varied and expressive; a few stock phrases
  3  plain but acceptable; some stock phrases or mild repetition
  2  formulaic or flat; repetitive phrasing
  1  degenerate: loops or repeats itself, copies the question, or is empty

评分说明（中文）：每个回答按三项分别打 1–5 的整数分（1 最差，5 最好）：ce 沟通有效性（是否清楚、
自然、切题地回应了问题）；consistency 人设一致性（是否符合人物设定的性格、背景、关系、知识和说话方式）；
ed 表达多样性（用词是否生动多样、有情感和个性，而非模板化、平淡或重复）。各项独立评分，对照上面的标准
而不是与同一问题的其他回答比较；回答长不等于好。确实无法判断时留空。不要修改列和 answer_id；
另存为“CSV UTF-8（逗号分隔）”，文件名保持不变。
"""


@dataclass
class ExportSummary:
    out: Path
    models: list[str]
    joined: int
    items: int
    annotators: int
    notes: list[str]


def export(answers: Sequence[str], out: Path, n: int = 50, annotators: int = 3, seed: int = 0,
           kinds: Sequence[str] = DEFAULT_KINDS, profiles: str | None = None, force: bool = False) -> ExportSummary:
    """Write ``out``/sheet_NN.csv (one per annotator), key.json and README.txt, atomically."""
    from rolecraft.fileio import atomic_dir, atomic_path, write_json, write_text

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
    out = Path(out).expanduser()
    out_abs = out.resolve()
    for m, p in specs:
        p_abs = p.resolve()
        if p_abs == out_abs or out_abs in p_abs.parents:
            raise HumanEvalError(f"--out {out}: holds the answers of {m} ({p}); write the sheets to another directory")
    if out.exists() and not out.is_dir():
        raise HumanEvalError(f"--out {out}: exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise HumanEvalError(f"--out {out}: directory is not empty (an earlier export, maybe with filled sheets); "
                             f"choose a new directory or pass --force to replace it")

    runs: dict[str, dict[str, Answer]] = {}
    found_profiles: dict[str, str] = {}
    for m, p in specs:
        rows, prof = load_run(m, p)
        runs[m] = rows
        for c, text in prof.items():
            found_profiles.setdefault(c, text)
    if profiles:
        found_profiles.update(load_profiles(profiles))
    keys = join_runs(runs, kinds)
    first = runs[names[0]]
    notes: list[str] = []
    key_set = set(keys)
    for m in names:
        left = sum(1 for a in runs[m].values() if a.kind in kinds and a.key not in key_set)
        if left:
            notes.append(f"{m}: {left} question(s) not answered by every model are left out")
    chosen = sample_keys(keys, {k: first[k].character for k in keys}, n, seed)
    if len(chosen) < n:
        notes.append(f"only {len(chosen)} questions answered by every model (asked for --n {n}): all are used")

    def profile_of(k: str) -> str:
        a = first[k]
        if a.character in found_profiles:
            return found_profiles[a.character]
        return next((runs[m][k].profile for m in names if runs[m][k].profile), "")

    no_profile = sorted({first[k].character for k in chosen if first[k].character and not profile_of(k)})
    if no_profile:
        notes.append(f"no profile for {len(no_profile)} character(s) ({', '.join(no_profile[:5])}): the profile column "
                     f"is empty; put characters.json beside the answers or pass --profiles")

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
        a = first[k]
        items[item_id] = {"key": k, "character": a.character, "kind": a.kind, "question": a.question,
                          "answers": {aid: m for m, aid in ids.items()}}

    # Order of the answers of each item: a seeded random permutation, rotated by one place per
    # annotator, so (with annotators <= models) each answer sits at a different place on each sheet.
    base_order: dict[str, list[str]] = {}
    for item_id, item in items.items():
        order = sorted(item["answers"])
        random.Random(f"rolecraft-human-order/{seed}/{item_id}").shuffle(order)
        base_order[item_id] = order
    sheets = [f"sheet_{a:02d}" for a in range(1, annotators + 1)]
    orders = {s: {item_id: order[a % len(order):] + order[:a % len(order)] for item_id, order in base_order.items()}
              for a, s in enumerate(sheets)}

    key_obj = {
        "format": KEY_FORMAT,
        "note": "the unblinding key: do not send this file to annotators",
        "settings": {"n": n, "items": len(chosen), "annotators": annotators, "seed": seed, "kinds": list(kinds),
                     "answers": {m: str(p.resolve()) for m, p in specs}, "profiles": profiles, "joined_questions": len(keys)},
        "criteria": {c: CRITERION_NAMES[c] for c in CRITERIA},
        "scale": [SCORE_MIN, SCORE_MAX],
        "models": names,
        "sheets": sheets,
        "items": items,
        "answers": answer_map,
        "orders": orders,
    }
    with atomic_dir(out) as tmp:
        for s in sheets:
            with atomic_path(tmp / f"{s}.csv") as path, open(path, "w", encoding="utf-8-sig", newline="") as f:
                w = csv.writer(f)
                w.writerow(SHEET_COLUMNS)
                for item_id, order in orders[s].items():
                    k = items[item_id]["key"]
                    q, char, prof = _cell(first[k].question), _cell(first[k].character), _cell(profile_of(k))
                    for aid in order:
                        pred = runs[answer_map[aid]["model"]][k].prediction
                        w.writerow([item_id, q, char, prof, aid, _cell(pred), "", "", ""])
        write_json(tmp / "key.json", key_obj)
        write_text(tmp / "README.txt", README.format(n_models=len(names)))
    return ExportSummary(out, names, len(keys), len(chosen), annotators, notes)


# ---- reading filled sheets ----------------------------------------------------------------


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
            raise HumanEvalError(f"{path}: not UTF-8 text; save the sheet as \"CSV UTF-8 (comma delimited)\"") from None


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


# ---- statistics ---------------------------------------------------------------------------


def coincidence_matrix(units: Iterable[Sequence[float | None]]) -> tuple[list[float], np.ndarray]:
    """Krippendorff's coincidence matrix over the values that occur.

    ``units``: per unit (here: one answer) the values given by the coders (None/NaN = missing).
    o_ck = sum over units u with m_u >= 2 values of (number of ordered pairs (c, k) of values from
    different coders in u) / (m_u - 1). Units with fewer than 2 values are not pairable.
    """
    import math

    import numpy as np

    clean = [[float(v) for v in u if v is not None and not (isinstance(v, float) and math.isnan(v))] for u in units]
    clean = [u for u in clean if len(u) >= 2]
    values = sorted({v for u in clean for v in u})
    pos = {v: i for i, v in enumerate(values)}
    counts = np.zeros((len(clean), len(values)))
    for r, u in enumerate(clean):
        for v in u:
            counts[r, pos[v]] += 1
    if not clean:
        return values, np.zeros((0, 0))
    m = counts.sum(axis=1)
    weighted = counts / (m - 1)[:, None]
    o = weighted.T @ counts - np.diag(weighted.sum(axis=0))
    return values, o


def _delta2(values: Sequence[float], n_c: np.ndarray, level: str) -> np.ndarray:
    import numpy as np

    v = np.asarray(values, dtype=float)
    if level == "nominal":
        return 1.0 - np.eye(len(v))
    if level == "interval":
        return (v[:, None] - v[None, :]) ** 2
    if level == "ordinal":
        # delta_ck = sum_{g=c..k} n_g - (n_c + n_k) / 2, for c <= k (ranks by value order)
        cum = np.concatenate([[0.0], np.cumsum(n_c)])
        lo = np.minimum.outer(np.arange(len(v)), np.arange(len(v)))
        hi = np.maximum.outer(np.arange(len(v)), np.arange(len(v)))
        d = cum[hi + 1] - cum[lo] - (n_c[:, None] + n_c[None, :]) / 2
        return d ** 2
    if level == "ratio":
        s = v[:, None] + v[None, :]
        with np.errstate(divide="ignore", invalid="ignore"):
            r = np.where(s == 0, 0.0, ((v[:, None] - v[None, :]) / s) ** 2)
        return r
    raise ValueError(f"unknown level of measurement {level!r}; use nominal, ordinal, interval or ratio")


def krippendorff_alpha(units: Iterable[Sequence[float | None]], level: str = "ordinal") -> tuple[float | None, str | None]:
    """Krippendorff's alpha = 1 - D_o / D_e from the coincidence matrix; (None, reason) where undefined.

    D_o = sum_ck o_ck delta2_ck / n and D_e = sum_ck n_c n_k delta2_ck / (n (n - 1)), with n_c the
    row sums of the coincidence matrix and n the number of pairable values. Missing values are
    allowed (units are rated by any number of coders). Undefined when fewer than 2 pairable values
    exist, or when the expected disagreement is 0 (every pairable value is the same).
    """
    import numpy as np

    values, o = coincidence_matrix(units)
    n_c = o.sum(axis=1) if o.size else np.zeros(0)
    n = float(n_c.sum())
    if n < 2:
        return None, "no unit was rated by 2 or more annotators"
    d2 = _delta2(values, n_c, level)
    d_o = float((o * d2).sum())
    d_e = float((np.outer(n_c, n_c) * d2).sum()) / (n - 1)
    if len(values) < 2 or d_e <= 0:
        return None, f"every rating is {values[0]:g}, so no disagreement is expected (alpha is 0/0)"
    return 1.0 - d_o / d_e, None


def bootstrap_mean_ci(groups: Sequence[Sequence[float]], level: float = 0.95, resamples: int = 10000,
                      seed: int = 0) -> tuple[float, float] | None:
    """Percentile interval of the mean of all values, resampling whole groups (items) with replacement.

    Why a cluster bootstrap over items and not a t-interval over annotator x item ratings: the
    questions are the random sample (drawn from a benchmark) while the annotators are a small fixed
    panel, and the ratings of one answer by different annotators are correlated (same text). A
    t-interval that counts every rating as independent overstates n and is too narrow; resampling
    items keeps an item's ratings together. The percentile interval needs no normality and stays
    within the 1-5 scale. Deterministic: numpy's PCG64 seeded with ``seed``. Returns None when
    fewer than 2 groups have values (no interval). The interval is conditional on this annotator
    panel, and with few items (< ~20) percentile intervals tend to be somewhat too narrow.
    """
    import numpy as np

    groups = [g for g in groups if len(g)]
    if len(groups) < 2:
        return None
    sums = np.array([float(sum(g)) for g in groups])
    counts = np.array([float(len(g)) for g in groups])
    rng = np.random.default_rng(seed)
    k = len(groups)
    stats = np.empty(resamples)
    chunk = max(1, 2_000_000 // k)
    for start in range(0, resamples, chunk):
        b = min(chunk, resamples - start)
        idx = rng.integers(0, k, size=(b, k))
        stats[start:start + b] = sums[idx].sum(axis=1) / counts[idx].sum(axis=1)
    tail = (1.0 - level) / 2
    lo, hi = np.quantile(stats, [tail, 1.0 - tail])
    return float(lo), float(hi)


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
