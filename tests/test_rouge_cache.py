"""Tokenising is most of Rouge-L's time: each distinct text is cut once per process, and a
benchmark's tokenised references can be kept on disk. Neither may change a score."""

from __future__ import annotations

import json

import pytest

from conftest import shared_data
from rolecraft.evaluation import rouge
from rolecraft.evaluation.rouge import RougeOptions, clear_memo, reference_cache_path, rouge_l, rouge_l_many


@pytest.fixture(autouse=True)
def fresh_memo():
    clear_memo()  # what a new process starts with
    yield
    clear_memo()


@pytest.fixture
def cut_calls(monkeypatch) -> list[str]:
    """Every text that reaches jieba from now on."""
    calls: list[str] = []
    real = rouge._jieba_cut

    def counting(text: str) -> list[str]:
        calls.append(text)
        return real(text)

    monkeypatch.setattr(rouge, "_jieba_cut", counting)
    return calls


def _benchmark(n: int = 150, model: int = 0) -> tuple[list[str], list[list[str]]]:
    """Real RoleBench-zh questions with 3+ answers: answer ``model`` (0 or 1) is the prediction,
    answers 2.. are the references."""
    with shared_data("rolebench-zh", "general", "test.jsonl").open(encoding="utf-8") as f:
        rows = [r for r in map(json.loads, f) if len(r["generated"]) >= 3][:n]
    assert len(rows) == n
    return [r["generated"][model] for r in rows], [r["generated"][2:] for r in rows]


def test_scores_are_the_same_without_cache_cold_and_warm(tmp_path):
    preds, refs = _benchmark()
    plain = rouge_l_many(preds, refs)
    clear_memo()
    cold = rouge_l_many(preds, refs, cache_dir=tmp_path)
    clear_memo()
    warm = rouge_l_many(preds, refs, cache_dir=tmp_path)
    assert plain == cold == warm
    assert plain == [rouge_l(p, r) for p, r in zip(preds[:20], refs[:20])] + plain[20:]
    assert 0.1 < sum(plain) / len(plain) < 0.99
    files = list((tmp_path / "rouge").iterdir())
    assert [f.name for f in files] == [reference_cache_path(tmp_path, list(dict.fromkeys(t for rs in refs for t in rs)),
                                                            RougeOptions()).name]


def test_rescoring_with_a_warm_cache_tokenises_only_the_new_predictions(tmp_path, cut_calls):
    preds, refs = _benchmark()
    ref_texts = {t for rs in refs for t in rs}
    rouge_l_many(preds, refs, cache_dir=tmp_path)
    assert ref_texts <= set(cut_calls)  # cold: the references were cut
    clear_memo()
    cut_calls.clear()
    new_preds, _ = _benchmark(model=1)  # another model's answers to the same benchmark
    assert not set(new_preds) & ref_texts
    scores = rouge_l_many(new_preds, refs, cache_dir=tmp_path)
    assert sorted(cut_calls) == sorted(set(new_preds))  # each new prediction once, no reference
    clear_memo()
    assert scores == rouge_l_many(new_preds, refs)


def test_each_distinct_text_is_cut_once_per_process(cut_calls):
    preds, refs = _benchmark(40)
    first = rouge_l_many(preds, refs)
    n = len(cut_calls)
    assert n == len(set(preds) | {t for rs in refs for t in rs})
    assert rouge_l_many(preds, refs) == first and [rouge_l(p, r) for p, r in zip(preds, refs)] == first
    assert len(cut_calls) == n


def test_the_memo_is_bounded(monkeypatch, cut_calls):
    monkeypatch.setattr(rouge, "MEMO_MAX", 8)
    for i in range(50):
        rouge.tokenize(f"第{i}句话。")
    assert len(rouge._MEMO) <= 8 and len(cut_calls) == 50
    rouge.tokenize("第49句话。")  # recent texts are still there
    assert len(cut_calls) == 50


@pytest.mark.parametrize("damage", ["garbage", "truncated", "a token edited", "a token missing", "empty"])
def test_a_damaged_cache_file_is_ignored_and_rewritten(tmp_path, cut_calls, damage):
    preds, refs = _benchmark(60)
    expected = rouge_l_many(preds, refs, cache_dir=tmp_path)
    (path,) = (tmp_path / "rouge").iterdir()
    good = path.read_bytes()
    body = json.loads(good)
    if damage == "garbage":
        path.write_bytes(b"\xff\xfe not json at all")
    elif damage == "truncated":
        path.write_bytes(good[: len(good) // 2])
    elif damage == "a token edited":  # still valid JSON of the right shape: the checksum catches it
        body["tokens"][3] = body["tokens"][3].replace(" ", "", 1) or "x"
        path.write_text(json.dumps(body, ensure_ascii=False), encoding="utf-8")
    elif damage == "a token missing":
        body["tokens"].pop()
        path.write_text(json.dumps(body, ensure_ascii=False), encoding="utf-8")
    else:
        path.write_bytes(b"")
    clear_memo()
    assert rouge_l_many(preds, refs, cache_dir=tmp_path) == expected
    assert path.read_bytes() == good  # rewritten as it was
    clear_memo()
    cut_calls.clear()
    assert rouge_l_many(preds, refs, cache_dir=tmp_path) == expected
    assert set(cut_calls) <= set(preds)  # and the rewritten file serves the references again


def test_options_that_change_tokens_get_their_own_cache_entry(tmp_path):
    preds, refs = _benchmark(30)
    seen: dict[str, list[float]] = {}
    for opts in (RougeOptions(), RougeOptions(postprocess="strip_punct"), RougeOptions(tokenizer="char"),
                 RougeOptions(tokenizer="char", postprocess="strip_punct"), RougeOptions(references="first")):
        before = set((tmp_path / "rouge").glob("*.json"))
        scores = rouge_l_many(preds, refs, opts, cache_dir=tmp_path)
        added = set((tmp_path / "rouge").glob("*.json")) - before
        assert len(added) == 1, opts
        clear_memo()
        assert rouge_l_many(preds, refs, opts, cache_dir=tmp_path) == scores == rouge_l_many(preds, refs, opts)
        seen[repr(opts)] = scores
    assert len({tuple(s) for s in seen.values()}) == len(seen)  # the options really change the scores
    before = set((tmp_path / "rouge").glob("*.json"))
    rouge_l_many(preds, refs, RougeOptions(stat="r"), cache_dir=tmp_path)  # stat does not change tokens
    assert set((tmp_path / "rouge").glob("*.json")) == before


def test_an_unwritable_cache_costs_time_never_a_score(tmp_path):
    preds, refs = _benchmark(20)
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the cache folder should be")
    assert rouge_l_many(preds, refs, cache_dir=blocker) == rouge_l_many(preds, refs)
    assert blocker.read_text() == "a file where the cache folder should be"
