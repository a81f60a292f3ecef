"""Shared fixtures: paths, the real data in ../shared/data, and running the real CLIs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

# Under pytest-xdist (addopts: -n auto) each worker, and every CLI it starts, gets one torch/OpenMP
# thread: N workers on N cores instead of N workers each spreading over all cores. Set before any
# test module imports torch; a value the caller set wins.
if os.environ.get("PYTEST_XDIST_WORKER"):
    for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_var, "1")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


def shared_data(*parts: str) -> Path:
    """A path under ../shared/data; the test skips with a reason where it is absent."""
    p = SHARED_DATA.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"needs the public data at {p} (present on CI and dev machines, absent on a fresh clone)")
    return p


# Subprocess timeouts in these tests are "it did not hang" bounds, sized for a quiet 2-core machine.
# On a loaded one (CI beside other jobs, a laptop doing other work) the same commands take several
# times longer, so every subprocess.run timeout is stretched by ROLECRAFT_TEST_TIMEOUT_SCALE (default 4).
TIMEOUT_SCALE = float(os.environ.get("ROLECRAFT_TEST_TIMEOUT_SCALE", "4"))
_run = subprocess.run


def _run_with_scaled_timeout(*args, **kwargs):
    if kwargs.get("timeout") is not None:
        kwargs["timeout"] = kwargs["timeout"] * TIMEOUT_SCALE
    return _run(*args, **kwargs)


subprocess.run = _run_with_scaled_timeout


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    """One embedded-model cache for the whole session (the tiny model builds once)."""
    return tmp_path_factory.mktemp("rolecraft-cache")


def cli_env(cache: Path, runs: Path | None = None) -> dict:
    env = dict(os.environ)
    env["ROLECRAFT_CACHE"] = str(cache)
    if runs is not None:
        env["ROLECRAFT_RUNS"] = str(runs)
    env["PYTHONPATH"] = str(REPO / "src") + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("WANDB_MODE", "disabled")
    env["TOKENIZERS_PARALLELISM"] = "false"
    return env


def run_train(args: list[str], cache: Path, runs: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    """`python train.py ARGS` in a subprocess, exactly as a user types it."""
    return subprocess.run([sys.executable, str(REPO / "train.py"), *args], cwd=REPO, env=cli_env(cache, runs),
                          capture_output=True, text=True, timeout=timeout)


def run_evaluate(args: list[str], cache: Path, out: Path, env: dict | None = None,
                 timeout: int = 600) -> subprocess.CompletedProcess:
    """`python evaluate.py ARGS hydra.run.dir=OUT` in a subprocess."""
    full = cli_env(cache)
    full.update(env or {})
    return subprocess.run([sys.executable, str(REPO / "evaluate.py"), *args, f"hydra.run.dir={out}"], cwd=REPO,
                          env=full, capture_output=True, text=True, timeout=timeout)


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def read_metrics(run_dir: Path) -> dict:
    return json.loads((run_dir / "metrics.json").read_text())


# Small, fast settings for end-to-end runs of the real CLI on the embedded default.
FAST = ["trainer.max_steps=6", "trainer.val_check_interval=3", "trainer.checkpoint_every_n_steps=3",
        "data.max_eval_samples=4", "eval.generation.max_new_tokens=16", "trainer.enable_progress_bar=false"]
