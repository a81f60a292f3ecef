"""Import CPED (scutcyr/CPED, Apache-2.0) as emotion-annotated dialogue in the canonical format.

CPED is a Chinese TV-drama dialogue corpus with human annotations per utterance (13 emotion
classes, sentiment, dialogue act) and per speaker (gender, age group, Big Five). One split is a
CSV file (UTF-8 with BOM) with the columns::

    TV_ID, Dialogue_ID, Utterance_ID, Speaker, Gender, Age, Neuroticism, Extraversion,
    Openness, Agreeableness, Conscientiousness, Scene, FacePosition_LU, FacePosition_RD,
    Sentiment, Emotion, DA, Utterance

The point of importing it is a **human gold standard for emotion annotation**: an LLM annotator
run over the imported script can be scored against the CPED labels with
``rolecraft data agreement``. Decisions:

* **Labels**: the 13 CPED classes are mapped onto our ten with :data:`CPED_TO_EMOTION` (the
  comments there say why for each non-obvious choice). ``--mapping MAP.json`` overrides entries
  (values: an English label, its Chinese name, or ``null`` to leave a class unmapped). A class
  with no mapping is never guessed: the utterance keeps ``emotion: null`` and is reported
  (kind ``unmapped_emotion_label``). The original class is kept in every utterance's
  ``provenance.gold_label`` (with ``provenance.sentiment``), so nothing is lost by mapping.
* **Characters**: every named speaker (not the placeholder :data:`PLACEHOLDER_SPEAKER`
  "其他") with at least ``min_utterances`` utterances in the file (default
  :data:`DEFAULT_MIN_UTTERANCES` = 20: enough lines to show how a person talks; walk-on roles
  with a handful of lines would make thin characters). Profiles come from CPED's own speaker
  annotations: ``名字``, ``性别``, ``年龄段``, ``性格特点`` (Big Five as
  "神经质高，外向性高，…"; ``unknown`` values are left out) and ``来源`` ("CPED 剧集 <TV_ID>").
  A speaker whose annotations differ between rows keeps the first and is reported
  (``inconsistent_speaker``).
* **Dialogues**: each CPED dialogue belongs (``character``) to the character who speaks most
  in it (ties: the one who speaks first). A dialogue without any character is skipped and
  reported once (``dialogue_skipped``). All utterances of a kept dialogue are kept, with
  ``speaker`` = the real speaker ("其他" included), ``dialogue`` = Dialogue_ID, ``turn`` = the
  position in the dialogue (1-based, over kept rows) and ``id`` = Utterance_ID.
* **Malformed rows** (a different number of fields than the header, an empty Utterance_ID,
  Dialogue_ID, Speaker or utterance, a repeated Utterance_ID) are skipped and reported with
  ``file:line``; so is a record the CSV parser cannot read (a stray quote), which costs that
  line only: reading resumes at the next line. When more than 5% of the records (and more than
  10) cannot be parsed the import fails (:class:`DataError`) instead of writing a fragment. A
  file without the required columns is not CPED: :class:`DataError` naming the missing columns.
* No samples are produced (``samples.jsonl`` is empty): CPED has no instructions.

The output depends only on the input bytes, the mapping and ``min_utterances``: a rerun writes
byte-identical files.
"""

from __future__ import annotations

import csv
import hashlib
from collections import Counter
from collections.abc import Mapping
from pathlib import Path

from rolecraft.data.emotions import EMOTIONS, normalise_emotion
from rolecraft.data.importers.base import Defect
from rolecraft.data.schema import Character, RoleInstruct, Utterance
from rolecraft.errors import DataError

FORMAT = "cped"
LICENSE = "Apache-2.0 (CPED, scutcyr/CPED)"
PLACEHOLDER_SPEAKER = "其他"  # CPED's speaker for unnamed/background people
DEFAULT_MIN_UTTERANCES = 20
# More unparseable records than this (and this share of all) means the parser cannot resync:
# the import fails rather than writing what little it read.
MIN_BAD_RECORDS = 10
MAX_BAD_SHARE = 0.05

#: The default mapping of CPED's 13 emotion classes onto the paper's ten labels.
CPED_TO_EMOTION: dict[str, str | None] = {
    "neutral": "neutral",
    "happy": "happiness",
    # Gratitude and relaxed contentment are positive-valence states; our label set has no
    # finer positive class than happiness (excitement implies high arousal, which neither has).
    "grateful": "happiness",
    "relaxed": "happiness",
    "anger": "anger",
    "disgust": "disgust",
    "fear": "fear",
    # Worry is anticipatory fear (low-intensity, same valence and object: a threat).
    "worried": "fear",
    "sadness": "sadness",
    # CPED's "depress" is glossed 沮丧/失望 (dejected, disappointed): exactly our frustration
    # (沮丧), not clinical depression or grief.
    "depress": "frustration",
    "astonished": "surprise",
    # The two residual classes carry only a valence, no specific emotion: our "other".
    "positive-other": "other",
    "negative-other": "other",
}
assert all(v in EMOTIONS for v in CPED_TO_EMOTION.values())

REQUIRED_COLUMNS = (
    "TV_ID", "Dialogue_ID", "Utterance_ID", "Speaker", "Gender", "Age",
    "Neuroticism", "Extraversion", "Openness", "Agreeableness", "Conscientiousness",
    "Sentiment", "Emotion", "Utterance",
)
BIG_FIVE = (
    ("Neuroticism", "神经质"), ("Extraversion", "外向性"), ("Openness", "开放性"),
    ("Agreeableness", "宜人性"), ("Conscientiousness", "尽责性"),
)
LEVEL_ZH = {"high": "高", "low": "低"}
GENDER_ZH = {"male": "男", "female": "女"}
AGE_ZH = {"children": "儿童", "teenager": "少年", "young": "青年", "middle-aged": "中年", "elderly": "老年"}
UNKNOWN = {"", "unknown"}
_SPEAKER_COLUMNS = ("Gender", "Age", *(c for c, _ in BIG_FIVE))

# --------------------------------------------------------------------------------------
# Mapping
# --------------------------------------------------------------------------------------


def resolve_mapping(overrides: Mapping[str, object] | None, where: str = "mapping") -> dict[str, str | None]:
    """The default mapping with ``overrides`` applied; targets may be English labels, their
    Chinese names (:data:`rolecraft.data.emotions.EMOTION_ZH`) or None (leave that class unmapped)."""
    mapping: dict[str, str | None] = dict(CPED_TO_EMOTION)
    for key, target in (overrides or {}).items():
        if not isinstance(key, str) or not key.strip():
            raise DataError(f"{where}: empty source label; keys are CPED emotion classes such as 'happy'")
        if target is None:
            mapping[key.strip()] = None
            continue
        label = normalise_emotion(target, aliases=False)  # a target is one of the ten, not a synonym
        if label is None:
            raise DataError(
                f"{where}: key {key!r}: unknown target label {target!r}; use one of {', '.join(EMOTIONS)} "
                f"(or their Chinese names, or null to leave {key!r} unmapped)"
            )
        mapping[key.strip()] = label
    return mapping


def load_mapping(path: str | Path) -> dict[str, str | None]:
    """Read a ``--mapping`` JSON object ``{cped_class: label}`` and merge it into the default."""
    from rolecraft.fileio import read_json

    path = Path(path).expanduser()
    if not path.is_file():
        raise DataError(f"{path}: mapping file not found; give a JSON object such as {{\"relaxed\": \"neutral\"}}")
    obj = read_json(path)
    if not isinstance(obj, dict):
        raise DataError(f"{path}: a mapping must be a JSON object {{cped_class: label}}, got {type(obj).__name__}")
    return resolve_mapping(obj, where=str(path))


# --------------------------------------------------------------------------------------
# Import
# --------------------------------------------------------------------------------------


def _profile(name: str, attrs: dict[str, str], tv_ids: list[str]) -> dict[str, str]:
    profile = {"名字": name}
    gender = attrs["Gender"]
    if gender.lower() not in UNKNOWN:
        profile["性别"] = GENDER_ZH.get(gender.lower(), gender)
    age = attrs["Age"]
    if age.lower() not in UNKNOWN:
        profile["年龄段"] = AGE_ZH.get(age.lower(), age)
    traits = [f"{zh}{LEVEL_ZH.get(attrs[col].lower(), attrs[col])}" for col, zh in BIG_FIVE
              if attrs[col].lower() not in UNKNOWN]
    if traits:
        profile["性格特点"] = "，".join(traits)
    profile["来源"] = "CPED 剧集 " + "、".join(tv_ids)
    return profile


def _read_rows(src: Path, defects: list[Defect]) -> list[tuple[int, dict[str, str]]]:
    """Well-formed rows as ``(line, {column: stripped value})``; malformed ones become defects.

    A record the CSV parser cannot read (a stray quote ...) costs its own line only: reading
    resumes at the next line (:func:`rolecraft.fileio.csv_table`). If that keeps failing (more
    than :data:`MAX_BAD_SHARE` of the records) the file is not CSV we can trust: DataError.
    """
    from rolecraft.fileio import CsvBadRecord, csv_table, read_text

    try:
        text = read_text(src)
    except OSError as e:
        raise DataError(f"{src}: cannot read ({e.strerror or e})") from None
    try:
        header, records = csv_table(text)
    except csv.Error as e:
        raise DataError(f"{src}:1: malformed CSV header ({e})") from None
    if not header:
        raise DataError(f"{src}: empty file; expected a CPED CSV with columns {', '.join(REQUIRED_COLUMNS)}")
    header = [h.strip() for h in header]
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise DataError(f"{src}: not a CPED CSV: missing column(s) {', '.join(missing)} "
                        f"(found: {', '.join(h for h in header if h) or 'none'})")
    index = {c: header.index(c) for c in REQUIRED_COLUMNS}
    rows: list[tuple[int, dict[str, str]]] = []
    seen: dict[str, int] = {}
    bad: list[int] = []
    total = 0
    from rolecraft.console import progress

    for rec in progress(records, desc=f"read {Path(src).name}", unit="row"):
        total += 1
        if isinstance(rec, CsvBadRecord):
            bad.append(rec.line)
            defects.append(Defect(str(src), rec.line, "malformed_row",
                                  f"{rec.reason}; this line skipped, reading goes on at the next line"))
            continue
        start, fields = rec
        row = _row(src, start, fields, header, index, seen, defects)
        if row is not None:
            rows.append((start, row))
    if len(bad) > max(MIN_BAD_RECORDS, MAX_BAD_SHARE * total):
        raise DataError(f"{src}:{bad[0]}: {len(bad)} of {total} CSV records cannot be parsed (the first at line "
                        f"{bad[0]}); the file is damaged or not a CPED CSV — repair the quoting and import again")
    return rows


def _row(src, start: int, fields: list[str], header: list[str], index: dict, seen: dict,
         defects: list) -> dict[str, str] | None:
    """One CSV record as {column: value}, or None (reported) when it cannot be used."""
    if len(fields) != len(header):
        defects.append(Defect(str(src), start, "malformed_row",
                              f"row has {len(fields)} fields, the header has {len(header)}; skipped"))
        return None
    row = {c: fields[i].strip() for c, i in index.items()}
    empty = [c for c in ("Utterance_ID", "Dialogue_ID", "Speaker", "Utterance") if not row[c]]
    if empty:
        what = "empty utterance" if empty == ["Utterance"] else f"empty {', '.join(empty)}"
        defects.append(Defect(str(src), start, "empty_field", f"{what}; row skipped"))
        return None
    uid = row["Utterance_ID"]
    if uid in seen:
        defects.append(Defect(str(src), start, "duplicate_id",
                              f"Utterance_ID {uid!r} repeated (first at line {seen[uid]}); row skipped"))
        return None
    seen[uid] = start
    return row


def import_cped(
    src: str | Path,
    mapping: Mapping[str, object] | str | Path | None = None,
    min_utterances: int = DEFAULT_MIN_UTTERANCES,
) -> tuple[RoleInstruct, list[Defect]]:
    """Convert one CPED split CSV into a canonical RoleInstruct (no samples).

    ``mapping``: overrides of :data:`CPED_TO_EMOTION` (a dict, or the path of a JSON file).
    ``min_utterances``: how many utterances a named speaker needs to become a character.
    Raises :class:`DataError` when the file is not a CPED CSV or no dialogue can be kept.
    """
    src = Path(src).expanduser()
    if src.is_dir():
        raise DataError(f"{src}: is a directory; give one CPED split CSV such as {src}/valid_split.csv")
    if not src.is_file():
        raise DataError(f"{src}: no such file; give a CPED split CSV (train_split.csv, valid_split.csv, test_split.csv)")
    if min_utterances < 1:
        raise DataError(f"min_utterances must be at least 1, got {min_utterances}")
    if isinstance(mapping, (str, Path)):
        labels = load_mapping(mapping)
    else:
        labels = resolve_mapping(mapping)

    defects: list[Defect] = []
    rows = _read_rows(src, defects)
    file = str(src)

    # Speakers: counts, first annotations, shows.
    counts: Counter = Counter()
    attrs: dict[str, dict[str, str]] = {}
    attr_line: dict[str, int] = {}
    tv_ids: dict[str, list[str]] = {}
    inconsistent: set[str] = set()
    for line, row in rows:
        name = row["Speaker"]
        if name == PLACEHOLDER_SPEAKER:
            continue
        counts[name] += 1
        mine = {c: row[c] for c in _SPEAKER_COLUMNS}
        if name not in attrs:
            attrs[name], attr_line[name], tv_ids[name] = mine, line, [row["TV_ID"]]
            continue
        if row["TV_ID"] not in tv_ids[name]:
            tv_ids[name].append(row["TV_ID"])
        if mine != attrs[name] and name not in inconsistent:
            inconsistent.add(name)
            diff = ", ".join(f"{c} {attrs[name][c]!r}->{mine[c]!r}" for c in _SPEAKER_COLUMNS if mine[c] != attrs[name][c])
            defects.append(Defect(file, line, "inconsistent_speaker",
                                  f"speaker {name!r} annotated differently than at line {attr_line[name]} ({diff}); "
                                  f"the first annotations are used"))
    characters = {
        name: Character(
            name=name, profile=_profile(name, attrs[name], tv_ids[name]),
            provenance={"source": FORMAT, "tv_ids": tv_ids[name], "utterances": counts[name],
                        **{c.lower(): attrs[name][c] for c in _SPEAKER_COLUMNS}},
        )
        for name in attrs if counts[name] >= min_utterances
    }
    if not characters:
        top = ", ".join(f"{n} ({c})" for n, c in counts.most_common(3)) or "none"
        raise DataError(f"{src}: no named speaker has at least {min_utterances} utterances (most: {top}); "
                        f"lower --min-utterances")

    # Dialogues in order of first appearance; rows in file order.
    dialogues: dict[str, list[tuple[int, dict[str, str]]]] = {}
    last = None
    for line, row in rows:
        did = row["Dialogue_ID"]
        if did in dialogues and did != last:
            defects.append(Defect(file, line, "dialogue_not_contiguous",
                               f"dialogue {did!r} continues after other dialogues; rows joined in file order"))
        dialogues.setdefault(did, []).append((line, row))
        last = did

    script: list[Utterance] = []
    for did, drows in dialogues.items():
        spoken = Counter(r["Speaker"] for _, r in drows if r["Speaker"] in characters)
        if not spoken:
            speakers = ", ".join(dict.fromkeys(r["Speaker"] for _, r in drows))
            defects.append(Defect(file, drows[0][0], "dialogue_skipped",
                                  f"dialogue {did!r} has no character (speakers: {speakers}; a character needs "
                                  f"{min_utterances}+ utterances); its {len(drows)} utterance(s) skipped"))
            continue
        most = max(spoken.values())
        owner = next(r["Speaker"] for _, r in drows if spoken.get(r["Speaker"]) == most)
        for turn, (line, row) in enumerate(drows, start=1):
            gold = row["Emotion"]
            emotion = labels.get(gold) if gold else None
            if not gold:
                defects.append(Defect(file, line, "missing_emotion_label", "no Emotion; emotion left null"))
            elif emotion is None:
                defects.append(Defect(file, line, "unmapped_emotion_label",
                                      f"emotion {gold!r} has no mapping; emotion left null "
                                      f"(map it with --mapping '{{\"{gold}\": LABEL}}')"))
            script.append(Utterance(
                id=row["Utterance_ID"], character=owner, dialogue=did, turn=turn, speaker=row["Speaker"],
                text=row["Utterance"], emotion=emotion,
                provenance={"source": FORMAT, "gold_label": gold or None, "sentiment": row["Sentiment"] or None},
            ))
    if not script:
        raise DataError(f"{src}: no dialogue has a character; lower --min-utterances")

    used = set(Counter(row["Emotion"] for _, row in rows))
    for key in labels:
        if key not in CPED_TO_EMOTION and key not in used:
            defects.append(Defect(file, None, "unused_mapping",
                                  f"mapping key {key!r} never occurs in the Emotion column (a typo?)"))
    meta = {
        "name": FORMAT,
        "source": f"CPED (scutcyr/CPED), {src.name}",
        "source_file": file,
        "source_sha256": hashlib.sha256(src.read_bytes()).hexdigest(),
        "license": LICENSE,
        "importer": "rolecraft.data.importers.cped",
        "emotion_mapping": labels,
        "min_utterances": min_utterances,
        "script_only": True,  # no samples by design: `data validate` accepts it
        "dialogues": "CPED Dialogue_ID; owned by the character who speaks most in it (ties: first to speak)",
        "source_counts": {
            "rows": len(rows),
            "gold_labels": dict(sorted(Counter(r["Emotion"] for _, r in rows).items())),
        },
        "import_defects": dict(sorted(Counter(d.kind for d in defects).items())),
    }
    return RoleInstruct(root=None, meta=meta, characters=characters, script=script, samples=[]), defects
