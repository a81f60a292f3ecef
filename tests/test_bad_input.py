"""Bad input to `python train.py`: one clear line naming file:line / key, exit 2, no results."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from conftest import FAST, run_train
from rolecraft.data import resolve_data_root


@pytest.fixture
def dataset(tmp_path) -> Path:
    d = tmp_path / "ds"
    shutil.copytree(resolve_data_root("embedded:demo"), d)
    return d


def _corrupt(path: Path, lineno: int, text: str) -> None:
    lines = path.read_text(encoding="utf-8").splitlines()
    lines[lineno - 1] = text
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _sample(**kw) -> str:
    row = {"id": "x1", "kind": "specific", "character": "沈静", "instruction": "你好吗？", "references": ["收到。完毕。"],
           "split": "train"}
    row.update(kw)
    return json.dumps({k: v for k, v in row.items() if v is not None}, ensure_ascii=False)


CASES = {
    "malformed": ("samples.jsonl", '{"id": "x1", "kind": ', r"samples.jsonl:3: malformed JSON"),
    "missing_field": ("samples.jsonl", _sample(instruction=None), r"samples.jsonl:3: missing required field 'instruction'"),
    "empty_answer": ("samples.jsonl", _sample(references=["  "]), r"samples.jsonl:3: references\[0\] is empty"),
    "unknown_character": ("samples.jsonl", _sample(character="路人甲"), r"samples.jsonl:3: unknown character '路人甲'; known: "),
    "unknown_emotion": ("script.jsonl", json.dumps({"id": "u", "character": "沈静", "dialogue": "d", "turn": 1,
                                                   "speaker": "沈静", "text": "好", "emotion": "grumpy"}),
                        r"script.jsonl:2: unknown emotion label 'grumpy'; use one of anger"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_data_stops_before_training(case, dataset, tmp_path, cache_dir):
    import re

    name, text, expected = CASES[case]
    _corrupt(dataset / name, 3 if name == "samples.jsonl" else 2, text)
    runs = tmp_path / "runs"
    r = run_train([f"data.root={dataset}", *FAST], cache_dir, runs, timeout=120)
    assert r.returncode == 2, r.stderr[-2000:]
    err = [l for l in r.stderr.splitlines() if l.startswith("error: ")]
    assert len(err) == 1 and re.search(expected, err[0]), r.stderr[-2000:]
    assert "Traceback" not in r.stderr
    assert not list(runs.rglob("metrics.json")) and not list(runs.rglob("samples.jsonl"))


def test_missing_dataset_directory(tmp_path, cache_dir):
    r = run_train([f"data.root={tmp_path / 'nope'}"], cache_dir, tmp_path / "runs", timeout=120)
    assert r.returncode == 2 and "not a directory; point data.root at" in r.stderr


@pytest.mark.slow
def test_model_path_that_does_not_exist(tmp_path, cache_dir):
    r = run_train([f"model.name_or_path={tmp_path / 'no-model'}", *FAST], cache_dir, tmp_path / "runs", timeout=300)
    assert r.returncode == 2
    assert "model.name_or_path=" in r.stderr and "no such directory" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.slow
def test_unknown_lora_target(tmp_path, cache_dir):
    r = run_train(["lora.target_modules=[query_key_value]", *FAST], cache_dir, tmp_path / "runs", timeout=300)
    assert r.returncode == 2 and "lora.target_modules: ['query_key_value'] not found" in r.stderr


def test_fsdp1_variants_refused_before_loading_anything(tmp_path, cache_dir):
    r = run_train(["trainer=fsdp_cpu", "trainer.strategy=fsdp_cpu_offload"], cache_dir, tmp_path / "runs", timeout=120)
    assert r.returncode == 2 and "trainer.strategy=fsdp_cpu_offload" in r.stderr and "use trainer.strategy=fsdp" in r.stderr
    assert "Traceback" not in r.stderr


def test_fsdp_with_16_mixed_refused(tmp_path, cache_dir):
    r = run_train(["trainer=fsdp_cpu", "trainer.precision=16-mixed"], cache_dir, tmp_path / "runs", timeout=120)
    assert r.returncode == 2 and "trainer.precision=16-mixed" in r.stderr and "FSDP2" in r.stderr


@pytest.mark.slow
def test_gpu_trainer_on_a_machine_without_gpu_is_one_line(tmp_path, cache_dir):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    r = run_train(["trainer=fsdp"], cache_dir, tmp_path / "runs", timeout=120)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert "trainer.accelerator=gpu: this machine has no GPU" in r.stderr and "trainer=fsdp_cpu" in r.stderr
