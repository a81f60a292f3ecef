"""The real `python train.py` in subprocesses, on the embedded default (tiny model, demo data)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

from conftest import FAST, read_metrics, run_train

pytestmark = pytest.mark.slow

REQUIRED = ("test/rouge_l/raw", "test/rouge_l/cus", "test/rouge_l/spe", "test/rouge_l/avg", "train/loss")
VOLATILE = ("seconds", "per_second")  # timings differ between runs; everything else must not


def only_run(runs: Path) -> Path:
    dirs = [p.parent for p in runs.rglob("metrics.json")]
    assert len(dirs) == 1, dirs
    return dirs[0]


def stable(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if not any(w in k for w in VOLATILE)}


@pytest.fixture(scope="module")
def default_run(tmp_path_factory, cache_dir) -> Path:
    runs = tmp_path_factory.mktemp("runs")
    r = run_train(["data=hybrid", "emotions=off", *FAST], cache_dir, runs)
    assert r.returncode == 0, r.stderr[-3000:]
    return only_run(runs)


def test_run_directory_holds_the_record(default_run):
    m = read_metrics(default_run)
    for key in REQUIRED:
        assert isinstance(m[key], float), key
    for col in ("raw", "cus", "spe"):
        assert 0.0 <= m[f"test/rouge_l/{col}"] <= 1.0 and m[f"test/n/{col}"] == 4
    assert m["test/rouge_l/avg"] == pytest.approx(
        (m["test/rouge_l/raw"] + m["test/rouge_l/cus"] + m["test/rouge_l/spe"]) / 3)
    assert m["train/steps"] == 6 and m["test/rouge_l/options/tokenizer"] == "jieba"
    # the training set's size and what the 6 steps of optim.batch_size=4 consumed are two keys
    assert m["train/samples_seen"] == 6 * 4 and m["train/dataset_samples"] > m["train/samples_seen"]
    assert "train/samples" not in m
    assert 0 < m["time/launch_to_first_step_seconds"] <= m["time/total_seconds"]
    rows = [json.loads(l) for l in (default_run / "samples.jsonl").read_text().splitlines()]
    assert len(rows) == 12 and {r["kind"] for r in rows} == {"raw", "general", "specific"}
    assert set(rows[0]) >= {"key", "character", "kind", "question", "prompt", "prediction", "references", "rouge_l"}
    assert "<|im_start|>system" in rows[0]["prompt"]
    cfg = (default_run / "config.yaml").read_text()
    assert "${" not in cfg  # resolved
    cfg = yaml.safe_load(cfg)
    assert cfg["data"]["mix"] == "hybrid" and cfg["prompt"]["emotions"] is False
    spec = yaml.safe_load((default_run / "prompt.yaml").read_text())
    assert spec["emotions"] is False and spec["num_exemplars"] == 6 and len(spec["template_sha256"]) == 64
    assert cfg["paths"]["output_dir"] == str(default_run)
    assert (default_run / "logs" / "metrics.csv").is_file()
    assert (default_run / "checkpoints" / "last.ckpt").is_file()


def test_adapter_loads_with_plain_peft(default_run, cache_dir):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    adapter = default_run / "adapter"
    cfg = json.loads((adapter / "adapter_config.json").read_text())
    assert cfg["base_model_name_or_path"] == "embedded:tiny"  # portable, not this machine's cache path
    from rolecraft.modeling.tiny import ensure_embedded

    base_dir = ensure_embedded("tiny", cache_dir)  # the shipped copy: plain transformers files
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base_dir), adapter)
    lora = {n: p for n, p in model.named_parameters() if "lora_B" in n}
    assert lora and any(p.abs().sum() > 0 for p in lora.values())  # trained (lora_B starts at zero)


def test_checkpoint_holds_adapter_and_optimizer_only(default_run):
    ckpt = torch.load(default_run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert ckpt["state_dict"] and all("lora_" in k for k in ckpt["state_dict"])
    assert ckpt["optimizer_states"] and ckpt["global_step"] == 6


def test_same_command_twice_gives_same_metrics(default_run, tmp_path, cache_dir):
    """Also: a fresh interpreter gives what the warm one of tests/warm_python.py gave (default_run)."""
    r = run_train(["data=hybrid", "emotions=off", *FAST], cache_dir, tmp_path, fresh=True)
    assert r.returncode == 0, r.stderr[-3000:]
    assert stable(read_metrics(only_run(tmp_path))) == stable(read_metrics(default_run))


def test_resume_from_checkpoint_continues_exactly(default_run, tmp_path, cache_dir):
    """As after a crash at step 3: resumed from the uninterrupted run's own step-3 checkpoint.
    (Extending a finished run with a larger trainer.max_steps: the README's resume command.)"""
    ckpt = default_run / "checkpoints" / "step-3.ckpt"
    resumed = tmp_path / "resumed"
    r = run_train(["data=hybrid", "emotions=off", *FAST, f"ckpt_path={ckpt}"], cache_dir, resumed)
    assert r.returncode == 0, r.stderr[-3000:]
    # the loader is stateful the way Lightning expects: no "not resumable ... unreliable" warning,
    # one line saying why the resume is exact instead
    assert "not resumable" not in r.stderr and "unreliable" not in r.stderr, r.stderr[-3000:]
    assert "resuming at step 3: batches are a function of (seed, epoch, step)" in r.stderr
    a, b = read_metrics(default_run), read_metrics(only_run(resumed))
    assert b["train/steps"] == 6
    assert b["train/loss"] == a["train/loss"]  # the same 6th step as the uninterrupted run
    assert stable(b) == stable(a)


def test_grid_of_six_runs_one_folder_each(tmp_path, cache_dir):
    r = run_train(["-m", "data=general,specific,hybrid", "emotions=on,off", *FAST, "trainer.max_steps=2",
                   "data.max_eval_samples=2"], cache_dir, tmp_path, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    dirs = sorted(p.parent for p in tmp_path.rglob("metrics.json"))
    assert len(dirs) == 6
    seen = set()
    for d in dirs:
        cfg = yaml.safe_load((d / "config.yaml").read_text())
        mix, emo = cfg["data"]["mix"], cfg["prompt"]["emotions"]
        seen.add((mix, emo))
        assert f"data={mix}" in d.name and f"emotions={'on' if emo else 'off'}" in d.name
        m = read_metrics(d)  # jobs after the first start their own clock (they share one process)
        assert 0 < m["time/launch_to_first_step_seconds"] <= m["time/total_seconds"], d.name
    assert len(seen) == 6


def test_ddp_cpu_two_processes(tmp_path, cache_dir):
    r = run_train(["trainer=ddp_cpu", *FAST], cache_dir, tmp_path, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    m = read_metrics(only_run(tmp_path))
    assert m["train/world_size"] == 2 and m["train/steps"] == 6
    assert m["train/samples_seen"] == 6 * 4 * 2  # both ranks' shares of each step
    # each line once: the second rank logs only warnings; no collective's deprecation warning
    assert r.stderr.count("import-to-fit") == 1, r.stderr[-3000:]
    assert "deprecated" not in r.stderr and "Warning" not in r.stderr, r.stderr[-3000:]
    for key in REQUIRED:
        assert isinstance(m[key], float)


def test_untrained_model_runs_evaluation_only(tmp_path, cache_dir):
    r = run_train([*FAST, "trainer.max_steps=0"], cache_dir, tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    m = read_metrics(only_run(tmp_path))
    assert m["train/steps"] == 0 and "test/rouge_l/avg" in m


def test_long_prompts_are_truncated_and_counted(tmp_path, cache_dir):
    r = run_train([*FAST, "trainer.max_steps=1", "data.max_source_length=64", "data.max_target_length=8"],
                  cache_dir, tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    m = read_metrics(only_run(tmp_path))
    # every train and val prompt (hybrid val: 15 general + 15 specific) is longer than 64 tokens
    assert m["data/truncated_prompts"] == m["train/dataset_samples"] + 30
    assert m["data/truncated_responses"] > 0 and m["test/truncated_prompts"] == 12


def test_trains_on_the_imported_paper_data(tmp_path, cache_dir):
    """The whole path on real data: the authors' v1 folders -> import -> train -> score."""
    import subprocess
    import sys

    from conftest import REPO, cli_env, shared_data

    src = shared_data("roleinstruct-v1", "role")
    out = tmp_path / "roleinstruct-v1"
    r = subprocess.run([sys.executable, "-m", "rolecraft.cli", "data", "import", "roleinstruct-v1", str(src),
                        "--out", str(out)], cwd=REPO, env=cli_env(cache_dir), capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    r = run_train([f"data.root={out}", *FAST, "trainer.max_steps=2", "data.max_train_samples=64", "data.max_eval_samples=3",
                   "trainer.limit_val_batches=2", "data.max_source_length=512"], cache_dir, tmp_path / "runs")
    assert r.returncode == 0, r.stderr[-3000:]
    m = read_metrics(only_run(tmp_path / "runs"))
    # v1 has no raw answers: CUS and SPE are scored, RAW is absent (and Avg averages what exists)
    assert m["test/n/cus"] == 3 and m["test/n/spe"] == 3 and "test/rouge_l/raw" not in m
    assert m["train/dataset_samples"] == 64 and m["data/truncated_prompts"] > 0
    assert m["train/samples_seen"] == 2 * 4  # 2 steps of optim.batch_size 4
