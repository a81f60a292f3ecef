"""`rolecraft sweep run-local`: a sweep's grid as plain Hydra runs here, one process per point.

Each point gets a fixed run directory ``RUNS/<sweep>/<NNN>_<overrides>``; a point whose directory
holds a readable ``metrics.json`` (written atomically as a run's last act) is done and skipped, so
rerunning after a crash or Ctrl-C finishes only what is missing. A directory without it is a run
that did not finish: it is cleared and run again.

Each point's process dies with the runner: it runs in its own session (process group), the
runner kills that group when it ends (normally, on an error, on SIGTERM or Ctrl-C) and, on Linux,
the kernel kills it when the runner is killed outright (``PR_SET_PDEATHSIG``). A training run
holds a lock in its run directory while it writes there (``rolecraft.training.run``); a directory
whose lock is held is never cleared: the runner waits a little for it, then stops with a message.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from rolecraft.errors import ConfigError
from rolecraft.paths import quote_non_ascii_overrides
from rolecraft.sweeps.experiments import PROGRAMS
from rolecraft.sweeps.sweepfile import check_composes, expand, load_sweep
from rolecraft.training.run import RUN_LOCK  # held by a run while it writes its directory

LOCK_WAIT_SECONDS = 30.0  # how long a rerun waits for a run that is still writing its directory


def slug(overrides: list[str], swept: set[str], limit: int = 80) -> str:
    """The swept values as a directory name: ``emotions-on_seed-1`` (no '=' or ',', which Hydra's
    override grammar would trip on in ``hydra.run.dir``)."""
    parts = []
    for o in overrides:
        key, _, value = o.partition("=")
        if key in swept:
            parts.append(f"{key.split('.')[-1]}-{value}")
    text = re.sub(r"[^\w.+-]+", "-", "_".join(parts))
    return text[:limit] or "point"


def hydra_quote(value: str) -> str:
    """A path as a quoted Hydra string: '=', ',', brackets and spaces in it are then just characters."""
    if "'" in value or "\\" in value:
        raise ConfigError(f"--runs-dir: {value!r} contains a quote or backslash, which Hydra overrides cannot carry; "
                          f"choose another directory")
    return f"'{value}'"


def is_complete(run_dir: Path) -> bool:
    try:
        return isinstance(json.loads((run_dir / "metrics.json").read_text(encoding="utf-8")), dict)
    except (OSError, ValueError):
        return False


@dataclass
class LocalResult:
    done: list[Path] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)
    failed: list[tuple[Path, int]] = field(default_factory=list)


def run_local(sweep_path: str | Path, runs_dir: str | Path, extra: list[str] | None = None,
              dry_run: bool = False, log=print) -> LocalResult:
    sweep = load_sweep(sweep_path)
    extra = list(extra or [])
    check_composes(sweep, sweep_path, extra)  # every point valid before the first one starts
    points = expand(sweep)
    root = Path(runs_dir).expanduser() / str(sweep.get("name") or Path(sweep_path).stem)
    module = PROGRAMS[sweep["program"]]
    swept = {k for k, spec in sweep["parameters"].items() if "values" in spec}
    res = LocalResult()
    root.mkdir(parents=True, exist_ok=True)
    lock = _lock(root)  # held until this process ends: two runners on one directory would clear each other's runs
    for i, point in enumerate(points):
        args = [*point, *extra]
        # the swept values to read, plus a hash of everything the run was given: changing a fixed
        # value or --set is a different run, never "done already"
        digest = hashlib.sha1("\x1f".join(args).encode("utf-8")).hexdigest()[:6]
        run_dir = root / f"{i:03d}_{slug(point, swept)}_{digest}"
        if is_complete(run_dir):
            res.skipped.append(run_dir)
            log(f"[{i + 1}/{len(points)}] done already: {run_dir}")
            continue
        log(f"[{i + 1}/{len(points)}] {sweep['program']} {' '.join(args)}")
        if dry_run:
            continue
        if run_dir.exists():
            clear_unfinished(run_dir, log=log)  # an unfinished run: start it again from scratch
        t0 = time.perf_counter()
        rc = run_child([sys.executable, "-m", module, *quote_non_ascii_overrides(args),
                        f"hydra.run.dir={hydra_quote(str(run_dir))}"])
        if rc == 0 and is_complete(run_dir):
            res.done.append(run_dir)
            log(f"[{i + 1}/{len(points)}] finished in {time.perf_counter() - t0:.0f}s: {run_dir}")
        else:
            res.failed.append((run_dir, rc))
            log(f"[{i + 1}/{len(points)}] FAILED (exit {rc}): {run_dir}; rerun the same command to retry")
    lock.release(force=True)
    return res


def clear_unfinished(run_dir: Path, wait: float | None = None, log=print) -> None:
    """Remove an unfinished run directory, unless a process still holds its run lock: then wait up
    to ``wait`` seconds for it to end, and refuse with a one-line error if it does not."""
    from filelock import FileLock, Timeout

    wait = LOCK_WAIT_SECONDS if wait is None else wait
    lock_path = run_dir / RUN_LOCK
    if not lock_path.exists():
        shutil.rmtree(run_dir)
        return
    lock = FileLock(str(lock_path))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        log(f"waiting up to {wait:.0f}s for the run still writing {run_dir}")
        try:
            lock.acquire(timeout=wait)
        except Timeout:
            raise ConfigError(f"{run_dir}: a run is still writing this directory (it holds {RUN_LOCK}); stop it or "
                              "wait for it to end, then rerun the same command") from None
    try:
        shutil.rmtree(run_dir)
    finally:
        try:
            lock.release(force=True)
        except OSError:
            pass


class _Terminated(Exception):
    """SIGTERM, turned into an exception so the child's process group is killed on the way out."""


def _pdeathsig_preexec():
    """A preexec_fn that makes the kernel SIGKILL the child when this process dies (Linux only;
    elsewhere None). prctl is looked up here, before fork; the child only calls it."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def preexec() -> None:
        prctl(1, int(signal.SIGKILL), 0, 0, 0)  # PR_SET_PDEATHSIG
        if os.getppid() != parent:  # the runner died before prctl took effect
            os._exit(1)

    return preexec


def _kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL the child's whole process group (the child, its data loaders, its DDP ranks)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        pass


def run_child(cmd: list[str]) -> int:
    """Run one point; its process group is killed whenever this returns or raises (SIGTERM and
    SIGINT included), so no training outlives the runner."""
    handlers = {}
    if hasattr(signal, "SIGTERM") and _main_thread():
        def on_term(signum, frame):
            raise _Terminated()

        handlers[signal.SIGTERM] = signal.signal(signal.SIGTERM, on_term)
    kwargs = {"start_new_session": True} if os.name == "posix" else {}
    preexec = _pdeathsig_preexec()
    if preexec is not None:
        kwargs["preexec_fn"] = preexec
    try:
        proc = subprocess.Popen(cmd, **kwargs)
        try:
            return proc.wait()
        finally:
            if os.name == "posix":
                _kill_group(proc)
            elif proc.poll() is None:
                proc.kill()
                proc.wait()
    except _Terminated:
        print("stopped by SIGTERM: the run in progress was killed; rerun the same command to finish", file=sys.stderr)
        raise SystemExit(128 + int(signal.SIGTERM)) from None
    except KeyboardInterrupt:
        print("interrupted: the run in progress was killed; rerun the same command to finish", file=sys.stderr)
        raise SystemExit(128 + int(signal.SIGINT)) from None
    finally:
        for sig, old in handlers.items():
            signal.signal(sig, old)


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def _lock(root: Path):
    """The sweep directory's lock (filelock: the same on Linux, macOS and Windows)."""
    from filelock import FileLock, Timeout

    lock = FileLock(str(root / ".run-local.lock"))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise ConfigError(f"{root}: another `rolecraft sweep run-local` is running on this directory; wait for it "
                          f"or use another --runs-dir") from None
    return lock


def run_local_command(sweep_path: str, runs_dir: str, extra: list[str] | None = None, dry_run: bool = False) -> int:
    """``rolecraft sweep run-local``: exit 1 when a run failed."""
    res = run_local(sweep_path, runs_dir, extra=extra or [], dry_run=dry_run)
    print(f"{len(res.done)} run(s) finished, {len(res.skipped)} already done, {len(res.failed)} failed")
    return 1 if res.failed else 0
