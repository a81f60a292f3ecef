"""evaluate.py refuses bad input with one line that says what, where and what to do."""

from __future__ import annotations

import json

import pytest

from conftest import run_evaluate


def last_line(r) -> str:
    return r.stderr.strip().splitlines()[-1]


def test_predictions_that_do_not_join_are_counted_and_shown(cache_dir, tmp_path):
    f = tmp_path / "p.jsonl"
    f.write_text("\n".join(json.dumps({"role": "nobody", "question": f"q{i}", "generated": ["a"]}) for i in range(5)))
    r = run_evaluate(["answers=predictions", f"answers.path={f}"], cache_dir, tmp_path / "ev")
    assert r.returncode == 2
    line = last_line(r)
    assert line.startswith("error: ") and "none of its 5 predictions joins the 125 items" in line and f"{f}:1" in line
    assert not (tmp_path / "ev" / "metrics.json").exists()


@pytest.mark.slow
def test_partly_missing_predictions_need_allow_missing(cache_dir, tmp_path):
    f = tmp_path / "p.jsonl"
    f.write_text(json.dumps({"key": "luo-huowang-spe-004", "prediction": "七月二十八"}))
    args = ["answers=predictions", f"answers.path={f}", "benchmark.kinds=[specific]"]
    r = run_evaluate(args, cache_dir, tmp_path / "ev")
    assert r.returncode == 2 and "benchmark items have no prediction" in last_line(r)
    assert "answers.allow_missing=true" in last_line(r)
    r = run_evaluate([*args, "answers.allow_missing=true"], cache_dir, tmp_path / "ev2")
    assert r.returncode == 0, r.stderr[-2000:]
    m = json.loads((tmp_path / "ev2" / "metrics.json").read_text())
    assert m["answers/missing"] == m["n/spe"] - 1 == m["empty/spe"] - 0


@pytest.mark.slow
def test_empty_and_malformed_prediction_files(cache_dir, tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n")
    r = run_evaluate(["answers=predictions", f"answers.path={empty}"], cache_dir, tmp_path / "ev")
    assert r.returncode == 2 and "no predictions (empty file)" in last_line(r)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"key": "x", "prediction": "ok"}\n{"key": "y", "prediction": 3}\n')
    r = run_evaluate(["answers=predictions", f"answers.path={bad}"], cache_dir, tmp_path / "ev")
    assert r.returncode == 2 and f"{bad}:2" in last_line(r) and "'prediction' must be a string" in last_line(r)
    r = run_evaluate(["answers=predictions", f"answers.path={tmp_path / 'nope.jsonl'}"], cache_dir, tmp_path / "ev")
    assert r.returncode == 2 and "no such file" in last_line(r)


@pytest.mark.slow
def test_unknown_benchmark_and_missing_roots(cache_dir, tmp_path):
    r = run_evaluate(["benchmark=rolebench_en"], cache_dir, tmp_path / "ev")
    assert r.returncode != 0 and "Could not find 'benchmark/rolebench_en'" in r.stderr
    assert "rolebench_zh" in r.stderr  # the options are listed
    r = run_evaluate(["benchmark=rolebench_zh"], cache_dir, tmp_path / "ev")
    assert r.returncode == 2 and "needs benchmark.root" in last_line(r)
    r = run_evaluate(["benchmark=belle", f"benchmark.root={tmp_path / 'missing'}"], cache_dir, tmp_path / "ev")
    assert r.returncode == 2 and "no such file or directory" in last_line(r)
    r = run_evaluate(["rouge.tokenizer=spacy"], cache_dir, tmp_path / "ev")
    # a typed choice (config.RougeTokenizer): Hydra refuses it while composing, listing the choices
    assert r.returncode == 1 and "Invalid value 'spacy', expected one of [jieba, char]" in r.stderr
    assert "rouge.tokenizer" in r.stderr


@pytest.mark.slow
def test_judge_comparison_file_is_checked_before_answers_are_generated(cache_dir, tmp_path):
    r = run_evaluate(["judge=rank", f"judge.compare=[{tmp_path / 'missing.jsonl'}]"], cache_dir, tmp_path / "ev")
    assert r.returncode == 2 and "judge.compare[0]" in last_line(r) and "no such file" in last_line(r)
    assert "generate" not in r.stderr  # no model was loaded or run


def test_not_a_training_run(cache_dir, tmp_path):
    r = run_evaluate(["answers=run", f"answers.path={tmp_path}"], cache_dir, tmp_path / "ev")
    assert r.returncode == 2 and "not a finished train.py run" in last_line(r)
