"""benchmarks/gpu_check.py: its CPU smoke mode end to end, its failure rows and its refusals."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import REPO, cli_env

SCRIPT = REPO / "benchmarks" / "gpu_check.py"


def _check(args: list[str], cache, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], cwd=REPO, env=cli_env(cache), capture_output=True,
                          text=True, timeout=timeout)


@pytest.mark.slow
def test_cpu_smoke_runs_every_path_it_can(tmp_path, cache_dir):
    r = _check(["--cpu-smoke", "--workdir", str(tmp_path / "w"), "--json", str(tmp_path / "rows.json")], cache_dir)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    rows = {row["path"]: row for row in json.loads((tmp_path / "rows.json").read_text())["rows"]}
    for path in ("bf16-lora", "fsdp-1dev", "fsdp-resume", "generation", "export-merge"):
        assert rows[path]["status"] == "PASS", rows[path]
    assert rows["bf16-lora"]["tokens_per_s"] > 0 and rows["generation"]["tokens_per_s"] > 0
    assert "adapter Δ 0.0e+00" in rows["fsdp-resume"]["note"]  # resumed FSDP run = uninterrupted, exactly
    assert rows["generation"]["note"].startswith("6/6 greedy answers identical")
    for path in ("compile-layers", "fsdp-compile"):
        assert rows[path]["status"] == "SKIP" and "--cpu-compile" in rows[path]["note"]
    assert rows["qlora-4bit"]["status"] in ("SKIP", "PASS") and rows["qlora-4bit"]["note"]
    table = r.stdout
    assert "| path | status | tokens/s | peak GPU memory (GiB) | MFU | seconds | note |" in table
    assert table.count("| PASS |") == 5


@pytest.mark.slow
def test_a_failing_path_is_one_row_and_exit_1(tmp_path, cache_dir):
    # fsdp-resume alone has no FSDP run to resume from: its row says so, the table still prints
    r = _check(["--cpu-smoke", "--only", "fsdp-resume", "qlora-4bit", "--workdir", str(tmp_path / "w")], cache_dir,
               timeout=300)
    assert r.returncode == 1, r.stderr[-3000:]
    lines = [l for l in r.stdout.splitlines() if l.startswith("| fsdp-resume |")]
    assert len(lines) == 1 and "| FAIL |" in lines[0] and "RuntimeError: needs the fsdp-1dev run" in lines[0]
    assert any(l.startswith("| qlora-4bit | SKIP |") for l in r.stdout.splitlines())


@pytest.mark.slow
def test_gpu_mode_without_cuda_says_so(tmp_path, cache_dir):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present: the GPU mode would run")
    r = _check(["--workdir", str(tmp_path / "w")], cache_dir, timeout=120)
    assert r.returncode == 2 and "no CUDA device here; run with --cpu-smoke" in r.stderr


def test_steady_tokens_per_second_skips_the_first_half_of_the_steps():
    from rolecraft.modeling.lit_module import RolePlayModule

    m = RolePlayModule(torch_linear(), None, 10, label_logits_only=False)
    m.step_marks = [(0.0, 100), (50.0, 200), (51.0, 300), (52.0, 400)]  # step 1 compiled for 50 s
    assert m.steady_tokens_per_second() == pytest.approx(200 / 2.0)  # steps 3-4 over their 2 s
    m.step_marks = m.step_marks[:3]
    assert m.steady_tokens_per_second() is None  # too few steps to say


def torch_linear():
    import torch

    return torch.nn.Linear(2, 2)
