"""Rouge-L end to end (texts in, scores out, jieba included): rouge-chinese vs ours, same scores.

    python benchmarks/bench_rouge.py [--repeats 5] [--pairs 2000] [--data ../shared/data/rolebench-zh]

Pairs: the RoleGPT baseline answers (`general/rolegpt_baseline.jsonl`, `generated[0]`) joined on
(role, question) to the test references (`general/test.jsonl`, up to 5 per row in `generated`).
Every pair is one prediction against ONE reference (1:1). The join gives 1,451 rows, so pairs are
taken in reference-rank order (every row's first reference, then the second ...) until `--pairs`.
Nothing synthetic: without the shared data the script exits with an error.

Timed, median of `--repeats` runs each (jieba's dictionary is loaded once before any timing: every
process pays that, whichever scorer it runs):

* rouge-chinese: `" ".join(jieba.cut(...))` of both texts + `Rouge(metrics=["rouge-l"]).get_scores`
  per pair, as its users call it;
* ours cold: `rouge_l_many(preds, refs, cache_dir=<empty dir>)` with an empty process memo (a fresh
  process scoring a benchmark for the first time; includes writing the reference cache);
* ours warm: the same call with that reference cache on disk and an empty memo (a new process
  re-scoring the benchmark: only the predictions go through jieba);
* ours memoised: the call repeated in one process (nothing tokenised: word lists + LCS only).

Also printed: jieba alone over the distinct texts, and ours on pre-tokenised text
(`rouge_l_pairs`), to show where the time goes. F of every variant must equal rouge-chinese's
exactly, and P and R too (untimed runs); otherwise the exit status is 1.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import tempfile
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


def timed(fn, repeats: int, before=lambda: None):
    """Median seconds of fn() over repeats (``before`` runs untimed ahead of each), per-run times, last result."""
    times, out = [], None
    for _ in range(repeats):
        before()
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

    from rolecraft.evaluation.rouge import RougeOptions, clear_memo, rouge_l_many, rouge_l_pairs, tokenize

    pairs, ranks = load_pairs(args.data, args.pairs)
    preds, refs = [p for p, _ in pairs], [[r] for _, r in pairs]
    distinct = list(dict.fromkeys(preds + [r for _, r in pairs]))
    jieba.setLogLevel(logging.WARNING)
    t0 = time.perf_counter()
    jieba.initialize()
    tokenize("预热结巴词典。")  # ours shares the same jieba module: nothing loads inside a timed loop
    dict_load = time.perf_counter() - t0
    clear_memo()

    theirs = Rouge(metrics=["rouge-l"])

    def base():
        return [theirs.get_scores(" ".join(jieba.cut(p)), " ".join(jieba.cut(r)))[0]["rouge-l"] for p, r in pairs]

    work = Path(tempfile.mkdtemp(prefix="bench_rouge_"))
    runs = iter(range(10**6))

    def fresh():  # a new process, first time on this benchmark: empty memo, empty cache directory
        clear_memo()
        fresh.dir = work / f"cold{next(runs)}"

    def ours_cold():
        return rouge_l_many(preds, refs, cache_dir=fresh.dir)

    warm_dir = work / "warm"
    rouge_l_many(preds, refs, cache_dir=warm_dir)  # fills the reference cache (untimed)

    def ours_warm():
        return rouge_l_many(preds, refs, cache_dir=warm_dir)

    def ours_memo():
        return rouge_l_many(preds, refs, cache_dir=warm_dir)

    b, b_runs, b_scores = timed(base, args.repeats)
    c, c_runs, c_f = timed(ours_cold, args.repeats, before=fresh)
    w, w_runs, w_f = timed(ours_warm, args.repeats, before=clear_memo)
    ours_memo()  # everything memoised from here on
    m, m_runs, m_f = timed(ours_memo, args.repeats)

    clear_memo()
    t0 = time.perf_counter()
    tokens = {t: tokenize(t) for t in distinct}
    jieba_s = time.perf_counter() - t0
    hyps, refs_tok = [tokens[p] for p, _ in pairs], [tokens[r] for _, r in pairs]
    s, s_runs, (sp, sr, sf) = timed(lambda: rouge_l_pairs(hyps, refs_tok), args.repeats)

    b_f = [x["f"] for x in b_scores]
    diff = {"F cold": c_f, "F warm": w_f, "F memoised": m_f, "F pre-tokenised": sf.tolist(),
            "P (stat=p)": rouge_l_many(preds, refs, RougeOptions(stat="p"), cache_dir=warm_dir),
            "R (stat=r)": rouge_l_many(preds, refs, RougeOptions(stat="r"), cache_dir=warm_dir)}
    expected = {"P (stat=p)": [x["p"] for x in b_scores], "R (stat=r)": [x["r"] for x in b_scores]}
    diff = {k: max(abs(o - t) for o, t in zip(v, expected.get(k, b_f))) for k, v in diff.items()}

    n = len(pairs)
    fmt = lambda runs: [round(t, 4) for t in runs]  # noqa: E731
    print(f"pairs: {n} real RoleBench-zh general (prediction, reference) pairs, 1:1, {len(distinct)} distinct "
          f"texts (by reference rank: {', '.join(f'#{k}: {v}' for k, v in sorted(ranks.items()))})")
    print(f"repeats: {args.repeats} (medians; per-run seconds in brackets)")
    print(f"jieba dictionary load (once per process, before timing, not in any number below): {dict_load:.2f} s")
    print(f"mean Rouge-L F: {statistics.fmean(b_f):.6f}")
    for k, v in diff.items():
        print(f"max |ours - rouge-chinese| {k}: {v!r}")
    print()
    print("end to end (texts in, scores out, jieba included):")
    print(f"  rouge-chinese (jieba + get_scores per pair): {b:.3f} s  {fmt(b_runs)}")
    print(f"  ours cold (empty memo, empty disk cache):    {c:.3f} s  {fmt(c_runs)}  {b / c:.2f}x")
    print(f"  ours warm (references from disk cache):      {w:.3f} s  {fmt(w_runs)}  {b / w:.2f}x  "
          f"({c / w:.2f}x cold)")
    print(f"  ours memoised (nothing tokenised):           {m:.4f} s  {fmt(m_runs)}  {b / m:.0f}x")
    print("where the time goes (ours):")
    print(f"  jieba over the {len(distinct)} distinct texts, once: {jieba_s:.3f} s")
    print(f"  scoring pre-tokenised text (rouge_l_pairs):  {s * 1000:.1f} ms  {fmt(s_runs)}")
    print()
    print(f"| Rouge-L end to end, {n} real RoleBench-zh pairs (median of {args.repeats}) | rouge-chinese | ours "
          "| speedup | max abs. diff of F |\n|---|---|---|---|---|")
    print(f"| cold (empty memo and disk cache) | {b:.2f} s | {c:.2f} s | {b / c:.2f}× | {diff['F cold']!r} |")
    print(f"| warm (references cached on disk, new process) | {b:.2f} s | {w:.2f} s | {b / w:.2f}× "
          f"| {diff['F warm']!r} |")
    print(f"| memoised (same process, nothing tokenised) | {b:.2f} s | {m * 1000:.0f} ms | {b / m:.0f}× "
          f"| {diff['F memoised']!r} |")

    if any(v != 0.0 for v in diff.values()):
        sys.exit("bench_rouge: scores differ from rouge-chinese (see max |difference| above)")


if __name__ == "__main__":
    main()
