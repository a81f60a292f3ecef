"""Many chat or embedding requests to an OpenAI-compatible endpoint, done politely and once.

Other packages use only the public surface: :meth:`Endpoint.chat_many`, :meth:`Endpoint.embed`,
:meth:`Endpoint.stream_chat`, :meth:`Endpoint.run_many` and :meth:`Endpoint.session` (raw posts for
callers with their own store, such as construction's journal).

We turn the SDK's own retries off and retry here, so every policy is visible and tested: at most
``concurrency`` requests in flight; 429, 5xx, timeouts and dropped connections are retried with
exponential backoff and jitter, and ``Retry-After`` (seconds or HTTP-date) or ``retry-after-ms`` is
obeyed, capped by ``backoff_max``; other errors (400, 401,
404) fail at once because retrying cannot fix them. Successful answers go to the on-disk cache,
so a rerun — or the rest of a run after a crash — does not pay for them again.
"""

from __future__ import annotations

import asyncio
import datetime
import email.utils
import math
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Awaitable, Callable, Iterator

from rolecraft.api.store import ResponseCache, request_key
from rolecraft.errors import ConfigError, RolecraftError


class ApiError(RolecraftError):
    """An endpoint refused or kept failing."""


class ApiRefused(ApiError):
    """An answer no retry can change for any request (401, 403, 404: key, permission, URL or model):
    the whole run should stop."""


class ApiRejected(ApiError):
    """This one request was refused (400, 413, 422: too long, filtered, malformed): the others may pass."""


@dataclass
class ChatResult:
    content: str | None
    error: str | None = None
    cached: bool = False
    attempts: int = 0


@dataclass
class Stats:
    requests: int = 0
    cached: int = 0
    retries: int = 0
    failed: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0


def read_api_key(env_name: str | None, what: str) -> str:
    """The key from the environment. ``api_key_env=""`` means the endpoint needs none (local servers)."""
    if not env_name:
        return "none"
    key = os.environ.get(env_name)
    if not key:
        raise ConfigError(f"{what}.api_key_env={env_name!r}: environment variable {env_name} is not set; "
                          f"export {env_name}=<your key> (keys never go into configs), or set "
                          f"{what}.api_key_env='' for an endpoint without keys")
    return key


def retry_after(headers) -> float | None:
    """Seconds the server asked us to wait, from ``retry-after-ms`` (OpenAI's, milliseconds) or
    ``Retry-After`` (seconds, or an HTTP-date as RFC 9110 allows); None when absent or unreadable."""
    if headers is None:
        return None
    ms = headers.get("retry-after-ms")
    if ms is not None:
        try:
            value = float(ms) / 1000.0
            if math.isfinite(value):
                return max(0.0, value)
        except ValueError:
            pass
    val = headers.get("retry-after")
    if val is None:
        return None
    try:
        value = float(val)
        return max(0.0, value) if math.isfinite(value) else None
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(val)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.timezone.utc)
    return max(0.0, (when - datetime.datetime.now(datetime.timezone.utc)).total_seconds())


class Endpoint:
    """One endpoint (base_url + key) for chat and embeddings, with cache and retry policy.

    Public surface for other packages: :meth:`chat_many`, :meth:`embed`, :meth:`stream_chat`,
    :meth:`run_many` (many coroutines over one :class:`Session`), :meth:`session` (raw posts with the
    retry policy, for callers with their own cache such as construction), ``stats`` and ``waits``.
    """

    def __init__(self, cfg, what: str, cache_path: str | Path | None = None, progress: bool = False,
                 sleep: Callable[[float], object] | None = None):
        self.cfg, self.what, self.progress = cfg, what, progress
        self._key = read_api_key(cfg.api_key_env, what)
        if cfg.concurrency < 1:
            raise ConfigError(f"{what}.concurrency={cfg.concurrency}: must be at least 1")
        self.base_url = cfg.base_url or "https://api.openai.com/v1"
        self.cache = ResponseCache(cache_path) if (cfg.cache and cache_path) else None
        self.stats = Stats()
        self.waits: list[float] = []  # every backoff chosen, in order (what a Retry-After turned into)
        self._sleep = sleep  # None = really sleep; tests pass a recorder so they need not wait

    # -- retry policy ----------------------------------------------------------------------------
    def _delay(self, attempt: int, exc) -> float:
        after = retry_after(getattr(getattr(exc, "response", None), "headers", None))
        if after is not None:
            return min(after, self.cfg.backoff_max)
        base = self.cfg.backoff_base * (2 ** attempt)
        return min(self.cfg.backoff_max, base * (0.5 + random.random() / 2))

    def _next_wait(self, attempt: int, e: Exception) -> float:
        """The seconds to wait before retrying ``e``, or raise: ApiRefused/ApiRejected for answers no
        retry can change, ApiError once ``max_retries`` are spent."""
        import openai

        if isinstance(e, openai.APIStatusError) and not isinstance(e, (openai.RateLimitError, openai.InternalServerError)):
            if e.status_code in (401, 403, 404):
                hint = {401: f"check the key in ${self.cfg.api_key_env}", 403: "the key lacks access to this model",
                        404: "check base_url and the model name"}[e.status_code]
                raise ApiRefused(f"{self.what}: {self.base_url} answered {_describe(e)}; {hint}") from None
            if e.status_code not in (408, 409):  # timeout / conflict: the SDK's own policy retries these
                raise ApiRejected(f"{self.what}: {self.base_url} rejected a request: {_describe(e)}") from None
        if attempt >= self.cfg.max_retries:
            raise ApiError(f"{self.what}: {self.base_url} still failing after {attempt + 1} tries "
                           f"({_describe(e)}); raise {self.what}.max_retries or lower "
                           f"{self.what}.concurrency, then rerun (answers so far are cached)") from None
        self.stats.retries += 1
        wait = self._delay(attempt, e)
        self.waits.append(wait)
        return wait

    @staticmethod
    def _retryable():
        import openai

        # ValueError: a 200 whose body is not JSON (a proxy's error page); retried like a 5xx
        return (openai.APIStatusError, openai.APIConnectionError, openai.APIResponseValidationError, ValueError)

    async def _retrying(self, call, before_try=None):
        """``(result, tries)``; ``before_try`` (a coroutine function) runs before every try, e.g. a rate limiter."""
        attempt = 0
        while True:
            try:
                if before_try is not None:
                    await before_try()
                return await call(), attempt + 1
            except self._retryable() as e:
                wait = self._next_wait(attempt, e)
            if self._sleep is None:
                await asyncio.sleep(wait)
            else:
                self._sleep(wait)
            attempt += 1

    def _client(self):
        from openai import AsyncOpenAI

        return AsyncOpenAI(api_key=self._key, base_url=self.base_url, timeout=self.cfg.timeout, max_retries=0)

    def session(self) -> "Session":
        """An async context manager: one connection pool and ``concurrency`` bound for this event loop."""
        return Session(self)

    def run_many(self, fn: Callable[["Session", Any], Awaitable[Any]], items: list, desc: str = "requests") -> list:
        """``[await fn(session, item) for item in items]``, concurrently over one session, in order, with a
        progress bar when asked. One failure that escapes ``fn`` cancels the rest before the pool closes."""
        async def main():
            bar = None
            if self.progress and len(items) > 1:
                from rolecraft.console import progress

                bar = progress(total=len(items), desc=desc, unit="req")

            async with self.session() as s:
                async def one(item):
                    try:
                        return await fn(s, item)
                    finally:
                        if bar is not None:
                            bar.update(1)

                running = [asyncio.ensure_future(one(it)) for it in items]
                try:
                    return list(await asyncio.gather(*running))
                except BaseException:
                    for t in running:
                        t.cancel()
                    await asyncio.gather(*running, return_exceptions=True)
                    raise
                finally:
                    if bar is not None:
                        bar.close()

        return asyncio.run(main()) if items else []

    # -- chat ------------------------------------------------------------------------------------
    @staticmethod
    def chat_params(temperature=None, top_p=None, max_tokens=None, **extra) -> dict:
        """The request's sampling parameters without the unset ones (as they enter the cache key)."""
        p = {"temperature": temperature, "top_p": top_p, "max_tokens": max_tokens, **extra}
        return {k: v for k, v in p.items() if v is not None}

    def chat_key(self, model: str, messages: list[dict], params: dict, tag=None) -> str:
        """The cache key of one chat request: shared by chat_many, Session.chat and stream_chat."""
        return request_key(self.base_url, model, messages, params, tag)

    def chat_many(self, model: str, conversations: list[list[dict]], *, temperature: float | None = None,
                  top_p: float | None = None, max_tokens: int | None = None, tags: list | None = None,
                  desc: str = "chat") -> list[ChatResult]:
        """One assistant answer per conversation, in order. A request that keeps failing (after the
        retry policy) gives a ChatResult with ``error`` set; the others still come back.

        ``tags`` (one per conversation) enter the cache key: the judge re-asks with a new tag so a
        malformed cached verdict is not served again.
        """
        params = self.chat_params(temperature, top_p, max_tokens)
        tags = tags or [None] * len(conversations)
        return self.run_many(lambda s, job: s.chat(model, job[0], params, tag=job[1]),
                             list(zip(conversations, tags)), desc)

    def stream_chat(self, model: str, messages: list[dict], **params) -> Iterator[str]:
        """The answer in pieces as they arrive (``stream=True``), for interactive chat.

        Failures before the first piece follow the retry policy; a failure after it raises ApiError
        (the answer so far was already shown, so it cannot be silently restarted). A cached answer is
        yielded whole; a completed answer is cached under the key :meth:`chat_many` uses for the same
        request, so chat and evaluation share entries.
        """
        import openai

        params = self.chat_params(**params)
        key = self.chat_key(model, messages, params)
        if self.cache is not None:
            hit = self.cache.get("chat", key)
            if hit is not None:
                self.stats.cached += 1
                yield hit
                return
        client = openai.OpenAI(api_key=self._key, base_url=self.base_url, timeout=self.cfg.timeout, max_retries=0)
        try:
            attempt, pieces = 0, []
            self.stats.requests += 1
            while True:
                stream = None
                try:
                    stream = client.chat.completions.create(model=model, messages=messages, stream=True, **params)
                    chunks = iter(stream)
                    first = _first_text(chunks)  # everything up to the first piece of text is retryable
                    break
                except Exception as e:
                    # a body cut before its first piece surfaces as the transport's own error
                    if not isinstance(e, self._retryable()) and not type(e).__module__.startswith(("httpx", "httpcore")):
                        raise
                    if stream is not None:
                        stream.close()
                    wait = self._next_wait(attempt, e)
                (time.sleep if self._sleep is None else self._sleep)(wait)
                attempt += 1
            try:
                if first is not None:
                    pieces.append(first)
                    yield first
                    for chunk in chunks:
                        text = _chunk_text(chunk)
                        if text:
                            pieces.append(text)
                            yield text
            except Exception as e:  # the SDK's errors, or the transport's for a body cut off mid-stream
                self.stats.failed += 1
                raise ApiError(f"{self.what}: {self.base_url} broke off a streamed answer ({_describe(e)}); "
                               "ask again") from None
            finally:
                stream.close()
            if self.cache is not None:
                self.cache.put("chat", key, "".join(pieces))
        finally:
            client.close()

    # -- embeddings --------------------------------------------------------------------------------
    def embed(self, model: str, texts: list[str], batch_size: int = 64, desc: str = "embed") -> list[list[float]]:
        """One vector per text. Cached per (endpoint, model, text); only the misses are sent, in batches."""
        keys = [request_key(self.base_url, model, t) for t in texts]
        out: list[list[float] | None] = [None] * len(texts)
        todo: dict[str, list[int]] = {}
        for i, k in enumerate(keys):
            hit = self.cache.get("embeddings", k) if self.cache is not None else None
            if hit is not None:
                out[i] = hit
                self.stats.cached += 1
            else:
                todo.setdefault(k, []).append(i)
        unique = list(todo)
        batches = [unique[i:i + batch_size] for i in range(0, len(unique), batch_size)]
        results = self.run_many(lambda s, b: s.embed(model, [texts[todo[k][0]] for k in b]), batches, desc)
        for b, vecs in zip(batches, results):
            for k, vec in zip(b, vecs):
                check_vector(vec, f"{self.what}: embedding of {texts[todo[k][0]][:40]!r} from {model}")
                if self.cache is not None:
                    self.cache.put("embeddings", k, vec)
                for i in todo[k]:
                    out[i] = vec
        return out  # type: ignore[return-value]


class Session:
    """One event loop's connection pool to an :class:`Endpoint`, with its ``concurrency`` bound.

    ``async with endpoint.session() as s:`` then :meth:`post`, :meth:`chat` or :meth:`embed`; every
    request goes through the endpoint's retry policy. The pool opens on the first request.
    """

    def __init__(self, endpoint: Endpoint):
        self.endpoint = endpoint
        self._sem = asyncio.Semaphore(endpoint.cfg.concurrency)
        self._pool = None

    async def __aenter__(self) -> "Session":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()

    def _client(self):
        if self._pool is None:
            self._pool = self.endpoint._client()
        return self._pool

    async def post(self, path: str, body: dict, *, parse: Callable[[Any], Any] | None = None,
                   before_try: Callable[[], Awaitable[Any]] | None = None,
                   headers: dict[str, str] | None = None) -> tuple[Any, int]:
        """``(parse(json), tries)`` for one POST of a raw JSON body (e.g. ``/chat/completions``).

        The SDK's low-level post: the same auth, errors and transport as the typed methods, without
        building typed objects (~2 ms CPU per request, visible at 16-way concurrency). ``parse``
        runs inside the retry loop, so a ValueError from it (a 200 without a usable body) is retried
        like a 5xx. ``headers`` are extra HTTP headers (metadata that does not enter the prompt).
        """
        opts = {"headers": headers} if headers else {}

        async def call():
            data = await self._client().post(path, body=body, cast_to=object, options=opts)
            return parse(data) if parse is not None else data

        async with self._sem:
            self.endpoint.stats.requests += 1
            return await self.endpoint._retrying(call, before_try)

    async def chat(self, model: str, messages: list[dict], params: dict, *, tag=None) -> ChatResult:
        """One answer, from the cache when this request was answered before; an endpoint that keeps
        failing gives ``error`` (a refusal for every request, ApiRefused, is raised)."""
        ep = self.endpoint
        key = ep.chat_key(model, messages, params, tag)
        if ep.cache is not None:
            hit = ep.cache.get("chat", key)
            if hit is not None:
                ep.stats.cached += 1
                return ChatResult(hit, cached=True)
        try:
            (content, pt, ct), tries = await self.post("/chat/completions",
                                                        {"model": model, "messages": messages, **params},
                                                        parse=chat_content_and_usage)
        except ApiRefused:
            raise
        except ApiError as e:
            ep.stats.failed += 1
            return ChatResult(None, error=str(e), attempts=ep.cfg.max_retries + 1)
        ep.stats.prompt_tokens += pt
        ep.stats.completion_tokens += ct
        if ep.cache is not None:
            ep.cache.put("chat", key, content)
        return ChatResult(content, attempts=tries)

    async def embed(self, model: str, batch: list[str]) -> list[list[float]]:
        ep = self.endpoint
        async with self._sem:
            ep.stats.requests += 1
            resp, _ = await ep._retrying(lambda: self._client().embeddings.create(model=model, input=batch))
        data = sorted(resp.data, key=lambda d: d.index)
        if len(data) != len(batch):
            raise ApiError(f"{ep.what}: {ep.base_url} returned {len(data)} embeddings for {len(batch)} texts")
        return [list(map(float, d.embedding)) for d in data]


def chat_content_and_usage(data) -> tuple[str, int, int]:
    """The first choice's text and the token usage of a Chat Completions JSON body. A body without a
    choice (a gateway's error wrapped in a 200) is an endpoint failure, never an (empty) answer: it
    raises ValueError, which the retry policy treats like a 5xx, so it is never cached or journaled."""
    try:
        content = data["choices"][0]["message"]["content"]
    except (TypeError, KeyError, IndexError):
        raise ValueError(f"the endpoint answered 200 without a message: {str(data)[:160]}") from None
    usage = data.get("usage") or {}
    return str(content or ""), int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)


def _chunk_text(chunk) -> str:
    choices = getattr(chunk, "choices", None) or []
    delta = getattr(choices[0], "delta", None) if choices else None
    return (getattr(delta, "content", None) or "") if delta is not None else ""


def _first_text(chunks) -> str | None:
    """The first non-empty piece (role-only and empty chunks skipped); None when the stream ends first."""
    for chunk in chunks:
        text = _chunk_text(chunk)
        if text:
            return text
    return None


def check_vector(vec, where: str) -> None:
    """NaN, infinite or all-zero vectors make cosine similarity meaningless: refuse them."""
    if not vec:
        raise ApiError(f"{where} is empty")
    if any(not math.isfinite(x) for x in vec):
        raise ApiError(f"{where} contains NaN or infinity; the embedding backend is broken for this input")
    if not any(x != 0.0 for x in vec):
        raise ApiError(f"{where} is all zeros (zero norm), so cosine similarity is undefined")


def _describe(e) -> str:
    status = getattr(e, "status_code", None)
    msg = str(getattr(e, "message", "") or e).strip().splitlines()
    first = msg[0][:160] if msg else type(e).__name__
    return f"HTTP {status}: {first}" if status else f"{type(e).__name__}: {first}"
