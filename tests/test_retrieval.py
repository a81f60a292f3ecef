"""Retrieval: BM25 quality on the demo, dense indexes that persist/reload/rebuild (with a small
sentence-transformers model built here from a config), prompts, and bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace

import pytest

from conftest import REPO, cli_env, shared_data
from rolecraft.data import resolve_data_root, schema
from rolecraft.errors import ConfigError
from rolecraft.retrieval.index import RetrievalError, Retriever
from rolecraft.retrieval.quality import evaluate, qa_queries, reply_queries


@pytest.fixture(scope="module")
def demo():
    return schema.load(resolve_data_root("embedded:demo"))


def test_lexical_recall_on_the_demo_clears_its_floor(demo):
    queries = reply_queries(demo)
    assert len(queries) > 80
    res = evaluate(Retriever(demo, "lexical", k=10, budget=10**9), queries, [1, 5, 10])
    # measured 0.219 / 0.457 / 0.590 against random 0.027 / 0.135 / 0.270 (README)
    assert res["recall@5"] >= 0.40 and res["recall@1"] >= 5 * res["random_recall@1"]
    assert res["recall@1"] <= res["recall@5"] <= res["recall@10"] <= 1.0


def test_search_respects_k_and_the_budget(demo):
    r = Retriever(demo, "lexical", k=3, budget=60)
    ch = next(iter(demo.characters))
    got = r.search(ch, "火锅店的锅底是怎么熬的？")
    from rolecraft.retrieval.index import shown_length

    # the budget covers what the prompt shows, emotion labels included
    assert 1 <= len(got) <= 3 and sum(shown_length(p) for p in got) <= 60


def test_prompt_uses_retrieved_passages_and_emotions_off_strips_their_labels(demo):
    from rolecraft.data.prompts import PromptBuilder

    r = Retriever(demo, "lexical", k=4, budget=400, sources=("script",))
    sample = next(s for s in demo.samples if s.kind == "specific")
    on = PromptBuilder(demo, True, 6, r).messages(sample)[0]["content"]
    off = PromptBuilder(demo, False, 6, r).messages(sample)[0]["content"]
    retrieved = r.search(sample.character, sample.instruction)
    assert all(p.text in on and p.text in off for p in retrieved)
    assert "【与问题相关的台词和设定（括号内为当时的情绪）】" in on and "（" + "中立" not in off.split("【与问题相关")[1]
    labelled = [p for p in retrieved if p.emotion]
    assert labelled and all(f"（{schema.EMOTION_ZH[p.emotion]}）{p.text}" in on for p in labelled)
    assert not any(f"（{schema.EMOTION_ZH[p.emotion]}）" in off.split("【与问题相关")[1] for p in labelled)
    # the question picks the context: another question, other passages
    other = next(s for s in demo.samples if s.character == sample.character and s.instruction != sample.instruction
                 and r.search(s.character, s.instruction) != retrieved)
    assert PromptBuilder(demo, True, 6, r).messages(other)[0]["content"] != on


def test_bad_input_is_refused_clearly(demo):
    r = Retriever(demo, "lexical", k=3, budget=400)
    with pytest.raises(RetrievalError, match="unknown character '无名氏'; known: "):
        r.search("无名氏", "你好")
    with pytest.raises(ConfigError, match="smaller than one exemplar"):
        Retriever(demo, "lexical", k=3, budget=2).search(next(iter(demo.characters)), "你好")
    lonely = replace(demo, script=[u for u in demo.script if u.character != "罗火旺"])
    with pytest.raises(RetrievalError, match="nothing to retrieve"):
        Retriever(lonely, "lexical", k=3, budget=400, sources=("script",)).search("罗火旺", "你好")


def test_qa_queries_come_from_the_recorded_excerpt(demo):
    ch = "罗火旺"
    own = [u.id for u in demo.script_of(ch) if u.speaker == ch][:3]
    s = schema.Sample("qa-x", "specific", ch, "你的店开了多少年？", ["二十多年噻。"], "train",
                      {"stage": "qa", "excerpt": [own[0], "someone-else-line", own[2]]})
    ds = replace(demo, samples=[*demo.samples, s])
    qs = qa_queries(ds)
    assert len(qs) == 1 and qs[0].gold == frozenset({own[0], own[2]})


# ---- dense indexes (bge code path) -----------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_st(tmp_path_factory, demo):
    """A sentence-transformers model built from a config: a 1-layer BERT over the demo's characters."""
    import torch
    from sentence_transformers import SentenceTransformer

    try:  # sentence-transformers >= 6 moved the module classes
        from sentence_transformers.sentence_transformer import modules as models
    except ImportError:
        from sentence_transformers import models
    from transformers import BertConfig, BertModel, BertTokenizerFast

    d = tmp_path_factory.mktemp("st")
    chars = sorted({ch for u in demo.script for ch in u.text} | {ch for c in demo.characters.values()
                                                                 for v in c.profile.values() for ch in v})
    (d / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *chars]) + "\n",
                                 encoding="utf-8")
    tok = BertTokenizerFast(vocab_file=str(d / "vocab.txt"), tokenize_chinese_chars=True)
    torch.manual_seed(0)
    bert = BertModel(BertConfig(vocab_size=len(chars) + 5, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                intermediate_size=64, max_position_embeddings=512))
    bert.save_pretrained(d / "bert")
    tok.save_pretrained(d / "bert")
    st = SentenceTransformer(modules=[models.Transformer(str(d / "bert")), models.Pooling(32, "mean")], device="cpu")
    st.save(str(d / "model"))
    return d / "model"


def _bge(ds, model, cache):
    from omegaconf import OmegaConf

    from rolecraft.config import RetrievalConfig
    from rolecraft.retrieval.index import build_retriever

    return build_retriever(OmegaConf.structured(RetrievalConfig(backend="bge", model=str(model), device="cpu",
                                                                k=3, budget=400)), ds, str(cache))


def test_dense_index_builds_persists_reloads_and_rebuilds_on_change(demo, tiny_st, tmp_path):
    ch = "罗火旺"
    r = _bge(demo, tiny_st, tmp_path)
    got = r.search(ch, "锅底")
    _, idx = r.index(ch)
    assert idx.built and len(got) == 3 and (idx.dir / "vectors.npy").is_file()
    meta = json.loads((idx.dir / "meta.json").read_text(encoding="utf-8"))
    assert meta["dim"] == 32 and meta["embedder"].startswith("st:")
    # a new process (new retriever) loads it instead of embedding again, and ranks the same
    r2 = _bge(demo, tiny_st, tmp_path)
    _, idx2 = r2.index(ch)
    assert not idx2.built and idx2.dir == idx.dir and [p.id for p in r2.search(ch, "锅底")] == [p.id for p in got]
    # a changed script line is a different index
    script = [replace(u, text=u.text + "！") if u.character == ch and u.speaker == ch else u for u in demo.script]
    r3 = _bge(replace(demo, script=script), tiny_st, tmp_path)
    _, idx3 = r3.index(ch)
    assert idx3.built and idx3.dir != idx.dir
    # a stored index whose dimension no longer matches the embedder is refused with the directory
    meta["dim"] = 1024
    (idx.dir / "meta.json").write_text(json.dumps(meta), encoding="utf-8")
    with pytest.raises(RetrievalError, match="dimension 1024.*delete"):
        _bge(demo, tiny_st, tmp_path).index(ch)


@pytest.mark.slow
def test_recall_command_compares_backends(tiny_st, tmp_path):
    out = tmp_path / "recall.json"
    r = subprocess.run([sys.executable, "-m", "rolecraft.cli", "retrieval", "eval", "embedded:demo", "--backend",
                        "lexical,bge", "--model", str(tiny_st), "--cache-dir", str(tmp_path), "--json", str(out)],
                       cwd=REPO, env=cli_env(tmp_path), capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    res = json.loads(out.read_text(encoding="utf-8"))["results"]
    assert set(res) == {"lexical", "bge"} and res["lexical"]["queries"] == res["bge"]["queries"] > 80
    assert res["lexical"]["recall@5"] > res["lexical"]["random_recall@5"]


@pytest.mark.slow
def test_training_with_lexical_retrieval_end_to_end(cache_dir, tmp_path):
    r = subprocess.run([sys.executable, str(REPO / "train.py"), "retrieval=lexical", "prompt.retrieval.k=4", "trainer.max_steps=2",
                        "trainer.val_check_interval=2", "data.max_eval_samples=2", "eval.generation.max_new_tokens=8",
                        "trainer.enable_progress_bar=false", f"hydra.run.dir={tmp_path / 'run'}"],
                       cwd=REPO, env=cli_env(cache_dir), capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    preds = [json.loads(x) for x in (tmp_path / "run" / "samples.jsonl").read_text(encoding="utf-8").splitlines()]
    assert preds and all("与问题相关的台词和设定" in p["prompt"] for p in preds)


@pytest.mark.slow
def test_lexical_recall_on_roleinstruct_v1(tmp_path):
    src = shared_data("roleinstruct-v1", "role")
    r = subprocess.run([sys.executable, "-m", "rolecraft.cli", "data", "import", "roleinstruct-v1", str(src), "--out",
                        str(tmp_path / "v1")], cwd=REPO, env=cli_env(tmp_path), capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    ds = schema.load(tmp_path / "v1")
    queries = reply_queries(ds)[::50]
    res = evaluate(Retriever(ds, "lexical", k=10, budget=10**9), queries, [1, 10])
    assert res["queries"] > 200 and res["recall@10"] > 3 * res["random_recall@10"]


def test_one_local_embedder_serves_retrieval_and_rpcs(demo, tiny_st, tmp_path):
    """RPCS's local backend and retrieval's bge backend build the same class; its query instruction
    applies only to queries and its vector cache only re-embeds new texts."""
    import numpy as np
    from omegaconf import OmegaConf

    from rolecraft.api.store import ResponseCache
    from rolecraft.config import EvaluateConfig
    from rolecraft.evaluation.rpcs import make_embedder, score_rpcs
    from rolecraft.retrieval.embedders import LocalEmbedder

    r = _bge(demo, tiny_st, tmp_path / "idx")
    assert type(r.embedder) is LocalEmbedder and r.embedder.id.startswith("st:")
    cfg = OmegaConf.structured(EvaluateConfig)
    cfg.rpcs.backend, cfg.rpcs.model, cfg.rpcs.device = "local", str(tiny_st), "cpu"
    emb = make_embedder(cfg, tmp_path / "api_cache.sqlite")
    assert type(emb) is LocalEmbedder and emb.id == r.embedder.id

    texts = ["火锅店的锅底", "今天天气真好"]
    plain = np.asarray(emb(texts))
    assert np.allclose(emb.embed(texts), plain / np.linalg.norm(plain, axis=1, keepdims=True), atol=1e-6)
    assert ResponseCache(tmp_path / "api_cache.sqlite").count("embeddings") == 2
    emb.model.encode = None  # cached texts never reach the model again
    rows = [{"prediction": texts[0], "references": [texts[0]], "kind": "specific"}]
    assert score_rpcs(rows, emb)["rpcs"] == pytest.approx(1.0, abs=1e-6)
    # the BGE query instruction is a prefix on queries only
    q = LocalEmbedder(str(tiny_st), "cpu", query_instruction="为这个句子生成表示以用于检索相关文章：")
    assert not np.allclose(q.embed(["锅底"], query=True), q.embed(["锅底"]))
    assert np.allclose(q.embed(["锅底"], query=True), q.embed(["为这个句子生成表示以用于检索相关文章：锅底"]), atol=1e-6)
