"""Shared fixtures: paths, the real data in ../shared/data, and running the real CLIs."""

from __future__ import annotations

import atexit
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

import warm_python

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


def run_fresh(*args, **kwargs) -> subprocess.CompletedProcess:
    """subprocess.run in a fresh interpreter, timeout stretched: for what must not be forked from
    the warm one (the README's commands, exactly as a user types them)."""
    if kwargs.get("timeout") is not None:
        kwargs["timeout"] = kwargs["timeout"] * TIMEOUT_SCALE
    return _run(*args, **kwargs)


_warm = warm_python.Pool()
atexit.register(_warm.close)


def _run_with_scaled_timeout(*args, **kwargs):
    """Every subprocess.run in the tests: timeout stretched, and this project's CLI commands forked
    from the warm interpreter where that is the same as a fresh one (tests/warm_python.py)."""
    if len(args) == 1 and warm_python.enabled() and warm_python.routable(args[0], kwargs):
        env = kwargs.get("env") or dict(os.environ)
        server = _warm.server_for(env)
        if server is not None:
            timeout = kwargs.get("timeout")
            pipe = subprocess.PIPE if kwargs.get("capture_output") else None
            try:
                return warm_python.run(server, [str(a) for a in args[0]], cwd=kwargs.get("cwd"), env=env,
                                       input=kwargs.get("input"),
                                       timeout=None if timeout is None else timeout * TIMEOUT_SCALE,
                                       text=kwargs.get("text") or kwargs.get("universal_newlines"),
                                       encoding=kwargs.get("encoding"), errors=kwargs.get("errors"),
                                       stdin=kwargs.get("stdin"), stdout=kwargs.get("stdout", pipe),
                                       stderr=kwargs.get("stderr", pipe), check=kwargs.get("check", False))
            except warm_python.ServerGone:  # gone or not ready, nothing sent: run it fresh instead
                pass
    return run_fresh(*args, **kwargs)


subprocess.run = _run_with_scaled_timeout


_session_env: dict[str, str] = {}


def pytest_sessionstart(session):
    """An xdist worker starts its warm interpreter at once, so the imports overlap the first tests
    instead of delaying the first CLI command (a lone `pytest -n0` starts it on first use)."""
    _session_env.update(os.environ)
    if os.environ.get("PYTEST_XDIST_WORKER") and warm_python.enabled():
        _warm.start(cli_env(Path(tempfile.gettempdir())))


def _restore_session_env() -> None:
    for k in set(os.environ) - set(_session_env) - {"PYTEST_CURRENT_TEST"}:
        del os.environ[k]
    for k, v in _session_env.items():
        if os.environ.get(k) != v:
            os.environ[k] = v


@pytest.fixture(autouse=True)
def _session_environment():
    """Every test starts and ends with the session's environment. In-process training (Lightning
    sets PL_GLOBAL_SEED) and quiet mode (progress-bar variables) change os.environ; left in place
    they reach the CLIs later tests start, and send those to a fresh interpreter."""
    _restore_session_env()
    yield
    _restore_session_env()


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


def run_train(args: list[str], cache: Path, runs: Path, timeout: int = 600,
              fresh: bool = False) -> subprocess.CompletedProcess:
    """`python train.py ARGS` in a subprocess, as a user types it (forked from the warm interpreter
    unless fresh)."""
    run = run_fresh if fresh else subprocess.run
    return run([sys.executable, str(REPO / "train.py"), *args], cwd=REPO, env=cli_env(cache, runs),
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


# Files whose tests take longest (full suite, 2-core VM, measured 2026-12-03), slowest first. With
# `--dist loadfile --no-loadscope-reorder` (addopts) xdist hands out whole files in collection order,
# so these go first and the small files fill in at the end; xdist's default order (most tests first)
# left the tiny-model rebuild or the FSDP file for last, one worker running while the other idled.
LONGEST_FIRST = ["test_sweeps.py", "test_twins.py", "test_fsdp.py", "test_faults_processes.py",
                 "test_readme_commands.py", "test_train_e2e.py", "test_tiny_shipped.py", "test_faults_config.py",
                 "test_evaluate.py", "test_construct.py", "test_import_roleinstruct_v1.py", "test_gpu_check.py",
                 "test_evaluate_api.py"]


def pytest_collection_modifyitems(session, config, items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: the rest keep their order
