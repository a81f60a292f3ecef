"""Faults around processes and files: killed sweeps, stalled hubs, bad or unwritable checkpoints,
a dataset without a test split, fp16 gradient clipping.

Every test asserts a one-line error (``error: …``), a non-zero exit where work was lost, no
"Traceback" and nothing half-written. Servers listen on 127.0.0.1 only; random points are seeded.
"""

from __future__ import annotations

import errno
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import REPO, cli_env

pytestmark = pytest.mark.fault

QUICK = ["trainer.max_steps=4", "trainer.checkpoint_every_n_steps=2", "data.max_eval_samples=2",
         "eval.generation.max_new_tokens=4", "trainer.enable_progress_bar=false"]


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    """The embedded-model cache: ROLECRAFT_CACHE when set (a developer's warm cache; the tiny model
    builds in a minute or more on a busy machine), else a fresh one as in conftest."""
    given = os.environ.get("ROLECRAFT_CACHE")
    return Path(given) if given else tmp_path_factory.mktemp("rolecraft-cache")


def error_lines(stderr: str) -> list[str]:
    return [l for l in stderr.splitlines() if l.startswith("error: ")]


def assert_one_line_error(r: subprocess.CompletedProcess, *needles: str) -> str:
    assert r.returncode == 2, (r.returncode, r.stderr[-3000:])
    errs = error_lines(r.stderr)
    assert len(errs) == 1, r.stderr[-3000:]
    assert "Traceback" not in r.stderr and "Traceback" not in r.stdout, r.stderr[-3000:]
    for n in needles:
        assert n in errs[0], errs[0]
    return errs[0]


class StallServer:
    """Accepts connections on 127.0.0.1 and never answers; counts what it accepted."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.accepted: list[socket.socket] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while not self.stop.is_set():
            try:
                c, _ = self.sock.accept()
                self.accepted.append(c)
            except OSError:
                continue

    def close(self):
        self.stop.set()
        self.thread.join(2)
        for c in self.accepted:
            c.close()
        self.sock.close()


@pytest.fixture
def stall_server():
    s = StallServer()
    yield s
    s.close()


def hub_env(tmp_path: Path, port: int, seconds: float) -> dict:
    return {"HF_ENDPOINT": f"http://127.0.0.1:{port}", "HF_HOME": str(tmp_path / "hf"),
            "ROLECRAFT_HUB_TIMEOUT": str(seconds), "HF_HUB_DISABLE_TELEMETRY": "1"}


def train(args, cache_dir, runs, env=None, timeout=600) -> subprocess.CompletedProcess:
    full = cli_env(cache_dir, runs)
    full.update(env or {})
    return subprocess.run([sys.executable, str(REPO / "train.py"), *args], cwd=REPO, env=full, capture_output=True,
                          text=True, timeout=timeout)


# ---- hub that accepts and never answers --------------------------------------------------------


@pytest.mark.slow
def test_hub_stall_ends_with_one_line_within_the_bound(tmp_path, cache_dir, stall_server):
    t0 = time.monotonic()
    r = train(["model=glm4_9b", f"hydra.run.dir={tmp_path / 'run'}", *QUICK], cache_dir, tmp_path,
              env=hub_env(tmp_path, stall_server.port, 2), timeout=300)
    took = time.monotonic() - t0
    err = assert_one_line_error(r, "model.name_or_path='THUDM/glm-4-9b-chat-hf'", "did not answer within 2s",
                                "ROLECRAFT_HUB_TIMEOUT")
    assert f"127.0.0.1:{stall_server.port}" in err
    assert stall_server.accepted, "the load never reached the stalled hub"
    assert took < 120, took  # 2 s bound + imports on a shared CPU; a hang would never return
    assert "loading from the hub" in r.stdout + r.stderr  # said what it was doing first
    assert not (tmp_path / "run" / "checkpoints").exists()


@pytest.mark.slow
def test_hub_timeout_variable_is_checked(tmp_path, cache_dir, stall_server):
    r = train(["model=glm4_9b", f"hydra.run.dir={tmp_path / 'run'}", *QUICK], cache_dir, tmp_path,
              env=hub_env(tmp_path, stall_server.port, "soon"), timeout=300)
    assert_one_line_error(r, "ROLECRAFT_HUB_TIMEOUT='soon'", "positive number of seconds")


# ---- checkpoints -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained(tmp_path_factory, cache_dir) -> Path:
    """One short real run (checkpoints at steps 2 and 4)."""
    run = tmp_path_factory.mktemp("trained") / "run"
    r = train([f"hydra.run.dir={run}", *QUICK], cache_dir, run.parent)
    assert r.returncode == 0, r.stderr[-3000:]
    return run


def _bad_checkpoints(trained: Path, tmp: Path) -> dict[str, tuple[Path, str]]:
    rng = random.Random(1234)
    noise = tmp / "noise.ckpt"
    noise.write_bytes(rng.randbytes(40_000))
    good = trained / "checkpoints" / "last.ckpt"
    data = good.read_bytes()
    cut = tmp / "cut.ckpt"
    cut.write_bytes(data[: rng.randrange(len(data) // 4, len(data) - 64)])
    return {"random_bytes": (noise, "not a torch checkpoint"), "truncated": (cut, "not a torch checkpoint"),
            "missing": (tmp / "nope.ckpt", "no such file")}


@pytest.mark.parametrize("case", ["random_bytes", "truncated", "missing"])
@pytest.mark.slow
def test_bad_ckpt_path_is_named_before_the_model_loads(case, trained, tmp_path, cache_dir, stall_server):
    path, what = _bad_checkpoints(trained, tmp_path)[case]
    # the model is a hub id served by a hub that never answers: had the model load started before
    # the checkpoint was checked, the hub would have seen a connection and the run said "loading"
    r = train(["model=glm4_9b", f"ckpt_path={path}", f"hydra.run.dir={tmp_path / 'run'}", *QUICK], cache_dir,
              tmp_path, env=hub_env(tmp_path, stall_server.port, 30), timeout=300)
    assert_one_line_error(r, f"ckpt_path='{path}'", what)
    assert not stall_server.accepted and "loading from the hub" not in r.stdout + r.stderr
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_checkpoint_write_failure_removes_its_temp_file_and_keeps_the_previous(tmp_path):
    import torch

    from rolecraft.training.checkpoint_io import AtomicCheckpointIO
    from rolecraft.training.checkpoints import CheckpointWriteError, check_checkpoint

    class DiskFull:
        def __reduce__(self):
            raise OSError(errno.ENOSPC, "No space left on device")

    io = AtomicCheckpointIO()
    target = tmp_path / "checkpoints" / "last.ckpt"
    good = {"state_dict": {"w": torch.ones(3)}, "optimizer_states": [], "loops": {}, "global_step": 2}
    io.save_checkpoint(good, target)
    before = target.read_bytes()
    with pytest.raises(CheckpointWriteError) as e:
        io.save_checkpoint({**good, "global_step": 4, "boom": DiskFull()}, target)
    msg = str(e.value)
    assert "\n" not in msg and "the disk is full" in msg and str(target.parent) in msg
    assert target.read_bytes() == before  # the previous checkpoint is untouched
    assert sorted(p.name for p in target.parent.iterdir()) == ["last.ckpt"]  # no temp file left
    assert check_checkpoint(str(target)) is None


def _mount_tmpfs(where: Path, size_kb: int) -> bool:
    if not sys.platform.startswith("linux") or os.geteuid() != 0 or not shutil.which("mount"):
        return False
    where.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(where)], capture_output=True)
    return r.returncode == 0


@pytest.mark.slow
def test_full_disk_fails_the_run_with_one_line_and_no_truncated_checkpoint(trained, tmp_path, cache_dir):
    ckpt_kb = (trained / "checkpoints" / "last.ckpt").stat().st_size // 1024 + 1
    disk = tmp_path / "small"
    # room for the run's small files and about three checkpoints: the first saves fit, a later one cannot
    if not _mount_tmpfs(disk, 3 * ckpt_kb + 64):
        pytest.skip("needs root to mount a small tmpfs (a full disk cannot be simulated otherwise here)")
    try:
        run = disk / "run"
        r = train([f"hydra.run.dir={run}", "trainer.max_steps=12", "trainer.checkpoint_every_n_steps=1",
                   "data.max_eval_samples=2", "eval.generation.max_new_tokens=4", "trainer.enable_progress_bar=false"],
                  cache_dir, tmp_path)
        err = assert_one_line_error(r, "could not be written: the disk is full", str(run / "checkpoints"))
        assert "earlier checkpoints there are intact" in err
        names = sorted(p.name for p in (run / "checkpoints").iterdir())
        assert not [n for n in names if n.endswith(".tmp")], names  # nothing half-written left
        kept = [n for n in names if n.endswith(".ckpt")]
        assert kept, names  # the checkpoints saved before the disk filled
        from rolecraft.training.checkpoints import check_checkpoint

        for n in kept:
            assert check_checkpoint(str(run / "checkpoints" / n)) is None, n  # each one whole
        assert not (run / "metrics.json").exists()
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True)


# ---- a dataset without a test split ------------------------------------------------------------


def test_no_test_split_is_refused_before_training(tmp_path, cache_dir):
    from rolecraft.data import resolve_data_root

    ds = tmp_path / "ds"
    shutil.copytree(resolve_data_root("embedded:demo"), ds)
    rows = [json.loads(l) for l in (ds / "samples.jsonl").read_text(encoding="utf-8").splitlines() if l.strip()]
    assert any(r["split"] == "test" for r in rows)
    rows = [r for r in rows if r["split"] != "test"]
    (ds / "samples.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    run = tmp_path / "run"
    r = train([f"data.root={ds}", f"hydra.run.dir={run}", *QUICK], cache_dir, tmp_path, timeout=300)
    assert_one_line_error(r, "eval.split='test'", "has no samples in that split", "eval.enabled=false")
    assert not (run / "checkpoints").exists() and not (run / "metrics.json").exists()


# ---- fp16 gradient clipping --------------------------------------------------------------------


def _tiny_lm():
    """A causal LM the module can drive: embedding + linear head, HF-style output."""
    import torch
    from torch import nn

    class Out:
        def __init__(self, logits):
            self.logits = logits

    class LM(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(32, 16)
            self.head = nn.Linear(16, 32)

        def forward(self, input_ids, attention_mask=None, position_ids=None, use_cache=False):
            return Out(self.head(self.emb(input_ids)))

    torch.manual_seed(0)
    return LM()


def test_fp16_clipping_runs_on_unscaled_gradients():
    """With a GradScaler (scale 1024) the clip must bound the true gradient norm: clipping the
    scaled gradients and unscaling afterwards would leave a norm 1,024 times too small."""
    import lightning as L
    import torch
    from lightning.pytorch.plugins.precision import MixedPrecision
    from omegaconf import OmegaConf

    from rolecraft.modeling.lit_module import RolePlayModule

    max_norm = 1e-3
    optim = OmegaConf.create({"lr": 0.0, "betas": [0.9, 0.999], "eps": 1e-8, "weight_decay": 0.0, "warmup_steps": 0,
                              "scheduler": "constant", "gradient_clip_val": max_norm})
    module = RolePlayModule(_tiny_lm(), optim, max_steps=1, label_logits_only=False)
    seen = []

    def probe(opt, args, kwargs):  # the gradients the update is about to use
        seen.append(float(torch.sqrt(sum(p.grad.float().pow(2).sum() for g in opt.param_groups
                                         for p in g["params"] if p.grad is not None))))

    ids = torch.randint(0, 32, (2, 8), generator=torch.Generator().manual_seed(0))
    batch = {"micro": [{"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids.clone()}],
             "tokens": int(ids.numel())}
    loader = torch.utils.data.DataLoader([batch], batch_size=None)
    scaler = torch.amp.GradScaler("cpu", init_scale=1024.0)
    trainer = L.Trainer(accelerator="cpu", devices=1, max_steps=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False,
                        plugins=[MixedPrecision("16-mixed", "cpu", scaler=scaler)])
    from torch.optim.optimizer import register_optimizer_step_pre_hook

    handle = register_optimizer_step_pre_hook(probe)
    try:
        trainer.fit(module, train_dataloaders=loader)
    finally:
        handle.remove()
    assert len(seen) == 1, seen  # the step ran (no inf/nan skip)
    assert seen[0] == pytest.approx(max_norm, rel=1e-2), seen  # not max_norm / 1024


# ---- killing `rolecraft sweep run-local` -------------------------------------------------------


def _children(pid: int) -> list[int]:
    kids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:  # fields: state, ppid, ...
            kids.append(int(stat.parent.name))
    return kids


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _wait_for(cond, seconds: float, step: float = 0.1) -> bool:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(step)
    return cond()


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="reads child pids from /proc (Linux)")
@pytest.mark.slow
def test_killing_run_local_kills_its_child_and_the_rerun_writes_each_point_once(tmp_path, cache_dir):
    rng = random.Random(20261202)
    sweep = tmp_path / "kill.yaml"
    sweep.write_text("\n".join([
        "name: kill", "program: train.py", "method: grid", "command:", "- ${env}", "- ${interpreter}", "- ${program}", "- ${args_no_hyphens}",
        "parameters:", "  seed: {values: [1]}", "  trainer.max_steps: {value: 60}",
        "  trainer.checkpoint_every_n_steps: {value: 2}", "  data.max_eval_samples: {value: 2}",
        "  eval.generation.max_new_tokens: {value: 4}", "  trainer.enable_progress_bar: {value: false}", ""]),
        encoding="utf-8")
    runs = tmp_path / "runs"
    env = cli_env(cache_dir)
    cmd = [sys.executable, "-m", "rolecraft.cli", "sweep", "run-local", str(sweep), "--runs-dir", str(runs)]
    for sig in (signal.SIGKILL, signal.SIGTERM, signal.SIGINT):
        log = open(tmp_path / f"run-{sig.name}.log", "w")
        kids: list[int] = []
        started = time.time()
        p = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
                             preexec_fn=_default_sigint)  # even when pytest runs with SIGINT ignored
        try:
            # the child is training once a step checkpoint of its own is on disk (not the killed run's)
            assert _wait_for(lambda: _new_checkpoints(runs, started) or p.poll() is not None,
                             400, 0.2), "the child never started training"
            assert p.poll() is None, (tmp_path / f"run-{sig.name}.log").read_text()[-3000:]
            kids = _children(p.pid)
            assert kids, "run-local has no child process: " + subprocess.run(["ps", "-eo", "pid,ppid,stat,cmd"], capture_output=True, text=True).stdout[-3000:]
            time.sleep(rng.uniform(0.0, 1.0))  # a seeded random point in the training
            os.kill(p.pid, sig)
            p.wait(timeout=60)
            assert _wait_for(lambda: not any(_alive(k) for k in kids), 10), "the child outlived run-local"
            assert p.returncode != 0
        finally:
            if p.poll() is None:
                p.kill()
            for k in kids:  # never leave an orphan behind a failed test
                if _alive(k):
                    os.kill(k, signal.SIGKILL)
            log.close()
        out = (tmp_path / f"run-{sig.name}.log").read_text()
        assert "Traceback" not in out, out[-3000:]
        if sig != signal.SIGKILL:  # the runner said what happened and how to go on
            assert ("stopped by SIGTERM" if sig == signal.SIGTERM else "interrupted:") in out, out[-3000:]
            assert "rerun the same command" in out
        assert not list(runs.glob("kill/*/metrics.json"))  # killed mid-training: not finished
    r = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "1 run(s) finished, 0 already done, 0 failed" in r.stdout
    (point,) = [d for d in (runs / "kill").iterdir() if d.is_dir()]
    ckpts = sorted(p.name for p in (point / "checkpoints").iterdir())
    assert [n for n in ckpts if n.startswith("last")] == ["last.ckpt"], ckpts  # no last-v1.ckpt
    steps = [row["step"] for row in _csv_rows(point / "logs" / "metrics.csv") if row.get("train/loss")]
    assert steps and len(steps) == len(set(steps)), steps  # each training step logged once
    assert json.loads((point / "metrics.json").read_text())["train/steps"] == 60


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # Python then installs its KeyboardInterrupt handler


def _new_checkpoints(runs: Path, since: float) -> list[Path]:
    found = []
    for p in runs.glob("kill/*/checkpoints/step-*.ckpt"):
        try:
            if p.stat().st_mtime >= since:
                found.append(p)
        except OSError:  # being cleared by the rerun
            pass
    return found


def _csv_rows(path: Path) -> list[dict]:
    import csv

    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))
