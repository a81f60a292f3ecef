"""Many chat or embedding requests to an OpenAI-compatible endpoint, done politely and once.

We turn the SDK's own retries off and retry here, so every policy is visible and tested: at most
``concurrency`` requests in flight; 429, 5xx, timeouts and dropped connections are retried with
exponential backoff and jitter, and a ``Retry-After`` header is obeyed; other errors (400, 401,
404) fail at once because retrying cannot fix them. Successful answers go to the on-disk cache,
so a rerun — or the rest of a run after a crash — does not pay for them again.
"""

from __future__ import annotations

import asyncio
import math
import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from rolecraft.api.cache import ResponseCache, request_key
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


def _retry_after(exc) -> float | None:
    resp = getattr(exc, "response", None)
    if resp is None:
        return None
    val = resp.headers.get("retry-after")
    try:
        return max(0.0, float(val)) if val is not None else None
    except ValueError:
        return None


class Endpoint:
    """One endpoint (base_url + key) for chat and embeddings, with cache and retry policy."""

    def __init__(self, cfg, what: str, cache_path: str | Path | None = None, progress: bool = False,
                 sleep: Callable[[float], object] | None = None):
        self.cfg, self.what, self.progress = cfg, what, progress
        self._key = read_api_key(cfg.api_key_env, what)
        if cfg.concurrency < 1:
            raise ConfigError(f"{what}.concurrency={cfg.concurrency}: must be at least 1")
        self.base_url = cfg.base_url or "https://api.openai.com/v1"
        self.cache = ResponseCache(cache_path) if (cfg.cache and cache_path) else None
        self.stats = Stats()
        self._sleep = sleep or asyncio.sleep

    # -- plumbing --------------------------------------------------------------------------------
    def _client(self):
        from openai import AsyncOpenAI

        return AsyncOpenAI(api_key=self._key, base_url=self.base_url, timeout=self.cfg.timeout, max_retries=0)

    def _delay(self, attempt: int, exc) -> float:
        after = _retry_after(exc)
        if after is not None:
            return min(after, self.cfg.backoff_max)
        base = self.cfg.backoff_base * (2 ** attempt)
        return min(self.cfg.backoff_max, base * (0.5 + random.random() / 2))

    async def _with_retries(self, call, before_try=None):
        """``(result, tries)``; ``before_try`` (a coroutine function) runs before every try, e.g. a rate limiter."""
        import openai

        attempt = 0
        while True:
            try:
                if before_try is not None:
                    await before_try()
                return await call(), attempt + 1
            except (openai.RateLimitError, openai.InternalServerError, openai.APIConnectionError,
                    openai.APIResponseValidationError, ValueError) as e:
                # ValueError: a 200 whose body is not JSON (a proxy's error page); retried like a 5xx
                failure = self._retry_or_give_up(attempt, e)
            except openai.APIStatusError as e:
                if e.status_code in (408, 409):  # timeout / conflict: the SDK's own policy retries these
                    failure = self._retry_or_give_up(attempt, e)
                elif e.status_code in (401, 403, 404):
                    hint = {401: f"check the key in ${self.cfg.api_key_env}", 403: "the key lacks access to this model",
                            404: "check base_url and the model name"}[e.status_code]
                    raise ApiRefused(f"{self.what}: {self.base_url} answered {_describe(e)}; {hint}") from None
                else:
                    raise ApiRejected(f"{self.what}: {self.base_url} rejected a request: {_describe(e)}") from None
            self.stats.retries += 1
            await self._sleep(self._delay(attempt, failure))
            attempt += 1

    def _retry_or_give_up(self, attempt: int, e: Exception) -> Exception:
        if attempt >= self.cfg.max_retries:
            raise ApiError(f"{self.what}: {self.base_url} still failing after {attempt + 1} tries "
                           f"({_describe(e)}); raise {self.what}.max_retries or lower "
                           f"{self.what}.concurrency, then rerun (answers so far are cached)") from None
        return e

    def _run(self, coros_factory, n: int, desc: str):
        async def main():
            sem = asyncio.Semaphore(self.cfg.concurrency)
            client = self._client()
            bar = None
            if self.progress and n > 1:
                from tqdm import tqdm

                bar = tqdm(total=n, desc=desc, unit="req")

            async def guarded(coro_fn):
                async with sem:
                    try:
                        return await coro_fn(client)
                    finally:
                        if bar is not None:
                            bar.update(1)

            try:
                return await asyncio.gather(*(guarded(f) for f in coros_factory()))
            finally:
                if bar is not None:
                    bar.close()
                await client.close()

        return asyncio.run(main())

    # -- chat ------------------------------------------------------------------------------------
    def chat_many(self, model: str, conversations: list[list[dict]], *, temperature: float | None = None,
                  top_p: float | None = None, max_tokens: int | None = None, tags: list | None = None,
                  desc: str = "chat") -> list[ChatResult]:
        """One assistant answer per conversation, in order. A request that keeps failing (after the
        retry policy) gives a ChatResult with ``error`` set; the others still come back.

        ``tags`` (one per conversation) enter the cache key: the judge re-asks with a new tag so a
        malformed cached verdict is not served again.
        """
        params = {k: v for k, v in (("temperature", temperature), ("top_p", top_p), ("max_tokens", max_tokens))
                  if v is not None}
        tags = tags or [None] * len(conversations)

        def factories():
            for msgs, tag in zip(conversations, tags):
                yield self._chat_one(model, msgs, params, tag)

        return self._run(factories, len(conversations), desc)

    def _chat_one(self, model, msgs, params, tag):
        key = request_key(self.base_url, model, msgs, params, tag)

        async def go(client):
            if self.cache is not None:
                hit = self.cache.get("chat", key)
                if hit is not None:
                    self.stats.cached += 1
                    return ChatResult(hit, cached=True)
            self.stats.requests += 1
            try:
                resp, tries = await self._with_retries(
                    lambda: client.chat.completions.create(model=model, messages=msgs, **params))
            except ApiError as e:
                self.stats.failed += 1
                return ChatResult(None, error=str(e), attempts=self.cfg.max_retries + 1)
            content = resp.choices[0].message.content or ""
            if resp.usage is not None:
                self.stats.prompt_tokens += resp.usage.prompt_tokens or 0
                self.stats.completion_tokens += resp.usage.completion_tokens or 0
            if self.cache is not None:
                self.cache.put("chat", key, content)
            return ChatResult(content, attempts=tries)

        return go

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

        def factories():
            for b in batches:
                yield self._embed_batch(model, [texts[todo[k][0]] for k in b])

        results = self._run(factories, len(batches), desc) if batches else []
        for b, vecs in zip(batches, results):
            for k, vec in zip(b, vecs):
                check_vector(vec, f"{self.what}: embedding of {texts[todo[k][0]][:40]!r} from {model}")
                if self.cache is not None:
                    self.cache.put("embeddings", k, vec)
                for i in todo[k]:
                    out[i] = vec
        return out  # type: ignore[return-value]

    def _embed_batch(self, model: str, batch: list[str]):
        async def go(client):
            self.stats.requests += 1
            resp, _ = await self._with_retries(lambda: client.embeddings.create(model=model, input=batch))
            data = sorted(resp.data, key=lambda d: d.index)
            if len(data) != len(batch):
                raise ApiError(f"{self.what}: {self.base_url} returned {len(data)} embeddings for {len(batch)} texts")
            return [list(map(float, d.embedding)) for d in data]

        return go


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
