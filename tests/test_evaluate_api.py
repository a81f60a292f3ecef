"""evaluate.py against a real OpenAI-compatible server on 127.0.0.1: API answers, judge, RPCS.

The server runs in this process (rolecraft.testing.fake_openai); evaluate.py runs as a subprocess
and talks to it over loopback through the official openai SDK, faults included.
"""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path

import pytest

from conftest import read_jsonl, read_metrics, run_evaluate
from rolecraft.testing.fake_openai import Content, Delay, FakeOpenAI, Status, Vectors, embed_text

KEY_ENV = "ROLECRAFT_TEST_API_KEY"


@pytest.fixture()
def key() -> str:
    return "rc-test-" + uuid.uuid4().hex  # made at run time: no key-shaped literal in the repo


@pytest.fixture()
def server(key):
    with FakeOpenAI(api_key=key) as srv:
        yield srv


def api_args(srv, group: str, tmp_path: Path) -> list[str]:
    ep = {"answers": "answers.endpoint", "judge": "judge.endpoint", "rpcs": "rpcs.endpoint"}[group]
    return [f"{ep}.base_url={srv.base_url}", f"{ep}.api_key_env={KEY_ENV}", f"{ep}.backoff_base=0.05",
            f"paths.cache_dir={tmp_path / 'cache'}"]


def evaluate(args, cache_dir, out, key):
    return run_evaluate(args, cache_dir, out, env={KEY_ENV: key})


def write_preds(path: Path, rows: list[dict]) -> Path:
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows), encoding="utf-8")
    return path


def demo_items(n_per_kind: int = 2) -> list:
    from omegaconf import OmegaConf

    from rolecraft.config import BenchmarkConfig
    from rolecraft.evaluation.benchmarks import load_benchmark

    return load_benchmark(OmegaConf.structured(BenchmarkConfig(max_samples=n_per_kind))).items


# ---- answers from an API -------------------------------------------------------------------


@pytest.mark.slow
def test_api_answers_survive_429_500_and_timeouts_then_come_from_the_cache(server, key, cache_dir, tmp_path):
    server.inject("chat", Status(429, retry_after=0), Status(500), Delay(3.0))
    args = ["answers=openai", "answers.model=fake-chat", "answers.endpoint.timeout=1.0",
            "answers.endpoint.concurrency=2", "benchmark.max_samples=2", *api_args(server, "answers", tmp_path)]
    r = evaluate(args, cache_dir, tmp_path / "ev1", key)
    assert r.returncode == 0, r.stderr[-3000:]
    m = read_metrics(tmp_path / "ev1")
    # RAW and CUS items can share a prompt (same character, same instruction): asked once, then cached
    assert m["benchmark/evaluated"] == 6 and m["answers/api_requests"] + m["answers/api_cached"] == 6
    assert m["answers/api_retries"] == 3
    assert server.count("chat") == m["answers/api_requests"] + 3  # + 3 failed tries
    assert server.max_in_flight("chat") <= 2
    rows = read_jsonl(tmp_path / "ev1" / "samples.jsonl")
    assert all(row["prediction"].startswith("[fake-chat]") for row in rows)
    # every request carried the key from the environment, and the system prompt of the character
    chats = [q for q in server.requests if q.endpoint == "chat"]
    assert all(q.headers["authorization"] == f"Bearer {key}" for q in chats)
    assert all(q.body["messages"][0]["role"] == "system" for q in chats)
    # the key is nowhere in the run directory
    for f in (tmp_path / "ev1").rglob("*"):
        if f.is_file():
            assert key not in f.read_text(encoding="utf-8", errors="ignore"), f
    assert key not in r.stdout + r.stderr
    # a rerun pays nothing: every answer comes from the on-disk cache
    r = evaluate(args, cache_dir, tmp_path / "ev2", key)
    assert r.returncode == 0, r.stderr[-3000:]
    m2 = read_metrics(tmp_path / "ev2")
    assert server.count("chat") == m["answers/api_requests"] + 3
    assert m2["answers/api_cached"] == 6 and m2["answers/api_requests"] == 0
    assert m2["rouge_l/avg"] == m["rouge_l/avg"]


@pytest.mark.slow
def test_api_errors_that_retrying_cannot_fix_fail_fast_with_one_line(server, key, cache_dir, tmp_path):
    args = ["answers=openai", "answers.model=fake-chat", "benchmark.max_samples=1", *api_args(server, "answers", tmp_path)]
    r = run_evaluate(args, cache_dir, tmp_path / "ev", env={KEY_ENV: "wrong-key"})
    assert r.returncode == 2
    err = r.stderr.strip().splitlines()[-1]
    assert err.startswith("error: ") and "HTTP 401" in err and "wrong-key" not in r.stderr
    # no key in the environment: refused before any request
    before = server.count("chat")
    r = run_evaluate(args, cache_dir, tmp_path / "ev2", env={KEY_ENV: ""})
    assert r.returncode == 2 and f"{KEY_ENV} is not set" in r.stderr and server.count("chat") == before


@pytest.mark.slow
def test_api_retries_give_up_after_max_retries(server, key, cache_dir, tmp_path):
    server.inject("chat", *[Status(503)] * 3)
    args = ["answers=openai", "answers.model=fake-chat", "benchmark.max_samples=1", "benchmark.kinds=[specific]",
            "answers.endpoint.max_retries=2", *api_args(server, "answers", tmp_path)]
    r = evaluate(args, cache_dir, tmp_path / "ev", key)
    assert r.returncode == 2 and "still failing after 3 tries" in r.stderr and "HTTP 503" in r.stderr
    assert server.count("chat") == 3


# ---- judge ---------------------------------------------------------------------------------

CAND = re.compile(r"^\[(\d+)\]\n(.*?)(?=\n\n\[\d+\]\n|\n\nRank all)", re.S | re.M)


def prefers(marker: str):
    """A judge that ranks candidates containing ``marker`` first, then the rest in shown order."""

    def respond(req: dict) -> str:
        user = [m for m in req["messages"] if m["role"] == "user"][0]["content"]
        cands = [(int(i), text) for i, text in CAND.findall(user)]
        order = sorted(cands, key=lambda c: (marker not in c[1], c[0]))
        return json.dumps({"ranking": [i for i, _ in order], "reason": "test"})

    return respond


@pytest.fixture()
def two_models(tmp_path):
    items = demo_items(2)
    good = write_preds(tmp_path / "good.jsonl", [{"key": it.key, "prediction": f"GOOD {it.question}"} for it in items])
    weak = write_preds(tmp_path / "weak.jsonl", [{"key": it.key, "prediction": f"meh {it.question}"} for it in items])
    return items, good, weak


@pytest.mark.slow
def test_judge_ranks_models_and_reasks_malformed_verdicts(server, key, cache_dir, tmp_path, two_models):
    items, good, weak = two_models
    server.responders["fake-judge"] = prefers("GOOD")
    server.inject("chat", Content("I think the first one is better."),  # no JSON
                  Content('{"ranking": [1, 3]}'))  # names a candidate that does not exist
    args = ["answers=predictions", f"answers.path={good}", "answers.name=ours", "benchmark.max_samples=2",
            "judge=rank", "judge.model=fake-judge", f"judge.compare=['{weak}']", "judge.repeats=2",
            *api_args(server, "judge", tmp_path)]
    r = evaluate(args, cache_dir, tmp_path / "ev", key)
    assert r.returncode == 0, r.stderr[-3000:]
    m = read_metrics(tmp_path / "ev")
    n = len(items) * 2
    assert m["judge/verdicts"] == n and m["judge/failures"] == 0 and m["judge/reasked"] == 2
    assert m["judge/avg_rank/ours"] == 1.0 and m["judge/avg_rank/weak"] == 2.0
    assert server.count("chat") == n + 2
    verdicts = read_jsonl(tmp_path / "ev" / "judge.jsonl")
    reasked = [v for v in verdicts if v["attempts"] == 2]
    assert {p["problem"][:40] for v in reasked for p in v["history"]} >= {"no JSON object in the reply"}
    assert any("do not exist" in p["problem"] for v in reasked for p in v["history"])
    # the candidates were shuffled: "ours" is shown first in some verdicts and second in others
    assert {tuple(v["order"]) for v in verdicts} == {("ours", "weak"), ("weak", "ours")}
    # the re-ask told the judge what was wrong
    reask = [q for q in server.requests if q.endpoint == "chat" and len(q.body["messages"]) == 4]
    assert len(reask) == 2 and "not valid" in reask[0].body["messages"][-1]["content"]


@pytest.mark.slow
def test_judge_failure_is_recorded_and_position_bias_reported(server, key, cache_dir, tmp_path, two_models):
    items, good, weak = two_models
    # a judge that always picks whatever is shown first (pure position bias), and that cannot
    # give a valid verdict on one question however often it is asked
    # a question asked of one item only (RAW and CUS items can share an instruction)
    one = next(it for it in items if sum(hard_q.question in it.question or it.question in hard_q.question
                                         for hard_q in items) == 1)
    hard = one.question
    server.responders["fake-judge"] = lambda req: ("garbage" if hard in req["messages"][1]["content"]
                                                   else '{"ranking": [1, 2]}')
    args = ["answers=predictions", f"answers.path={good}", "answers.name=ours", "benchmark.max_samples=2",
            "judge=rank", "judge.model=fake-judge", f"judge.compare=['weak={weak}']", "judge.max_attempts=2",
            "judge.repeats=3", *api_args(server, "judge", tmp_path)]
    r = evaluate(args, cache_dir, tmp_path / "ev", key)
    assert r.returncode == 0, r.stderr[-3000:]
    m = read_metrics(tmp_path / "ev")
    assert m["judge/failures"] == 3 and m["judge/verdicts"] == len(items) * 3
    failed = [v for v in read_jsonl(tmp_path / "ev" / "judge.jsonl") if v["error"]]
    assert len(failed) == 3 and {v["key"] for v in failed} == {one.key}
    assert all(v["attempts"] == 2 and v["ranking"] is None and "malformed" in v["error"] for v in failed)
    assert m["judge/position_bias/top_share/1"] == 1.0 and m["judge/position_bias/max_deviation"] == 0.5
    assert m["judge/avg_rank/ours"] + m["judge/avg_rank/weak"] == pytest.approx(3.0)


@pytest.mark.slow
def test_pointwise_judge_scores_each_model(server, key, cache_dir, tmp_path, two_models):
    items, good, weak = two_models

    def scorer(req):
        text = req["messages"][1]["content"]  # the question and answer (a re-ask appends turns)
        return json.dumps({"style": 5 if "GOOD" in text else 2, "knowledge": 4 if "GOOD" in text else 1})

    server.responders["fake-judge"] = scorer
    server.inject("chat", Content('{"style": 9, "knowledge": 1}'))  # out of range: re-asked
    args = ["answers=predictions", f"answers.path={good}", "answers.name=ours", "benchmark.max_samples=2",
            "judge=pointwise", "judge.model=fake-judge", f"judge.compare=['weak={weak}']",
            *api_args(server, "judge", tmp_path)]
    r = evaluate(args, cache_dir, tmp_path / "ev", key)
    assert r.returncode == 0, r.stderr[-3000:]
    m = read_metrics(tmp_path / "ev")
    assert (m["judge/style/ours"], m["judge/knowledge/ours"]) == (5, 4)
    assert (m["judge/style/weak"], m["judge/knowledge/weak"]) == (2, 1)
    assert m["judge/reasked"] == 1 and m["judge/failures"] == 0


def test_rank_judge_needs_a_second_model(server, key, cache_dir, tmp_path, two_models):
    _, good, _ = two_models
    r = evaluate(["answers=predictions", f"answers.path={good}", "benchmark.max_samples=2", "judge=rank", *api_args(server, "judge", tmp_path)],
                 cache_dir, tmp_path / "ev", key)
    assert r.returncode == 2 and "judge.compare" in r.stderr and server.count("chat") == 0


# ---- RPCS ----------------------------------------------------------------------------------


@pytest.mark.slow
def test_rpcs_with_an_embeddings_endpoint(server, key, cache_dir, tmp_path):
    items = demo_items(2)
    preds = write_preds(tmp_path / "p.jsonl", [
        {"key": it.key, "prediction": it.references[0] if i % 2 == 0 else "完全无关的一句话，天气晴朗。"}
        for i, it in enumerate(items)])
    args = ["answers=predictions", f"answers.path={preds}", "benchmark.max_samples=2", "rpcs=openai",
            "rpcs.model=fake-embedding", "rpcs.batch_size=4", *api_args(server, "rpcs", tmp_path)]
    r = evaluate(args, cache_dir, tmp_path / "ev", key)
    assert r.returncode == 0, r.stderr[-3000:]
    m = read_metrics(tmp_path / "ev")
    rows = read_jsonl(tmp_path / "ev" / "samples.jsonl")
    exact = [row["rpcs"] for i, row in enumerate(rows) if i % 2 == 0]
    assert all(s == pytest.approx(1.0, abs=1e-5) for s in exact)
    # the same number the server's embedding gives, computed here independently
    row = rows[1]
    a = embed_text(row["prediction"])
    best = max(sum(x * y for x, y in zip(a, embed_text(ref))) for ref in row["references"])
    assert row["rpcs"] == pytest.approx(best, abs=1e-5) and row["rpcs"] < 0.9
    assert m["rpcs"] == pytest.approx(sum(r_["rpcs"] for r_ in rows) / len(rows))
    assert m["rpcs/model"] == "fake-embedding" and {"rpcs/raw", "rpcs/cus", "rpcs/spe"} <= set(m)
    sent = server.count("embeddings")
    assert sent == -(-len({t for r_ in rows for t in [r_["prediction"], *r_["references"]]}) // 4)
    # vectors are cached per text: a rerun embeds nothing
    r = evaluate(args, cache_dir, tmp_path / "ev2", key)
    assert r.returncode == 0 and server.count("embeddings") == sent
    assert read_metrics(tmp_path / "ev2")["rpcs"] == m["rpcs"]


@pytest.mark.parametrize("kind", ["nan", "zero"])
@pytest.mark.slow
def test_rpcs_refuses_nan_or_zero_norm_embeddings(server, key, cache_dir, tmp_path, kind):
    items = demo_items(1)
    preds = write_preds(tmp_path / "p.jsonl", [{"key": it.key, "prediction": "随便说点什么"} for it in items])
    server.inject("embeddings", Vectors(kind))
    r = evaluate(["answers=predictions", f"answers.path={preds}", "benchmark.max_samples=1", "rpcs=openai",
                  "rpcs.model=fake-embedding", *api_args(server, "rpcs", tmp_path)], cache_dir, tmp_path / "ev", key)
    assert r.returncode == 2
    assert ("NaN" if kind == "nan" else "zero norm") in r.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "ev" / "metrics.json").exists()


@pytest.mark.slow
def test_rpcs_with_a_local_sentence_transformers_model(cache_dir, tmp_path):
    """A sentence-transformers directory built from the embedded tiny model stands in for BGE."""
    st = pytest.importorskip("sentence_transformers", reason="rpcs=local needs the embed extra")
    from rolecraft.modeling.tiny import ensure_embedded

    try:  # sentence-transformers >= 6 moved the module classes
        from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer
    except ImportError:
        from sentence_transformers.models import Normalize, Pooling, Transformer

    word = Transformer(str(ensure_embedded("tiny", cache_dir)))
    dim = (word.get_embedding_dimension if hasattr(word, "get_embedding_dimension")
           else word.get_word_embedding_dimension)()
    model = st.SentenceTransformer(modules=[word, Pooling(dim, pooling_mode="mean"), Normalize()], device="cpu")
    model.save(str(tmp_path / "st-tiny"))

    items = demo_items(1)
    preds = write_preds(tmp_path / "p.jsonl", [
        {"key": it.key, "prediction": it.references[0] if i == 0 else "完全无关的一句话。"} for i, it in enumerate(items)])
    r = run_evaluate(["answers=predictions", f"answers.path={preds}", "benchmark.max_samples=1", "rpcs=local",
                      f"rpcs.model={tmp_path / 'st-tiny'}", "rpcs.device=cpu", f"paths.cache_dir={tmp_path / 'c'}"],
                     cache_dir, tmp_path / "ev")
    assert r.returncode == 0, r.stderr[-3000:]
    rows = read_jsonl(tmp_path / "ev" / "samples.jsonl")
    assert rows[0]["rpcs"] == pytest.approx(1.0, abs=1e-5)
    vecs = model.encode([rows[1]["prediction"], *rows[1]["references"]], convert_to_numpy=True)
    expected = max(float(vecs[0] @ v) for v in vecs[1:])
    assert rows[1]["rpcs"] == pytest.approx(expected, abs=1e-5) and rows[1]["rpcs"] < 0.999
