"""Batched generation (left padding, KV cache, stop at end of turn) against one prompt at a time.

    python benchmarks/bench_generation.py [--repeats 3] [--batch-sizes 8,16,32] [--max-items N] [--threads N]

Runs the real evaluation path in one process on the embedded tiny model (built into
$ROLECRAFT_CACHE on first use, default ~/.cache/rolecraft; the build is not timed):

* prompts: the demo test split exactly as `evaluate.py` renders it (`load_benchmark` of
  `benchmark=roleinstruct`, `benchmarks.chats(bench, PromptBuilder(6 exemplars, emotions on))`, then
  `ChatEncoder(tok, 1024, 0, chat_template).prompt_ids`), the tiny preset of `conf/model/tiny.yaml`
  (stop tokens: eos + `<|im_end|>`, via `stop_token_ids`);
* baseline: what a user writes by hand — `model.generate(prompt, greedy, eos=stop ids)` for one
  prompt at a time (no padding, no shared cache), decoded up to the first stop token;
* ours: `rolecraft.inference.generate.generate(model, tok, prompts, greedy, stop_ids, batch_size=B)`
  with the defaults (`share_prefix`, `drop_finished`, `continuous` on), with continuous batching
  off (each batch decoded to its end before the next starts), and with all three off (plain
  left-padded batches through `model.generate`) to show what each part brings;
* timing: median of `--repeats` runs each (one untimed warm-up call first), interleaved over all
  variants so a burst of load from other work on a shared machine hits all of them alike. torch's
  thread count is left as it is unless `--threads N` (on the shared 2-core VM one thread is steadier);
* new tokens: the baseline's, per prompt up to and including the first stop token (every variant
  must give the same answers, so the same tokens).

Correctness: every variant's answers (the decoded strings) must equal the baseline's, else the
number that differ and the first differing example are printed and the exit status is 1.
Prints a Markdown table for the README.
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
    from rolecraft.data.prompts import PromptBuilder
    from rolecraft.evaluation.benchmarks import chats, load_benchmark
    from rolecraft.modeling.base import load_base, stop_token_ids

    model_cfg = OmegaConf.merge(OmegaConf.structured(ModelConfig), OmegaConf.load(REPO / "conf/model/tiny.yaml"))
    bench_cfg = OmegaConf.structured(BenchmarkConfig)  # roleinstruct, embedded:demo, test split, 6 exemplars
    gen_cfg = OmegaConf.structured(GenerationConfig(do_sample=False, max_new_tokens=64))
    model, tok, path = load_base(model_cfg, cache_dir)
    bench = load_benchmark(bench_cfg)
    encoder = ChatEncoder(tok, 1024, 0, model_cfg.chat_template)
    builder = PromptBuilder(bench.dataset, emotions=True, num_exemplars=6)
    prompts = [encoder.prompt_ids(c, it.key) for c, it in zip(chats(bench, builder), bench.items)]
    return model, tok, prompts, gen_cfg, stop_token_ids(tok, model_cfg), path, encoder.truncated.prompts


def one_at_a_time(model, tok, prompts, gen_cfg, stop_ids) -> tuple[list[str], int]:
    """The baseline: plain `model.generate` per prompt. Answers, and new tokens up to the stop."""
    import torch

    outs, tokens = [], 0
    with torch.no_grad():
        for p in prompts:
            new = model.generate(input_ids=torch.tensor([p]), max_new_tokens=gen_cfg.max_new_tokens, do_sample=False,
                                 eos_token_id=stop_ids, pad_token_id=tok.pad_token_id, temperature=None, top_p=None,
                                 top_k=None)[0, len(p):].tolist()
            cut = next((k for k, t in enumerate(new) if t in stop_ids), len(new))
            tokens += min(cut + 1, len(new))
            outs.append(tok.decode(new[:cut], skip_special_tokens=True).strip())
    return outs, tokens


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch-sizes", default="8,16,32", help="comma-separated; must include 16 (the target)")
    ap.add_argument("--max-items", type=int, default=None, help="only the first N test prompts (quick runs)")
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: left as it is)")
    ap.add_argument("--cache", default=os.environ.get("ROLECRAFT_CACHE", "~/.cache/rolecraft"))
    args = ap.parse_args()
    sizes = [int(s) for s in args.batch_sizes.split(",")]
    if 16 not in sizes:
        sys.exit("bench_generation: --batch-sizes must include 16 (the target)")

    import torch
    from omegaconf import OmegaConf

    from rolecraft.inference.generate import generate

    if args.threads:
        torch.set_num_threads(args.threads)
    model, tok, prompts, gen_cfg, stop_ids, path, truncated = load(os.path.expanduser(args.cache))
    if args.max_items:
        prompts = prompts[: args.max_items]
    lens = [len(p) for p in prompts]
    fast = OmegaConf.merge(gen_cfg, {"share_prefix": True, "drop_finished": True, "continuous": True})
    per_batch = OmegaConf.merge(gen_cfg, {"share_prefix": True, "drop_finished": True, "continuous": False})
    plain = OmegaConf.merge(gen_cfg, {"share_prefix": False, "drop_finished": False, "continuous": False})
    variants = {"one prompt at a time, model.generate (baseline)": lambda: one_at_a_time(model, tok, prompts, gen_cfg,
                                                                                          stop_ids)[0]}
    for b in sizes:
        variants[f"ours, batch {b}, plain left padding"] = lambda b=b: generate(model, tok, prompts, plain, stop_ids,
                                                                                batch_size=b)
        variants[f"ours, batch {b}, shared prefix + finished rows dropped, per batch"] = \
            lambda b=b: generate(model, tok, prompts, per_batch, stop_ids, batch_size=b)
        variants[f"ours, batch {b} (defaults: + continuous batching)"] = \
            lambda b=b: generate(model, tok, prompts, fast, stop_ids, batch_size=b)
    generate(model, tok, prompts[:4], fast, stop_ids, batch_size=4)  # warm-up, untimed
    base_out, new_tokens = one_at_a_time(model, tok, prompts, gen_cfg, stop_ids)

    times: dict[str, list[float]] = {k: [] for k in variants}
    outs: dict[str, list[str]] = {}
    for _ in range(args.repeats):
        for name, fn in variants.items():
            t0 = time.perf_counter()
            out = fn()
            times[name].append(time.perf_counter() - t0)
            if name in outs and out != outs[name]:
                sys.exit(f"bench_generation: {name} is not deterministic across repeats")
            outs[name] = out
    base_name = next(iter(variants))
    base_s = statistics.median(times[base_name])
    print(f"model: {path} (torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"attn {model.config._attn_implementation})")
    print(f"prompts: {len(prompts)} (demo test split, evaluation rendering), prompt tokens "
          f"min/median/max {min(lens)}/{int(statistics.median(lens))}/{max(lens)}, truncated {truncated}; "
          f"{new_tokens} new tokens in all")
    print(f"greedy, max_new_tokens {gen_cfg.max_new_tokens}, stop ids {stop_ids}; repeats: {args.repeats} "
          "(medians; per-run seconds in brackets)")
    failed = []
    for name, ts in times.items():
        diff = [i for i, (x, y) in enumerate(zip(base_out, outs[name])) if x != y]
        s = statistics.median(ts)
        print(f"  {name}: {s:.2f} s {[round(t, 2) for t in ts]}, {new_tokens / s:.0f} tokens/s, "
              f"speedup {base_s / s:.2f}x, answers differing from the baseline: {len(diff)}")
        if diff:
            failed.append(name)
            i = diff[0]
            print(f"    first difference, prompt #{i}:\n      baseline: {base_out[i]!r}\n      {name}: {outs[name][i]!r}")
    if any(max(ts) > 1.5 * min(ts) for ts in times.values()):
        print("  WARNING: per-run seconds scatter by more than 1.5x: other work competed for the cores; rerun, "
              "or pass --threads 1 (steadier on a shared machine)")
    sp16 = base_s / statistics.median(times["ours, batch 16 (defaults: + continuous batching)"])
    print(f"\nspeedup at batch 16: {sp16:.2f}x (target >= 5x: {'met' if sp16 >= 5 else 'NOT met'}); "
          f"answers identical to the baseline: {'yes' if not failed else 'NO'}")
    print()
    print(f"| generation, {len(prompts)} demo test prompts, tiny model, greedy, {gen_cfg.max_new_tokens} new "
          f"tokens max, {torch.get_num_threads()} torch thread(s), median of {args.repeats} | seconds | tokens/s "
          "| speedup | answers = baseline |\n|---|---|---|---|---|")
    for name, ts in times.items():
        s = statistics.median(ts)
        same = "—" if name == base_name else ("yes" if name not in failed else "NO")
        print(f"| {name} | {s:.2f} s | {new_tokens / s:.0f} | {base_s / s:.1f}x | {same} |")
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
