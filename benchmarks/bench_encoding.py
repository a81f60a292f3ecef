"""Encoding a training set (prompts + chat template + loss mask): in memory vs the encoding cache.

    rolecraft data import roleinstruct-v1 ../shared/data/roleinstruct-v1/role --out /tmp/ri-v1
    python benchmarks/bench_encoding.py --data /tmp/ri-v1 [--mix hybrid] [--model tiny] [--max-samples N]

The train split of ``data.mix`` (default hybrid: all 14 characters' specific + general samples)
with the default prompt spec, encoded three ways in one process, each with a fresh encoder and
prompt builder (no memo carried over):

* baseline: ``[encoder.encode(prompts.messages(s, ...)) for s in train]`` (training before the cache);
* first run: :func:`rolecraft.data.encoding.encode_splits` with an empty cache dir (encodes, writes
  the Arrow file);
* second run: the same call again (a new run on the same inputs: loads the file, encodes nothing).

Printed: seconds of each and the ratios against the baseline. The rows and truncation counts of
all three must be identical; otherwise exit 1.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True, help="a canonical dataset directory (e.g. imported RoleInstruct v1)")
    ap.add_argument("--mix", default="hybrid")
    ap.add_argument("--model", default="tiny", help="model preset (conf/model); default the embedded tiny model")
    ap.add_argument("--max-samples", type=int, default=None)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)

    from hydra import compose, initialize_config_dir

    from rolecraft.config import register
    from rolecraft.data import resolve_data_root, schema
    from rolecraft.data.encoding import encode_splits
    from rolecraft.data.mixing import training_samples
    from rolecraft.data.prompts import PromptSpec
    from rolecraft.data.tokenize import ChatEncoder
    from rolecraft.modeling.base import load_tokenizer, resolve_base, stop_token_ids
    from rolecraft.retrieval.index import prompt_builder

    register("train_schema")
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=[f"data.root={args.data}", f"data.mix={args.mix}", f"model={args.model}"])
    ds = schema.load(resolve_data_root(cfg.data.root))
    train = training_samples(ds, cfg.data.mix, "train", cfg.data.specific_ratio, cfg.data.train_on_raw,
                             args.max_samples, seed=cfg.seed)
    spec = PromptSpec.from_config(cfg.prompt)
    tok = load_tokenizer(resolve_base(cfg.model, cfg.paths.cache_dir), cfg.model)

    def fresh():
        enc = ChatEncoder(tok, cfg.data.max_source_length, cfg.data.max_target_length, cfg.model.chat_template,
                          end_ids=stop_token_ids(tok, cfg.model))
        prompts = prompt_builder(ds, spec, cfg.paths.cache_dir)
        return enc, (lambda s: enc.encode(prompts.messages(s, s.references[0]), s.id))

    enc0, encode0 = fresh()
    t = time.perf_counter()
    base = [encode0(s) for s in train]
    t_base = time.perf_counter() - t
    results = {}
    with tempfile.TemporaryDirectory(prefix="bench-encoding-") as cache:
        for name in ("first", "second"):
            enc, encode = fresh()
            t = time.perf_counter()
            (rows,) = encode_splits(ds, {"train": train}, encode, enc, spec, cache)
            results[name] = (time.perf_counter() - t, rows, enc.truncated)
        size = sum(f.stat().st_size for f in Path(cache).rglob("*.arrow"))
    print(f"{len(train)} train samples ({args.mix}, {len(ds.characters)} characters), model={args.model}, "
          f"tokens {sum(len(r.input_ids) for r in base)}, cache file {size / 1e6:.1f} MB")
    print(f"{'variant':<34}{'seconds':>9}{'vs baseline':>13}")
    print(f"{'baseline (list comprehension)':<34}{t_base:>9.2f}{1.0:>12.2f}x")
    for name, label in (("first", "first run (encode + write cache)"), ("second", "second run (cache hit)")):
        secs = results[name][0]
        print(f"{label:<34}{secs:>9.2f}{t_base / secs:>12.2f}x")
    print(f"second run {results['first'][0] / results['second'][0]:.1f}x faster than the first")
    ok = True
    for name, (_, rows, counts) in results.items():
        if [(list(r.input_ids), list(r.labels)) for r in rows] != [(r.input_ids, r.labels) for r in base]:
            print(f"MISMATCH: the {name} run's rows differ from the baseline", file=sys.stderr)
            ok = False
        if (counts.prompts, counts.responses) != (enc0.truncated.prompts, enc0.truncated.responses):
            print(f"MISMATCH: the {name} run's truncation counts differ from the baseline", file=sys.stderr)
            ok = False
    print(f"truncated prompts {enc0.truncated.prompts}, responses {enc0.truncated.responses} (same in all runs: {ok})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
