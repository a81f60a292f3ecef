"""The foundation's recorded numbers: the default run's wall time, launch to first step, the
config-only start-up, and Rouge-L of the trained default model against the untrained one.

    python benchmarks/bench_default_run.py [--repeats 1]

Runs the real CLI in subprocesses on the embedded default (the tiny model is built first, so the
timed runs use a warm cache; the build itself is timed separately). Prints a Markdown table.
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
    ap.add_argument("--repeats", type=int, default=1)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="rolecraft-bench-"))
    env = dict(os.environ, ROLECRAFT_CACHE=str(tmp / "cache"), ROLECRAFT_RUNS=str(tmp / "runs"),
               WANDB_MODE="disabled")
    quiet = ["trainer.enable_progress_bar=false"]

    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", "from rolecraft.modeling.tiny import ensure_embedded; import sys; "
                    "ensure_embedded('tiny', sys.argv[1])", env["ROLECRAFT_CACHE"]], env=env, check=True)
    build = time.perf_counter() - t0

    cfg_times = [timed(["--cfg", "job"], env)[0] for _ in range(3)]
    untrained_s, _ = timed([*quiet, "trainer.max_steps=0"], env)
    untrained = last_metrics(tmp / "runs")
    runs = []
    for _ in range(args.repeats):
        wall, _ = timed(quiet, env)
        runs.append((wall, last_metrics(tmp / "runs")))
    wall = statistics.median(w for w, _ in runs)
    trained = runs[-1][1]
    rows = [
        ("building the embedded tiny model (first use only)", f"{build:.1f} s"),
        ("`python train.py --cfg job` (median of 3)", f"{statistics.median(cfg_times):.2f} s"),
        (f"`python train.py` wall time, warm cache (median of {args.repeats})", f"{wall:.1f} s"),
        ("launch to first training step", f"{trained['time/launch_to_first_step_seconds']:.1f} s"),
        ("fit (120 steps) / generation (125 test items)",
         f"{trained['train/fit_seconds']:.1f} s / {trained['test/generation_seconds']:.1f} s"),
        ("training throughput", f"{trained['train/tokens'] / trained['train/fit_seconds']:.0f} tokens/s"),
        ("`trainer.max_steps=0` (evaluation only) wall time", f"{untrained_s:.1f} s"),
    ]
    print("| what | result |\n|---|---|")
    for k, v in rows:
        print(f"| {k} | {v} |")
    print("\n| Rouge-L (jieba, F, max over refs) | RAW | CUS | SPE | Avg |\n|---|---|---|---|---|")
    for name, m in (("untrained (`trainer.max_steps=0`)", untrained), ("trained (`python train.py`)", trained)):
        print(f"| {name} | " + " | ".join(f"{m[f'test/rouge_l/{c}']:.4f}" for c in ("raw", "cus", "spe", "avg")) + " |")


if __name__ == "__main__":
    main()
