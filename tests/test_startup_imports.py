"""`--help` and `--cfg job` of the entry points answer without loading the deep-learning stack.

Each command runs exactly as a user types it, in a subprocess under `python -X importtime`, and
every module the interpreter imported is read back from that report. No timing is asserted here
(benchmarks/bench_startup.py measures the wall time).
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from conftest import REPO, cli_env

HEAVY = ("torch", "lightning", "pytorch_lightning", "lightning_fabric", "transformers", "peft", "openai",
         "sentence_transformers", "wandb")
# "import time:  self | cumulative | <indent>module.name"
IMPORTTIME = re.compile(r"^import time:\s+\d+\s+\|\s+\d+\s+\|\s*(\S+)\s*$")


def imported_modules(stderr: str) -> set[str]:
    return {m.group(1) for line in stderr.splitlines() if (m := IMPORTTIME.match(line))}


@pytest.mark.parametrize("script", ["train.py", "evaluate.py", "construct.py"])
@pytest.mark.parametrize("args", [["--help"], ["--cfg", "job"]], ids=["help", "cfg-job"])
def test_entry_point_imports_no_deep_learning_library(script, args, cache_dir, tmp_path):
    r = subprocess.run([sys.executable, "-X", "importtime", str(REPO / script), *args], cwd=REPO,
                       env=cli_env(cache_dir, tmp_path / "runs"), capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    # the command did its job (so an import-free early failure cannot pass)
    if args == ["--help"]:
        assert "Powered by Hydra" in r.stdout and "== Config ==" in r.stdout, r.stdout[-2000:]
    else:
        key = "api_key_env:" if script == "construct.py" else "name_or_path:"
        assert re.search(r"^(model|llm):$", r.stdout, re.MULTILINE) and key in r.stdout, r.stdout[-2000:]
    mods = imported_modules(r.stderr)
    assert {"hydra", "omegaconf"} <= mods, "the importtime report was not read (format changed?)"
    heavy = sorted(m for m in mods if m.split(".")[0] in HEAVY)
    assert not heavy, f"python {script} {' '.join(args)} imported {heavy[:20]}"
