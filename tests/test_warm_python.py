"""tests/warm_python.py keeps subprocess.run's contract: argv, cwd, environment, stdin, stdout and
stderr, exit status, check and timeout are what a fresh interpreter gives; what it must not take is
left to a fresh one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import conftest
import warm_python
from conftest import REPO, cli_env, run_fresh

pytestmark = pytest.mark.skipif(not warm_python.enabled(), reason="no fork here, or ROLECRAFT_TEST_WARM=0: "
                                                                  "every command already runs fresh")

PROBE = r'''
import json, os, sys
if sys.argv[1:2] == ["sleep"]:
    import time
    print("started", flush=True)
    time.sleep(600)
data = sys.stdin.read()
print(json.dumps({"argv": sys.argv, "cwd": os.getcwd(), "name": __name__, "stdin": data,
                  "cache": os.environ.get("ROLECRAFT_CACHE"), "path0": sys.path[0], "pid": os.getpid(),
                  "torch_loaded": "torch" in sys.modules}))
print("to stderr\r\nsecond line", file=sys.stderr)
raise SystemExit(int(sys.argv[1].partition("exit=")[2] or 0) if len(sys.argv) > 1 else 0)
'''


@pytest.fixture(autouse=True, scope="module")
def _server_for_cli_env(tmp_path_factory):
    """The server for cli_env's environment, as an xdist worker starts at once (`-n0` would run the
    first commands fresh until the environment has been seen twice)."""
    conftest._warm.start(cli_env(tmp_path_factory.mktemp("warm")))


@pytest.fixture
def probe(tmp_path) -> Path:
    """A script with a name the warm path takes (chat.py), in a folder of its own."""
    d = tmp_path / "scripts"
    d.mkdir()
    (d / "chat.py").write_text(PROBE, encoding="utf-8")
    return d / "chat.py"


def _env(tmp_path: Path, **extra) -> dict:
    env = cli_env(tmp_path / "cache")  # ROLECRAFT_CACHE differs per test: read at run time, so allowed
    env.update(extra)
    return env


def test_forked_command_sees_its_argv_cwd_env_stdin_and_exit_status(probe, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    env = _env(tmp_path)
    env["PYTEST_CURRENT_TEST"] = "x"  # keys read at run time may differ from the server's
    args = [sys.executable, str(probe), "exit=3", "a b", "--flag", "中文"]
    r = subprocess.run(args, cwd=work, env=env, capture_output=True, text=True, input="line1\nline2\n", timeout=60)
    assert r.returncode == 3 and r.args == args
    got = json.loads(r.stdout)
    assert got["argv"] == [str(probe), "exit=3", "a b", "--flag", "中文"] and got["name"] == "__main__"
    assert got["cwd"] == str(work) and got["stdin"] == "line1\nline2\n" and got["path0"] == str(probe.parent)
    assert got["cache"] == str(tmp_path / "cache")  # the environment is the caller's, not the server's
    assert got["torch_loaded"] and got["pid"] != os.getpid()  # it was forked from the warm interpreter
    assert r.stderr == "to stderr\nsecond line\n"  # text mode: universal newlines, as subprocess gives


def test_fresh_and_warm_give_the_same_result_apart_from_what_is_preloaded(probe, tmp_path):
    args = [sys.executable, str(probe), "x"]
    env = _env(tmp_path)
    warm = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    fresh = run_fresh(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    w, f = json.loads(warm.stdout), json.loads(fresh.stdout)
    assert w.pop("torch_loaded") and not f.pop("torch_loaded")
    w.pop("pid"), f.pop("pid")
    assert (warm.returncode, w, warm.stderr) == (fresh.returncode, f, fresh.stderr)


def test_bytes_mode_stdout_to_stderr_and_check(probe, tmp_path):
    env = _env(tmp_path)
    r = subprocess.run([sys.executable, str(probe)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       stdin=subprocess.DEVNULL, timeout=60)
    assert isinstance(r.stdout, bytes) and r.stderr is None
    assert b'"stdin": ""' in r.stdout and b"to stderr\r\nsecond line" in r.stdout  # bytes: no newline translation
    with pytest.raises(subprocess.CalledProcessError) as e:
        subprocess.run([sys.executable, str(probe), "exit=5"], env=_env(tmp_path), capture_output=True,
                       check=True, timeout=60)
    assert e.value.returncode == 5


@pytest.mark.slow  # waits out the (stretched) timeout: 12 s
def test_timeout_kills_the_child_and_raises_with_the_output_so_far(probe, tmp_path):
    env = _env(tmp_path)
    t0 = time.monotonic()
    with pytest.raises(subprocess.TimeoutExpired) as e:
        # conftest stretches timeouts by ROLECRAFT_TEST_TIMEOUT_SCALE (3 s becomes 12 s): room for the
        # child to print on a loaded machine, far short of its 600 s sleep
        subprocess.run([sys.executable, str(probe), "sleep"], env=env, capture_output=True, text=True, timeout=3)
    assert b"started" in e.value.stdout  # bytes, as subprocess.run gives on a timeout
    assert time.monotonic() - t0 < 120  # it did not wait for the 600 s sleep


def test_module_form_runs_the_cli(tmp_path):
    r = subprocess.run([sys.executable, "-m", "rolecraft.cli", "--help"], cwd=REPO, env=_env(tmp_path),
                       capture_output=True, text=True, timeout=60)
    fresh = run_fresh([sys.executable, "-m", "rolecraft.cli", "--help"], cwd=REPO, env=_env(tmp_path),
                      capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout == fresh.stdout and "usage" in r.stdout.lower()


def test_what_the_warm_interpreter_must_not_take_runs_fresh(probe, tmp_path):
    server_env = cli_env(tmp_path)
    # interpreter flags, other programs, a non-project script name, stdin from a file, other kwargs
    assert not warm_python.routable([sys.executable, "-X", "importtime", str(probe)], {})
    assert not warm_python.routable([sys.executable, "-c", "pass"], {})
    assert not warm_python.routable(["python3-other", str(probe)], {})
    assert not warm_python.routable([sys.executable, str(tmp_path / "other.py")], {})
    assert not warm_python.routable([sys.executable, str(probe)], {"start_new_session": True})
    assert not warm_python.routable([sys.executable, "-m", "pip", "list"], {})
    assert not warm_python.routable([sys.executable, str(probe)], {"stdin": subprocess.PIPE})
    with open(probe, "rb") as f:
        assert not warm_python.routable([sys.executable, str(probe)], {"stdin": f})
    assert not warm_python.routable([sys.executable, str(probe)], {"stdin": subprocess.DEVNULL, "input": b""})
    assert warm_python.routable([sys.executable, str(probe)], {"stdin": subprocess.DEVNULL})
    assert warm_python.routable([sys.executable, str(probe)], {"capture_output": True, "text": True})
    # variables read when the stack is imported (HF_HOME, thread counts, tqdm's) need a fresh process
    server = warm_python.WarmServer.__new__(warm_python.WarmServer)
    server.env = server_env
    assert server.accepts(dict(server_env, ROLECRAFT_CACHE="/elsewhere"))
    assert not server.accepts(dict(server_env, HF_HOME="/elsewhere"))
    assert not server.accepts(dict(server_env, OMP_NUM_THREADS="7"))
    r = subprocess.run([sys.executable, str(probe)], env=_env(tmp_path, HF_HOME=str(tmp_path / "hf")),
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and not json.loads(r.stdout)["torch_loaded"]  # a fresh interpreter ran it


def test_an_environment_seen_twice_gets_its_own_server(tmp_path):
    pool = warm_python.Pool()
    try:
        env = _env(tmp_path, SOME_SETTING="x")
        assert pool.server_for(env) is None and not pool.servers  # once: fresh, no server
        assert pool.server_for(env) is None and len(pool.servers) == 1  # twice: one starts warming
        assert pool.server_for(dict(env, ROLECRAFT_CACHE="/other")) is pool.servers[next(iter(pool.servers))]
        for i in range(2 * warm_python.Pool.MAX_SERVERS):
            pool.server_for(_env(tmp_path, SOME_SETTING=str(i)))
            pool.server_for(_env(tmp_path, SOME_SETTING=str(i)))
        assert len(pool.servers) == warm_python.Pool.MAX_SERVERS  # bounded
    finally:
        pool.close()
    assert all(s.proc.poll() is not None for s in pool.servers.values()) and not any(d.exists() for d in pool.dirs)


def test_a_dead_server_sends_its_commands_to_a_fresh_interpreter(probe, tmp_path, monkeypatch):
    pool = warm_python.Pool()
    try:
        env = _env(tmp_path)
        server = pool.start(env)
        server.proc.kill()
        server.proc.wait()
        # a command already routed to it when it died: nothing is sent, the caller is told to go fresh
        with pytest.raises(warm_python.ServerGone):
            warm_python.run(server, [sys.executable, str(probe)], cwd=tmp_path, env=env, input=None, timeout=60,
                            text=True, encoding=None, errors=None, stdin=None, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, check=False)
        monkeypatch.setattr(conftest, "_warm", pool)
        for _ in range(3):  # dropped and never restarted: every later command runs fresh and succeeds
            r = subprocess.run([sys.executable, str(probe), "exit=4"], env=env, capture_output=True, text=True,
                               timeout=120)
            assert r.returncode == 4 and not json.loads(r.stdout)["torch_loaded"]
        assert not pool.servers and len(pool.gone) == 1
    finally:
        pool.close()


@pytest.mark.slow  # the orphaned server first finishes importing the stack (~10 s), then notices
def test_a_killed_worker_leaves_no_server_and_no_temp_dir(tmp_path):
    code = (f"import sys; sys.path.insert(0, {str(REPO / 'tests')!r}); import os, warm_python; "
            "s = warm_python.Pool().start(dict(os.environ)); print(s.proc.pid, os.path.dirname(s.sock), flush=True); "
            "os._exit(0)")  # as a SIGKILL would: no Pool.close
    r = run_fresh([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    pid, folder = r.stdout.split()
    assert os.path.isdir(folder)
    deadline = time.monotonic() + 60 * conftest.TIMEOUT_SCALE
    while (os.path.isdir(folder) or _alive(int(pid))) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not os.path.isdir(folder) and not _alive(int(pid))


def _alive(pid: int) -> bool:
    """Running, not exited (a zombie left for init to reap has exited)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] != "Z"
    except FileNotFoundError:
        return False
