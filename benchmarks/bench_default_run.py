"""The foundation's recorded numbers: the default run's wall time, launch to first step, the
config-only start-up, and Rouge-L of the trained default model against the untrained one.

    python benchmarks/bench_default_run.py [--repeats 1]

Runs the real CLI in subprocesses on the embedded default, in a fresh cache and runs folder: the
first `python train.py` is cold (nothing cached: the embedded model comes from the package, the
encoded data is built), the following ones warm (the encoding cache hits). Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def timed(args: list[str], env: dict) -> tuple[float, subprocess.CompletedProcess]:
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, str(REPO / "train.py"), *args], cwd=REPO, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"train.py {' '.join(args)} failed:\n{r.stderr[-3000:]}")
    return time.perf_counter() - t0, r


def last_metrics(runs: Path) -> dict:
    newest = max(runs.rglob("metrics.json"), key=lambda p: p.stat().st_mtime)
    return json.loads(newest.read_text())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=2, help="default runs; the first is cold, the rest warm")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="rolecraft-bench-"))
    env = dict(os.environ, ROLECRAFT_CACHE=str(tmp / "cache"), ROLECRAFT_RUNS=str(tmp / "runs"),
               WANDB_MODE="disabled")
    quiet = ["trainer.enable_progress_bar=false"]

    cfg_times = [timed(["--cfg", "job"], env)[0] for _ in range(3)]
    runs = []
    for _ in range(max(2, args.repeats)):
        wall, _ = timed(quiet, env)
        runs.append((wall, last_metrics(tmp / "runs")))
    untrained_s, _ = timed([*quiet, "trainer.max_steps=0"], env)
    untrained = last_metrics(tmp / "runs")
    (cold_wall, cold), warm = runs[0], runs[1:]
    wall = statistics.median(w for w, _ in warm)
    trained = warm[-1][1]
    first_step = [m["time/launch_to_first_step_seconds"] for _, m in warm]
    rows = [
        ("`python train.py --cfg job` (median of 3)", f"{statistics.median(cfg_times):.2f} s"),
        ("`python train.py`, cold (empty cache): wall / launch to first step",
         f"{cold_wall:.1f} s / {cold['time/launch_to_first_step_seconds']:.1f} s"),
        (f"`python train.py`, warm: wall, median [min–max] / launch to first step ({len(warm)} run(s))",
         f"{wall:.1f} s [{min(w for w, _ in warm):.1f}–{max(w for w, _ in warm):.1f}] / "
         f"{min(first_step):.1f}–{max(first_step):.1f} s"),
        ("fit (120 steps) / generation (125 test items)",
         f"{trained['train/fit_seconds']:.1f} s / {trained['test/generation_seconds']:.1f} s"),
        ("training throughput", f"{trained['train/tokens'] / trained['train/fit_seconds']:.0f} tokens/s"),
        ("`trainer.max_steps=0` (evaluation only) wall time", f"{untrained_s:.1f} s"),
    ]
    if any(m["test/rouge_l/avg"] != trained["test/rouge_l/avg"] for _, m in runs):
        rows.append(("**runs disagree on test Avg**", ", ".join(f"{m['test/rouge_l/avg']:.4f}" for _, m in runs)))
    print("| what | result |\n|---|---|")
    for k, v in rows:
        print(f"| {k} | {v} |")
    print("\n| Rouge-L (jieba, F, max over refs) | RAW | CUS | SPE | Avg |\n|---|---|---|---|---|")
    for name, m in (("untrained (`trainer.max_steps=0`)", untrained), ("trained (`python train.py`)", trained)):
        print(f"| {name} | " + " | ".join(f"{m[f'test/rouge_l/{c}']:.4f}" for c in ("raw", "cus", "spe", "avg")) + " |")


if __name__ == "__main__":
    main()
