"""The compiled Rouge-L word lists and LCS (tokenlcs.c) equal rouge-chinese's, and its Python
fallback gives the same numbers."""

from __future__ import annotations

import ctypes
import random
import shutil

import pytest
from rapidfuzz.distance import LCSseq
from rouge_chinese import Rouge

from rolecraft.evaluation import tokenlcs, tokenlcs_build
from rolecraft.evaluation.rouge import rouge_l_pairs, rouge_l_words, words

needs_compiler = pytest.mark.skipif(tokenlcs_build.compiler() is None,
                                    reason="no C compiler here: the native Rouge-L path cannot be built")

# every character any of rouge-chinese's sentence rules looks at, plus whitespace of three kinds
ALPHABET = list("。！？?.…”’，\n ab好") + ["\u3000", "\t", "  ", "......", "……"]


def _random_texts(n: int, seed: int, longest: int = 40) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, longest))) for _ in range(n)]


@needs_compiler
def test_library_is_built_where_a_compiler_exists():
    assert tokenlcs.library() is not None, ("pip install -e . builds it (hatch_build.py); after editing "
                                            "tokenlcs.c run python -m rolecraft.evaluation.tokenlcs_build")


@needs_compiler
def test_whitespace_is_pythons_for_every_code_point():
    points = [c for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF]
    texts = [f"a{chr(c)}b" for c in points]
    counts, _ = tokenlcs.token_counts(texts)
    # "a?b" splits at a sentence rule, not at whitespace
    wrong = [hex(c) for c, t, n in zip(points, texts, counts.tolist())
             if n != (len(words(t)) if chr(c) in "。！？?" else 2 if chr(c).isspace() else 1)]
    assert wrong == []


@needs_compiler
def test_word_lists_and_lcs_equal_python_on_adversarial_text():
    texts = ["", " ", "\n", "。", "a。b", "。”b", "。”，", "......x", ".....x", "……y", "…y", " \n \n x",
             "你好。 \n 再见", "?”a", "a\u3000\nb"] + _random_texts(20000, seed=0)
    counts, ruled = tokenlcs.token_counts(texts)
    assert counts.tolist() == [len(words(t)) for t in texts]
    assert 0 < ruled.sum() < len(texts)  # both the plain split and the re-enacted rules ran
    hyp, ref = list(range(0, len(texts) - 1, 2)), list(range(1, len(texts), 2))
    lcs, nh, nr = tokenlcs.pair_lcs(texts, hyp, ref)
    expected = [LCSseq.similarity(words(texts[h]), words(texts[r])) if words(texts[h]) and words(texts[r]) else 0
                for h, r in zip(hyp, ref)]
    assert lcs.tolist() == expected


@needs_compiler
def test_lcs_of_long_texts_spans_many_words_of_bits():
    rng = random.Random(1)
    vocab = [f"w{i}" for i in range(40)]
    texts = [" ".join(rng.choice(vocab) for _ in range(rng.randint(0, 700))) for _ in range(200)]
    lcs, _, nr = tokenlcs.pair_lcs(texts, list(range(0, 200, 2)), list(range(1, 200, 2)))
    assert nr.max() > 3 * 64
    assert lcs.tolist() == [LCSseq.similarity(texts[i].split(), texts[i + 1].split()) for i in range(0, 200, 2)]


@needs_compiler
def test_scores_equal_rouge_chinese_bit_for_bit():
    theirs = Rouge(metrics=["rouge-l"])
    texts = [t for t in _random_texts(3000, seed=2) if t.strip()]  # rouge-chinese raises on blank text
    hyps, refs = texts[0::2][:1000], texts[1::2][:1000]
    p, r, f = rouge_l_pairs(hyps, refs)
    for i, (h, ref) in enumerate(zip(hyps, refs)):
        s = theirs.get_scores(h, ref)[0]["rouge-l"]
        assert (p[i], r[i], f[i]) == (s["p"], s["r"], s["f"]), (h, ref)


def test_python_fallback_gives_the_same_scores(monkeypatch):
    texts = _random_texts(2000, seed=3) + ["我 今天 很 开心 。", "我 今天 很 高兴 。"]
    hyps, refs = texts[0::2], texts[1::2]
    monkeypatch.setattr(tokenlcs, "pair_lcs", lambda *a: None)  # what a machine without the library runs
    p, r, f = rouge_l_pairs(hyps, refs)
    assert [tuple(x) for x in zip(p.tolist(), r.tolist(), f.tolist())] == \
        [tuple(rouge_l_words(words(h), words(ref))) for h, ref in zip(hyps, refs)]
    assert f[-1] > 0.5
    monkeypatch.undo()
    if tokenlcs.library() is not None:
        native = rouge_l_pairs(hyps, refs)
        assert all((a == b).all() for a, b in zip(native, (p, r, f)))


@needs_compiler
def test_a_text_index_out_of_range_is_refused():
    with pytest.raises(IndexError, match="outside 0..1"):
        tokenlcs.pair_lcs(["a", "b"], [0], [2])


@needs_compiler
def test_build_compiles_a_loadable_library_named_by_its_source(tmp_path):
    src = tmp_path / "tokenlcs.c"
    shutil.copy(tokenlcs_build.SOURCE, src)
    lib = tokenlcs_build.build(src)
    assert lib.parent == tmp_path and lib == tokenlcs_build.library_path(src)
    assert hasattr(ctypes.CDLL(str(lib)), "rc_pair_lcs")
    src.write_text(src.read_text() + "\n/* edited */\n")
    assert tokenlcs_build.library_path(src) != lib  # an edited source never loads the old build
    (tmp_path / "broken.c").write_text("this is not C")
    with pytest.raises(RuntimeError, match="failed"):
        tokenlcs_build.build(tmp_path / "broken.c")
    assert not list(tmp_path.glob("*.tmp"))


def test_the_empty_word_is_not_the_nul_word_on_either_path(monkeypatch):
    """rouge-chinese makes an empty word of a whitespace-only sentence; rapidfuzz hashes "" like
    "\\x00", which once made the Python path count them as equal."""
    from rolecraft.evaluation.rouge import RougeOptions, rouge_l, rouge_l_many

    hyp, ref = "x\x00", "x\n \ny"
    theirs = Rouge(metrics=["rouge-l"]).get_scores(hyp, ref)[0]["rouge-l"]["f"]
    opts = RougeOptions(tokenizer="char")
    assert words(ref) == ["x", "", "y"]
    assert rouge_l_words(words(hyp), words(ref)).f == theirs
    assert rouge_l(hyp, [ref], opts) == rouge_l_many([hyp], [[ref]], opts)[0]
    monkeypatch.setattr(tokenlcs, "pair_lcs", lambda *a: None)
    assert rouge_l_pairs([hyp], [ref])[2][0] == theirs


@needs_compiler
def test_build_takes_a_compiler_command_with_arguments_and_reports_one_that_cannot_run(tmp_path, monkeypatch):
    src = tmp_path / "tokenlcs.c"
    shutil.copy(tokenlcs_build.SOURCE, src)
    monkeypatch.setenv("CC", f"env {tokenlcs_build.compiler()}")  # like CC="ccache gcc"
    assert tokenlcs_build.build(src).is_file()
    other = tmp_path / "other"
    other.mkdir()
    shutil.copy(tokenlcs_build.SOURCE, other / "tokenlcs.c")
    monkeypatch.setenv("CC", str(tmp_path / "no-such-cc"))
    with pytest.raises(RuntimeError, match="could not run"):
        tokenlcs_build.build(other / "tokenlcs.c")
