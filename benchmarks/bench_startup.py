"""Start-up cost of the two Hydra entry points: answers that need no model must come fast.

    python benchmarks/bench_startup.py [--repeats 5] [--no-first-step]

What is measured, each command run as a user types it (`python train.py ...` in a subprocess,
cwd = the repository, PYTHONPATH = src, a throw-away ROLECRAFT_RUNS):

* wall time, median of `--repeats` runs after one untimed warm-up (byte-code compiled), of
  `train.py --help`, `train.py --cfg job`, `evaluate.py --help`, `evaluate.py --cfg job`
  (target: under 3 s each);
* `python -X importtime <same command>`: whether torch, lightning, pytorch_lightning,
  transformers, peft, openai, sentence_transformers or wandb get imported on these paths (they
  must not: exit status 1 if one does), how many modules load, and the total import time (sum of
  the top-level cumulative times; importtime's own overhead included), which tells import cost
  from the rest (Hydra's `--help` spends most of its time listing config-group options, not
  importing);
* unless `--no-first-step`: one short real run, `train.py trainer.max_steps=2 eval.enabled=false
  trainer.enable_progress_bar=false hydra.run.dir=TMP`, its wall time and
  `time/launch_to_first_step_seconds` from TMP/metrics.json (measured from the first import of
  `rolecraft`, i.e. it leaves out only the interpreter's own start). Needs the embedded tiny model
  in $ROLECRAFT_CACHE (default ~/.cache/rolecraft; built on first use, which is not what this times).

Prints a Markdown table for the README.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "lightning", "pytorch_lightning", "transformers", "peft", "openai", "sentence_transformers",
         "wandb")
COMMANDS = [("train.py", "--help"), ("train.py", "--cfg", "job"), ("evaluate.py", "--help"),
            ("evaluate.py", "--cfg", "job")]
TARGET_S = 3.0
# importtime lines: "import time: self [us] | cumulative | imported package" (nesting by indentation)
LINE = re.compile(r"^import time:\s+(\d+)\s+\|\s+(\d+)\s+\|(\s*)(\S+)\s*$")


def run(cmd: list[str], env: dict, *pre: str) -> subprocess.CompletedProcess:
    r = subprocess.run([sys.executable, *pre, *cmd], cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        sys.exit(f"bench_startup: python {' '.join(pre + tuple(cmd))} failed ({r.returncode}):\n{r.stderr[-3000:]}")
    return r


def import_profile(cmd: list[str], env: dict) -> tuple[list[str], int, float]:
    """(heavy top-level packages imported, number of modules imported, total import seconds)."""
    r = run(cmd, env, "-X", "importtime")
    mods, top = [], []
    for line in r.stderr.splitlines():
        m = LINE.match(line)
        if m:
            mods.append(m.group(4))
            if len(m.group(3)) == 1:  # one space of indentation: imported by the script itself / site
                top.append((m.group(4), int(m.group(2)) / 1e6))
    heavy = sorted({m.split(".")[0] for m in mods} & set(HEAVY))
    return heavy, len(mods), sum(s for _, s in top)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--no-first-step", action="store_true", help="skip the short real training run")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="rolecraft-startup-"))
    env = dict(os.environ, ROLECRAFT_RUNS=str(tmp / "runs"), WANDB_MODE="disabled", TOKENIZERS_PARALLELISM="false")
    env.setdefault("ROLECRAFT_CACHE", os.path.expanduser("~/.cache/rolecraft"))
    env["PYTHONPATH"] = str(REPO / "src") + os.pathsep + env.get("PYTHONPATH", "")

    rows, failed = [], []
    for cmd in COMMANDS:
        run(list(cmd), env)  # warm-up: byte-code, file cache
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            run(list(cmd), env)
            times.append(time.perf_counter() - t0)
        heavy, n_mods, imp_s = import_profile(list(cmd), env)
        wall = statistics.median(times)
        if heavy or wall >= TARGET_S:
            failed.append(" ".join(cmd))
        rows.append((" ".join(cmd), wall, times, heavy, n_mods, imp_s))

    print(f"python {sys.version.split()[0]}; repeats: {args.repeats} (medians; per-run seconds in brackets)")
    for cmd, wall, times, heavy, n_mods, imp_s in rows:
        print(f"  python {cmd}: {wall:.2f} s {[round(t, 2) for t in times]}; {n_mods} modules imported in "
              f"{imp_s:.2f} s (under -X importtime); heavy: {heavy or 'none'}")

    first = None
    if not args.no_first_step:
        out = tmp / "first-step"
        t0 = time.perf_counter()
        run(["train.py", "trainer.max_steps=2", "eval.enabled=false", "trainer.enable_progress_bar=false",
             f"hydra.run.dir={out}"], env)
        wall = time.perf_counter() - t0
        metrics = json.loads((out / "metrics.json").read_text())
        first = (wall, metrics["time/launch_to_first_step_seconds"], metrics.get("train/fit_seconds"))
        print(f"  python train.py trainer.max_steps=2 eval.enabled=false: {wall:.1f} s wall, launch to first "
              f"step {first[1]:.1f} s, fit {first[2]:.1f} s")

    print()
    print(f"| start-up (median of {args.repeats}) | wall time | under {TARGET_S:.0f} s | modules imported "
          f"(import time) | torch/lightning/transformers/peft/openai/… imported |\n|---|---|---|---|---|")
    for cmd, wall, _, heavy, n_mods, imp_s in rows:
        print(f"| `python {cmd}` | {wall:.2f} s | {'yes' if wall < TARGET_S else 'NO'} | {n_mods} ({imp_s:.2f} s) "
              f"| {', '.join(heavy) if heavy else 'none'} |")
    if first:
        print(f"| `python train.py trainer.max_steps=2 eval.enabled=false` | {first[0]:.1f} s "
              f"(launch to first step {first[1]:.1f} s) | | | (yes, by design) |")
    if failed:
        sys.exit(f"bench_startup: slower than {TARGET_S:.0f} s or importing a deep-learning library: "
                 + "; ".join(failed))


if __name__ == "__main__":
    main()
