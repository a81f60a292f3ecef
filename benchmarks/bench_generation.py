"""Batched generation (left padding, KV cache, stop at end of turn) against one prompt at a time.

    python benchmarks/bench_generation.py [--repeats 3] [--batch-sizes 1,8,16,32] [--max-items N]

Runs the real evaluation path in one process on the embedded tiny model (built into
$ROLECRAFT_CACHE on first use, default ~/.cache/rolecraft; the build is not timed):

* prompts: the demo test split exactly as `evaluate.py` renders it (`load_benchmark` of
  `benchmark=roleinstruct`, `Benchmark.messages(item, 6 exemplars, emotions on)`, then
  `ChatEncoder(tok, 1024, 0, chat_template).prompt_ids`), the tiny preset of `conf/model/tiny.yaml`
  (stop tokens: eos + `<|im_end|>`, via `stop_token_ids`);
* what is timed: `rolecraft.evaluation.generate.generate(model, tok, prompts, greedy, stop_ids,
  batch_size=B)` over every prompt, for each batch size, median of `--repeats` runs (one untimed
  warm-up call first; the repeats are interleaved over the batch sizes, so a burst of load from
  other work on a shared machine hits all of them alike); batch size 1 is the baseline. torch's
  thread count is left as it is unless `--threads N`. On a shared 2-core machine, 2 OpenMP threads
  slow down many-fold while another process holds a core, and one prompt at a time (many tiny
  steps) suffers most: compare the per-run seconds, and rerun when they scatter.
* new tokens: per prompt, the tokens `model.generate` produced up to and including the first stop
  token (padding after a finished row is not counted), so tokens/s is useful tokens per second.

Correctness: greedy outputs (the decoded strings `generate` returns) at batch 16 must equal those
at batch 1, else the number that differ and the first differing example are printed and the exit
status is 1. Other batch sizes are compared too and reported. Prints a Markdown table for the README.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))


def load(cache_dir: str):
    from omegaconf import OmegaConf

    from rolecraft.config import BenchmarkConfig, GenerationConfig, ModelConfig
    from rolecraft.data.tokenize import ChatEncoder
    from rolecraft.evaluation.benchmarks import load_benchmark
    from rolecraft.modeling.base import load_base, stop_token_ids

    model_cfg = OmegaConf.merge(OmegaConf.structured(ModelConfig), OmegaConf.load(REPO / "conf/model/tiny.yaml"))
    bench_cfg = OmegaConf.structured(BenchmarkConfig)  # roleinstruct, embedded:demo, test split, 6 exemplars
    gen_cfg = OmegaConf.structured(GenerationConfig(do_sample=False, max_new_tokens=64))
    model, tok, path = load_base(model_cfg, cache_dir)
    bench = load_benchmark(bench_cfg)
    encoder = ChatEncoder(tok, 1024, 0, model_cfg.chat_template)
    prompts = [encoder.prompt_ids(bench.messages(it, bench_cfg.num_exemplars, bench_cfg.emotions), it.key)
               for it in bench.items]
    return model, tok, prompts, gen_cfg, stop_token_ids(tok, model_cfg), path, encoder.truncated.prompts


class CountingGenerate:
    """Wraps model.generate: counts each row's new tokens up to and including the first stop token."""

    def __init__(self, model, stop_ids: list[int]):
        self.inner, self.stop = model.generate, set(stop_ids)
        self.tokens = self.steps = 0

    def __call__(self, input_ids, **kwargs):
        gen = self.inner(input_ids=input_ids, **kwargs)
        # forward passes after the prompt's: a batch runs until its longest row stops
        self.steps += gen.shape[1] - input_ids.shape[1]
        for row in gen[:, input_ids.shape[1]:].tolist():
            self.tokens += next((k + 1 for k, t in enumerate(row) if t in self.stop), len(row))
        return gen


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch-sizes", default="1,8,16,32", help="comma-separated; must include 1 and 16")
    ap.add_argument("--max-items", type=int, default=None, help="only the first N test prompts (quick runs)")
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: left as it is)")
    ap.add_argument("--cache", default=os.environ.get("ROLECRAFT_CACHE", "~/.cache/rolecraft"))
    args = ap.parse_args()
    sizes = [int(s) for s in args.batch_sizes.split(",")]
    if 1 not in sizes or 16 not in sizes:
        sys.exit("bench_generation: --batch-sizes must include 1 (baseline) and 16 (target)")
    sizes = [1] + [s for s in sizes if s != 1]

    import torch

    from rolecraft.evaluation.generate import generate

    if args.threads:
        torch.set_num_threads(args.threads)
    model, tok, prompts, gen_cfg, stop_ids, path, truncated = load(os.path.expanduser(args.cache))
    if args.max_items:
        prompts = prompts[: args.max_items]
    lens = [len(p) for p in prompts]
    counter = CountingGenerate(model, stop_ids)
    model.generate = counter  # instance attribute: generate() calls model.generate(...)
    generate(model, tok, prompts[:4], gen_cfg, stop_ids, batch_size=4)  # warm-up, untimed

    # repeats interleaved over batch sizes (1, 8, 16, 32, 1, 8, ...): a burst of load from other work
    # on a shared machine then lands on every batch size alike instead of on one of them
    times: dict[int, list[float]] = {b: [] for b in sizes}
    outs: dict[int, list[str]] = {}
    ntok: dict[int, int] = {}
    steps: dict[int, int] = {}
    for _ in range(args.repeats):
        for b in sizes:
            counter.tokens = counter.steps = 0
            t0 = time.perf_counter()
            outs_r = generate(model, tok, prompts, gen_cfg, stop_ids, batch_size=b)
            times[b].append(time.perf_counter() - t0)
            if b in outs and outs_r != outs[b]:
                sys.exit(f"bench_generation: batch {b} is not deterministic across repeats")
            outs[b], ntok[b], steps[b] = outs_r, counter.tokens, counter.steps
    results = {b: (statistics.median(times[b]), times[b], outs[b], ntok[b]) for b in sizes}

    base_s, _, base_out, _ = results[1]
    print(f"model: {path} (torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"attn {model.config._attn_implementation})")
    print(f"prompts: {len(prompts)} (demo test split, evaluation rendering), prompt tokens "
          f"min/median/max {min(lens)}/{int(statistics.median(lens))}/{max(lens)}, truncated {truncated}")
    print(f"greedy, max_new_tokens {gen_cfg.max_new_tokens}, stop ids {stop_ids}; repeats: {args.repeats} "
          "(medians; per-run seconds in brackets)")
    mismatch = {}
    for b, (s, runs, outs_b, ntok_b) in results.items():
        diff = [i for i, (x, y) in enumerate(zip(base_out, outs_b)) if x != y]
        mismatch[b] = diff
        print(f"  batch {b:>2}: {s:.2f} s {[round(t, 2) for t in runs]}, {ntok_b} new tokens in {steps[b]} decoding "
              f"steps, {ntok_b / s:.0f} tokens/s, speedup {base_s / s:.2f}x, outputs differing from batch 1: {len(diff)}")
    scattered = [b for b, (_, runs, _, _) in results.items() if max(runs) > 1.5 * min(runs)]
    if scattered:
        print(f"  WARNING: per-run seconds scatter by more than 1.5x at batch {scattered}: other work competed for "
              "the cores; rerun, or pass --threads 1 (steadier on a shared machine)")
    for b, diff in mismatch.items():
        if diff:
            i = diff[0]
            print(f"\nbatch {b}: {len(diff)}/{len(prompts)} outputs differ from batch 1; first, prompt #{i} "
                  f"({lens[i]} tokens):\n  batch 1:  {base_out[i]!r}\n  batch {b}: {results[b][2][i]!r}")
    sp16 = base_s / results[16][0]
    print(f"\nspeedup at batch 16: {sp16:.2f}x (target >= 5x: {'met' if sp16 >= 5 else 'NOT met'}); "
          f"outputs identical to batch 1: {'yes' if not mismatch[16] else 'NO'}")
    print()
    print(f"| generation, {len(prompts)} demo test prompts, tiny model, greedy, {gen_cfg.max_new_tokens} new "
          f"tokens max, {torch.get_num_threads()} torch thread(s) (median of {args.repeats}) | seconds | new tokens "
          "(decoding steps) | tokens/s | speedup | outputs = batch 1 |\n|---|---|---|---|---|---|")
    for b, (s, _, _, ntok_b) in results.items():
        same = "baseline" if b == 1 else ("yes" if not mismatch[b] else f"NO ({len(mismatch[b])} differ)")
        print(f"| batch_size={b}{' (one at a time)' if b == 1 else ''} | {s:.2f} s | {ntok_b} ({steps[b]}) "
              f"| {ntok_b / s:.0f} | {base_s / s:.1f}x | {same} |")
    if mismatch[16]:
        sys.exit(1)


if __name__ == "__main__":
    main()
