"""Our Rouge-L against `rouge-chinese` on real RoleBench-zh pairs: the same scores, how much faster.

    python benchmarks/bench_rouge.py [--repeats 5] [--pairs 2000] [--data ../shared/data/rolebench-zh]

Pairs: the RoleGPT baseline answers (`general/rolegpt_baseline.jsonl`, `generated[0]`) joined on
(role, question) to the test references (`general/test.jsonl`, up to 5 per row in `generated`).
Every pair is one prediction against ONE reference (1:1, no max over references). The join gives
1,451 rows, so the list is taken in reference-rank order: first every row's first reference, then
the second references, ... until `--pairs` pairs (the composition is printed). Nothing synthetic:
without the shared data the script exits with an error.

What is timed (median of `--repeats` runs each; jieba's dictionary is loaded before any timing):

* tokenisation: jieba over every prediction and reference, done ONCE and timed on its own;
* "pre-tokenised" row: on those same space-joined token strings, rouge-chinese
  `Rouge(metrics=["rouge-l"]).get_scores(hyp, ref)` vs ours `rouge_l_pairs(hyps, refs)` (both do
  the sentence split + word lists + LCS; neither tokenises). Ours runs in `tokenlcs.c` when it is
  built (the script says which path ran); the Python path (`words_many` + `rouge_l_words`, what
  runs without a C compiler) is timed as well;
* "end-to-end" row: raw text in, jieba inside the loop: jieba + rouge-chinese vs ours
  `rouge_l_many(preds, refs)`, which tokenises each distinct text once (jieba dominates both, so this
  ratio is small by construction).

`Rouge()` with default metrics would also compute Rouge-1/2; its time is printed for reference
only, the table compares Rouge-L with Rouge-L. Also printed for reference only (not like-for-like,
not in the table): ours `rouge_l_words()` alone on word lists built beforehand, i.e. LCS + P/R/F
without the sentence split and word-list building that rouge-chinese's time includes. Correctness: max |ours - theirs| over all pairs of
F, P and R (pre-tokenised) and of F (end-to-end) must be exactly 0.0, else the exit status is 1.
Prints the numbers and one Markdown table row per variant for the README.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "rolebench-zh"


def read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.open(encoding="utf-8") if line.strip()]


def load_pairs(root: Path, n: int) -> tuple[list[tuple[str, str]], dict[int, int]]:
    preds_f, test_f = root / "general" / "rolegpt_baseline.jsonl", root / "general" / "test.jsonl"
    missing = [str(p) for p in (preds_f, test_f) if not p.is_file()]
    if missing:
        sys.exit(f"bench_rouge: the real RoleBench-zh data is absent ({', '.join(missing)}); pass --data "
                 "<.../rolebench-zh>. No synthetic fallback: the benchmark only counts on real pairs.")
    preds = {(r["role"], r["question"]): r["generated"][0] for r in read(preds_f) if r.get("generated")}
    joined = [(preds[(r["role"], r["question"])], r["generated"]) for r in read(test_f)
              if (r["role"], r["question"]) in preds and r.get("generated")]
    pairs, ranks = [], {}
    for rank in range(max((len(refs) for _, refs in joined), default=0)):
        for pred, refs in joined:
            if len(pairs) == n:
                break
            # rouge-chinese raises on a whitespace-only text; there are none in this data, but never time one
            if rank < len(refs) and pred.strip() and refs[rank].strip():
                pairs.append((pred, refs[rank]))
                ranks[rank + 1] = ranks.get(rank + 1, 0) + 1
    if len(pairs) < n:
        sys.exit(f"bench_rouge: only {len(pairs)} real (prediction, reference) pairs in {root}, asked for {n}")
    return pairs, ranks


def median_time(fn, repeats: int):
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), times, out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--pairs", type=int, default=2000)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the rolebench-zh folder")
    args = ap.parse_args()

    import jieba
    from rouge_chinese import Rouge

    from rolecraft.evaluation.rouge import (
        RougeOptions,
        Score,
        rouge_l_many,
        rouge_l_pairs,
        rouge_l_words,
        tokenize,
        words,
        words_many,
    )

    from rolecraft.evaluation import tokenlcs

    path = "native tokenlcs" if tokenlcs.library() is not None else "Python fallback"
    pairs, ranks = load_pairs(args.data, args.pairs)
    jieba.setLogLevel(logging.WARNING)
    t0 = time.perf_counter()
    jieba.initialize()
    tokenize("预热结巴词典。")  # ours shares the same jieba module: now nothing loads inside a timed loop
    dict_load = time.perf_counter() - t0

    t0 = time.perf_counter()
    tok = [(" ".join(jieba.cut(p)), " ".join(jieba.cut(r))) for p, r in pairs]
    tok_s = time.perf_counter() - t0
    assert all(h == tokenize(p) and r_ == tokenize(r) for (p, r), (h, r_) in zip(pairs, tok))

    theirs, theirs_all = Rouge(metrics=["rouge-l"]), Rouge()
    opts = RougeOptions(tokenizer="jieba", stat="f", references="max")

    def base_pre():
        return [theirs.get_scores(h, r)[0]["rouge-l"] for h, r in tok]

    def base_pre_all_metrics():
        return [theirs_all.get_scores(h, r)[0]["rouge-l"] for h, r in tok]

    hyps, refs = [h for h, _ in tok], [r for _, r in tok]

    def ours_pre():
        return rouge_l_pairs(hyps, refs)  # (p, r, f) arrays; made comparable after the clock

    def ours_pre_python():
        lists = words_many([t for pair in tok for t in pair])
        return [rouge_l_words(lists[2 * i], lists[2 * i + 1]) for i in range(len(tok))]

    word_lists = [(words(h), words(r)) for h, r in tok]

    def ours_lcs_only():
        return [rouge_l_words(h, r) for h, r in word_lists]

    def base_e2e():
        return [theirs.get_scores(" ".join(jieba.cut(p)), " ".join(jieba.cut(r)))[0]["rouge-l"]["f"] for p, r in pairs]

    def ours_e2e():
        return rouge_l_many([p for p, _ in pairs], [[r] for _, r in pairs], opts)

    bp, bp_runs, b_scores = median_time(base_pre, args.repeats)
    op, op_runs, o_arrays = median_time(ours_pre, args.repeats)
    o_scores = [Score(*t) for t in zip(*(a.tolist() for a in o_arrays))]
    oy, oy_runs, oy_scores = median_time(ours_pre_python, args.repeats)
    be, be_runs, be_f = median_time(base_e2e, args.repeats)
    oe, oe_runs, oe_f = median_time(ours_e2e, args.repeats)
    ba, _, ba_scores = median_time(base_pre_all_metrics, max(1, min(args.repeats, 3)))
    ol, _, ol_scores = median_time(ours_lcs_only, args.repeats)

    diff = {s: max(abs(getattr(o, s) - b[s]) for o, b in zip(o_scores, b_scores)) for s in ("f", "p", "r")}
    diff["f (Python path)"] = max(abs(o.f - b["f"]) for o, b in zip(oy_scores, b_scores))
    diff["f (end-to-end)"] = max(abs(o - b) for o, b in zip(oe_f, be_f))
    diff["f (word lists prebuilt)"] = max(abs(o.f - b["f"]) for o, b in zip(ol_scores, b_scores))
    diff["f (Rouge() default metrics)"] = max(abs(o.f - b["f"]) for o, b in zip(o_scores, ba_scores))
    mean_f = statistics.fmean(o.f for o in o_scores)

    n = len(pairs)
    print(f"pairs: {n} real RoleBench-zh general (prediction, reference) pairs, 1:1 "
          f"(by reference rank: {', '.join(f'#{k}: {v}' for k, v in sorted(ranks.items()))})")
    print(f"repeats: {args.repeats} (medians; per-run seconds in brackets)")
    print(f"jieba dictionary load (once per process, before timing): {dict_load:.2f} s")
    print(f"jieba tokenisation, once, {2 * n} texts: {tok_s:.3f} s")
    print(f"mean Rouge-L F: {mean_f:.6f}")
    for k, v in diff.items():
        print(f"max |ours - rouge-chinese| {k}: {v!r}")
    print()
    print("pre-tokenised (same jieba tokens, scoring only):")
    print(f"  rouge-chinese Rouge(metrics=['rouge-l']): {bp:.4f} s  {[round(t, 4) for t in bp_runs]}")
    print(f"  ours rouge_l_pairs() [{path}]:{' ' * (17 - len(path))}{op:.4f} s  {[round(t, 4) for t in op_runs]}")
    print(f"  speedup: {bp / op:.1f}x  (target >= 100x: {'met' if bp / op >= 100 else 'NOT met'})")
    print(f"  ours, Python path (words_many + rouge_l_words): {oy:.4f} s = {bp / oy:.1f}x")
    print(f"  (rouge-chinese Rouge() default, also Rouge-1/2: {ba:.4f} s = {ba / op:.1f}x ours; reference only)")
    print(f"  (ours rouge_l_words() alone, word lists built beforehand: {ol * 1000:.1f} ms = {bp / ol:.0f}x; NOT "
          "like-for-like: rouge-chinese's time includes its sentence split + word lists; reference only)")
    print("end-to-end (raw text, jieba inside the loop):")
    print(f"  jieba + rouge-chinese:                    {be:.4f} s  {[round(t, 4) for t in be_runs]}")
    print(f"  ours rouge_l_many(preds, refs):           {oe:.4f} s  {[round(t, 4) for t in oe_runs]}")
    print(f"  speedup: {be / oe:.2f}x")
    print()
    print(f"| Rouge-L, {n} real RoleBench-zh pairs (median of {args.repeats}) | rouge-chinese | ours | speedup "
          "| max abs. diff of F |\n|---|---|---|---|---|")
    print(f"| pre-tokenised (jieba once up front: {tok_s:.2f} s) | {bp:.3f} s | {op * 1000:.1f} ms "
          f"| {bp / op:.0f}x | {diff['f']!r} |")
    print(f"| pre-tokenised, Python path (no C compiler) | {bp:.3f} s | {oy * 1000:.1f} ms "
          f"| {bp / oy:.0f}x | {diff['f (Python path)']!r} |")
    print(f"| end-to-end (jieba included) | {be:.2f} s | {oe:.2f} s | {be / oe:.2f}x | {diff['f (end-to-end)']!r} |")

    if any(v != 0.0 for v in diff.values()):
        sys.exit("bench_rouge: scores differ from rouge-chinese (see max |difference| above)")


if __name__ == "__main__":
    main()
