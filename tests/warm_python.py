"""`python SCRIPT ARGS` for the tests, forked from an interpreter that has already imported the
training stack (torch, lightning, transformers, peft, datasets).

Why: on the 2-core CI machine a fresh interpreter spends ~11 s (one thread) importing that stack
before the first line of train.py runs, and the suite starts well over a hundred such processes, so
imports were most of the full suite's time. Here a warm server (a few per pytest worker, one per
environment, see Pool) pays the imports once; each command is a child forked from it that runs the
script as `__main__` with the caller's argv, cwd, environment, stdin/stdout/stderr, exit status and
timeout, as `subprocess.run` would.
What differs from a fresh interpreter is what `sys.modules` holds before the script starts, so:

- only the plain forms `[python, FILE.py, ...]` and `[python, -m, rolecraft.cli, ...]` are routed
  here; interpreter flags (`-X importtime`, `-c`) keep a fresh process (the import-cost tests use them);
- a command whose environment differs from the server's in anything but `LAZY_ENV` / `LAZY_PREFIXES`
  (keys read at run time, never at import) runs in a fresh process: `HF_HOME`, `OMP_NUM_THREADS`, `TQDM_*` … are
  read when the stack is imported;
- the child reseeds torch's and numpy's global generators from the OS, as a fresh process would
  (Python's `random` does that itself after a fork);
- `ROLECRAFT_TEST_WARM=0` turns it off: every command gets a fresh interpreter;
- the README's commands (`tests/test_readme_commands.py`) always run in fresh interpreters.

Linux and macOS only (fork); elsewhere everything runs in fresh processes.
"""

from __future__ import annotations

import json
import locale
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

LAZY_ENV = ("ROLECRAFT_CACHE", "ROLECRAFT_RUNS", "PYTEST_CURRENT_TEST")
LAZY_PREFIXES = ("ROLECRAFT_TEST_",)  # the tests' own variables (API keys for the loopback server ...)
PRELOAD = ("torch", "lightning.pytorch", "transformers", "transformers.modeling_utils", "peft", "datasets")
SCRIPTS_OK = ("train.py", "evaluate.py", "chat.py", "construct.py")
MODULES_OK = ("rolecraft.cli",)
MAX_MSG = 1 << 20


# ---- the server (a separate process: `python warm_python.py SOCKET PARENT_PID`) --------------------------------

def serve(sock_path: str, parent: int) -> None:
    """Import the stack, then fork a child per request until ``parent`` (the pytest worker) is gone.

    The parent's pid comes from the command line: read after the imports, ``os.getppid()`` would
    already be init's if the worker died meanwhile, and the server would never leave."""
    import importlib

    for name in PRELOAD:
        importlib.import_module(name)
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    tmp = sock_path + ".binding"
    srv.bind(tmp)
    srv.listen(64)
    os.rename(tmp, sock_path)  # the name appears only once the server accepts
    srv.settimeout(1.0)
    while True:
        _reap()
        if os.getppid() != parent:  # the pytest worker is gone (killed: its Pool.close never ran)
            import shutil

            shutil.rmtree(os.path.dirname(sock_path), ignore_errors=True)  # our own temp dir, no litter
            os._exit(0)
        try:
            conn, _ = srv.accept()
        except socket.timeout:
            continue
        msg, fds, _, _ = socket.recv_fds(conn, MAX_MSG, 3)
        if not msg:
            conn.close()
            continue
        if os.fork() == 0:
            srv.close()
            _monitor(conn, json.loads(msg), fds)  # never returns
        conn.close()
        for fd in fds:
            os.close(fd)


def _reap() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _monitor(conn: socket.socket, req: dict, fds: list[int]) -> None:
    """Forks the script's process, tells the client its pid, waits, reports its exit status."""
    pid = os.fork()
    if pid == 0:
        conn.close()
        _run_script(req, fds)  # ends in os._exit
    for fd in fds:
        os.close(fd)
    conn.send(json.dumps({"pid": pid}).encode())
    _, status = os.waitpid(pid, 0)
    try:
        conn.send(json.dumps({"returncode": os.waitstatus_to_exitcode(status)}).encode())
    except OSError:
        pass
    os._exit(0)


def _run_script(req: dict, fds: list[int]) -> None:
    import runpy

    for target, fd in zip((0, 1, 2), fds):
        os.dup2(fd, target)
        os.close(fd)
    os.chdir(req["cwd"])
    os.environ.clear()
    os.environ.update(req["env"])
    import numpy
    import torch

    torch.seed()
    numpy.random.seed()
    argv = req["argv"]
    code = 0
    try:
        if argv[1] == "-m":
            sys.path[0] = os.getcwd()
            sys.argv = [argv[2], *argv[3:]]
            runpy.run_module(argv[2], run_name="__main__", alter_sys=True)
        else:
            script = os.path.abspath(argv[1])
            sys.path[0] = os.path.dirname(script)
            sys.argv = [argv[1], *argv[2:]]
            runpy.run_path(script, run_name="__main__")
    except SystemExit as e:
        code = _exit_code(e.code)
    except BaseException:
        sys.excepthook(*sys.exc_info())
        code = 1
    _exit(code)


def _exit_code(value) -> int:
    """SystemExit's argument as the interpreter turns it into an exit status."""
    if value is None:
        return 0
    if isinstance(value, int):
        return value & 0xFF
    print(value, file=sys.stderr)
    return 1


def _exit(code: int) -> None:
    """What a normal exit does that anyone can see (non-daemon threads joined, atexit handlers run,
    the std streams flushed), then out, without tearing down every module of the training stack:
    that teardown took ~3 s per command and nobody can observe it."""
    import atexit
    import threading

    try:
        threading._shutdown()
    except Exception:
        pass
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass
    os._exit(code)


# ---- the client (inside a pytest worker) ---------------------------------------------------------

def enabled() -> bool:
    return os.environ.get("ROLECRAFT_TEST_WARM", "1") != "0" and hasattr(os, "fork") and hasattr(socket, "send_fds")


class ServerGone(RuntimeError):
    """The warm interpreter is not there (it exited, its socket refuses, or it is still importing
    after 10 minutes); nothing was sent, so the caller can run the command fresh."""


def _key(env: dict) -> dict:
    return {k: v for k, v in env.items() if k not in LAZY_ENV and not k.startswith(LAZY_PREFIXES)}


class WarmServer:
    """One warm interpreter, started with `env`; serves commands whose environment matches it."""

    def __init__(self, env: dict, tmp: Path):
        self.env = dict(env)
        self.sock = str(tmp / "warm.sock")
        self.log = open(tmp / "warm.log", "wb")
        self.proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), self.sock, str(os.getpid())],
                                     env=self.env,
                                     stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT,
                                     cwd=str(tmp))

    def accepts(self, env: dict) -> bool:
        return _key(env) == _key(self.env)

    def _connect(self, deadline: float) -> socket.socket:
        while not os.path.exists(self.sock):
            if not self.alive():
                raise ServerGone(f"the warm interpreter exited with {self.proc.returncode}; see {self.log.name}")
            if time.monotonic() > deadline:  # a machine too loaded to import the stack: go fresh
                raise ServerGone(f"the warm interpreter is still not ready; see {self.log.name}")
            time.sleep(0.05)
        s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            s.connect(self.sock)
        except OSError as e:  # refused or vanished: the server died after binding
            s.close()
            raise ServerGone(f"the warm interpreter does not answer ({e}); see {self.log.name}") from e
        return s

    def alive(self) -> bool:
        return self.proc.poll() is None

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


class Pool:
    """A pytest worker's warm interpreters, one per environment its commands use.

    Tests start CLIs with a few environments (cli_env's; os.environ plus a variable or two); each
    environment seen a second time gets its own server (the first command ran fresh meanwhile),
    up to MAX_SERVERS; a one-off environment (a test's own HF_HOME) never costs a server. A server
    that died is dropped and not restarted: its environment's commands run fresh from then on."""

    MAX_SERVERS = 3

    def __init__(self):
        self.servers: dict[frozenset, WarmServer] = {}
        self.seen: dict[frozenset, int] = {}
        self.gone: set[frozenset] = set()
        self.dirs: list[Path] = []

    def start(self, env: dict) -> WarmServer:
        key = frozenset(_key(env).items())
        if key not in self.servers:
            tmp = Path(tempfile.mkdtemp(prefix="rolecraft-warm-"))  # short: a socket path is <= 107 bytes
            self.dirs.append(tmp)
            self.servers[key] = WarmServer(env, tmp)
        return self.servers[key]

    def server_for(self, env: dict) -> WarmServer | None:
        key = frozenset(_key(env).items())
        if key in self.servers:
            if self.servers[key].alive():
                return self.servers[key]
            self.gone.add(key)
            self.servers.pop(key).close()
        if key in self.gone:
            return None
        self.seen[key] = self.seen.get(key, 0) + 1
        log = os.environ.get("ROLECRAFT_TEST_WARM_LOG")
        if log:  # which variables sent a command to a fresh interpreter, for tuning LAZY_ENV
            base = _key(next(iter(self.servers.values())).env) if self.servers else {}
            mine = _key(env)
            differs = sorted(k for k in set(base) | set(mine) if base.get(k) != mine.get(k))
            with open(log, "a", encoding="utf-8") as f:
                f.write(json.dumps({"test": env.get("PYTEST_CURRENT_TEST", ""), "differs": differs}) + "\n")
        if self.seen[key] >= 2 and len(self.servers) < self.MAX_SERVERS:
            self.start(env)  # warms up while this command runs fresh
        return None

    def close(self) -> None:
        import shutil

        for server in self.servers.values():
            server.close()
        for d in self.dirs:
            shutil.rmtree(d, ignore_errors=True)


def run(server: WarmServer, args: list[str], *, cwd, env, input, timeout, text, encoding, errors,
        stdin, stdout, stderr, check) -> subprocess.CompletedProcess:
    """subprocess.run's contract for the forms `routable` accepts."""
    start = time.monotonic()
    files = []

    def _tmp():
        f = tempfile.TemporaryFile()
        files.append(f)
        return f

    try:
        if input is not None:
            f_in = _tmp()
            f_in.write(input.encode(encoding or locale.getpreferredencoding(False), errors or "strict")
                       if isinstance(input, str) else input)
            f_in.seek(0)
            in_fd = f_in.fileno()
        elif stdin == subprocess.DEVNULL:
            f_in = open(os.devnull, "rb")
            files.append(f_in)
            in_fd = f_in.fileno()
        else:
            in_fd = 0
        out_f = _tmp() if stdout == subprocess.PIPE else None
        err_f = _tmp() if stderr == subprocess.PIPE else None
        out_fd = out_f.fileno() if out_f else 1
        err_fd = out_fd if stderr == subprocess.STDOUT else (err_f.fileno() if err_f else 2)
        conn = server._connect(start + 600)
        try:
            req = {"argv": [str(a) for a in args], "cwd": str(cwd or os.getcwd()), "env": env}
            socket.send_fds(conn, [json.dumps(req).encode()], [in_fd, out_fd, err_fd])
            pid = json.loads(conn.recv(MAX_MSG))["pid"]
            timed_out = False
            # the command's clock starts once it runs: waiting for a server still importing the stack
            # (minutes on a loaded machine) must not eat into a test's timeout
            conn.settimeout(None if timeout is None else timeout)
            try:
                reply = conn.recv(MAX_MSG)
            except socket.timeout:
                timed_out = True
                try:
                    os.kill(pid, 9)
                except ProcessLookupError:
                    pass
                conn.settimeout(None)
                reply = conn.recv(MAX_MSG)
            code = json.loads(reply)["returncode"]
        finally:
            conn.close()

        def _read(f, decode: bool):
            if f is None:
                return None
            f.seek(0)
            data = f.read()
            if decode and (text or encoding or errors):
                data = data.decode(encoding or locale.getpreferredencoding(False), errors or "strict")
                data = data.replace("\r\n", "\n").replace("\r", "\n")
            return data

        if timed_out:  # as subprocess.run: the output so far, as bytes even in text mode
            raise subprocess.TimeoutExpired(args, timeout, output=_read(out_f, False), stderr=_read(err_f, False))
        out, err = _read(out_f, True), _read(err_f, True)
        done = subprocess.CompletedProcess(args, code, out, err)
        if check:
            done.check_returncode()
        return done
    finally:
        for f in files:
            f.close()


def routable(args, kwargs: dict) -> bool:
    """Only `python FILE.py ...` of this project's scripts and `python -m rolecraft.cli ...`, with
    the keyword arguments the tests use."""
    if not isinstance(args, (list, tuple)) or len(args) < 2 or str(args[0]) != sys.executable:
        return False
    allowed = {"cwd", "env", "input", "timeout", "text", "encoding", "errors", "capture_output", "stdin",
               "stdout", "stderr", "check", "universal_newlines"}
    if set(kwargs) - allowed:
        return False
    stdin = kwargs.get("stdin")
    if stdin not in (None, subprocess.DEVNULL):  # the caller's file or pipe
        return False
    if stdin is not None and kwargs.get("input") is not None:  # subprocess.run's own ValueError, from a fresh call
        return False
    for k in ("stdout", "stderr"):
        if kwargs.get(k) not in (None, subprocess.PIPE) and not (k == "stderr" and kwargs[k] == subprocess.STDOUT):
            return False
    first = str(args[1])
    if first == "-m":
        return len(args) >= 3 and str(args[2]) in MODULES_OK
    return os.path.basename(first) in SCRIPTS_OK and not first.startswith("-")


if __name__ == "__main__":
    serve(sys.argv[1], int(sys.argv[2]))
