"""A real HTTP server on 127.0.0.1 that speaks enough of the OpenAI API for tests and offline dry runs.

Why a real server rather than mocking the client: the code under test talks to the official ``openai``
SDK, whose retries, timeouts, header parsing and error classes are part of what we want to exercise.
A socket on loopback lets the SDK do all of that for real, while the answers stay deterministic and
faults (429 with Retry-After, 500, slow answers, malformed judge output, NaN/zero embeddings) can be
queued per endpoint.

    with FakeOpenAI(api_key="k") as srv:
        client = OpenAI(base_url=srv.base_url, api_key="k", max_retries=0)
        srv.inject("chat", Status(429, retry_after=2), Delay(5.0), Content("not json"))
        ...
        assert srv.count("chat") == 3

Endpoints: ``POST /v1/chat/completions`` (``stream: true`` answers with server-sent events),
``POST /v1/embeddings``, ``GET /v1/models``, and
``GET /_fake/stats`` (request counts, for a caller in another process).
Only the standard library is used, so the fake works wherever the package imports.

NaN in embeddings (checked against openai 3.57 / httpx2): when the caller does not pass
``encoding_format``, the SDK asks for ``"base64"`` and decodes little-endian float32 itself, so the
server honours ``encoding_format`` and a float32 NaN in the base64 payload comes back as
``float('nan')``. With ``encoding_format="float"`` the vector travels as JSON; Python's ``json.dumps``
writes the bare token ``NaN`` (not valid strict JSON), and the SDK reads bodies with the standard
``json.loads`` (through ``httpx2.Response.json``), which accepts it, and the response model does not
reject it either (not even with ``_strict_response_validation=True``: pydantic allows NaN floats);
so both formats deliver a real NaN float to the client. Other clients with strict JSON parsers
would reject the float-format NaN body; that is the real API's problem too, not one we hide.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import math
import re
import socket
import struct
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

__all__ = [
    "Content",
    "Cut",
    "Delay",
    "Drop",
    "FakeOpenAI",
    "RequestRecord",
    "Status",
    "Vectors",
    "default_responder",
    "rubric_responder",
    "embed_text",
    "main",
]

Responder = Callable[[dict], str]

# path -> (endpoint name, HTTP method it accepts)
_ROUTES = {
    "/v1/chat/completions": ("chat", "POST"),
    "/v1/embeddings": ("embeddings", "POST"),
    "/v1/models": ("models", "GET"),
    "/_fake/stats": ("stats", "GET"),  # request counts, for callers in another process
}
_FAULTABLE = ("chat", "embeddings")


# ----------------------------------------------------------------------------------------- faults


@dataclass(frozen=True)
class Status:
    """Answer with HTTP ``code`` instead of a result.

    ``retry_after`` becomes a ``Retry-After`` header: a number is seconds, a str is sent verbatim
    (e.g. an HTTP-date, ``email.utils.formatdate(t, usegmt=True)``). ``retry_after_ms`` becomes
    OpenAI's ``retry-after-ms`` header. ``body`` replaces the default OpenAI-shaped error: a
    dict/list is sent as JSON, a str verbatim (to test malformed bodies).
    """

    code: int
    retry_after: float | str | None = None
    body: dict | list | str | None = None
    retry_after_ms: float | None = None


@dataclass(frozen=True)
class Delay:
    """Wait ``seconds`` before answering normally, to push a client past its timeout."""

    seconds: float


@dataclass(frozen=True)
class Drop:
    """Close the connection without answering (a dropped connection: the client sees it fail)."""


@dataclass(frozen=True)
class Cut:
    """A streamed chat answer stops after ``pieces`` content pieces: the connection closes mid-body."""

    pieces: int


@dataclass(frozen=True)
class Content:
    """Answer a chat request normally but with this assistant content (e.g. malformed judge output)."""

    text: str


@dataclass(frozen=True)
class Vectors:
    """Corrupt the first embedding of the answer: ``"nan"`` puts a NaN in it, ``"zero"`` zeroes it."""

    kind: str

    def __post_init__(self) -> None:
        if self.kind not in ("nan", "zero"):
            raise ValueError(f"Vectors kind must be 'nan' or 'zero', not {self.kind!r}")


_FAULT_TYPES = (Status, Delay, Drop, Content, Vectors, Cut)
STREAM_PIECE = 4  # characters per streamed piece


@dataclass(frozen=True)
class RequestRecord:
    """One request as the server saw it. ``headers`` has lower-cased names; ``body`` is the parsed
    JSON (None when absent or unparsable); ``endpoint`` is "chat", "embeddings", "models" or None."""

    endpoint: str | None
    method: str
    path: str
    headers: dict[str, str]
    body: Any
    time: float


# ------------------------------------------------------------------------ deterministic answers


def _text_of(content: Any) -> str:
    """The text of a message's ``content``: a plain string, or the text parts of a list of parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return ""


def default_responder(request: dict) -> str:
    """A reply that is a pure function of (model, messages), so tests can predict and compare it.

    Shape: ``"[model] 收到（digest）：<last user message, whitespace-collapsed, cut at 40 chars>"``,
    where the digest covers the model and the whole conversation: different models or histories give
    different answers, the same request always the same one.
    """
    model = str(request.get("model", ""))
    messages = request.get("messages") or []
    said = ""
    for m in reversed(messages):
        if isinstance(m, dict) and m.get("role") == "user":
            said = " ".join(_text_of(m.get("content")).split())
            break
    if len(said) > 40:
        said = said[:40] + "…"
    key = json.dumps([model, messages], sort_keys=True, ensure_ascii=False, default=str)
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:6]
    return f"[{model}] 收到（{digest}）：{said}"


RUBRIC_DIMENSION = re.compile(r"^Dimension: (\w+)", re.M)


def rubric_responder(scores: dict[str, int | Callable[[str], int]] | None = None,
                     malformed: tuple[str, ...] = ()) -> Responder:
    """A judge for per-dimension rubric prompts (one dimension per request, named on a
    ``Dimension: NAME`` line, as CharacterEval's judge asks). It answers ``{"score": n}`` with
    ``scores[NAME]`` (a number, or a function of the prompt text), or, for a dimension not in
    ``scores``, a digest of (dimension, whole prompt) mapped to 1-5; for a dimension in ``malformed``
    it always answers prose with no JSON. A request without a dimension line gets
    :func:`default_responder`'s answer."""
    def respond(request: dict) -> str:
        messages = request.get("messages") or []
        text = _text_of(messages[1].get("content")) if len(messages) > 1 and isinstance(messages[1], dict) else ""
        m = RUBRIC_DIMENSION.search(text)
        if m is None:
            return default_responder(request)
        dim = m.group(1)
        if dim in malformed:
            return f"I would rather not give {dim} a number."
        if scores is not None and dim in scores:
            n = scores[dim](text) if callable(scores[dim]) else scores[dim]
        else:
            n = 1 + int(hashlib.sha256(f"{dim}\x00{text}".encode("utf-8")).hexdigest(), 16) % 5
        return json.dumps({"score": n, "reason": f"fake verdict on {dim}"})

    return respond


def embed_text(text: str, dim: int = 64) -> list[float]:
    """A deterministic, L2-normalised embedding of ``text``: a pure function of the text and ``dim``.

    Character uni-grams (whitespace skipped) and bi-grams of the case-folded, whitespace-collapsed
    text are hashed (blake2b) into ``dim`` buckets with a hash-derived sign of +1/-1. Texts sharing many
    characters and character pairs therefore get a high cosine similarity; for unrelated texts the
    signed collisions cancel out, so their cosine is near 0 (spread about 1/sqrt(dim)). Works for
    Chinese as well as ASCII. An empty text has no n-grams and gives the all-zero vector.
    """
    if dim < 1:
        raise ValueError(f"dim must be >= 1, not {dim}")
    s = " ".join(text.casefold().split())
    grams = [c for c in s if not c.isspace()] + [s[i:i + 2] for i in range(len(s) - 1)]
    vec = [0.0] * dim
    for g in grams:
        n = int.from_bytes(hashlib.blake2b(g.encode("utf-8"), digest_size=8).digest(), "little")
        vec[n % dim] += -1.0 if n >> 63 else 1.0
    norm = math.sqrt(sum(v * v for v in vec))
    return [v / norm for v in vec] if norm else vec


def _approx_tokens(text: str) -> int:
    """A rough token count for ``usage``: one per CJK-range character, word, or punctuation mark."""
    n, in_word = 0, False
    for ch in text:
        if ord(ch) > 0x2E7F:
            n, in_word = n + 1, False
        elif ch.isalnum():
            n, in_word = n + (not in_word), True
        else:
            n, in_word = n + (not ch.isspace()), False
    return n


def _error(message: str, type_: str = "invalid_request_error", code: str | None = None) -> dict:
    """OpenAI's error body shape, which the SDK unpacks into the exception's ``body``."""
    return {"error": {"message": message, "type": type_, "param": None, "code": code}}


def _error_for_status(code: int) -> dict:
    """The default body for an injected ``Status``: close to what the real API sends for that code."""
    if code == 429:
        return _error("Rate limit reached (injected by FakeOpenAI).", "requests", "rate_limit_exceeded")
    if code >= 500:
        return _error(f"The server had an error (injected HTTP {code}).", "server_error", None)
    return _error(f"Injected HTTP {code}.", "invalid_request_error", None)


class _Reply:
    """What a handler sends back: a status, a JSON-able payload (or raw text) and extra headers."""

    __slots__ = ("status", "payload", "headers")

    def __init__(self, status: int, payload: Any, headers: dict[str, str] | None = None):
        self.status, self.payload, self.headers = status, payload, headers or {}


class _Stream:
    """A streamed chat answer: the SSE events to send and whether to hang up before the end."""

    __slots__ = ("events", "cut")

    def __init__(self, events: list, cut: bool):
        self.events, self.cut = events, cut


# ---------------------------------------------------------------------------------------- server


class _HTTPServer(ThreadingHTTPServer):
    # daemon handler threads and no join on close: a handler sleeping in a Delay must not block shutdown
    daemon_threads = True
    block_on_close = False
    request_queue_size = 128  # bursts of concurrent test clients should not be refused by the backlog

    def __init__(self, address, handler, fake: FakeOpenAI):
        self.fake = fake
        super().__init__(address, handler)

    def handle_error(self, request, client_address) -> None:
        # a client hanging up (timeout, close()) is routine here; anything else is a bug worth a traceback
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the SDK's connection pool expects
    server_version = "FakeOpenAI/1.0"

    def setup(self) -> None:
        super().setup()
        # headers and body leave in two writes; with Nagle on, the body waits for the client's
        # delayed ACK (~40 ms), which would swamp an injected latency of 100 ms
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.fake._track(self.connection, True)  # type: ignore[attr-defined]

    def finish(self) -> None:
        self.server.fake._track(self.connection, False)  # type: ignore[attr-defined]
        super().finish()

    def _dispatch(self) -> None:
        self.server.fake._handle(self)  # type: ignore[attr-defined]

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _dispatch

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        if self.server.fake.verbose:  # type: ignore[attr-defined]
            super().log_message(format, *args)


class FakeOpenAI:
    """A local OpenAI-compatible server with deterministic answers, injectable faults and a request log.

    Args:
        api_key: when set, requests must carry ``Authorization: Bearer <api_key>`` or get 401.
        responder: ``responder(request_json) -> str`` gives the assistant content for chat requests
            (default: :func:`default_responder`). ``srv.responders[model] = fn`` overrides it per model.
        dim: embedding size (a request's ``dimensions`` field overrides it). See :func:`embed_text`.
        latency: seconds every request is held before it is answered, so concurrency can be observed.
        port: 0 picks a free port; read it back from ``srv.port`` / ``srv.base_url``.
        models: ids listed by ``GET /v1/models`` (plus any model with a per-model responder).
        verbose: log each request to stderr like ``http.server`` does.
    """

    def __init__(
        self,
        *,
        api_key: str | None = None,
        responder: Responder | None = None,
        dim: int = 64,
        latency: float = 0.0,
        port: int = 0,
        models: tuple[str, ...] = ("fake-chat", "fake-embedding"),
        verbose: bool = False,
    ):
        if dim < 1:
            raise ValueError(f"dim must be >= 1, not {dim}")
        self.api_key = api_key
        self.responder: Responder = responder or default_responder
        self.responders: dict[str, Responder] = {}
        self.dim = dim
        self.latency = latency
        self.models = tuple(models)
        self.verbose = verbose
        self._port = port
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._records: list[RequestRecord] = []
        self._faults: dict[str, deque] = {e: deque() for e in _FAULTABLE}
        self._in_flight: dict[str, int] = {}
        self._max_in_flight: dict[str, int] = {}
        self._ids = 0
        self._connections: set[socket.socket] = set()
        self._server: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> FakeOpenAI:
        """Bind 127.0.0.1 and serve from a daemon thread; a second call is a no-op."""
        if self._server is None:
            self._closing.clear()
            self._server = _HTTPServer(("127.0.0.1", self._port), _Handler, self)
            self._thread = threading.Thread(
                target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                name=f"FakeOpenAI:{self.port}", daemon=True)
            self._thread.start()
        return self

    def close(self) -> None:
        """Stop serving and free the port. Open keep-alive connections are cut, so a client's pooled
        connection cannot go on talking to a closed fake; handlers sleeping in a Delay are woken."""
        server, self._server = self._server, None
        if server is None:
            return
        self._closing.set()
        server.shutdown()
        server.server_close()
        with self._lock:
            connections = list(self._connections)
        for conn in connections:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("FakeOpenAI is not running; call start() or use it as a context manager")
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        """What to pass as ``OpenAI(base_url=...)`` / ``OPENAI_BASE_URL``."""
        return f"{self.url}/v1"

    # ------------------------------------------------------------------ faults and observations

    def inject(self, endpoint: str, *faults: Status | Delay | Content | Vectors | Cut) -> None:
        """Queue faults for "chat" or "embeddings"; each request to it takes the next one (FIFO),
        and requests after the queue is empty are answered normally. Requests rejected for a missing
        key or an unknown path do not take a fault."""
        if endpoint not in _FAULTABLE:
            raise ValueError(f"endpoint must be one of {_FAULTABLE}, not {endpoint!r}")
        for f in faults:
            if not isinstance(f, _FAULT_TYPES):
                raise TypeError(f"not a fault: {f!r}")
            if isinstance(f, (Content, Cut)) and endpoint != "chat":
                raise ValueError("Content and Cut faults only apply to chat")
            if isinstance(f, Vectors) and endpoint != "embeddings":
                raise ValueError("Vectors faults only apply to embeddings")
        with self._lock:
            self._faults[endpoint].extend(faults)

    def pending(self, endpoint: str) -> int:
        """How many injected faults for ``endpoint`` are still waiting for a request."""
        with self._lock:
            return len(self._faults[endpoint])

    @property
    def requests(self) -> list[RequestRecord]:
        """A snapshot (taken under the lock) of every request received so far, oldest first."""
        with self._lock:
            return list(self._records)

    def count(self, endpoint: str) -> int:
        """How many requests arrived for "chat", "embeddings" or "models" (rejected ones included)."""
        with self._lock:
            return sum(1 for r in self._records if r.endpoint == endpoint)

    def max_in_flight(self, endpoint: str) -> int:
        """The most requests to ``endpoint`` that were being handled at the same moment."""
        with self._lock:
            return self._max_in_flight.get(endpoint, 0)

    def reset(self) -> None:
        """Forget records, queued faults and in-flight peaks (responders and settings stay)."""
        with self._lock:
            self._records.clear()
            for q in self._faults.values():
                q.clear()
            self._max_in_flight.clear()

    # ------------------------------------------------------------------ request handling

    def _track(self, conn: socket.socket, is_open: bool) -> None:
        with self._lock:
            if is_open:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        path = h.path.split("?", 1)[0]
        if path != "/":
            path = path.rstrip("/")
        endpoint, allowed = _ROUTES.get(path, (None, None))
        # always drain the body, or the next request on this keep-alive connection would read it
        length = int(h.headers.get("Content-Length") or 0)
        raw = h.rfile.read(length) if length > 0 else b""
        body: Any = None
        bad_json = False
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                bad_json = True
        record = RequestRecord(endpoint, h.command, path, {k.lower(): v for k, v in h.headers.items()},
                               body, time.time())
        with self._lock:
            self._records.append(record)
            if endpoint is not None:
                now = self._in_flight.get(endpoint, 0) + 1
                self._in_flight[endpoint] = now
                self._max_in_flight[endpoint] = max(self._max_in_flight.get(endpoint, 0), now)
        try:
            if self.latency > 0:
                self._closing.wait(self.latency)
            try:
                reply = self._reply(endpoint, allowed, h, body, bad_json)
            except Exception as exc:  # a bug here or in a responder must reach the client, not hang it
                reply = _Reply(500, _error(f"FakeOpenAI failed: {type(exc).__name__}: {exc}", "server_error"))
        finally:
            # leave the in-flight window before sending: a client bounded to N requests can only start
            # its next one after reading this answer, so counting the send would overstate concurrency
            if endpoint is not None:
                with self._lock:
                    self._in_flight[endpoint] -= 1
        self._send(h, reply)

    def _reply(self, endpoint: str | None, allowed: str | None, h: BaseHTTPRequestHandler,
               body: Any, bad_json: bool) -> _Reply:
        if endpoint is None:
            return _Reply(404, _error(f"Unknown request URL: {h.command} {h.path}.", code="unknown_url"))
        if h.command != allowed:
            return _Reply(405, _error(f"Method {h.command} not allowed for {h.path}; use {allowed}."),
                          {"Allow": allowed})
        if self.api_key is not None and h.headers.get("Authorization", "") != f"Bearer {self.api_key}":
            return _Reply(401, _error("Incorrect API key provided.", code="invalid_api_key"))
        if endpoint == "models":
            return self._models()
        if endpoint == "stats":
            with self._lock:
                counts = {e: sum(1 for r in self._records if r.endpoint == e) for e in _FAULTABLE}
            return _Reply(200, {"requests": counts, "max_in_flight": dict(self._max_in_flight)})

        fault = None
        with self._lock:
            if self._faults[endpoint]:
                fault = self._faults[endpoint].popleft()
        if isinstance(fault, Status):
            headers = {}
            if isinstance(fault.retry_after, str):
                headers["Retry-After"] = fault.retry_after
            elif fault.retry_after is not None:
                ra = fault.retry_after
                headers["Retry-After"] = str(int(ra)) if float(ra).is_integer() else str(ra)
            if fault.retry_after_ms is not None:
                headers["retry-after-ms"] = str(fault.retry_after_ms)
            return _Reply(fault.code, _error_for_status(fault.code) if fault.body is None else fault.body, headers)
        if isinstance(fault, Delay):
            self._closing.wait(fault.seconds)
        if isinstance(fault, Drop):
            return _Reply(0, None)

        if bad_json:
            return _Reply(400, _error("We could not parse the JSON body of your request."))
        if not isinstance(body, dict):
            return _Reply(400, _error("The request body must be a JSON object."))
        if endpoint == "chat":
            request = {**body, "_headers": {k.lower(): v for k, v in h.headers.items()}}
            return self._chat(request, fault.text if isinstance(fault, Content) else None,
                              fault.pieces if isinstance(fault, Cut) else None)
        return self._embeddings(body, fault.kind if isinstance(fault, Vectors) else None)

    def _next_id(self, prefix: str) -> str:
        with self._lock:
            self._ids += 1
            return f"{prefix}-fake{self._ids}"

    def _models(self) -> _Reply:
        ids = sorted(set(self.models) | set(self.responders))
        data = [{"id": m, "object": "model", "created": 0, "owned_by": "fake-openai"} for m in ids]
        return _Reply(200, {"object": "list", "data": data})

    def _chat(self, body: dict, content: str | None, cut: int | None = None) -> _Reply:
        """``body`` is the request's JSON plus ``"_headers"`` (lower-cased request headers), which
        responders may read for metadata that is not part of the prompt (e.g. X-Rolecraft-Stage)."""
        model, messages = body.get("model"), body.get("messages")
        if not isinstance(model, str) or not model:
            return _Reply(400, _error("you must provide a model parameter"))
        if not isinstance(messages, list) or not messages:
            return _Reply(400, _error("'messages' must be a non-empty array"))
        n = body.get("n") or 1
        if not isinstance(n, int) or n < 1:
            return _Reply(400, _error("'n' must be a positive integer"))
        if content is None:
            content = self.responders.get(model, self.responder)(body)
            if not isinstance(content, str):
                raise TypeError(f"responder returned {type(content).__name__}, not str")
        prompt = sum(_approx_tokens(_text_of(m.get("content"))) + 3 for m in messages if isinstance(m, dict))
        completion = _approx_tokens(content) * n
        if body.get("stream"):
            return self._stream(model, content, cut)
        if cut is not None:  # a Cut on a non-streamed request: the connection drops
            return _Reply(0, None)
        return _Reply(200, {
            "id": self._next_id("chatcmpl"),
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "system_fingerprint": "fake-openai",
            "choices": [
                {"index": i, "message": {"role": "assistant", "content": content, "refusal": None},
                 "logprobs": None, "finish_reason": "stop"}
                for i in range(n)
            ],
            "usage": {"prompt_tokens": prompt, "completion_tokens": completion,
                      "total_tokens": prompt + completion},
        })

    def _stream(self, model: str, content: str, cut: int | None) -> _Reply:
        """Server-sent events as OpenAI sends them: a role chunk, content pieces, a finish chunk,
        ``data: [DONE]``; with ``cut``, only that many pieces and then a hang-up."""
        cid, created = self._next_id("chatcmpl"), int(time.time())

        def chunk(delta: dict, finish: str | None = None) -> dict:
            return {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
                    "system_fingerprint": "fake-openai",
                    "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}

        pieces = [content[i:i + STREAM_PIECE] for i in range(0, len(content), STREAM_PIECE)]
        events = [chunk({"role": "assistant", "content": ""})]
        events += [chunk({"content": p}) for p in (pieces if cut is None else pieces[:cut])]
        if cut is None:
            events += [chunk({}, "stop"), "[DONE]"]
        return _Reply(200, _Stream(events, cut is not None))

    def _embeddings(self, body: dict, corrupt: str | None) -> _Reply:
        model, inp = body.get("model"), body.get("input")
        if not isinstance(model, str) or not model:
            return _Reply(400, _error("you must provide a model parameter"))
        texts = [inp] if isinstance(inp, str) else inp
        if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
            return _Reply(400, _error("'input' must be a string or a non-empty array of strings "
                                      "(token arrays are not supported by FakeOpenAI)"))
        dim = body.get("dimensions") or self.dim
        if not isinstance(dim, int) or dim < 1:
            return _Reply(400, _error("'dimensions' must be a positive integer"))
        fmt = body.get("encoding_format") or "float"
        if fmt not in ("float", "base64"):
            return _Reply(400, _error("'encoding_format' must be 'float' or 'base64'"))
        vectors = [embed_text(t, dim) for t in texts]
        if corrupt == "nan":
            vectors[0][0] = math.nan
        elif corrupt == "zero":
            vectors[0] = [0.0] * dim
        data = []
        for i, v in enumerate(vectors):
            # the SDK's default is base64: little-endian float32, which it decodes itself
            emb: Any = base64.b64encode(struct.pack(f"<{dim}f", *v)).decode("ascii") if fmt == "base64" else v
            data.append({"object": "embedding", "index": i, "embedding": emb})
        tokens = sum(_approx_tokens(t) for t in texts)
        return _Reply(200, {"object": "list", "data": data, "model": model,
                            "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})

    def _send_stream(self, h: BaseHTTPRequestHandler, stream: _Stream) -> None:
        """Chunked transfer encoding, one event per chunk, flushed one by one as a real server does."""
        try:
            h.send_response(200)
            h.send_header("Content-Type", "text/event-stream; charset=utf-8")
            h.send_header("Transfer-Encoding", "chunked")
            h.send_header("Cache-Control", "no-cache")
            h.end_headers()
            for ev in stream.events:
                data = ev if isinstance(ev, str) else json.dumps(ev, ensure_ascii=False)
                raw = f"data: {data}\n\n".encode("utf-8")
                h.wfile.write(f"{len(raw):x}\r\n".encode("ascii") + raw + b"\r\n")
                h.wfile.flush()
            if stream.cut:
                h.close_connection = True
                h.connection.shutdown(socket.SHUT_RDWR)
                return
            h.wfile.write(b"0\r\n\r\n")
            h.wfile.flush()
        except OSError:
            h.close_connection = True

    def _send(self, h: BaseHTTPRequestHandler, reply: _Reply) -> None:
        if isinstance(reply.payload, _Stream):
            self._send_stream(h, reply.payload)
            return
        if reply.status == 0:  # Drop: hang up without a word
            h.close_connection = True
            try:
                h.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        if isinstance(reply.payload, str):
            data = reply.payload.encode("utf-8")
        else:
            # allow_nan (the default) writes NaN as a bare token; see the module docstring
            data = json.dumps(reply.payload, ensure_ascii=False).encode("utf-8")
        try:
            h.send_response(reply.status)
            h.send_header("Content-Type", "application/json")
            h.send_header("Content-Length", str(len(data)))
            h.send_header("x-request-id", f"req-fake-{threading.get_ident()}-{time.monotonic_ns()}")
            for k, v in reply.headers.items():
                h.send_header(k, v)
            h.end_headers()
            h.wfile.write(data)
            h.wfile.flush()
        except OSError:
            h.close_connection = True  # the client gave up (e.g. its timeout fired during a Delay)


# ------------------------------------------------------------------------------------------- CLI


def main(argv: list[str] | None = None) -> int:
    """Run the fake in the foreground, for dry runs without network access or an API key."""
    ap = argparse.ArgumentParser(prog="python -m rolecraft.testing.fake_openai",
                                 description="Serve a deterministic fake OpenAI API on 127.0.0.1.")
    ap.add_argument("--port", type=int, default=8765, help="port on 127.0.0.1 (0 picks a free one)")
    ap.add_argument("--api-key", default=None, help="require 'Authorization: Bearer KEY'")
    ap.add_argument("--dim", type=int, default=64, help="embedding size (default 64)")
    ap.add_argument("--latency", type=float, default=0.0, help="seconds to hold every request")
    ap.add_argument("--verbose", action="store_true", help="log each request to stderr")
    ap.add_argument("--construct", action="store_true",
                    help="answer construct.py's prompts validly (rolecraft.testing.fake_construct)")
    args = ap.parse_args(argv)
    responder = None
    if args.construct:
        from rolecraft.testing.fake_construct import construct_responder as responder
    srv = FakeOpenAI(api_key=args.api_key, responder=responder, dim=args.dim, latency=args.latency, port=args.port,
                     verbose=args.verbose)
    try:
        srv.start()
    except OSError as exc:
        print(f"cannot listen on 127.0.0.1:{args.port}: {exc}", file=sys.stderr)
        return 1
    print(srv.base_url, flush=True)
    print(f"FakeOpenAI serving; e.g. OPENAI_BASE_URL={srv.base_url}. Ctrl-C stops it.", file=sys.stderr, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        srv.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
