"""Fault tests of configuration values, through the real CLIs (subprocesses, loopback only, seeded).

- a value out of range: exit 2 and one line ``error: key=value: ...`` before anything heavy is imported;
- a value outside a closed set of choices: Hydra refuses it while composing (exit 1), naming the key,
  the value and the choices;
- a key typed where the name of its environment variable belongs, or credentials inside an endpoint
  URL: no trace of the secret in any file under the run directory, nor on stdout/stderr;
- construct.py against an endpoint that is down or answers 500: its report is written, and it exits 2.
"""

from __future__ import annotations

import json
import random
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, cli_env
from test_startup_imports import HEAVY, imported_modules

pytestmark = pytest.mark.fault

SEED = 20261231


def _cli(script: str, args: list[str], cache: Path, run_dir: Path, importtime: bool = False,
         timeout: int = 180) -> subprocess.CompletedProcess:
    pre = ["-X", "importtime"] if importtime else []
    env = cli_env(cache)
    return subprocess.run([sys.executable, *pre, str(REPO / script), *args, f"hydra.run.dir={run_dir}"], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=timeout)


def _own_lines(stderr: str) -> list[str]:
    """stderr without the ``-X importtime`` report."""
    return [l for l in stderr.splitlines() if l.strip() and not l.startswith("import time:")]


def _heavy(stderr: str) -> list[str]:
    mods = imported_modules(stderr)
    assert {"hydra", "omegaconf"} <= mods, "the importtime report was not read"
    return sorted(m for m in mods if m.split(".")[0] in HEAVY)


# ---- out of range: exit 2, one line, nothing heavy imported ----------------------------------

# (script, override, what the one line must contain)
BAD_VALUES = [
    ("train.py", "lora.r=0", "lora.r=0: must be at least 1"),
    ("train.py", "optim.micro_batch_size=0", "optim.micro_batch_size=0: must be at least 1"),
    ("train.py", "optim.micro_batch_size=3", "optim.micro_batch_size=3: must divide optim.batch_size=4"),
    ("train.py", "trainer.max_steps=-1", "trainer.max_steps=-1: -1 means 'train for trainer.max_epochs'"),
    ("train.py", "prompt.num_exemplars=-3", "prompt.num_exemplars=-3: must be at least 0"),
    ("train.py", "optim.lr=0", "optim.lr=0.0: must be positive"),
    ("train.py", "eval.generation.top_p=0", "eval.generation.top_p=0.0: must be in (0, 1]"),
    ("evaluate.py", "generation.temperature=-0.5", "generation.temperature=-0.5: must be at least 0"),
    ("evaluate.py", "judge.repeats=0", "judge.repeats=0: must be at least 1"),
    ("construct.py", "llm.top_p=1.5", "llm.top_p=1.5: must be in (0, 1]"),
    ("construct.py", "construct.qa.questions=0", "construct.qa.questions=0: must be at least 1"),
    ("chat.py", "history_budget=-1", "history_budget=-1: must be at least 0"),
]

# a seeded table of more: (script, key, bad values to draw from, the problem's words)
MORE = [
    ("train.py", "lora.r", ["-1", "-8"], "must be at least 1"),
    ("train.py", "lora.alpha", ["0", "-16"], "must be positive"),
    ("train.py", "lora.dropout", ["1.0", "-0.1", "1.5"], "must be in [0, 1)"),
    ("train.py", "optim.batch_size", ["0", "-4"], "must be at least 1"),
    ("train.py", "optim.lr", ["-1e-4", "0.0"], "must be positive"),
    ("train.py", "optim.eps", ["0", "-1e-8"], "must be positive"),
    ("train.py", "optim.weight_decay", ["-0.01"], "must be at least 0"),
    ("train.py", "optim.warmup_steps", ["-1", "-10"], "must be at least 0"),
    ("train.py", "optim.gradient_clip_val", ["-1.0"], "must be at least 0"),
    ("train.py", "trainer.max_steps", ["-2", "-100"], "must be at least -1"),
    ("train.py", "trainer.log_every_n_steps", ["0", "-5"], "must be at least 1"),
    ("train.py", "trainer.checkpoint_every_n_steps", ["0"], "must be at least 1"),
    ("train.py", "trainer.val_check_interval", ["0", "-60"], "must be at least 1"),
    ("train.py", "trainer.precision", ["33", "bf32-mixed", "half"], "use one of"),
    ("train.py", "trainer.devices", ["0", "-2"], "use a count >= 1"),
    ("train.py", "data.specific_ratio", ["1.5", "-0.2"], "must be in [0, 1]"),
    ("train.py", "data.max_source_length", ["0", "-1024"], "must be at least 1"),
    ("train.py", "eval.batch_size", ["0"], "must be at least 1"),
    ("train.py", "eval.generation.max_new_tokens", ["0", "-64"], "must be at least 1"),
    ("train.py", "prompt.retrieval.k", ["0", "-6"], "must be at least 1"),
    ("train.py", "seed", ["-1", "4294967296"], "must be in [0, 4294967295]"),
    ("evaluate.py", "answers.batch_size", ["0", "-16"], "must be at least 1"),
    ("evaluate.py", "benchmark.max_samples", ["0", "-3"], "must be at least 1"),
    ("evaluate.py", "generation.top_p", ["0.0", "1.01"], "must be in (0, 1]"),
    ("evaluate.py", "generation.repetition_penalty", ["0", "-1.0"], "must be positive"),
    ("evaluate.py", "judge.max_items", ["0"], "must be at least 1"),
    ("evaluate.py", "judge.temperature", ["-1", "2.5"], "must be in [0, 2]"),
    ("evaluate.py", "rpcs.batch_size", ["0"], "must be at least 1"),
    ("construct.py", "llm.temperature", ["-0.1", "3"], "must be in [0, 2]"),
    ("construct.py", "llm.max_tokens", ["0", "-1"], "must be at least 1"),
    ("construct.py", "llm.timeout", ["0", "-5"], "must be positive"),
    ("construct.py", "llm.price_input", ["-1"], "must be at least 0"),
    ("construct.py", "construct.general.shots", ["-1"], "must be at least 0"),
    ("construct.py", "construct.annotate.batch_size", ["0"], "must be at least 1"),
    ("chat.py", "generation.top_p", ["0", "2"], "must be in (0, 1]"),
    ("chat.py", "generation.temperature", ["0.0"], "sampling needs a temperature above 0"),
]


def _seeded_more(n: int = 20) -> list[tuple[str, str, str]]:
    """``n`` rows of MORE, each with one of its bad values, drawn with a fixed seed."""
    rng = random.Random(SEED)
    return [(script, f"{key}={rng.choice(values)}", problem) for script, key, values, problem in rng.sample(MORE, n)]


CASES = BAD_VALUES + _seeded_more()


def test_the_tables_try_what_the_promises_say():
    # the README and the promises count these: keep them honest
    assert len(BAD_VALUES) == 12 and len(CASES) == 32 and len({c[1] for c in CASES}) == 32
    assert {c[0] for c in CASES} == {"train.py", "evaluate.py", "construct.py", "chat.py"}


@pytest.mark.parametrize("script,override,expected", CASES, ids=[f"{s[:-3]}:{o}" for s, o, _ in CASES])
def test_a_value_out_of_range_fails_in_one_line_before_anything_loads(script, override, expected, tmp_path):
    r = _cli(script, [override], tmp_path / "cache", tmp_path / "run", importtime=True)
    lines = _own_lines(r.stderr)
    assert r.returncode == 2, "\n".join(lines[-20:])
    assert len(lines) == 1 and lines[0].startswith("error: "), lines[-20:]
    key = override.split("=", 1)[0]
    assert lines[0].startswith(f"error: {key}=") and expected in lines[0], lines[0]
    assert "Traceback" not in r.stderr and "Traceback" not in r.stdout
    assert not _heavy(r.stderr), f"{script} {override} imported {_heavy(r.stderr)[:10]} before failing"
    # nothing of a run but Hydra's own records
    made = {p.relative_to(tmp_path / "run").parts[0] for p in (tmp_path / "run").rglob("*")} if (tmp_path / "run").exists() else set()
    assert all(m == ".hydra" or m.endswith(".log") for m in made), made


# ---- outside a closed set: Hydra refuses while composing -------------------------------------

CHOICES = [
    ("train.py", "optim.scheduler=cosin", "constant, linear, cosine"),
    ("train.py", "model.dtype=fp16", "auto, float32, bfloat16, float16"),
    ("train.py", "data.mix=mixed", "general, specific, hybrid, dialogue"),
    ("train.py", "data.dialogue_loss=every", "all, last"),
    ("train.py", "lora.bias=some", "none, all, lora_only"),
    ("train.py", "trainer.compile=full", "none, layers"),
    ("train.py", "prompt.retrieval.backend=faiss", "none, lexical, bge, openai"),
    ("train.py", "prompt.retrieval.sources=[scripts]", "script, profile"),
    ("train.py", "logger.name=tensorboard", "csv, wandb, none"),
    ("train.py", "eval.rouge.stat=f1", "f, r, p"),
    ("evaluate.py", "rouge.tokenizer=jeiba", "jieba, char"),
    ("evaluate.py", "rouge.references=all", "max, first"),
    ("evaluate.py", "rouge.postprocess=strip", "none, strip_punct"),
    ("evaluate.py", "judge.mode=ranked", "none, rank, pointwise"),
    ("evaluate.py", "rpcs.backend=bge", "none, openai, local"),
    ("evaluate.py", "answers.source=api", "run, model, openai, predictions"),
    ("evaluate.py", "answers.format=csv", "auto, rolecraft, rolebench"),
    ("evaluate.py", "benchmark.name=rolebench", "roleinstruct, rolebench_zh, belle, jsonl, charactereval"),
    ("evaluate.py", "benchmark.kinds=[raw,custom]", "raw, general, specific, dialogue"),
    ("chat.py", "source=hf", "run, model, openai"),
]


@pytest.mark.parametrize("script,override,allowed", CHOICES, ids=[o for _, o, _ in CHOICES])
def test_a_value_outside_its_choices_fails_while_composing(script, override, allowed, tmp_path):
    r = _cli(script, [override], tmp_path / "cache", tmp_path / "run", importtime=True)
    lines = _own_lines(r.stderr)
    key, value = override.split("=", 1)
    bad = value.strip("[]").split(",")[-1]
    assert r.returncode == 1, lines[-20:]
    assert lines[0] == f"Error merging override {override}", lines[:3]
    assert f"Invalid value '{bad}', expected one of [{allowed}]" in r.stderr, lines[:3]
    assert "Traceback" not in r.stderr and not _heavy(r.stderr)
    assert not (tmp_path / "run").exists()  # nothing recorded


@pytest.mark.slow
def test_every_shipped_preset_passes_the_checks():
    """The YAML files under conf/ compose, with every group option, into configs the checks accept."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from rolecraft import config
    from rolecraft.config_checks import check_chat, check_construct, check_evaluate, check_train
    from rolecraft.paths import config_dir

    config.register()
    checks = {"train": check_train, "evaluate": check_evaluate, "construct": check_construct, "chat": check_chat}
    conf = Path(config_dir())
    tried = 0
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(conf), version_base="1.3"):
        for entry, check in checks.items():
            base = compose(config_name=entry, return_hydra_config=True)
            check(compose(config_name=entry))
            tried += 1
            # the groups this entry point's defaults list uses (composing the others only fails)
            used = {g for g in base.hydra.runtime.choices if "/" not in g and g not in ("hydra", "paths")}
            for group in sorted(p for p in conf.iterdir() if p.is_dir() and p.name in used):
                for option in sorted(f.stem for f in group.glob("*.yaml")):
                    check(compose(config_name=entry, overrides=[f"{group.name}={option}"]))
                    tried += 1
    GlobalHydra.instance().clear()
    assert tried > 40


def test_stage_names_come_from_the_stage_table():
    from rolecraft.construct.main import stages_of
    from rolecraft.construct.stages import STAGES
    from rolecraft.errors import ConfigError

    assert stages_of("all") == list(STAGES) == ["annotate", "profile", "qa", "general"]
    assert stages_of("qa,annotate") == ["annotate", "qa"]
    with pytest.raises(ConfigError, match="stage='nope': use one of annotate, profile, qa, general"):
        stages_of("nope")


# ---- secrets ---------------------------------------------------------------------------------


def _fake_keys(seed: int) -> list[str]:
    """Key-shaped strings built at run time (no key-shaped literal sits in the repository)."""
    rng = random.Random(seed)
    alnum = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    return ["sk-" + "".join(rng.choice(alnum) for _ in range(40)),
            "".join(rng.choice("0123456789abcdef") for _ in range(32)),
            "".join(rng.choice(alnum) for _ in range(36)),
            "sk-proj-" + "".join(rng.choice(alnum + "-_") for _ in range(48))]


def test_looks_like_key_tells_names_from_keys():
    from rolecraft.rundir import looks_like_key

    for name in ("OPENAI_API_KEY", "ROLECRAFT_TEST_LLM_KEY", "HF_TOKEN", "DEEPSEEK_API_KEY", "my_key", "", None,
                 "AZURE_OPENAI_API_KEY_2"):
        assert not looks_like_key(name), name
    for key in _fake_keys(SEED):
        assert looks_like_key(key), key
    assert looks_like_key("hf_" + "a1B2" * 8) and looks_like_key("my key") and looks_like_key("a-b")


def test_redact_url_strips_credentials_and_keeps_the_rest():
    from rolecraft.rundir import redact, redact_override, redact_url

    s = "s3cr3t-" + "q" * 12
    assert redact_url(f"http://user:{s}@127.0.0.1:8000/v1") == "http://***@127.0.0.1:8000/v1"
    assert redact_url(f"https://h/v1?api_key={s}&model=x") == "https://h/v1?api_key=***&model=x"
    assert redact_url(f"https://h/v1?x=1&key={s}") == "https://h/v1?x=1&key=***"
    assert redact_url(f"llm: https://h/v1?token={s} still failing") == "llm: https://h/v1?token=*** still failing"
    for kept in ("http://localhost:8000/v1", "https://api.openai.com/v1?model=gpt-4", "plain text", "a=b"):
        assert redact_url(kept) == kept
    assert redact({"llm": {"base_url": f"http://u:{s}@h/v1", "api_key_env": _fake_keys(1)[0], "n": 3}}) == {
        "llm": {"base_url": "http://***@h/v1", "api_key_env": "***", "n": 3}}
    assert redact_override(f"llm.base_url=http://u:{s}@h/v1") == "llm.base_url=http://***@h/v1"
    assert redact_override("llm.api_key_env=" + _fake_keys(2)[0]) == "llm.api_key_env=***"
    for kept in ("llm.api_key_env=OPENAI_API_KEY", "llm.api_key_env=''", "llm.api_key_env=null"):
        assert redact_override(kept) == kept


def _files_holding(root: Path, secret: str) -> list[str]:
    if not root.exists():
        return []
    return [str(p.relative_to(root)) for p in root.rglob("*")
            if p.is_file() and secret.encode() in p.read_bytes()]


# every place a user could type a key instead of a variable's name
ENV_KEYS = [("construct.py", "llm.api_key_env"), ("evaluate.py", "answers.endpoint.api_key_env"),
            ("evaluate.py", "judge.endpoint.api_key_env"), ("evaluate.py", "rpcs.endpoint.api_key_env"),
            ("train.py", "prompt.retrieval.endpoint.api_key_env"), ("chat.py", "endpoint.api_key_env")]


@pytest.mark.parametrize("script,key", ENV_KEYS, ids=[k for _, k in ENV_KEYS])
def test_a_key_typed_for_a_variable_name_is_refused_without_a_trace(script, key, tmp_path):
    for i, secret in enumerate(_fake_keys(SEED + len(key))):
        run = tmp_path / f"run{i}"
        r = _cli(script, [f"{key}={secret}"], tmp_path / "cache", run)
        lines = _own_lines(r.stderr)
        assert r.returncode == 2, lines[-10:]
        assert lines == [f"error: {key} looks like a key, not the name of an environment variable: put the key "
                         "in an environment variable and name it here (e.g. OPENAI_API_KEY)"], lines
        assert secret not in r.stdout + r.stderr and secret[:12] not in r.stdout + r.stderr
        assert not _files_holding(run, secret) and not _files_holding(run, secret[-16:])


def test_a_key_in_a_config_file_is_refused_and_scrubbed_from_hydras_records(tmp_path):
    """Not on the command line but in a YAML file (a config dir of one's own): Hydra records it in
    .hydra/config.yaml before the task starts; the task rewrites that record, then refuses."""
    secret = _fake_keys(SEED + 7)[0]
    own = tmp_path / "conf"
    (own / "llm").mkdir(parents=True)
    (own / "llm" / "mine.yaml").write_text(f"base_url: http://127.0.0.1:9/v1\napi_key_env: {secret}\nmodel: m\n")
    run = tmp_path / "run"
    r = _cli("construct.py", [f"--config-dir={own}", "llm=mine"], tmp_path / "cache", run)
    assert r.returncode == 2 and _own_lines(r.stderr)[-1].startswith("error: llm.api_key_env looks like a key"), r.stderr
    assert (run / ".hydra" / "config.yaml").is_file()  # Hydra did write its record ...
    assert secret not in r.stdout + r.stderr and not _files_holding(run, secret)  # ... without the key


@pytest.fixture
def dead_port():
    """A loopback port with nothing listening (held, so nothing else takes it during the test)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    yield s.getsockname()[1]
    s.close()


def _construct_args(journal: Path) -> list[str]:
    return ["stage=qa", "construct.qa.rounds=1", "llm.api_key_env=''", "llm.model=fake-chat", "llm.max_retries=1",
            "llm.backoff_base=0.01", "llm.backoff_max=0.05", "llm.timeout=10", "construct.progress=false",
            f"construct.journal={journal}"]


def _check_failed_construct(r, run: Path) -> dict:
    lines = _own_lines(r.stderr)
    assert r.returncode == 2, lines[-20:]
    assert "Traceback" not in r.stderr
    report = json.loads((run / "construct_report.json").read_text(encoding="utf-8"))
    n = sum(s["tasks"] for s in report["stages"].values())
    assert n >= 1 and len(report["failures"]) == n  # every task failed, and the report says so
    assert all(f["error"].startswith("endpoint:") for f in report["failures"])
    assert lines[-1].startswith(f"error: {n} of {n} task(s) failed ({n} endpoint error(s)"), lines[-3:]
    assert str(run / "construct_report.json") in lines[-1]
    return report


@pytest.mark.parametrize("where", ["userinfo", "query"])
def test_construct_against_a_dead_endpoint_exits_2_with_its_report_and_no_credentials(where, dead_port, tmp_path):
    secret = "pw" + _fake_keys(SEED + 11)[2][:20]
    url = (f"http://user:{secret}@127.0.0.1:{dead_port}/v1" if where == "userinfo"
           else f"'http://127.0.0.1:{dead_port}/v1?api_key={secret}'")  # '=' in a value: quoted for Hydra
    run = tmp_path / "run"
    r = _cli("construct.py", [*_construct_args(tmp_path / "j.sqlite"), f"llm.base_url={url}"], tmp_path / "cache", run)
    _check_failed_construct(r, run)
    assert (run / ".hydra" / "overrides.yaml").is_file()
    assert secret not in r.stdout + r.stderr, "the secret was printed"
    assert not _files_holding(run, secret), "the secret was written"
    assert "127.0.0.1" in (run / ".hydra" / "overrides.yaml").read_text()  # redacted, not dropped


def test_construct_against_an_endpoint_answering_500_exits_2_with_its_report(tmp_path):
    from rolecraft.testing.fake_openai import FakeOpenAI, Status

    with FakeOpenAI() as srv:
        srv.inject("chat", *[Status(500) for _ in range(200)])
        run = tmp_path / "run"
        r = _cli("construct.py", [*_construct_args(tmp_path / "j.sqlite"), f"llm.base_url={srv.base_url}"],
                 tmp_path / "cache", run)
        report = _check_failed_construct(r, run)
        assert srv.count("chat") == 2 * len(report["failures"])  # each tried once more (llm.max_retries=1)
    assert (run / "dataset" / "meta.json").is_file()  # what it had is still written, unchanged by the failures


def test_evaluate_against_a_dead_endpoint_keeps_url_credentials_out(dead_port, tmp_path):
    secret = "pw" + _fake_keys(SEED + 13)[2][:20]
    run = tmp_path / "run"
    r = _cli("evaluate.py", ["answers=openai", "answers.endpoint.api_key_env=''", "answers.model=fake-chat",
                             f"answers.endpoint.base_url=http://u:{secret}@127.0.0.1:{dead_port}/v1",
                             "answers.endpoint.max_retries=0", "benchmark.max_samples=1"],
             tmp_path / "cache", run)
    lines = _own_lines(r.stderr)
    assert r.returncode == 2 and lines[-1].startswith("error: ") and "http://***@127.0.0.1" in lines[-1], lines[-5:]
    assert "Traceback" not in r.stderr
    assert secret not in r.stdout + r.stderr and not _files_holding(run, secret)


def test_train_scrubs_url_credentials_from_hydras_records_before_refusing(tmp_path):
    secret = "pw" + _fake_keys(SEED + 17)[2][:20]
    run = tmp_path / "run"
    r = _cli("train.py", [f"prompt.retrieval.endpoint.base_url='https://h.example/v1?key={secret}'", "lora.r=0"],
             tmp_path / "cache", run)
    assert r.returncode == 2 and _own_lines(r.stderr) == ["error: lora.r=0: must be at least 1; the LoRA rank, e.g. 8"]
    recorded = (run / ".hydra" / "overrides.yaml").read_text()
    assert "https://h.example/v1?key=***" in recorded and secret not in recorded, recorded
    assert not _files_holding(run, secret)


def test_construct_out_at_a_users_folder_is_refused_before_anything_is_paid(dead_port, tmp_path):
    """construct.out naming a folder RoleCraft did not write: refused up front (no request is even
    tried, so a dead endpoint is never reached), the folder untouched; construct.force=true does not
    help either, since the folder carries no RoleCraft marker."""
    users = tmp_path / "mine"
    users.mkdir()
    (users / "notes.txt").write_text("keep me", encoding="utf-8")
    for extra in ([], ["construct.force=true"]):
        run = tmp_path / f"run{len(extra)}"
        r = _cli("construct.py", [*_construct_args(tmp_path / "j.sqlite"), f"llm.base_url=http://127.0.0.1:{dead_port}/v1",
                                  f"construct.out={users}", *extra], tmp_path / "cache", run)
        lines = _own_lines(r.stderr)
        assert r.returncode == 2 and "Traceback" not in r.stderr, lines[-5:]
        assert lines[-1].startswith(f"error: construct.out {users}: "), lines[-3:]
        assert ("pass construct.force=true" if not extra else "even construct.force=true will not") in lines[-1]
        assert not (run / "construct_report.json").exists()  # nothing was attempted
        assert sorted(p.name for p in users.iterdir()) == ["notes.txt"]
        assert (users / "notes.txt").read_text(encoding="utf-8") == "keep me"
