"""Our Rouge-L equals rouge-chinese's own scores, on real Chinese role-play text."""

from __future__ import annotations

import json

import jieba
import pytest
from rouge_chinese import Rouge

from conftest import shared_data
from rolecraft.evaluation.metrics import score_predictions
from rolecraft.evaluation.rouge import RougeOptions, rouge_l, rouge_l_words, tokenize, words


def _pairs(n: int) -> list[tuple[str, list[str]]]:
    rows = [json.loads(l) for l in shared_data("rolebench-zh", "general", "test.jsonl").open(encoding="utf-8")][:n]
    # hypothesis: another answer to the same question where there is one, else the next row's answer
    out = []
    for i, r in enumerate(rows):
        refs = r["generated"]
        hyp = refs[1] if len(refs) > 1 else rows[(i + 1) % len(rows)]["generated"][0]
        out.append((hyp, refs[:1] if len(refs) == 1 else [refs[0]] + refs[2:]))
    return out


@pytest.mark.slow
def test_equals_rouge_chinese_on_real_text():
    ref_impl = Rouge(metrics=["rouge-l"])
    pairs = _pairs(400)
    assert len(pairs) == 400
    for hyp, refs in pairs:
        theirs = max((ref_impl.get_scores(" ".join(jieba.cut(hyp)), " ".join(jieba.cut(r)))[0]["rouge-l"] for r in refs),
                     key=lambda s: s["f"])
        ours = rouge_l(hyp, refs, RougeOptions())
        assert ours == theirs["f"]  # exact, not approximate


@pytest.mark.parametrize("stat", ["p", "r", "f"])
def test_each_stat_equals_rouge_chinese(stat):
    ref_impl = Rouge(metrics=["rouge-l"])
    for hyp, refs in _pairs(60):
        h, r = " ".join(jieba.cut(hyp)), " ".join(jieba.cut(refs[0]))
        assert rouge_l_words(words(h), words(r)).get(stat) == ref_impl.get_scores(h, r)[0]["rouge-l"][stat]


def test_char_tokenizer_equals_rouge_chinese_on_chars():
    ref_impl = Rouge(metrics=["rouge-l"])
    for hyp, refs in _pairs(60):
        h, r = " ".join(c for c in hyp if not c.isspace()), " ".join(c for c in refs[0] if not c.isspace())
        assert rouge_l(hyp, refs[:1], RougeOptions(tokenizer="char")) == ref_impl.get_scores(h, r)[0]["rouge-l"]["f"]


def test_identical_text_is_rouge_chinese_one():
    assert rouge_l("今天天气很好。我们去公园吧！", ["今天天气很好。我们去公园吧！"]) == pytest.approx(1.0, abs=1e-7)
    assert rouge_l("今天天气很好。", ["今天天气很好。"]) < 1.0  # the 1e-8 in F's denominator, as rouge-chinese


def test_empty_prediction_scores_zero_and_is_counted():
    rows = [{"kind": "specific", "prediction": "  ", "references": ["我是护士。"]},
            {"kind": "specific", "prediction": "我是护士。", "references": ["我是护士。"]}]
    m = score_predictions(rows, RougeOptions())
    assert rows[0]["rouge_l"] == 0.0
    assert m["test/empty/spe"] == 1 and m["test/n/spe"] == 2
    assert m["test/rouge_l/spe"] == pytest.approx(rows[1]["rouge_l"] / 2)


def test_options_change_scores_and_are_recorded():
    hyp, refs = "我觉得吧，这事儿不赖！", ["这事不坏。", "我觉得这事儿不赖"]
    first = rouge_l(hyp, refs, RougeOptions(references="first"))
    best = rouge_l(hyp, refs, RougeOptions(references="max"))
    assert best > first
    assert rouge_l(hyp, refs, RougeOptions(postprocess="strip_punct")) != best
    m = score_predictions([{"kind": "raw", "prediction": hyp, "references": refs}], RougeOptions(stat="r"))
    assert m["test/rouge_l/options/stat"] == "r" and m["test/rouge_l/options/tokenizer"] == "jieba"
    assert set(tokenize("你好 世界", "char").split()) == {"你", "好", "世", "界"}


def test_bad_option_names_the_key():
    with pytest.raises(ValueError, match=r"rouge.stat='x'"):
        RougeOptions(stat="x")


def test_batched_word_lists_equal_one_at_a_time_on_adversarial_text():
    """words_many joins all texts for one regex pass: no rule may act across the separator."""
    import random

    from rolecraft.evaluation.rouge import words, words_many

    rng = random.Random(0)
    alphabet = "。！？?.…”’，ab \n"
    texts = ["。", "。 ", "a。b", "？？a", "。”b", "......x", "……y", "。\n\n。", " \n \n x", "?”，", "", " ", "\n"]
    texts += ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 14))) for _ in range(5000)]
    assert words_many(texts) == [words(t) for t in texts]


def test_many_pairs_at_once_equal_one_at_a_time():
    from rolecraft.evaluation.rouge import RougeOptions, rouge_l, rouge_l_many

    preds = ["我今天很开心。你呢？", "", "好吧……就这样。", "他说：“走！”然后走了。"]
    refs = [["我今天很高兴。", "你呢？我很开心"], ["空"], ["就这样吧。"], ["他说“走”，就走了。"]]
    for opts in (RougeOptions(), RougeOptions(tokenizer="char", references="first", stat="r")):
        assert rouge_l_many(preds, refs, opts) == [rouge_l(p, r, opts) for p, r in zip(preds, refs)]
