"""Clean, predictable output (issue 19): results on stdout, logs and bars on stderr once, known
noise filtered, defects summarised, honest metric names, an explained exact resume, and each
entry point's --help listing only its own groups.

The helpers are tested directly (fast); the end-to-end tests drive the real CLIs (slow).
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
import warnings

import pytest

from conftest import FAST, REPO, cli_env, read_metrics, run_train
from rolecraft import console
from rolecraft.data.importers.base import Defect, summarise_defects


@pytest.fixture(autouse=True)
def _loud_again():
    yield
    console.set_verbosity(quiet=False, verbose=False)


# ---- defects -----------------------------------------------------------------------------


def defects(n: int, kinds: int) -> list[Defect]:
    return [Defect(f"/src/c/f{i % kinds}.jsonl", i + 1, f"kind_{i % kinds:02d}", f"problem {i}") for i in range(n)]


def test_few_defects_are_listed_in_full():
    few = defects(7, 3)
    assert summarise_defects(few, None) == [str(d) for d in few]


def test_many_defects_are_counted_by_kind_with_the_first_of_each():
    many = defects(2000, 4) + [Defect("/src/x", None, "character_skipped", "character 'x' skipped: no script")]
    lines = summarise_defects(many, "R.json")
    assert lines[0] == "2001 defects in 5 kinds, the first of each shown (every one in R.json):"
    assert lines[1] == "     500 kind_00            e.g. /src/c/f0.jsonl:1: problem 0"
    assert any(line.strip().startswith("1 character_skipped") for line in lines)
    # a lost character is always named, whatever the counts
    assert lines[-2:] == ["characters lost or incomplete:", "  /src/x: character 'x' skipped: no script"]
    assert len(lines) == 1 + 5 + 2


def test_summary_is_bounded_and_says_how_to_get_everything():
    lines = summarise_defects(defects(6000, 60), None)
    assert len(lines) == 1 + 20 + 1
    assert "rerun with --report FILE" in lines[0] and "-v" in lines[0]
    assert lines[-1].strip() == "4000 in 40 more kinds: kind_20, kind_21, kind_22, kind_23, kind_24, …"
    assert summarise_defects(defects(5000, 60), None, show_all=True) == [str(d) for d in defects(5000, 60)]


# ---- noise filtered at the source --------------------------------------------------------


def test_known_harmless_warnings_are_filtered_and_others_kept():
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        console.silence_known_noise()
        warnings.warn("`is_gradient_checkpointing` is deprecated and will be removed in v6.", FutureWarning)
        warnings.warn("something else is deprecated", FutureWarning)
    assert [str(w.message) for w in seen] == ["something else is deprecated"]


@pytest.mark.slow
def test_loading_a_trained_adapter_in_python_raises_no_known_harmless_warning(tmp_path, cache_dir):
    """At the source: a Python caller of load_run (no entry point, no global filters) sees no
    peft/transformers deprecation warning either."""
    from omegaconf import OmegaConf

    from rolecraft.config import LoraConfig, ModelConfig
    from rolecraft.inference.sources import load_run
    from rolecraft.modeling.base import load_base
    from rolecraft.modeling.lora import apply_lora

    model_cfg = OmegaConf.structured(ModelConfig())
    cache = cache_dir
    base, _, _ = load_base(model_cfg, str(cache))
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        lora = apply_lora(base, OmegaConf.structured(LoraConfig()), model_cfg, model_cfg.name_or_path)
        run = tmp_path / "run"
        lora.save_pretrained(str(run / "adapter"))
        OmegaConf.save(OmegaConf.create({"model": OmegaConf.to_container(model_cfg)}), run / "config.yaml")
        load_run(run, str(cache))
    assert not [str(w.message) for w in seen if "is_gradient_checkpointing" in str(w.message)]


def test_lightning_advertisement_is_dropped_and_its_facts_kept(caplog):
    console.silence_known_noise()
    rank_zero = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    with caplog.at_level(logging.INFO):
        rank_zero.info("💡 Tip: For seamless cloud logging ... try installing [litlogger](https://pypi.org/project/litlogger/)")
        rank_zero.info("GPU available: False, used: False")
    assert [r.getMessage() for r in caplog.records] == ["GPU available: False, used: False"]


def test_lightning_handler_removed_where_the_root_prints():
    root, lightning = logging.getLogger(), logging.getLogger("lightning")
    own = logging.StreamHandler()  # what `import lightning` adds
    lightning.addHandler(own)
    added = logging.StreamHandler() if not root.handlers else None
    if added:
        root.addHandler(added)
    try:
        console.adopt_lightning_logging()
        assert own not in lightning.handlers and lightning.propagate
    finally:
        lightning.removeHandler(own)
        if added:
            root.removeHandler(added)


def test_quiet_turns_bars_off_and_console_handlers_to_warnings(capsys):
    import tqdm  # noqa: F401 - imported before quiet sets TQDM_DISABLE (tqdm reads it at import)

    handler = logging.StreamHandler(sys.stderr)
    logging.getLogger().addHandler(handler)
    try:
        console.set_verbosity(quiet=True)
        assert console.progress(range(3), desc="x").disable
        assert handler.level == logging.WARNING
        console.set_verbosity(quiet=False)
        list(console.progress(range(3), desc="counting", delay=0))
        out, err = capsys.readouterr()
        assert "counting" in err and out == ""  # bars go to stderr
        assert handler.level == logging.NOTSET
    finally:
        logging.getLogger().removeHandler(handler)


def test_only_the_first_rank_is_loud(monkeypatch):
    for var in ("LOCAL_RANK", "NODE_RANK", "RANK"):
        monkeypatch.delenv(var, raising=False)
    assert not console.is_secondary_rank()
    monkeypatch.setenv("LOCAL_RANK", "0")
    assert not console.is_secondary_rank()
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert console.is_secondary_rank()


# ---- honest metrics and timings ----------------------------------------------------------


def test_each_job_of_a_process_has_its_own_clock(monkeypatch):
    import rolecraft
    from rolecraft.training import run as run_mod

    monkeypatch.setattr(run_mod, "_jobs_in_process", 0)
    assert run_mod.job_started() == rolecraft.STARTED  # the first job: from the launch
    before = time.perf_counter()
    assert run_mod.job_started() >= before  # a later multirun job: from its own start


def test_old_runs_read_with_the_renamed_key(tmp_path):
    from rolecraft.rundir import read_metrics as read

    (tmp_path / "metrics.json").write_text(json.dumps({"train/samples": 310, "train/steps": 2}))
    assert read(tmp_path) == {"train/dataset_samples": 310, "train/steps": 2}


# ---- exact resume, in Lightning's terms --------------------------------------------------


def test_train_loader_is_stateful_and_checks_the_data_order(caplog):
    from lightning.fabric.utilities.types import _Stateful

    from rolecraft.data.batching import StepBatchSampler
    from rolecraft.data.datamodule import StepLoader

    lengths = [5, 9, 3, 7, 1, 8, 2, 6, 4, 10, 11, 12]
    saved = StepBatchSampler(lengths, 3, seed=7, group_by_length=True, position=lambda: (0, 2))
    loader = StepLoader(list(range(12)), batch_sampler=StepBatchSampler(lengths, 3, seed=7, group_by_length=True))
    assert isinstance(loader, _Stateful)  # what Lightning checks before warning "not resumable"
    state = saved.state_dict()
    assert state["global_step"] == 2 and state["order"]["batch_size"] == 3
    with caplog.at_level(logging.INFO, logger="rolecraft"):
        loader.load_state_dict(state)
    assert "resuming at step 2" in caplog.text and "exactly the batches" in caplog.text
    caplog.clear()
    other = StepLoader(list(range(12)), batch_sampler=StepBatchSampler(lengths, 4, seed=7, group_by_length=True))
    with caplog.at_level(logging.INFO, logger="rolecraft"):
        other.load_state_dict(state)
    assert caplog.records[0].levelno == logging.WARNING and "batch_size 3 -> 4" in caplog.text


# ---- --help: own groups only -------------------------------------------------------------


@pytest.mark.parametrize("entry, wanted, refused", [
    ("train", {"data", "trainer", "lora", "eval", "optim"}, {"judge", "answers", "llm", "rpcs", "benchmark"}),
    ("evaluate", {"benchmark", "answers", "judge", "rpcs"}, {"trainer", "lora", "llm", "data"}),
    ("construct", {"llm", "paths"}, {"model", "trainer", "judge"}),
    ("chat", {"model", "retrieval", "emotions"}, {"trainer", "judge", "llm"}),
])
def test_help_lists_only_the_entry_points_groups(entry, wanted, refused):
    from rolecraft import config
    from rolecraft.hydra_help import render_help

    config.register(f"{entry}_schema")
    text = render_help(entry, [])
    groups_part = text.split("== Configuration groups ==")[1].split("== Config ==")[0]
    listed = {line.split(":")[0] for line in groups_part.splitlines() if ": " in line}
    assert wanted <= listed and not (listed & refused), listed
    assert "== Config ==" in text and "Powered by Hydra" in text


# ---- the real CLIs ------------------------------------------------------------------------


@pytest.mark.slow
def test_train_prints_one_json_line_and_logs_once(tmp_path, cache_dir):
    r = run_train([*FAST, "trainer.max_steps=2", "data.max_eval_samples=2", "trainer.enable_progress_bar=true"],
                  cache_dir, tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    out = r.stdout.splitlines()
    assert len(out) == 1, r.stdout[-2000:]  # nothing but the metrics: no log lines, no bars
    metrics = json.loads(out[0])
    assert metrics["train/samples_seen"] == 8 and "train/dataset_samples" in metrics
    assert r.stderr.count("GPU available") == 1  # once, not once per handler
    assert "Epoch 0" in r.stderr  # Lightning's bar, on stderr
    for noise in ("litlogger", "is_gradient_checkpointing", "FutureWarning", "Warning:"):
        assert noise not in r.stderr, noise
    [run_dir] = [p.parent for p in tmp_path.rglob("metrics.json")]
    assert read_metrics(run_dir)["train/samples_seen"] == 8
    assert "GPU available" in (run_dir / "train.log").read_text()  # the run's log file keeps INFO


@pytest.mark.slow
def test_train_quiet_prints_the_metrics_and_nothing_else(tmp_path, cache_dir):
    r = run_train([*FAST, "trainer.max_steps=1", "eval.enabled=false", "trainer.enable_progress_bar=true",
                   "quiet=true"], cache_dir, tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert len(r.stdout.splitlines()) == 1 and json.loads(r.stdout)["train/steps"] == 1
    assert "[INFO]" not in r.stderr and "Epoch 0" not in r.stderr and "Loading" not in r.stderr, r.stderr[-2000:]


@pytest.mark.slow
def test_help_of_train_offers_only_what_it_accepts(cache_dir, tmp_path):
    def run(*args):
        return subprocess.run([sys.executable, str(REPO / "train.py"), *args], cwd=REPO,
                              env=cli_env(cache_dir, tmp_path), capture_output=True, text=True, timeout=120)

    r = run("--help")
    assert r.returncode == 0 and r.stderr == "", r.stderr
    for group in ("judge:", "answers:", "llm:", "rpcs:", "benchmark:"):
        assert f"\n{group}" not in r.stdout, group
    assert "\ntrainer: cpu, ddp, ddp_cpu, fsdp, fsdp_cpu, gpu\n" in r.stdout
    assert "max_steps: 120" in r.stdout  # the composed config follows
    r = run("--help", "trainer.max_steps=7")
    assert "max_steps: 7" in r.stdout  # overrides apply, as with Hydra's own --help
    r = run("--help", "judge=rank")
    assert r.returncode == 2 and r.stderr.startswith("error: ") and r.stderr.count("\n") == 1, r.stderr


def test_rolecraft_quiet_leaves_stdout_alone_and_stderr_empty(tmp_path):
    env = cli_env(tmp_path / "cache")
    r = subprocess.run([sys.executable, "-m", "rolecraft.cli", "-q", "data", "stats", "embedded:demo"], cwd=REPO,
                       env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    assert "Characters" in r.stdout or "characters" in r.stdout.lower()


def test_every_entry_point_has_the_quiet_key(tmp_path):
    """quiet is one key with one meaning on train, evaluate, construct and chat (composed, nothing runs)."""
    for script in ("train.py", "evaluate.py", "construct.py", "chat.py"):
        r = subprocess.run([sys.executable, str(REPO / script), "quiet=true", "--cfg", "job"], cwd=REPO,
                           env=cli_env(tmp_path), capture_output=True, text=True, timeout=60)
        assert r.returncode == 0 and "\nquiet: true" in "\n" + r.stdout, (script, r.stderr[-500:])
