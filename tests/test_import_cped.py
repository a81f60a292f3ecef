"""Importing CPED as emotion-annotated dialogue: the real valid split (when ../shared/data has it)
through the real CLI, and small synthetic CSVs for mapping overrides and malformed input."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from rolecraft.data import schema
from rolecraft.data.importers import IMPORTERS
from rolecraft.data.importers.cped import CPED_TO_EMOTION, import_cped
from rolecraft.errors import DataError

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src"
REAL = REPO.parent / "shared" / "data" / "cped" / "valid_split.csv"


def run_cli(*args: object) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(SRC), *filter(None, [env.get("PYTHONPATH")])])
    return subprocess.run([sys.executable, "-m", "rolecraft.cli", *map(str, args)],
                          capture_output=True, text=True, env=env, cwd=REPO, timeout=300)


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_registered():
    assert IMPORTERS["cped"] is import_cped
    assert len(CPED_TO_EMOTION) == 13 and set(CPED_TO_EMOTION.values()) <= set(schema.EMOTIONS)


# ======================================================================================
# The real valid split
# ======================================================================================


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    if not REAL.is_file():
        pytest.skip(f"the CPED valid split is not at {REAL} (only CI and project machines have ../shared/data)")
    base = tmp_path_factory.mktemp("cped")
    out, report = base / "out", base / "report.json"
    r = run_cli("data", "import", "cped", REAL, "--out", out, "--report", report)
    assert r.returncode == 0, r.stderr
    with open(REAL, encoding="utf-8-sig", newline="") as f:
        rows = list(csv.DictReader(f))
    return r, out, report, rows


def test_real_output_loads_and_is_labelled(real):
    _, out, _, rows = real
    ds = schema.load(out)
    assert ds.samples == []
    assert ds.meta["name"] == "cped" and ds.meta["license"] == "Apache-2.0 (CPED, scutcyr/CPED)"
    assert ds.meta["emotion_mapping"] == CPED_TO_EMOTION
    gold = {r["Utterance_ID"]: r for r in rows}
    for u in ds.script:
        assert u.emotion in schema.EMOTIONS
        assert u.provenance["source"] == "cped"
        assert u.provenance["gold_label"] == gold[u.id]["Emotion"]
        assert u.provenance["sentiment"] == gold[u.id]["Sentiment"]
        assert u.emotion == CPED_TO_EMOTION[u.provenance["gold_label"]]
        assert u.speaker == gold[u.id]["Speaker"] and u.dialogue == gold[u.id]["Dialogue_ID"]
        assert u.text == gold[u.id]["Utterance"].strip()


def test_real_label_counts_are_mapped_csv_counts(real):
    r, out, report, rows = real
    ds = schema.load(out)
    kept = {u.id for u in ds.script}
    expected: Counter = Counter()
    for row in rows:
        if row["Utterance_ID"] in kept:
            expected[CPED_TO_EMOTION[row["Emotion"]]] += 1
    assert Counter(u.emotion for u in ds.script) == expected
    # every dialogue of the valid split has a named speaker with 20+ lines: nothing is dropped
    assert len(ds.script) == len(rows) == 11137
    assert len({u.dialogue for u in ds.script}) == 934
    summary = r.stdout.splitlines()[0]
    assert "11137 utterances, 934 dialogues, 33 characters" in summary
    for label, n in expected.items():
        assert f"{label} {n}" in summary
    rep = json.loads(report.read_text(encoding="utf-8"))
    assert {k: v for k, v in rep["stats"]["emotions"].items() if v} == dict(expected)


def test_real_dialogues_turns_and_owner(real):
    _, out, _, _ = real
    ds = schema.load(out)
    by_dialogue: dict[str, list] = {}
    for u in ds.script:
        by_dialogue.setdefault(u.dialogue, []).append(u)
    for utts in by_dialogue.values():
        assert [u.turn for u in utts] == list(range(1, len(utts) + 1))
        assert len({u.character for u in utts}) == 1
        owner = utts[0].character
        counts = Counter(u.speaker for u in utts if u.speaker in ds.characters)
        assert counts[owner] == max(counts.values())
        tied = [s for s, c in counts.items() if c == counts[owner]]
        first = next(u.speaker for u in utts if u.speaker in tied)
        assert owner == first
    assert "其他" not in ds.characters
    assert any(u.speaker == "其他" for u in ds.script)


def test_real_profiles(real):
    _, out, _, _ = real
    ds = schema.load(out)
    p = ds.characters["于春晓"].profile
    assert p == {"名字": "于春晓", "性别": "女", "年龄段": "青年",
                 "性格特点": "神经质高，外向性高，开放性低，宜人性高，尽责性高", "来源": "CPED 剧集 32"}
    assert ds.characters["戴娜"].profile["性格特点"] == "神经质低，外向性低，开放性高，宜人性低，尽责性高"


def test_real_reimport_byte_identical(real, tmp_path):
    _, out, _, _ = real
    again = tmp_path / "again"
    r = run_cli("data", "import", "cped", REAL, "--out", again)
    assert r.returncode == 0, r.stderr
    for name in schema.FILES:
        assert (again / name).read_bytes() == (out / name).read_bytes(), name


def test_real_gold_agrees_with_itself(real, tmp_path):
    _, out, _, _ = real
    rep_path = tmp_path / "self.json"
    r = run_cli("data", "agreement", out, out / "script.jsonl", "--json", rep_path)
    assert r.returncode == 0, r.stderr
    rep = json.loads(rep_path.read_text(encoding="utf-8"))
    assert rep["n_items"] == 11137 and rep["dropped"] == 0
    assert rep["accuracy"] == 1.0 and rep["cohen_kappa"] == 1.0


# ======================================================================================
# Synthetic CSVs
# ======================================================================================

HEADER = ["TV_ID", "Dialogue_ID", "Utterance_ID", "Speaker", "Gender", "Age", "Neuroticism", "Extraversion",
          "Openness", "Agreeableness", "Conscientiousness", "Scene", "FacePosition_LU", "FacePosition_RD",
          "Sentiment", "Emotion", "DA", "Utterance"]
PEOPLE = {
    "甲": ["male", "young", "high", "low", "high", "low", "high"],
    "乙": ["female", "elderly", "low", "high", "unknown", "high", "low"],
    "丙": ["female", "middle-aged", "low", "low", "low", "low", "low"],
    "其他": ["unknown"] * 7,
}


def row(did: str, n: int, speaker: str, emotion: str, text: str = "你好") -> list[str]:
    return ["7", did, f"{did}_{n:03d}", speaker, *PEOPLE[speaker], "home", "0_0", "0_0", "neutral", emotion, "question", text]


def write_csv(path: Path, rows: list[list[str]], header: list[str] = HEADER) -> Path:
    with open(path, "w", encoding="utf-8-sig", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def small_rows() -> list[list[str]]:
    return [
        row("7_000", 0, "甲", "happy"), row("7_000", 1, "乙", "relaxed"), row("7_000", 2, "乙", "worried"),
        row("7_000", 3, "甲", "grateful"), row("7_000", 4, "其他", "neutral"),  # tie 甲/乙 2:2 -> 甲 (first)
        row("7_001", 0, "其他", "anger"), row("7_001", 1, "乙", "depress"),       # 乙 owns
        row("7_002", 0, "其他", "neutral"), row("7_002", 1, "丙", "neutral"),     # 丙 has 1 line < 2: skipped
    ]


def test_small_import_owner_turns_profile(tmp_path: Path):
    ds, defects = import_cped(write_csv(tmp_path / "s.csv", small_rows()), min_utterances=2)
    assert set(ds.characters) == {"甲", "乙"}
    owners = {u.dialogue: u.character for u in ds.script}
    assert owners == {"7_000": "甲", "7_001": "乙"}
    assert [(u.id, u.turn, u.speaker, u.emotion) for u in ds.script if u.dialogue == "7_001"] == [
        ("7_001_000", 1, "其他", "anger"), ("7_001_001", 2, "乙", "frustration")]
    assert ds.characters["乙"].profile == {"名字": "乙", "性别": "女", "年龄段": "老年",
                                           "性格特点": "神经质低，外向性高，宜人性高，尽责性低", "来源": "CPED 剧集 7"}
    assert [d.kind for d in defects] == ["dialogue_skipped"]
    assert defects[0].line == 9 and "7_002" in defects[0].message  # header is line 1
    schema.load(schema.save(ds, tmp_path / "out"))


def test_mapping_override_via_cli(tmp_path: Path):
    src = write_csv(tmp_path / "s.csv", small_rows())
    mapping = tmp_path / "map.json"
    mapping.write_text(json.dumps({"relaxed": "neutral", "worried": "恐惧", "depress": "sadness"}), encoding="utf-8")
    out = tmp_path / "out"
    r = run_cli("data", "import", "cped", src, "--out", out, "--mapping", mapping, "--min-utterances", 2)
    assert r.returncode == 0, r.stderr
    ds = schema.load(out)
    emo = {u.id: u.emotion for u in ds.script}
    assert emo["7_000_001"] == "neutral" and emo["7_000_002"] == "fear" and emo["7_001_001"] == "sadness"
    assert emo["7_000_000"] == "happiness"  # not overridden: default kept
    assert ds.meta["emotion_mapping"]["relaxed"] == "neutral" and ds.meta["min_utterances"] == 2
    assert "7 utterances, 2 dialogues, 2 characters" in r.stdout


def test_mapping_unknown_target_names_file_and_key(tmp_path: Path):
    src = write_csv(tmp_path / "s.csv", small_rows())
    mapping = tmp_path / "map.json"
    mapping.write_text(json.dumps({"happy": "joy"}), encoding="utf-8")
    r = run_cli("data", "import", "cped", src, "--out", tmp_path / "out", "--mapping", mapping)
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert str(mapping) in r.stderr and "'happy'" in r.stderr and "'joy'" in r.stderr
    assert not (tmp_path / "out").exists()


def test_unmapped_label_is_defect_and_null(tmp_path: Path):
    rows = small_rows()
    rows[1][15] = "bored"  # not a CPED class we map
    ds, defects = import_cped(write_csv(tmp_path / "s.csv", rows), min_utterances=2)
    u = next(u for u in ds.script if u.id == "7_000_001")
    assert u.emotion is None and u.provenance["gold_label"] == "bored"
    bad = [d for d in defects if d.kind == "unmapped_emotion_label"]
    assert len(bad) == 1 and bad[0].line == 3 and "'bored'" in bad[0].message
    # a null target leaves a class unmapped on purpose
    ds2, defects2 = import_cped(write_csv(tmp_path / "t.csv", small_rows()), mapping={"happy": None}, min_utterances=2)
    assert next(u for u in ds2.script if u.id == "7_000_000").emotion is None
    assert [d.line for d in defects2 if d.kind == "unmapped_emotion_label"] == [2]


def test_malformed_rows_are_defects_with_lines(tmp_path: Path):
    rows = small_rows()
    rows.insert(2, row("7_000", 9, "甲", "happy", text="  "))   # line 4: empty utterance
    rows.insert(3, row("7_000", 10, "甲", "happy")[:10])        # line 5: too few fields
    rows.insert(4, row("7_000", 0, "甲", "happy"))              # line 6: repeated Utterance_ID
    src = write_csv(tmp_path / "s.csv", rows)
    ds, defects = import_cped(src, min_utterances=2)
    found = {(d.kind, d.line) for d in defects}
    assert {("empty_field", 4), ("malformed_row", 5), ("duplicate_id", 6)} <= found
    assert all(str(d).startswith(f"{src}:") for d in defects if d.line is not None)
    assert len(ds.script) == 7
    assert [u.turn for u in ds.script if u.dialogue == "7_000"] == [1, 2, 3, 4, 5]


def test_missing_columns_is_data_error(tmp_path: Path):
    header = [h for h in HEADER if h not in ("Emotion", "Speaker")]
    src = write_csv(tmp_path / "x.csv", [], header=header)
    with pytest.raises(DataError, match=r"missing column\(s\) Speaker, Emotion") as e:
        import_cped(src)
    assert str(src) in str(e.value)
    r = run_cli("data", "import", "cped", src, "--out", tmp_path / "out")
    assert r.returncode == 2 and r.stderr.startswith("error: ") and r.stderr.count("\n") == 1
    assert "not a CPED CSV" in r.stderr


def test_min_utterances_and_option_errors(tmp_path: Path):
    src = write_csv(tmp_path / "s.csv", small_rows())
    ds, _ = import_cped(src, min_utterances=1)
    assert set(ds.characters) == {"甲", "乙", "丙"}
    with pytest.raises(DataError, match="no named speaker has at least 50"):
        import_cped(src, min_utterances=50)
    r = run_cli("data", "import", "roleinstruct-v1", tmp_path, "--out", tmp_path / "o", "--min-utterances", 3)
    assert r.returncode == 2 and "apply to 'cped' only" in r.stderr
