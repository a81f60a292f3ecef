"""The fake OpenAI server, exercised through the real `openai` SDK over loopback HTTP."""

from __future__ import annotations

import asyncio
import json
import math
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import openai
import pytest
from openai import AsyncOpenAI, OpenAI

from rolecraft.testing.fake_openai import (Content, Delay, Drop, FakeOpenAI, Status, Vectors, default_responder,
                                           embed_text)

KEY = "sk-test-fake"
REPO = Path(__file__).resolve().parents[1]
MSGS = [{"role": "system", "content": "你是林黛玉。"}, {"role": "user", "content": "今天为何葬花？"}]


@pytest.fixture
def srv():
    with FakeOpenAI(api_key=KEY) as s:
        yield s


@pytest.fixture
def client(srv):
    c = OpenAI(base_url=srv.base_url, api_key=KEY, max_retries=0, timeout=5.0)
    yield c
    c.close()


def _cos(a, b):
    return sum(x * y for x, y in zip(a, b))


def _norm(v):
    return math.sqrt(sum(x * x for x in v))


def test_chat_round_trip_sync(srv, client):
    r = client.chat.completions.create(model="glm-judge", messages=MSGS)
    assert r.object == "chat.completion"
    assert r.model == "glm-judge"
    assert r.choices[0].message.role == "assistant"
    assert r.choices[0].finish_reason == "stop"
    assert r.choices[0].message.content.startswith("[glm-judge] ")
    assert "今天为何葬花" in r.choices[0].message.content
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens > 0
    assert srv.count("chat") == 1 and srv.count("embeddings") == 0


def test_chat_round_trip_async(srv):
    async def go():
        async with AsyncOpenAI(base_url=srv.base_url, api_key=KEY, max_retries=0, timeout=5.0) as c:
            return await c.chat.completions.create(model="m-async", messages=MSGS)

    r = asyncio.run(go())
    assert r.choices[0].message.content == default_responder({"model": "m-async", "messages": MSGS})
    assert srv.count("chat") == 1


def test_chat_is_deterministic_per_model(client):
    a1 = client.chat.completions.create(model="model-a", messages=MSGS).choices[0].message.content
    a2 = client.chat.completions.create(model="model-a", messages=MSGS).choices[0].message.content
    b = client.chat.completions.create(model="model-b", messages=MSGS).choices[0].message.content
    other = client.chat.completions.create(model="model-a", messages=MSGS[:1] + [
        {"role": "user", "content": "别的问题"}]).choices[0].message.content
    assert a1 == a2
    assert a1 != b
    assert a1 != other


def test_constructor_and_per_model_responders(client, srv):
    srv.responder = lambda req: "default:" + req["model"]
    srv.responders["judge"] = lambda req: json.dumps({"score": len(req["messages"])})
    judged = client.chat.completions.create(model="judge", messages=MSGS).choices[0].message.content
    plain = client.chat.completions.create(model="actor", messages=MSGS).choices[0].message.content
    assert json.loads(judged) == {"score": 2}
    assert plain == "default:actor"
    assert "judge" in [m.id for m in client.models.list().data]

    with FakeOpenAI(responder=lambda req: "固定回答") as s2:
        c2 = OpenAI(base_url=s2.base_url, api_key="anything", max_retries=0)
        assert c2.chat.completions.create(model="x", messages=MSGS).choices[0].message.content == "固定回答"


@pytest.mark.parametrize("encoding_format", [None, "float"])
def test_embeddings_single_and_list(client, srv, encoding_format):
    kw = {} if encoding_format is None else {"encoding_format": encoding_format}
    one = client.embeddings.create(model="emb", input="林黛玉葬花，泪湿衣襟", **kw)
    assert one.object == "list" and len(one.data) == 1 and one.data[0].index == 0
    assert len(one.data[0].embedding) == 64
    assert abs(_norm(one.data[0].embedding) - 1.0) < 1e-5
    assert one.data[0].embedding == pytest.approx(embed_text("林黛玉葬花，泪湿衣襟"), abs=1e-6)

    texts = ["林黛玉葬花，泪湿衣襟", "林黛玉葬花，泪湿了衣襟", "明天的季度税务报告截止"]
    many = client.embeddings.create(model="emb", input=texts, dimensions=32, **kw)
    vecs = [d.embedding for d in sorted(many.data, key=lambda d: d.index)]
    assert [len(v) for v in vecs] == [32, 32, 32]
    assert all(abs(_norm(v) - 1.0) < 1e-5 for v in vecs)
    similar, unrelated = _cos(vecs[0], vecs[1]), _cos(vecs[0], vecs[2])
    assert similar > 0.8
    assert unrelated < 0.5
    assert similar > unrelated
    assert srv.count("embeddings") == 2
    # the SDK asks for base64 unless told otherwise; the fake must have honoured what was asked
    assert srv.requests[-1].body["encoding_format"] == (encoding_format or "base64")


def test_429_reaches_sdk_with_retry_after(client, srv):
    srv.inject("chat", Status(429, retry_after=7))
    with pytest.raises(openai.RateLimitError) as ei:
        client.chat.completions.create(model="m", messages=MSGS)
    assert ei.value.status_code == 429
    assert ei.value.response.headers["retry-after"] == "7"
    assert ei.value.code == "rate_limit_exceeded"
    # the queue is empty again: the next request is answered normally
    assert client.chat.completions.create(model="m", messages=MSGS).choices[0].message.content
    assert srv.count("chat") == 2 and srv.pending("chat") == 0


def test_faults_are_fifo_and_500_is_internal_server_error(client, srv):
    srv.inject("chat", Status(500), Content("first"), Status(503, body="<html>oops</html>"))
    with pytest.raises(openai.InternalServerError) as ei:
        client.chat.completions.create(model="m", messages=MSGS)
    assert ei.value.status_code == 500 and ei.value.type == "server_error"
    assert client.chat.completions.create(model="m", messages=MSGS).choices[0].message.content == "first"
    with pytest.raises(openai.InternalServerError) as ei:
        client.chat.completions.create(model="m", messages=MSGS)
    assert ei.value.status_code == 503 and ei.value.response.text == "<html>oops</html>"


def test_sdk_retries_through_injected_429(srv):
    srv.inject("chat", Status(429, retry_after=0.05), Status(500, retry_after=0.05))
    c = OpenAI(base_url=srv.base_url, api_key=KEY, max_retries=2, timeout=5.0)
    r = c.chat.completions.create(model="m", messages=MSGS)
    assert r.choices[0].message.content.startswith("[m]")
    assert srv.count("chat") == 3


def test_delay_past_client_timeout(srv):
    srv.inject("chat", Delay(3.0))
    c = OpenAI(base_url=srv.base_url, api_key=KEY, max_retries=0, timeout=0.3)
    t0 = time.monotonic()
    with pytest.raises(openai.APITimeoutError):
        c.chat.completions.create(model="m", messages=MSGS)
    assert time.monotonic() - t0 < 2.0
    # the server is still usable while the delayed handler sleeps
    assert c.chat.completions.create(model="m", messages=MSGS).choices[0].message.content


def test_content_fault_for_judge_output(client, srv):
    srv.inject("chat", Content("score: ten out of 10 {not json"))
    got = client.chat.completions.create(model="judge", messages=MSGS).choices[0].message.content
    assert got == "score: ten out of 10 {not json"
    again = client.chat.completions.create(model="judge", messages=MSGS).choices[0].message.content
    assert again != got


@pytest.mark.parametrize("encoding_format", [None, "float"])
def test_nan_and_zero_vectors_reach_the_client(client, srv, encoding_format):
    kw = {} if encoding_format is None else {"encoding_format": encoding_format}
    srv.inject("embeddings", Vectors("nan"), Vectors("zero"))
    nan = client.embeddings.create(model="emb", input=["a", "b"], **kw)
    assert math.isnan(nan.data[0].embedding[0])
    assert not any(math.isnan(x) for x in nan.data[1].embedding)
    zero = client.embeddings.create(model="emb", input="a", **kw)
    assert zero.data[0].embedding == [0.0] * 64
    normal = client.embeddings.create(model="emb", input="a", **kw)
    assert abs(_norm(normal.data[0].embedding) - 1.0) < 1e-5


def test_inject_rejects_misplaced_faults(srv):
    with pytest.raises(ValueError):
        srv.inject("chat", Vectors("nan"))
    with pytest.raises(ValueError):
        srv.inject("embeddings", Content("x"))
    with pytest.raises(ValueError):
        srv.inject("models", Status(500))
    with pytest.raises(ValueError):
        Vectors("inf")
    assert srv.pending("chat") == 0 and srv.pending("embeddings") == 0


def test_401_without_the_key(srv):
    bad = OpenAI(base_url=srv.base_url, api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as ei:
        bad.chat.completions.create(model="m", messages=MSGS)
    assert ei.value.status_code == 401
    req = urllib.request.Request(srv.base_url + "/models")
    with pytest.raises(urllib.error.HTTPError) as hi:
        urllib.request.urlopen(req, timeout=5)
    assert hi.value.code == 401
    assert set(json.loads(hi.value.read())["error"]) >= {"message", "type", "code"}


def test_404_and_400_have_openai_error_shape(srv, client):
    with pytest.raises(openai.NotFoundError):
        client.get("/nope", cast_to=object)
    req = urllib.request.Request(srv.url + "/v1/nope", headers={"Authorization": f"Bearer {KEY}"})
    with pytest.raises(urllib.error.HTTPError) as hi:
        urllib.request.urlopen(req, timeout=5)
    assert hi.value.code == 404
    err = json.loads(hi.value.read())["error"]
    assert err["code"] == "unknown_url" and err["message"] and err["type"]

    req = urllib.request.Request(srv.base_url + "/chat/completions", data=b"{not json", method="POST",
                                 headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as hi:
        urllib.request.urlopen(req, timeout=5)
    assert hi.value.code == 400
    assert "message" in json.loads(hi.value.read())["error"]
    assert srv.requests[-1].body is None


def test_max_in_flight_observes_client_concurrency():
    async def burst(srv, limit):
        sem = asyncio.Semaphore(limit)
        async with AsyncOpenAI(base_url=srv.base_url, api_key="k", max_retries=0, timeout=5.0) as c:
            async def one(i):
                async with sem:
                    return await c.chat.completions.create(model="m", messages=[{"role": "user", "content": str(i)}])
            return await asyncio.gather(*(one(i) for i in range(6)))

    with FakeOpenAI(latency=0.15) as srv:
        answers = asyncio.run(burst(srv, 2))
        assert len({a.choices[0].message.content for a in answers}) == 6
        assert srv.max_in_flight("chat") == 2
        assert srv.count("chat") == 6
        srv.reset()
        srv.latency = 0.4  # generous, so six fresh connections surely overlap even on a busy machine
        asyncio.run(burst(srv, 6))
        assert srv.max_in_flight("chat") == 6
        assert srv.max_in_flight("embeddings") == 0


def test_records_hold_headers_and_bodies(client, srv):
    client.chat.completions.create(model="m", messages=MSGS, extra_headers={"X-Trace": "abc"})
    client.embeddings.create(model="emb", input="x")
    recs = srv.requests
    assert [r.endpoint for r in recs] == ["chat", "embeddings"]
    chat = recs[0]
    assert chat.method == "POST" and chat.path == "/v1/chat/completions"
    assert chat.headers["authorization"] == f"Bearer {KEY}"
    assert chat.headers["x-trace"] == "abc"
    assert chat.body["messages"] == MSGS
    assert recs[0].time <= recs[1].time


def test_close_is_prompt_and_cuts_keep_alive_connections():
    srv = FakeOpenAI().start()
    srv.inject("chat", Delay(30))
    c = OpenAI(base_url=srv.base_url, api_key="k", max_retries=0, timeout=0.2)
    with pytest.raises(openai.APITimeoutError):
        c.chat.completions.create(model="m", messages=MSGS)
    pooled = OpenAI(base_url=srv.base_url, api_key="k", max_retries=0, timeout=2.0)
    assert pooled.models.list().data  # leaves a keep-alive connection in the pool
    t0 = time.monotonic()
    srv.close()
    assert time.monotonic() - t0 < 2.0
    with pytest.raises(openai.APIConnectionError):
        pooled.models.list()
    with pytest.raises(openai.APIConnectionError):
        c.models.list()


def test_cli_prints_base_url_and_serves():
    env = dict(os.environ, PYTHONPATH=str(REPO / "src") + os.pathsep + os.environ.get("PYTHONPATH", ""))
    p = subprocess.Popen([sys.executable, "-m", "rolecraft.testing.fake_openai", "--port", "0", "--api-key", "K"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        base_url = p.stdout.readline().strip()
        assert base_url.startswith("http://127.0.0.1:") and base_url.endswith("/v1")
        c = OpenAI(base_url=base_url, api_key="K", max_retries=0, timeout=5.0)
        assert c.chat.completions.create(model="dry", messages=MSGS).choices[0].message.content.startswith("[dry]")
    finally:
        p.terminate()
        p.wait(timeout=5)


def test_drop_hangs_up_and_the_sdk_sees_a_connection_error(srv):
    srv.inject("chat", Drop())
    c = OpenAI(base_url=srv.base_url, api_key=KEY, max_retries=0, timeout=5)
    with pytest.raises(openai.APIConnectionError):
        c.chat.completions.create(model="m", messages=MSGS)
    assert c.chat.completions.create(model="m", messages=MSGS).choices[0].message.content
    assert srv.count("chat") == 2


def test_stats_route_reports_counts_for_callers_in_another_process(client, srv):
    client.chat.completions.create(model="m", messages=MSGS)
    client.embeddings.create(model="e", input=["a", "b"])
    req = urllib.request.Request(f"{srv.url}/_fake/stats", headers={"Authorization": f"Bearer {KEY}"})
    with urllib.request.urlopen(req) as r:
        stats = json.load(r)
    assert stats["requests"] == {"chat": 1, "embeddings": 1}


def test_retry_after_headers_in_every_form(srv):
    when = "Wed, 21 Oct 2037 07:28:00 GMT"
    srv.inject("chat", Status(429, retry_after=when), Status(503, retry_after_ms=1500), Status(429, retry_after=2.5))
    got = []
    for _ in range(3):
        req = urllib.request.Request(f"{srv.base_url}/chat/completions", method="POST",
                                     data=json.dumps({"model": "m", "messages": MSGS}).encode(),
                                     headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"})
        with pytest.raises(urllib.error.HTTPError) as ei:
            urllib.request.urlopen(req, timeout=5)
        got.append((ei.value.code, ei.value.headers.get("retry-after"), ei.value.headers.get("retry-after-ms")))
    assert got == [(429, when, None), (503, None, "1500"), (429, "2.5", None)]


def test_streaming_chat_is_server_sent_events(srv, client):
    """The raw wire format (data: lines, [DONE]) and the SDK reading it back into the whole answer."""
    req = urllib.request.Request(f"{srv.base_url}/chat/completions", method="POST",
                                 data=json.dumps({"model": "m", "messages": MSGS, "stream": True}).encode(),
                                 headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=5) as r:
        assert r.headers["Content-Type"].startswith("text/event-stream")
        events = [ln[len("data: "):] for ln in r.read().decode("utf-8").split("\n\n") if ln]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
    assert text == default_responder({"model": "m", "messages": MSGS})
    stream = client.chat.completions.create(model="m", messages=MSGS, stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in stream) == text


def test_cut_ends_a_stream_midway(srv, client):
    from rolecraft.testing.fake_openai import Cut

    srv.inject("chat", Cut(1))
    pieces = []
    with pytest.raises(Exception):
        for c in client.chat.completions.create(model="m", messages=MSGS, stream=True):
            pieces.append(c.choices[0].delta.content or "")
    assert "".join(pieces) == default_responder({"model": "m", "messages": MSGS})[:4]
