"""The pure-Python Rouge-L path (word lists + rapidfuzz LCS) equals rouge-chinese on strings built
to trip its sentence-split rules, bit for bit."""

from __future__ import annotations

import random
import sys

from rapidfuzz.distance import LCSseq
from rouge_chinese import Rouge
from rouge_chinese.rouge_score import _split_into_words

from rolecraft.evaluation.rouge import RougeOptions, rouge_l, rouge_l_many, rouge_l_pairs, rouge_l_words, words, words_many

# every character any of rouge-chinese's sentence rules looks at, plus whitespace of three kinds
ALPHABET = list("。！？?.…”’，\n ab好") + ["\u3000", "\t", "  ", "......", "……"]
EDGE_CASES = ["", " ", "\n", "。", "a。b", "。”b", "。”，", "......x", ".....x", "……y", "…y", " \n \n x",
              "你好。 \n 再见", "?”a", "a\u3000\nb"]


def _random_texts(n: int, seed: int, longest: int = 40) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, longest))) for _ in range(n)]


def _their_words(text: str) -> list[str]:
    # exactly what rouge-chinese's get_scores builds before its LCS
    return _split_into_words([" ".join(s.split()) for s in Rouge().cut_sent(text) if len(s) > 0])


def test_word_lists_equal_rouge_chinese_on_adversarial_text():
    texts = EDGE_CASES + _random_texts(20000, seed=0)
    theirs = [_their_words(t) for t in texts]
    assert words_many(texts) == theirs
    assert [words(t) for t in texts[:3000]] == theirs[:3000]
    # both of words_many's branches ran: the plain split and the joined regex pass
    assert any(t.split() != w for t, w in zip(texts, theirs)) and any(t.split() == w for t, w in zip(texts, theirs))


def test_word_lists_equal_rouge_chinese_for_every_bmp_code_point_and_all_whitespace():
    texts = [f"a{chr(c)}b" for c in range(sys.maxunicode + 1) if c < 0x10000 or chr(c).isspace()]
    assert words_many(texts) == [_their_words(t) for t in texts]
    assert words_many(["a\u3000b"]) == [["a", "b"]]


def test_lcs_of_long_texts_equals_a_plain_lcs():
    rng = random.Random(1)
    vocab = [f"w{i}" for i in range(40)]
    texts = [" ".join(rng.choice(vocab) for _ in range(rng.randint(0, 700))) for _ in range(200)]
    hyps, refs = texts[0::2], texts[1::2]
    _, r, _ = rouge_l_pairs(hyps, refs)
    assert max(len(t.split()) for t in refs) > 3 * 64
    expected = [LCSseq.similarity(h.split(), ref.split()) / len(ref.split()) if h.split() and ref.split() else 0.0
                for h, ref in zip(hyps, refs)]
    assert r.tolist() == expected


def test_scores_equal_rouge_chinese_bit_for_bit():
    theirs = Rouge(metrics=["rouge-l"])
    texts = [t for t in _random_texts(3000, seed=2) if t.strip()]  # rouge-chinese raises on blank text
    hyps, refs = texts[0::2][:1000], texts[1::2][:1000]
    p, r, f = rouge_l_pairs(hyps, refs)
    ours = list(zip(p.tolist(), r.tolist(), f.tolist()))
    expected = [(s["p"], s["r"], s["f"]) for s in (theirs.get_scores(h, ref)[0]["rouge-l"] for h, ref in zip(hyps, refs))]
    assert ours == expected
    assert sum(x[2] > 0 for x in ours) > 100  # not a list of zeros


def test_pairs_equal_the_one_pair_scorer():
    texts = _random_texts(2000, seed=3) + ["我 今天 很 开心 。", "我 今天 很 高兴 。"]
    hyps, refs = texts[0::2], texts[1::2]
    p, r, f = rouge_l_pairs(hyps, refs)
    assert list(zip(p.tolist(), r.tolist(), f.tolist())) == \
        [tuple(rouge_l_words(words(h), words(ref))) for h, ref in zip(hyps, refs)]
    assert f[-1] > 0.5


def test_the_empty_word_is_not_the_nul_word():
    """rouge-chinese makes an empty word of a whitespace-only sentence; rapidfuzz hashes "" like
    "\\x00", which once made the Python path count them as equal."""
    hyp, ref = "x\x00", "x\n \ny"
    theirs = Rouge(metrics=["rouge-l"]).get_scores(hyp, ref)[0]["rouge-l"]["f"]
    opts = RougeOptions(tokenizer="char")
    assert words(ref) == ["x", "", "y"]
    assert rouge_l_words(words(hyp), words(ref)).f == theirs
    assert rouge_l(hyp, [ref], opts) == rouge_l_many([hyp], [[ref]], opts)[0]
    assert rouge_l_pairs([hyp], [ref])[2][0] == theirs
