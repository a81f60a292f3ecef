"""Annotation agreement: the classification metrics against sklearn, label reading, and
`rolecraft data agreement` end to end in a subprocess (the kappas: tests/test_stats.py)."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from rolecraft.data import agreement as ag
from rolecraft.data.schema import EMOTIONS
from rolecraft.errors import DataError

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src"


def run_cli(*args: object) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(SRC), *filter(None, [env.get("PYTHONPATH")])])
    return subprocess.run([sys.executable, "-m", "rolecraft.cli", *map(str, args)],
                          capture_output=True, text=True, env=env, cwd=REPO, timeout=300)


# ======================================================================================
# Metric functions
# ======================================================================================


@pytest.mark.parametrize("seed", range(3))
def test_accuracy_matches_sklearn(seed: int):
    metrics = pytest.importorskip("sklearn.metrics")
    rng = random.Random(seed)
    a = [rng.choice(EMOTIONS) for _ in range(200)]
    b = [x if rng.random() < 0.5 else rng.choice(EMOTIONS) for x in a]
    assert ag.accuracy(a, b) == pytest.approx(metrics.accuracy_score(a, b), abs=1e-12)


def test_kappas_are_the_shared_statistics():
    """The report's kappas are rolecraft.stats' (one implementation, re-exported here)."""
    from rolecraft import stats

    assert ag.cohen_kappa is stats.cohen_kappa and ag.fleiss_kappa is stats.fleiss_kappa


def test_per_label_matches_sklearn():
    metrics = pytest.importorskip("sklearn.metrics")
    rng = random.Random(42)
    labels = list(EMOTIONS[:5])
    a = [rng.choice(labels) for _ in range(300)]
    b = [x if rng.random() < 0.6 else rng.choice(labels) for x in a]
    p, r, f, s = metrics.precision_recall_fscore_support(a, b, labels=labels, zero_division=0)
    table = ag.per_label(a, b, labels)
    for i, lab in enumerate(labels):
        assert table[lab]["precision"] == pytest.approx(p[i])
        assert table[lab]["recall"] == pytest.approx(r[i])
        assert table[lab]["f1"] == pytest.approx(f[i])
        assert table[lab]["support"] == s[i]
    assert ag.macro_f1(table) == pytest.approx(metrics.f1_score(a, b, labels=labels, average="macro"))


def test_confusion_sums_to_n_and_rows_are_reference():
    rng = random.Random(7)
    labels = list(EMOTIONS)
    a = [rng.choice(labels) for _ in range(257)]
    b = [rng.choice(labels) for _ in range(257)]
    m = ag.confusion(a, b, labels)
    assert sum(map(sum, m)) == 257
    for i, lab in enumerate(labels):
        assert sum(m[i]) == a.count(lab)                  # row i = reference label i
        assert sum(row[i] for row in m) == b.count(lab)   # column i = other source
    assert sum(m[i][i] for i in range(len(labels))) == sum(x == y for x, y in zip(a, b))
    with pytest.raises(ValueError, match="joy"):
        ag.confusion(["joy"], ["anger"], labels)


def test_normalize_label():
    assert ag.normalize_label("Anger", "x") == "anger"
    assert ag.normalize_label(" 快乐 ", "x") == "happiness"
    assert ag.normalize_label("", "x") is None
    assert ag.normalize_label("null", "x") is None
    with pytest.raises(DataError, match=r"f\.csv:3: unknown emotion label 'joy'"):
        ag.normalize_label("joy", "f.csv:3")


# ======================================================================================
# The CLI
# ======================================================================================

# u1..u10 labelled in both; 7 agree. Counts A: anger 2, neutral 4, happiness 2, sadness 2;
# B: anger 2, neutral 4, happiness 3, sadness 1 -> p_e = (4 + 16 + 6 + 2) / 100 = 0.28,
# kappa = (0.7 - 0.28) / 0.72 = 7/12.
A = ["anger", "anger", "neutral", "neutral", "neutral", "happiness", "happiness", "sadness", "sadness", "neutral"]
B = ["anger", "neutral", "neutral", "neutral", "happiness", "happiness", "happiness", "sadness", "anger", "neutral"]
ZH = {"anger": "愤怒", "happiness": "快乐"}


def write_sources(tmp_path: Path) -> tuple[Path, Path]:
    a = tmp_path / "gold.jsonl"
    rows = [{"id": f"u{i}", "emotion": lab} for i, lab in enumerate(A, start=1)]
    rows += [{"id": "u11", "emotion": "fear"}, {"id": "u12", "emotion": "fear"}]  # u11 not in B, u12 unlabelled in B
    a.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    b = tmp_path / "llm.csv"
    lines = ["id,emotion"] + [f"u{i},{ZH.get(lab, lab.upper() if i % 2 else lab)}" for i, lab in enumerate(B, start=1)]
    lines += ["u12,", "u13,anger"]  # u13 only in B
    b.write_text("\ufeff" + "\n".join(lines) + "\n", encoding="utf-8")
    return a, b


def test_two_sources_exact_numbers(tmp_path: Path):
    a, b = write_sources(tmp_path)
    out = tmp_path / "agree.json"
    r = run_cli("data", "agreement", a, b, "--json", out)
    assert r.returncode == 0, r.stderr
    rep = json.loads(out.read_text(encoding="utf-8"))
    assert rep["n_items"] == 10
    assert rep["dropped"] == 3  # u11 (missing in B), u12 (unlabelled in B), u13 (missing in A)
    assert rep["accuracy"] == pytest.approx(0.7)
    assert rep["cohen_kappa"] == pytest.approx(7 / 12)
    conf = rep["confusion"]
    assert conf["labels"] == ["anger", "happiness", "sadness", "neutral"]
    m = dict(zip(conf["labels"], conf["matrix"]))
    assert m["anger"] == [1, 0, 0, 1]      # u1 anger/anger, u2 anger/neutral
    assert m["sadness"] == [1, 0, 1, 0]    # u8 sadness/sadness, u9 sadness/anger
    assert sum(map(sum, conf["matrix"])) == 10
    assert rep["per_label"]["happiness"]["precision"] == pytest.approx(2 / 3)
    assert rep["per_label"]["happiness"]["recall"] == pytest.approx(1.0)
    assert rep["per_label"]["sadness"]["recall"] == pytest.approx(0.5)
    assert "fleiss_kappa" not in rep
    by_name = {s["name"]: s for s in rep["sources"]}
    assert by_name[str(a)]["missing_or_unlabelled"] == 1 and by_name[str(b)]["missing_or_unlabelled"] == 2
    assert "accuracy: 0.7000" in r.stdout and "Cohen's kappa: 0.5833" in r.stdout
    assert "confusion (rows: " in r.stdout and "macro F1" in r.stdout


def test_three_sources_fleiss_and_pairs(tmp_path: Path):
    a, b = write_sources(tmp_path)
    c = tmp_path / "c.jsonl"
    C = list(A)
    C[0] = "other"
    c.write_text("".join(json.dumps({"id": f"u{i}", "emotion": lab}) + "\n" for i, lab in enumerate(C, start=1)),
                 encoding="utf-8")
    out = tmp_path / "three.json"
    r = run_cli("data", "agreement", a, b, c, "--json", out, "--labels")
    assert r.returncode == 0, r.stderr
    rep = json.loads(out.read_text(encoding="utf-8"))
    assert rep["n_items"] == 10
    assert rep["fleiss_kappa"] == pytest.approx(ag.fleiss_kappa([A, B, C]))
    assert len(rep["pairwise"]) == 3
    pairs = {(p["a"], p["b"]): p for p in rep["pairwise"]}
    assert pairs[(str(a), str(b))]["cohen_kappa"] == pytest.approx(7 / 12)
    assert pairs[(str(a), str(c))]["accuracy"] == pytest.approx(0.9)
    assert [x["source"] for x in rep["against_reference"]] == [str(b), str(c)]
    assert "Fleiss' kappa (3 sources)" in r.stdout and "label counts" in r.stdout


def _one_line_error(r: subprocess.CompletedProcess) -> str:
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert r.stderr.startswith("error: ") and r.stderr.count("\n") == 1, r.stderr
    assert "Traceback" not in r.stderr
    return r.stderr


def test_unknown_label_in_csv_gives_file_and_line(tmp_path: Path):
    a, _ = write_sources(tmp_path)
    bad = tmp_path / "bad.csv"
    bad.write_text("id,emotion\nu1,anger\nu2,joy\n", encoding="utf-8")
    err = _one_line_error(run_cli("data", "agreement", a, bad))
    assert f"{bad}:3" in err and "'joy'" in err


def test_missing_file_is_one_line_error(tmp_path: Path):
    a, _ = write_sources(tmp_path)
    err = _one_line_error(run_cli("data", "agreement", a, tmp_path / "nope.csv"))
    assert "nope.csv" in err


def test_csv_without_columns_and_no_common_items(tmp_path: Path):
    a, _ = write_sources(tmp_path)
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("utterance,label\nu1,anger\n", encoding="utf-8")
    assert "missing column(s) id, emotion" in _one_line_error(run_cli("data", "agreement", a, wrong))
    other = tmp_path / "other.csv"
    other.write_text("id,emotion\nx1,anger\n", encoding="utf-8")
    err = _one_line_error(run_cli("data", "agreement", a, other))
    assert "no utterance id is labelled in every source" in err and str(other) in err


def test_fewer_than_two_sources_is_usage_error(tmp_path: Path):
    a, _ = write_sources(tmp_path)
    r = run_cli("data", "agreement", a)
    assert r.returncode == 2 and "error:" in r.stderr and "Traceback" not in r.stderr


def test_embedded_demo_against_itself():
    from rolecraft.data import resolve_data_root

    if not (resolve_data_root("embedded:demo") / "meta.json").is_file():
        pytest.skip("the demo dataset is not in the package")
    r = run_cli("data", "agreement", "embedded:demo", "embedded:demo")
    assert r.returncode == 0, r.stderr
    assert "accuracy: 1.0000" in r.stdout
