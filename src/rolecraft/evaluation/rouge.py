"""Rouge-L exactly as rouge-chinese computes it (bit-identical P/R/F), in pure Python.

rouge-chinese splits a text into sentences at Chinese end punctuation, re-joins each sentence's
whitespace tokens, and takes ONE longest common subsequence over the flattened token lists (no
union-LCS): F = 2PR / (P + R + 1e-8). We reproduce that token stream; the LCS is rapidfuzz's.

End to end, jieba is ~80% of the time and LCS scoring ~3%, so no compiled code: instead each
distinct text is tokenised once per process (a bounded memo), and ``rouge_l_many(...,
cache_dir=...)`` keeps a benchmark's tokenised references on disk, so re-scoring it tokenises only
the new predictions.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import string
from dataclasses import dataclass
from itertools import chain, islice
from pathlib import Path
from typing import NamedTuple

from rapidfuzz.distance import LCSseq

from rolecraft.errors import ConfigError
from rolecraft.fileio import atomic_path

log = logging.getLogger(__name__)

TOKENIZERS = ("jieba", "char")
STATS = ("f", "r", "p")
REFERENCES = ("max", "first")
POSTPROCESS = ("none", "strip_punct")

_PUNCT = set(string.punctuation) | set("，。！？；：、“”‘’（）《》【】…—～·「」『』〈〉﹏")
_jieba = None


def _jieba_cut(text: str) -> list[str]:
    global _jieba
    if _jieba is None:
        import jieba

        jieba.setLogLevel(logging.WARNING)
        jieba.initialize()
        _jieba = jieba
    return list(_jieba.cut(text))


# (text, tokenizer, postprocess) -> tokenize()'s result, bounded by entries: ~450 bytes each for
# RoleBench-zh answers (~40 characters), so ~45 MB when full; the oldest quarter goes then.
_MEMO: dict[tuple[str, str, str], str] = {}
MEMO_MAX = 100_000


def _remember(key: tuple[str, str, str], tokens: str) -> None:
    if len(_MEMO) >= MEMO_MAX:
        for old in list(islice(_MEMO, max(1, MEMO_MAX // 4))):
            del _MEMO[old]
    _MEMO[key] = tokens


def clear_memo() -> None:
    """Forget every tokenised text (as a fresh process would)."""
    _MEMO.clear()


def tokenize(text: str, tokenizer: str = "jieba", postprocess: str = "none") -> str:
    """The space-joined token string that rouge-chinese users feed it; each distinct text is
    tokenised once per process."""
    key = (text, tokenizer, postprocess)
    tokens = _MEMO.get(key)
    if tokens is None:
        tokens = _tokenize(text, tokenizer, postprocess)
        _remember(key, tokens)
    return tokens


def _tokenize(text: str, tokenizer: str, postprocess: str) -> str:
    if tokenizer == "jieba":
        toks = _jieba_cut(text)
    elif tokenizer == "char":
        toks = [c for c in text if not c.isspace()]
    else:
        raise ConfigError(f"rouge.tokenizer={tokenizer!r}: use one of {TOKENIZERS}")
    if postprocess == "strip_punct":
        toks = [t for t in toks if t.strip() and not all(c in _PUNCT for c in t.strip())]
    elif postprocess != "none":
        raise ConfigError(f"rouge.postprocess={postprocess!r}: use one of {POSTPROCESS}")
    return " ".join(toks)


def _cut_sent(para: str) -> list[str]:
    # rouge-chinese's sentence splitter, rule for rule
    para = re.sub(r"([。！？\?])([^”’])", r"\1\n\2", para)
    para = re.sub(r"(\.{6})([^”’])", r"\1\n\2", para)
    para = re.sub(r"(\…{2})([^”’])", r"\1\n\2", para)
    para = re.sub(r"([。！？\?][”’])([^，。！？\?])", r"\1\n\2", para)
    return para.rstrip().split("\n")


def words(tokenized: str) -> list[str]:
    """rouge-chinese's flattened word list of a space-tokenized text."""
    sents = [" ".join(s.split()) for s in _cut_sent(tokenized) if len(s) > 0]
    return list(chain.from_iterable(s.split(" ") for s in sents))


_SEP = "\x00"
_RULES = [(re.compile(r"([。！？\?])([^”’])"), r"\1\n\2"), (re.compile(r"(\.{6})([^”’])"), r"\1\n\2"),
          (re.compile(r"(\…{2})([^”’])"), r"\1\n\2"), (re.compile(r"([。！？\?][”’])([^，。！？\?])"), r"\1\n\2")]


# A rule changes a word list only where it inserts its newline before a non-space character (inside
# a token); before whitespace the newline is one more separator. Every rule's match starts with one
# of these punctuation marks followed by a non-space character, so a text with no such pair, and
# without an original newline (the only way to get a whitespace-only sentence), has
# words(t) == t.split(). Space-joined jieba tokens almost never have one.
_MAYBE_GLUED = re.compile(r"[。！？?.…]\S")


def words_many(tokenized: list[str]) -> list[list[str]]:
    """``[words(t) for t in tokenized]``, fast: each distinct text once; a plain ``split()`` where
    the sentence rules cannot change the word list, and for the rest one regex pass over all of
    them joined. Every rule's first group is punctuation, so a rule can only consume the separator
    as its last character, adding a newline that rstrip() removes exactly as it removes what the
    same rule adds at the end of a lone text. Equal texts share one (read-only) list."""
    distinct = list(dict.fromkeys(tokenized))
    lists: dict[str, list[str] | None] = {t: None if "\n" in t or _MAYBE_GLUED.search(t) else t.split()
                                          for t in distinct}
    slow = [t for t, w in lists.items() if w is None]
    if slow:
        lists.update(zip(slow, _words_joined(slow)))
    return [lists[t] for t in tokenized]  # type: ignore[misc]


def _words_joined(tokenized: list[str]) -> list[list[str]]:
    if any(_SEP in t for t in tokenized):
        return [words(t) for t in tokenized]
    big = _SEP.join(tokenized)
    for rule, repl in _RULES:
        big = rule.sub(repl, big)
    # a whitespace-only sentence becomes one empty word in rouge-chinese; keep that quirk
    return [[w for s in para.rstrip().split("\n") if s for w in (s.split() or [""])] for para in big.split(_SEP)]


class Score(NamedTuple):
    # a NamedTuple: scoring thousands of pairs builds thousands of these (2x cheaper than a dataclass)
    p: float
    r: float
    f: float

    def get(self, stat: str) -> float:
        return getattr(self, stat)


ZERO = Score(0.0, 0.0, 0.0)


def _lcs(hyp: list[str], ref: list[str]) -> int:
    # rapidfuzz compares a one-character word by its code point and others by hash(), and
    # hash("") == 0 == ord("\x00"): rouge-chinese's empty word (a whitespace-only sentence) needs ids
    if "" in hyp or "" in ref:
        ids: dict[str, int] = {}
        hyp, ref = [ids.setdefault(w, len(ids)) for w in hyp], [ids.setdefault(w, len(ids)) for w in ref]
    return LCSseq.similarity(hyp, ref)


def rouge_l_words(hyp: list[str], ref: list[str]) -> Score:
    if not hyp or not ref:
        return ZERO
    lcs = _lcs(hyp, ref)
    p, r = lcs / len(hyp), lcs / len(ref)
    return Score(p, r, 2.0 * ((p * r) / (p + r + 1e-8)))


@dataclass(frozen=True)
class RougeOptions:
    tokenizer: str = "jieba"
    stat: str = "f"
    references: str = "max"
    postprocess: str = "none"

    def __post_init__(self):
        for key, val, allowed in (("tokenizer", self.tokenizer, TOKENIZERS), ("stat", self.stat, STATS),
                                  ("references", self.references, REFERENCES),
                                  ("postprocess", self.postprocess, POSTPROCESS)):
            if val not in allowed:
                raise ConfigError(f"rouge.{key}={val!r}: use one of {', '.join(allowed)}")


def is_empty(prediction: str) -> bool:
    """What rouge-chinese cannot score (it raises): nothing but whitespace."""
    return not prediction.strip()


def rouge_l(prediction: str, references: list[str], opts: RougeOptions = RougeOptions()) -> float:
    """One sample's Rouge-L: an empty prediction scores 0 (callers count those)."""
    if is_empty(prediction):
        return 0.0
    hyp = words(tokenize(prediction, opts.tokenizer, opts.postprocess))
    refs = references[:1] if opts.references == "first" else references
    return max(rouge_l_words(hyp, words(tokenize(r, opts.tokenizer, opts.postprocess))).get(opts.stat)
               for r in refs)


def _lcs_python(texts: list[str], hyp: list[int], ref: list[int]) -> tuple[list[int], list[int], list[int]]:
    idx = sorted(set(hyp) | set(ref))
    lists = dict(zip(idx, words_many([texts[i] for i in idx])))
    lcs = [_lcs(lists[h], lists[r]) if lists[h] and lists[r] else 0 for h, r in zip(hyp, ref)]
    return lcs, [len(lists[h]) for h in hyp], [len(lists[r]) for r in ref]


def _pair_scores(texts: list[str], hyp: list[int], ref: list[int]):
    """(p, r, f) float64 arrays for pairs (texts[hyp[k]], texts[ref[k]]) of space-tokenised texts."""
    import numpy as np

    lcs, nh, nr = (np.asarray(a, dtype=np.int64) for a in _lcs_python(texts, hyp, ref))
    # the same IEEE operations, in the same order, as rouge_l_words: bit-identical results
    with np.errstate(divide="ignore", invalid="ignore"):
        p, r = lcs / nh, lcs / nr
        f = 2.0 * ((p * r) / (p + r + 1e-8))
    empty = (nh == 0) | (nr == 0)
    for arr in (p, r, f):
        arr[empty] = 0.0
    return p, r, f


def rouge_l_pairs(hyps: list[str], refs: list[str]):
    """``rouge_l_words(words(h), words(r))`` for every pair of space-tokenised texts, as three
    float64 arrays (p, r, f)."""
    if len(hyps) != len(refs):
        raise ValueError(f"rouge_l_pairs: {len(hyps)} hypotheses but {len(refs)} references")
    n = len(hyps)
    return _pair_scores(list(hyps) + list(refs), range(n), range(n, 2 * n))


def rouge_l_many(predictions: list[str], references: list[list[str]], opts: RougeOptions = RougeOptions(),
                 *, cache_dir: str | os.PathLike | None = None) -> list[float]:
    """``[rouge_l(p, refs, opts) ...]`` for many samples at once (same numbers, much faster).

    Each distinct text is tokenised once per process. With ``cache_dir``, the tokenised references
    are also kept in ``<cache_dir>/rouge/<hash>.json`` (hash of the reference texts, tokenizer,
    postprocess and jieba version), so scoring the same references again tokenises only the
    predictions. An unreadable or damaged cache file is ignored and rewritten."""
    refs = [r[:1] if opts.references == "first" else r for r in references]
    for i, (p, rs) in enumerate(zip(predictions, refs)):
        if not rs and not is_empty(p):
            raise ValueError(f"rouge_l_many: sample {i} has no reference to score against")
    ref_texts = list(dict.fromkeys(t for rs in refs for t in rs))
    known = _cached_references(ref_texts, opts, cache_dir) if cache_dir is not None and ref_texts else {}
    raw = list(dict.fromkeys([p for p in predictions if not is_empty(p)] + ref_texts))
    index = {t: i for i, t in enumerate(raw)}
    hyp, ref = [], []
    for p, rs in zip(predictions, refs):
        if not is_empty(p):
            hyp.extend([index[p]] * len(rs))
            ref.extend(index[r] for r in rs)
    tokenized = [known[t] if t in known else tokenize(t, opts.tokenizer, opts.postprocess) for t in raw]
    p_, r_, f_ = _pair_scores(tokenized, hyp, ref)
    stat = {"p": p_, "r": r_, "f": f_}[opts.stat].tolist()
    out, k = [], 0
    for p, rs in zip(predictions, refs):
        if is_empty(p):
            out.append(0.0)
        else:
            out.append(max(stat[k:k + len(rs)]))
            k += len(rs)
    return out


_CACHE_FORMAT = 1


def _digest(head: list, texts: list[str]) -> str:
    h = hashlib.sha256(json.dumps(head).encode())
    for t in texts:  # length-prefixed: no two lists of texts share a byte stream
        b = t.encode("utf-8", "surrogatepass")
        h.update(len(b).to_bytes(8, "little"))
        h.update(b)
    return h.hexdigest()


def reference_cache_path(cache_dir: str | os.PathLike, texts: list[str], opts: RougeOptions) -> Path:
    """Where ``rouge_l_many(..., cache_dir=cache_dir)`` keeps the tokenised distinct reference
    ``texts`` (in first-seen order). Only what changes tokens is in the key: not ``opts.stat``."""
    version = None
    if opts.tokenizer == "jieba":
        import jieba  # importing is cheap; the dictionary loads only on the first cut

        version = jieba.__version__
    head = [_CACHE_FORMAT, opts.tokenizer, opts.postprocess, version]
    return Path(cache_dir).expanduser() / "rouge" / f"{_digest(head, texts)[:40]}.json"


def _cached_references(texts: list[str], opts: RougeOptions, cache_dir: str | os.PathLike) -> dict[str, str]:
    path = reference_cache_path(cache_dir, texts, opts)
    tokens = _read_tokens(path, len(texts))
    if tokens is None:
        tokens = [tokenize(t, opts.tokenizer, opts.postprocess) for t in texts]
        body = {"format": _CACHE_FORMAT, "tokenizer": opts.tokenizer, "postprocess": opts.postprocess,
                "n": len(texts), "check": _digest([], tokens), "tokens": tokens}
        try:
            with atomic_path(path) as tmp:
                tmp.write_bytes(json.dumps(body, ensure_ascii=False, separators=(",", ":"))
                                .encode("utf-8", "surrogatepass"))
        except OSError as exc:  # a read-only or full disk costs the next run time, never a score
            log.warning("Rouge-L reference cache %s not written: %s", path, exc)
    else:
        for t, tok in zip(texts, tokens):
            if (t, opts.tokenizer, opts.postprocess) not in _MEMO:
                _remember((t, opts.tokenizer, opts.postprocess), tok)
    return dict(zip(texts, tokens))


def _read_tokens(path: Path, n: int) -> list[str] | None:
    """The cached token strings, or None where the file is absent, unreadable or damaged."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        log.warning("Rouge-L reference cache %s unreadable (%s); tokenising again", path, exc)
        return None
    try:
        body = json.loads(data.decode("utf-8", "surrogatepass"))
    except ValueError:  # truncated, not JSON, not UTF-8
        body = None
    tokens = body.get("tokens") if isinstance(body, dict) else None
    if (not isinstance(tokens, list) or len(tokens) != n or not all(isinstance(t, str) for t in tokens)
            or body.get("check") != _digest([], tokens)):
        log.warning("Rouge-L reference cache %s is damaged; tokenising again and rewriting it", path)
        return None
    return tokens
