"""The core install runs without the deep-learning stack; a command that needs an extra says which."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from conftest import REPO, cli_env
from rolecraft.errors import ConfigError
from rolecraft.extras import EXTRAS, missing, require

# An import hook that makes the training stack look uninstalled, as on `pip install -e .` (no extras).
BLOCK = textwrap.dedent("""
    import importlib.abc, runpy, sys
    HEAVY = {"torch", "lightning", "pytorch_lightning", "lightning_fabric", "transformers", "peft",
             "tokenizers", "huggingface_hub", "sentence_transformers", "accelerate", "datasets"}
    class Uninstalled(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            if name.split(".")[0] in HEAVY:
                raise ModuleNotFoundError(f"No module named {name!r}")
    sys.meta_path.insert(0, Uninstalled())
    import importlib.util
    _find = importlib.util.find_spec
    importlib.util.find_spec = lambda n, *a: None if n.split(".")[0] in HEAVY else _find(n, *a)
    script, sys.argv = sys.argv[1], sys.argv[1:]
    if script.endswith(".py"):
        runpy.run_path(script, run_name="__main__")
    else:
        runpy.run_module(script, run_name="__main__", alter_sys=True)
""")


def run_without_torch(args, cache_dir, tmp_path):
    return subprocess.run([sys.executable, "-c", BLOCK, *args], cwd=REPO, env=cli_env(cache_dir, tmp_path / "runs"),
                          capture_output=True, text=True, timeout=300)


def test_require_names_the_extra_and_the_pip_command():
    assert missing("train") == []  # the test environment has everything (dev)
    EXTRAS["nothing-here"] = ("rolecraft_no_such_module",)
    try:
        with pytest.raises(ConfigError, match=r"needs the 'nothing-here' extra .*pip install 'rolecraft\[nothing-here\]'"):
            require("nothing-here", "python x.py")
    finally:
        del EXTRAS["nothing-here"]


def test_data_stats_runs_without_the_training_stack(cache_dir, tmp_path):
    r = run_without_torch(["rolecraft.cli", "data", "stats", "embedded:demo"], cache_dir, tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "Characters" in r.stdout and "Emotion distribution" in r.stdout


def test_train_without_the_training_stack_says_which_extra(cache_dir, tmp_path):
    r = run_without_torch(["train.py", f"hydra.run.dir={tmp_path / 'run'}"], cache_dir, tmp_path)
    assert r.returncode == 2, (r.stdout[-1000:], r.stderr[-2000:])
    err = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert len(err) == 1 and "'train' extra" in err[0] and "rolecraft[train]" in err[0], r.stderr[-2000:]
    assert "Traceback" not in r.stderr


@pytest.mark.slow
def test_evaluate_predictions_runs_without_the_training_stack(cache_dir, tmp_path):
    import json

    from rolecraft.data.schema import load
    from rolecraft.data import resolve_data_root

    ds = load(resolve_data_root("embedded:demo"))
    test = [s for s in ds.samples if s.split == "test"]
    preds = tmp_path / "preds.jsonl"
    preds.write_text("".join(json.dumps({"character": s.character, "question": s.instruction,
                                         "prediction": s.references[0]}, ensure_ascii=False) + "\n"
                             for s in test), encoding="utf-8")
    r = run_without_torch(["evaluate.py", "answers=predictions", f"answers.path={preds}",
                           f"hydra.run.dir={tmp_path / 'ev'}"], cache_dir, tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    metrics = json.loads(r.stdout.strip().splitlines()[-1])
    assert metrics["rouge_l/avg"] > 0.5  # each prediction is one of its item's references


def test_import_messages_on_the_core_install(cache_dir, tmp_path):
    """Local JSON lines need no extra; a Hub id needs `datasets` and says which extra brings it."""
    import json

    src = tmp_path / "chat.jsonl"
    src.write_text(json.dumps({"character": "林黛玉", "conversations": [
        {"from": "human", "value": "姑娘安好？"}, {"from": "gpt", "value": "还好，只是又咳了。"}]}, ensure_ascii=False) + "\n",
        encoding="utf-8")
    r = run_without_torch(["rolecraft.cli", "data", "import", "messages", str(src), "--out", str(tmp_path / "o")],
                          cache_dir, tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "1 characters, 1 samples" in r.stdout
    r = run_without_torch(["rolecraft.cli", "data", "import", "messages", "nobody/some-chats", "--out",
                           str(tmp_path / "o2")], cache_dir, tmp_path)
    assert r.returncode == 2
    err = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert len(err) == 1 and "'data' extra" in err[0] and "rolecraft[data]" in err[0], r.stderr[-2000:]
