"""The one LLM-call layer (rolecraft.api): the SQLite store, the retry policy's Retry-After forms,
stream_chat and the shared re-ask loop, against the loopback fake server over real HTTP."""

from __future__ import annotations

import asyncio
import email.utils
import sqlite3
import time
import uuid

import pytest

from rolecraft.api.client import ApiError, ApiRejected, Endpoint
from rolecraft.api.reask import Invalid, ask_until_valid
from rolecraft.api.store import CACHE, JOURNAL, Entry, Journal, ResponseCache, Store, params_key, prompt_hash
from rolecraft.config import EndpointConfig
from rolecraft.testing.fake_openai import Content, Cut, Drop, FakeOpenAI, Status, default_responder

KEY_ENV = "ROLECRAFT_TEST_API_LAYER_KEY"
MSGS = [{"role": "system", "content": "你是罗火旺。"}, {"role": "user", "content": "今天生意怎么样？"}]


@pytest.fixture()
def key(monkeypatch) -> str:
    k = "rc-api-" + uuid.uuid4().hex
    monkeypatch.setenv(KEY_ENV, k)
    return k


@pytest.fixture()
def srv(key):
    with FakeOpenAI(api_key=key) as s:
        yield s


def endpoint(srv, cache=None, **cfg) -> tuple[Endpoint, list[float]]:
    """An Endpoint on the fake whose backoff waits are recorded instead of slept."""
    slept: list[float] = []
    conf = EndpointConfig(base_url=srv.base_url, api_key_env=KEY_ENV, backoff_base=0.01, timeout=10, **cfg)
    return Endpoint(conf, "test.endpoint", cache, sleep=slept.append), slept


# ---- the store -----------------------------------------------------------------------------


def test_store_is_wal_with_synchronous_normal_for_both_tables(tmp_path):
    for table in (CACHE, JOURNAL):
        st = Store(tmp_path / f"{table.name}.sqlite", table)
        assert st.pragma("journal_mode") == "wal"
        assert st.pragma("synchronous") == 1  # NORMAL
        st.close()


def test_cache_keys_include_the_url_and_journal_keys_do_not(tmp_path):
    from rolecraft.api.store import request_key

    cache = ResponseCache(tmp_path / "c.sqlite")
    a, b = request_key("http://a/v1", "m", MSGS, {}, None), request_key("http://b/v1", "m", MSGS, {}, None)
    assert a != b
    cache.put("chat", a, "from a")
    assert cache.get("chat", a) == "from a" and cache.get("chat", b) is None and cache.count("chat") == 1

    j = Journal(tmp_path / "j.sqlite")
    pk = params_key({"temperature": 0.7})
    j.put("gpt-4", prompt_hash(MSGS, "annotate/甲/0"), pk, Entry("答", 3, 1), stage="annotate", item="x", attempt=1)
    assert j.get("gpt-4", prompt_hash(MSGS, "annotate/甲/0"), pk) == Entry("答", 3, 1)
    # a different tag (another task with the same prompt), model or parameters is another request
    assert j.get("gpt-4", prompt_hash(MSGS, "annotate/甲/1"), pk) is None
    assert j.get("gpt-4o", prompt_hash(MSGS, "annotate/甲/0"), pk) is None
    assert j.get("gpt-4", prompt_hash(MSGS, "annotate/甲/0"), params_key({"temperature": 0.2})) is None


def test_files_written_by_the_earlier_modules_still_open(tmp_path):
    """The table layouts the old api/cache.py and construct/journal.py created, with a row each."""
    old = tmp_path / "old.sqlite"
    with sqlite3.connect(old) as db:
        db.execute("CREATE TABLE responses (ns TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, "
                   "created REAL NOT NULL, PRIMARY KEY (ns, key))")
        db.execute("INSERT INTO responses VALUES ('chat', 'k1', '\"old answer\"', 1.0)")
        db.execute("CREATE TABLE answers (model TEXT NOT NULL, prompt_hash TEXT NOT NULL, params TEXT NOT NULL, "
                   "stage TEXT, item TEXT, attempt INTEGER, content TEXT NOT NULL, prompt_tokens INTEGER, "
                   "completion_tokens INTEGER, created REAL, PRIMARY KEY (model, prompt_hash, params))")
        db.execute("INSERT INTO answers VALUES ('m', 'h', '{}', 'qa', 'qa/甲/0', 1, '[]', 5, 2, 1.0)")
    assert ResponseCache(old).get("chat", "k1") == "old answer"
    j = Journal(old)
    assert j.get("m", "h", "{}") == Entry("[]", 5, 2)
    j.put("m", "h2", "{}", Entry("new", 1, 1), stage="qa", item="qa/甲/1", attempt=1)
    assert j.count() == 2


# ---- Retry-After in its three forms, over loopback HTTP --------------------------------------


@pytest.mark.parametrize("fault, low, high", [
    (Status(429, retry_after=7), 7.0, 7.0),                       # seconds
    (Status(503, retry_after_ms=1500), 1.5, 1.5),                 # OpenAI's retry-after-ms
    (Status(429, retry_after=120), 30.0, 30.0),                   # capped by backoff_max
    (Status(429, retry_after="soon"), 0.0, 0.02),                 # unreadable: plain backoff
])
def test_retry_after_forms_set_the_wait(srv, fault, low, high):
    ep, slept = endpoint(srv, backoff_max=30.0)
    srv.inject("chat", fault)
    [res] = ep.chat_many("fake-chat", [MSGS])
    assert res.content == default_responder({"model": "fake-chat", "messages": MSGS}) and res.attempts == 2
    assert len(slept) == 1 and low <= slept[0] <= high and ep.waits == slept
    got = [r.headers for r in srv.requests if r.endpoint == "chat"]
    assert len(got) == 2


def test_retry_after_as_an_http_date(srv):
    ep, slept = endpoint(srv, backoff_max=30.0)
    srv.inject("chat", Status(429, retry_after=email.utils.formatdate(time.time() + 20, usegmt=True)),
               Status(429, retry_after=email.utils.formatdate(time.time() + 3600, usegmt=True)),
               Status(429, retry_after=email.utils.formatdate(time.time() - 3600, usegmt=True)))
    [res] = ep.chat_many("fake-chat", [MSGS])
    assert res.content is not None and res.attempts == 4
    # about 20 s from now (whole seconds in the header), then the cap, then a date in the past: no wait
    assert 15.0 <= slept[0] <= 21.0 and slept[1] == 30.0 and slept[2] == 0.0


def test_retry_after_ms_wins_over_retry_after(srv):
    ep, slept = endpoint(srv, backoff_max=30.0)
    srv.inject("chat", Status(429, retry_after=9, retry_after_ms=250))
    ep.chat_many("fake-chat", [MSGS])
    assert slept == [0.25]


def test_requests_that_retrying_cannot_fix_are_not_retried(srv):
    ep, slept = endpoint(srv)
    srv.inject("chat", Status(400, retry_after=1))
    with pytest.raises(ApiRejected, match="HTTP 400"):
        asyncio.run(_post_once(ep))
    assert slept == [] and srv.count("chat") == 1


async def _post_once(ep):
    async with ep.session() as s:
        return await s.post("/chat/completions", {"model": "fake-chat", "messages": MSGS})


def test_session_post_sends_extra_headers_and_counts_tries(srv):
    ep, _ = endpoint(srv)
    srv.inject("chat", Status(500))

    async def go():
        async with ep.session() as s:
            return await s.post("/chat/completions", {"model": "fake-chat", "messages": MSGS},
                                parse=lambda d: d["choices"][0]["message"]["content"], headers={"X-Rolecraft-Stage": "qa"})

    content, tries = asyncio.run(go())
    assert tries == 2 and content.startswith("[fake-chat]")
    assert [r.headers.get("x-rolecraft-stage") for r in srv.requests] == ["qa", "qa"]
    assert "x-rolecraft-stage" not in str(srv.requests[-1].body)  # metadata, not part of the prompt


# ---- stream_chat ---------------------------------------------------------------------------


def test_stream_chat_yields_pieces_and_fills_the_shared_cache(srv, tmp_path):
    ep, _ = endpoint(srv, cache=tmp_path / "c.sqlite")
    pieces = list(ep.stream_chat("fake-chat", MSGS, temperature=0.5, max_tokens=64))
    whole = default_responder({"model": "fake-chat", "messages": MSGS})
    assert len(pieces) > 3 and "".join(pieces) == whole
    body = srv.requests[-1].body
    assert body["stream"] is True and body["temperature"] == 0.5 and body["max_tokens"] == 64
    # the non-streamed request with the same parameters is served from the entry the stream wrote
    [res] = ep.chat_many("fake-chat", [MSGS], temperature=0.5, max_tokens=64)
    assert res.cached and res.content == whole and srv.count("chat") == 1
    # different parameters are a different request
    ep.chat_many("fake-chat", [MSGS], temperature=0.9, max_tokens=64)
    assert srv.count("chat") == 2


def test_stream_chat_serves_a_cached_answer_whole(srv, tmp_path):
    ep, _ = endpoint(srv, cache=tmp_path / "c.sqlite")
    srv.inject("chat", Content("一句早就问过的回答，比四个字长得多。"))
    [res] = ep.chat_many("fake-chat", [MSGS])
    assert not res.cached
    assert list(ep.stream_chat("fake-chat", MSGS)) == ["一句早就问过的回答，比四个字长得多。"]
    assert srv.count("chat") == 1 and ep.stats.cached == 1


def test_stream_chat_retries_before_the_first_piece(srv, tmp_path):
    ep, slept = endpoint(srv, cache=tmp_path / "c.sqlite")
    srv.inject("chat", Status(429, retry_after=2), Drop(), Status(502), Cut(0))  # Cut(0): headers, no text
    text = "".join(ep.stream_chat("fake-chat", MSGS))
    assert text == default_responder({"model": "fake-chat", "messages": MSGS})
    assert srv.count("chat") == 5 and slept[0] == 2.0 and len(slept) == 4 and ep.stats.requests == 1
    assert all(r.body["stream"] for r in srv.requests)


def test_stream_chat_broken_after_the_first_piece_raises_and_caches_nothing(srv, tmp_path):
    ep, slept = endpoint(srv, cache=tmp_path / "c.sqlite")
    srv.inject("chat", Cut(2))
    got = []
    with pytest.raises(ApiError, match="broke off a streamed answer"):
        for piece in ep.stream_chat("fake-chat", MSGS):
            got.append(piece)
    assert len(got) == 2 and slept == [] and srv.count("chat") == 1
    assert ep.cache.count("chat") == 0
    # asked again, it streams in full (nothing half-cached was served)
    assert "".join(ep.stream_chat("fake-chat", MSGS)) == default_responder({"model": "fake-chat", "messages": MSGS})


def test_stream_chat_gives_up_after_max_retries(srv):
    ep, slept = endpoint(srv, max_retries=1)
    srv.inject("chat", Status(500), Status(500))
    with pytest.raises(ApiError, match="still failing after 2 tries"):
        list(ep.stream_chat("fake-chat", MSGS))
    assert len(slept) == 1


# ---- the shared re-ask loop ----------------------------------------------------------------


def _digits(text: str) -> int:
    if not text.strip().isdigit():
        raise Invalid(f"{text!r} is not a number")
    return int(text)


def test_reask_loop_appends_the_reason_in_the_same_conversation():
    seen: list[list[dict]] = []
    answers = iter(["seven", "", "7"])

    async def ask(conv, attempt):
        seen.append(conv)
        return next(answers)

    res = asyncio.run(ask_until_valid(MSGS, ask, _digits, 3, lambda why: f"fix: {why}"))
    assert res.ok and res.value == 7 and res.attempts == 3
    assert [len(c) for c in seen] == [2, 4, 6] and seen[2][:4] == seen[1]
    assert seen[1][2] == {"role": "assistant", "content": "seven"}
    assert seen[1][3] == {"role": "user", "content": "fix: 'seven' is not a number"}
    assert [h["problem"] for h in res.history] == ["'seven' is not a number", "'' is not a number"]


def test_reask_loop_records_failure_after_max_attempts_and_stops_on_endpoint_errors():
    async def never(conv, attempt):
        return "nope"

    res = asyncio.run(ask_until_valid(MSGS, never, _digits, 2, str))
    assert not res.ok and res.attempts == 2 and res.invalid == "'nope' is not a number" and res.last_answer == "nope"

    calls = []

    async def broken(conv, attempt):
        calls.append(attempt)
        raise ApiError("endpoint down")

    res = asyncio.run(ask_until_valid(MSGS, broken, _digits, 3, str))
    assert calls == [1] and res.endpoint_error == "endpoint down" and res.invalid is None


def test_judge_and_construction_use_the_same_loop():
    import inspect

    from rolecraft.construct import engine
    from rolecraft.construct.validate import Invalid as ConstructInvalid
    from rolecraft.evaluation import judge

    assert ConstructInvalid is Invalid
    assert "ask_until_valid" in inspect.getsource(engine.Engine._solve)
    assert "ask_until_valid" in inspect.getsource(judge._ask)
    with pytest.raises(Invalid):
        judge.parse_scores('{"style": 9, "knowledge": 1}')
