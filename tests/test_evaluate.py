"""The real `python evaluate.py` in subprocesses: answer sources, benchmarks, Rouge-L options."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from conftest import FAST, read_jsonl, read_metrics, run_evaluate, run_train, shared_data

QUICK = ["benchmark.max_samples=4", "generation.max_new_tokens=16"]


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, cache_dir) -> Path:
    runs = tmp_path_factory.mktemp("runs")
    r = run_train(["emotions=off", *FAST], cache_dir, runs)
    assert r.returncode == 0, r.stderr[-3000:]
    return next(p.parent for p in runs.rglob("metrics.json"))


@pytest.mark.slow
def test_run_answers_reproduce_the_training_runs_own_evaluation(trained_run, cache_dir, tmp_path):
    """`evaluate.py answers=run answers.path=RUN` and nothing else: the run's data, test split, prompt
    spec, generation and Rouge options, so evaluate.py gives train.py's numbers exactly."""
    r = run_evaluate(["answers=run", f"answers.path={trained_run}"], cache_dir, tmp_path / "ev")
    assert r.returncode == 0, r.stderr[-3000:]
    ev, tr = read_metrics(tmp_path / "ev"), read_metrics(trained_run)
    for col in ("raw", "cus", "spe", "avg"):
        assert ev[f"rouge_l/{col}"] == pytest.approx(tr[f"test/rouge_l/{col}"], abs=1e-12), col
    assert ev["answers/name"] == trained_run.name
    train_rows = read_jsonl(trained_run / "samples.jsonl")
    rows = read_jsonl(tmp_path / "ev" / "samples.jsonl")
    assert len(rows) == 12 and rows == train_rows  # same file, row for row: keys, prompts, answers, scores
    assert ev["prompt/from_run"] is True and "prompt/overridden" not in ev
    # the run trained with emotions=off: the recorded spec is what evaluate.py used
    assert yaml.safe_load((tmp_path / "ev" / "prompt.yaml").read_text()) == \
        yaml.safe_load((trained_run / "prompt.yaml").read_text())
    assert all("（" not in row["prompt"].split("【台词示例】")[1].split("<|im_end|>")[0] for row in rows)
    # run directory: resolved config, profiles for judges and annotators
    cfg = yaml.safe_load((tmp_path / "ev" / "config.yaml").read_text())
    assert cfg["answers"]["source"] == "run" and cfg["rouge"]["tokenizer"] == "jieba"
    assert set(json.loads((tmp_path / "ev" / "characters.json").read_text())) >= {row["character"] for row in rows}


@pytest.mark.slow
def test_an_override_of_the_runs_prompt_is_reported(trained_run, cache_dir, tmp_path):
    r = run_evaluate(["answers=run", f"answers.path={trained_run}", "emotions=on", "benchmark.max_samples=1"],
                     cache_dir, tmp_path / "ev")
    assert r.returncode == 0, r.stderr[-3000:]
    m = read_metrics(tmp_path / "ev")
    assert m["prompt/overridden"] == "emotions: False -> True" and m["benchmark/evaluated"] == 3
    assert "differs from the one the run trained with" in r.stdout + r.stderr
    assert yaml.safe_load((tmp_path / "ev" / "prompt.yaml").read_text())["emotions"] is True


@pytest.mark.slow
def test_a_run_directory_of_the_older_layout_still_evaluates(trained_run, cache_dir, tmp_path):
    """Runs made before the formats were unified: predictions.jsonl rows with `id`, config keys
    emotions.enabled / data.num_exemplars, no prompt.yaml."""
    import shutil

    old = tmp_path / "old_run"
    shutil.copytree(trained_run, old)
    rows = read_jsonl(old / "samples.jsonl")
    (old / "samples.jsonl").unlink()
    (old / "prompt.yaml").unlink()
    (old / "predictions.jsonl").write_text("".join(json.dumps({"id" if k == "key" else k: v for k, v in row.items()},
                                                              ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    cfg = yaml.safe_load((old / "config.yaml").read_text())
    prompt = cfg.pop("prompt")
    cfg["emotions"] = {"enabled": prompt["emotions"]}
    cfg["data"]["num_exemplars"] = prompt["num_exemplars"]
    cfg["retrieval"] = prompt["retrieval"]
    (old / "config.yaml").write_text(yaml.safe_dump(cfg, allow_unicode=True))
    r = run_evaluate(["answers=run", f"answers.path={old}"], cache_dir, tmp_path / "ev")
    assert r.returncode == 0, r.stderr[-3000:]
    assert read_metrics(tmp_path / "ev")["rouge_l/avg"] == read_metrics(trained_run)["test/rouge_l/avg"]
    r = run_evaluate(["answers=predictions", f"answers.path={old}", "benchmark.max_samples=4"], cache_dir,
                     tmp_path / "ev2")
    assert r.returncode == 0, r.stderr[-3000:]
    assert read_metrics(tmp_path / "ev2")["rouge_l/avg"] == read_metrics(trained_run)["test/rouge_l/avg"]


@pytest.mark.slow
def test_prediction_file_of_a_training_run_scores_the_same(trained_run, cache_dir, tmp_path):
    r = run_evaluate(["answers=predictions", f"answers.path={trained_run / 'samples.jsonl'}",
                      "benchmark.max_samples=4"], cache_dir, tmp_path / "ev")
    assert r.returncode == 0, r.stderr[-3000:]
    ev, tr = read_metrics(tmp_path / "ev"), read_metrics(trained_run)
    assert ev["rouge_l/avg"] == pytest.approx(tr["test/rouge_l/avg"], abs=1e-12)
    assert ev["answers/missing"] == 0 and ev["answers/unmatched"] == 0


@pytest.mark.slow
def test_zero_shot_model_default_and_rouge_options_are_recorded(cache_dir, tmp_path):
    r = run_evaluate([*QUICK, "rouge.tokenizer=char", "rouge.stat=r", "rouge.postprocess=strip_punct"],
                     cache_dir, tmp_path / "ev")
    assert r.returncode == 0, r.stderr[-3000:]
    m = read_metrics(tmp_path / "ev")
    assert m["answers/name"] == "tiny" and m["benchmark/evaluated"] == 12
    assert {m["n/raw"], m["n/cus"], m["n/spe"]} == {4}
    assert (m["rouge_l/options/tokenizer"], m["rouge_l/options/stat"], m["rouge_l/options/postprocess"]) == \
        ("char", "r", "strip_punct")
    assert 0.0 < m["rouge_l/avg"] < 1.0


def _write_rolebench_like(root: Path) -> None:
    (root / "general").mkdir(parents=True)
    (root / "role_specific").mkdir()
    gen = [{"role": "孙悟空", "question": "你好吗？", "generated": ["俺老孙好得很！", "好得很，俺老孙！"]},
           {"role": "孙悟空", "question": "一加一等于几？", "generated": ["俺老孙算了，等于二。"]}]
    spe = [{"role": "孙悟空", "question": " 你的师父是谁？ ", "generated": ["俺师父是唐僧。"], "type": ["script_based"]}]
    (root / "general" / "test.jsonl").write_text("\n".join(json.dumps(x, ensure_ascii=False) for x in gen))
    (root / "role_specific" / "test.jsonl").write_text("\n".join(json.dumps(x, ensure_ascii=False) for x in spe))


@pytest.mark.slow
def test_rolebench_format_predictions_join_on_role_and_question(cache_dir, tmp_path):
    _write_rolebench_like(tmp_path / "rb")
    preds = [{"role": "孙悟空", "question": "你的师父是谁？", "generated": ["俺师父是唐僧。"]},
             {"role": "孙悟空", "question": "你好吗？", "generated": ["俺老孙好得很！", "ignored second"]},
             {"role": "孙悟空", "question": "一加一等于几？", "generated": [""]},
             {"role": "猪八戒", "question": "吃了吗？", "generated": ["没呢"]}]
    f = tmp_path / "p.jsonl"
    f.write_text("\n".join(json.dumps(x, ensure_ascii=False) for x in preds))
    r = run_evaluate(["benchmark=rolebench_zh", f"benchmark.root={tmp_path / 'rb'}", "answers=predictions",
                      f"answers.path={f}"], cache_dir, tmp_path / "ev")
    assert r.returncode == 0, r.stderr[-3000:]
    m = read_metrics(tmp_path / "ev")
    # a perfect SPE answer, one perfect and one empty CUS answer (the empty one scores 0 and is counted)
    assert m["rouge_l/spe"] == pytest.approx(1.0, abs=1e-6)
    assert m["rouge_l/cus"] == pytest.approx(0.5, abs=1e-6) and m["empty/cus"] == 1
    assert m["answers/unmatched"] == 1 and "rouge_l/raw" not in m


@pytest.mark.slow
def test_rolebench_zh_rolegpt_baseline_equals_rouge_chinese(cache_dir, tmp_path):
    """The issue's must-reproduce command, checked against rouge-chinese itself on every pair."""
    root = shared_data("rolebench-zh")
    rouge_chinese = pytest.importorskip("rouge_chinese", reason="rouge-chinese is in the dev extra")
    import jieba

    f = tmp_path / "rolegpt.jsonl"
    f.write_text((root / "general" / "rolegpt_baseline.jsonl").read_text(encoding="utf-8").rstrip("\n") + "\n"
                 + (root / "role_specific" / "rolegpt_baseline.jsonl").read_text(encoding="utf-8"), encoding="utf-8")
    r = run_evaluate(["benchmark=rolebench_zh", f"benchmark.root={root}", "answers=predictions", f"answers.path={f}",
                      "rouge.tokenizer=jieba", "rouge.references=max"], cache_dir, tmp_path / "ev")
    assert r.returncode == 0, r.stderr[-3000:]
    m = read_metrics(tmp_path / "ev")
    assert m["n/cus"] == 1451 and m["n/spe"] == 239 and m["answers/missing"] == 0
    scorer = rouge_chinese.Rouge()
    per: dict[str, list[float]] = {"general": [], "specific": []}
    for row in read_jsonl(tmp_path / "ev" / "samples.jsonl"):
        hyp = " ".join(jieba.cut(row["prediction"]))
        per[row["kind"]].append(max(scorer.get_scores(hyp, " ".join(jieba.cut(ref)))[0]["rouge-l"]["f"]
                                    for ref in row["references"]))
    assert m["rouge_l/cus"] == pytest.approx(sum(per["general"]) / 1451, abs=1e-12)
    assert m["rouge_l/spe"] == pytest.approx(sum(per["specific"]) / 239, abs=1e-12)


@pytest.mark.slow
def test_belle_is_a_raw_benchmark_and_counts_rows_without_reference(cache_dir, tmp_path):
    root = shared_data("belle")
    rows = [json.loads(line) for line in (root / "eval_set.json").read_text(encoding="utf-8").splitlines() if line.strip()]
    with_ref = [x for x in rows if (x.get("std_answer") or "").strip()]
    # answer with the reference itself for half the rows: their Rouge-L is ~1, the others get ""
    preds = [{"key": None, "character": None, "question": x["question"],
              "prediction": x["std_answer"] if i % 2 == 0 else ""} for i, x in enumerate(with_ref)]
    f = tmp_path / "p.jsonl"
    f.write_text("\n".join(json.dumps(p, ensure_ascii=False) for p in preds), encoding="utf-8")
    r = run_evaluate(["benchmark=belle", f"benchmark.root={root}", "answers=predictions", f"answers.path={f}"],
                     cache_dir, tmp_path / "ev")
    assert r.returncode == 0, r.stderr[-3000:]
    m = read_metrics(tmp_path / "ev")
    assert m["benchmark/skipped/no_reference"] == len(rows) - len(with_ref) > 0
    assert m["n/raw"] == len(with_ref) and m["empty/raw"] == len(with_ref) // 2
    assert m["rouge_l/raw"] == pytest.approx(((len(with_ref) + 1) // 2) / len(with_ref), abs=1e-4)
    assert m["rouge_l/avg"] == m["rouge_l/raw"]


@pytest.mark.slow
def test_user_jsonl_benchmark(cache_dir, tmp_path):
    bench = tmp_path / "mine.jsonl"
    bench.write_text("\n".join(json.dumps(x, ensure_ascii=False) for x in [
        {"kind": "specific", "character": "林小满", "instruction": "你在哪里工作？", "references": ["我在花店上班。"]},
        {"kind": "general", "character": "林小满", "instruction": "推荐一本书。", "references": ["看看《活着》吧。"]},
    ]), encoding="utf-8")
    preds = tmp_path / "p.jsonl"
    preds.write_text("\n".join(json.dumps(x, ensure_ascii=False) for x in [
        {"character": "林小满", "question": "你在哪里工作？", "prediction": "我在花店上班。"},
        {"character": "林小满", "question": "推荐一本书。", "prediction": "随便"}]), encoding="utf-8")
    r = run_evaluate(["benchmark=jsonl", f"benchmark.root={bench}", "answers=predictions", f"answers.path={preds}"],
                     cache_dir, tmp_path / "ev")
    assert r.returncode == 0, r.stderr[-3000:]
    m = read_metrics(tmp_path / "ev")
    assert m["rouge_l/spe"] == pytest.approx(1.0, abs=1e-6) and m["rouge_l/cus"] == 0.0


@pytest.mark.slow
def test_wandb_offline_logging_of_an_evaluation(trained_run, cache_dir, tmp_path):
    pytest.importorskip("wandb", reason="logger=wandb needs the wandb extra (in dev)")
    r = run_evaluate(["answers=predictions", f"answers.path={trained_run / 'samples.jsonl'}",
                      "benchmark.max_samples=4", "logger=wandb", "tags=[smoke]"], cache_dir, tmp_path / "ev",
                     env={"WANDB_MODE": "offline", "WANDB_SILENT": "true", "OPENAI_API_KEY": "do-not-log-me"})
    assert r.returncode == 0, r.stderr[-3000:]
    runs = list((tmp_path / "ev" / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    files = [f for f in runs[0].rglob("*") if f.is_file()]
    blob = b"".join(f.read_bytes() for f in files)
    assert b"rouge_l/avg" in blob and b"do-not-log-me" not in blob


@pytest.mark.slow
def test_human_sheets_from_a_training_run_and_an_evaluation_run(trained_run, cache_dir, tmp_path):
    """Any run directory feeds `rolecraft human export` directly (profiles included): a train.py run
    beside an evaluate.py run."""
    import csv
    import subprocess
    import sys

    from conftest import cli_env

    r = run_evaluate(["answers=model", "answers.name=other", "benchmark.max_samples=4",
                      "generation.max_new_tokens=8"], cache_dir, tmp_path / "other")
    assert r.returncode == 0, r.stderr[-2000:]
    r = subprocess.run([sys.executable, "-m", "rolecraft.cli", "human", "export", "--answers", f"ours={trained_run}",
                        "--answers", f"other={tmp_path / 'other'}", "--out", str(tmp_path / "sheets"), "--n", "6",
                        "--annotators", "2"], env=cli_env(cache_dir), capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    with open(tmp_path / "sheets" / "sheet_01.csv", encoding="utf-8-sig", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 12 and all(row["profile"].strip() for row in rows if row["character"])
    assert not any(name in "".join(row.values()) for row in rows for name in ("ours", "other"))
