"""Runs one stage's requests: journal first, then the endpoint, politely; validates and re-asks.

Each task is a conversation and a parser. Its answer comes from the journal when this exact
request (model, prompt hash, parameters) was answered before, else from the endpoint with bounded
concurrency, the rate limits and :class:`rolecraft.api.client.Endpoint`'s retry policy (429 with
Retry-After, 5xx, timeouts, dropped connections; exponential backoff with jitter). An answer that
fails the parser is re-asked in the same conversation with the reason, up to ``max_attempts``
tries (:func:`rolecraft.api.reask.ask_until_valid`, the loop the judge uses too); then the task is
a recorded failure. Each request carries its stage in an ``X-Rolecraft-Stage`` header: metadata that
real endpoints ignore and the test fake answers by, outside the prompt and its journal hash. Outcomes come back in task order, whatever order the
answers arrived in, which is what makes a resumed run write the same output as an uninterrupted one.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

from rolecraft.api.reask import ask_until_valid
from rolecraft.api.store import Entry, Journal, params_key, prompt_hash
from rolecraft.construct.costs import estimate_messages
from rolecraft.construct.ratelimit import RateLimiter


@dataclass
class Task:
    stage: str
    item: str  # stable name of the unit of work, e.g. "annotate/罗火旺/d1/0"
    messages: list[dict]
    parse: Callable[[str], Any]
    expect_tokens: int = 200  # expected answer length, for dry-run estimates

    @property
    def key_tag(self) -> str:
        """Enters the journal key with the prompt: two tasks with the same prompt (two Q&A rounds that
        drew the same excerpt, five answers to one instruction) are different requests."""
        return self.item


@dataclass
class Outcome:
    task: Task
    value: Any = None
    attempts: int = 0
    error: str | None = None
    last_answer: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class StageStats:
    tasks: int = 0
    done: int = 0
    failed: int = 0
    reasks: int = 0
    answers_from_journal: int = 0
    requests: int = 0  # HTTP requests sent, retries included
    retries: int = 0
    prompt_tokens: int = 0  # paid in this run
    completion_tokens: int = 0
    journal_prompt_tokens: int = 0  # of answers reused from the journal (paid before)
    journal_completion_tokens: int = 0
    rate_limit_wait_s: float = 0.0
    seconds: float = 0.0

    def as_dict(self) -> dict:
        return asdict(self)


def request_params(llm) -> dict:
    """The sampling parameters every request carries (and the journal key and provenance record)."""
    p = {"temperature": llm.temperature, "top_p": llm.top_p, "max_tokens": llm.max_tokens, "seed": llm.seed}
    return {k: v for k, v in p.items() if v is not None}


# the stage of a request, as HTTP metadata (see the module docstring)
STAGE_HEADER = "X-Rolecraft-Stage"


def feedback(reason: str) -> str:
    return f"你的回答不符合要求：{reason}请按要求重新输出完整的答案。"


@dataclass
class Engine:
    llm: Any  # LlmConfig
    journal: Journal
    max_attempts: int = 3
    progress: bool = True
    endpoint: Any = None  # rolecraft.api.client.Endpoint, built on first use (reads the key)
    stats: dict[str, StageStats] = field(default_factory=dict)

    def __post_init__(self):
        self.params = request_params(self.llm)
        self._pkey = params_key(self.params)
        # one limiter for the whole run: a new stage must not start with a fresh burst
        self.limiter = RateLimiter(self.llm.requests_per_minute, self.llm.tokens_per_minute, self.llm.burst_seconds)

    def run(self, stage: str, tasks: list[Task]) -> list[Outcome]:
        items = [t.item for t in tasks]
        if len(set(items)) != len(items):
            dup = next(i for i in items if items.count(i) > 1)
            raise ValueError(f"stage {stage}: two tasks are named {dup!r}; task names are journal keys and must be unique")
        st = self.stats.setdefault(stage, StageStats())
        st.tasks += len(tasks)
        t0 = time.perf_counter()
        try:
            outcomes = asyncio.run(self._run_all(stage, tasks, st))
        finally:
            st.seconds += time.perf_counter() - t0
        for o in outcomes:
            if o.ok:
                st.done += 1
            else:
                st.failed += 1
        return outcomes

    async def _run_all(self, stage: str, tasks: list[Task], st: StageStats) -> list[Outcome]:
        if not tasks:
            return []
        self.limiter.new_loop()
        waited_before = self.limiter.waited
        session = None
        bar = None
        if self.progress:
            from rolecraft.console import progress

            bar = progress(total=len(tasks), desc=stage, unit="task", leave=True)

        def get_session():
            """Built on the first journal miss: a fully journaled rerun needs no endpoint (nor its key)."""
            nonlocal session
            if session is None:
                if self.endpoint is None:
                    from rolecraft.api.client import Endpoint

                    self.endpoint = Endpoint(self.llm, "llm")
                session = self.endpoint.session()
            return session

        async def one(task: Task) -> Outcome:
            try:
                return await self._solve(task, get_session, st)
            finally:
                if bar is not None:
                    bar.update(1)

        running = [asyncio.ensure_future(one(t)) for t in tasks]
        try:
            return list(await asyncio.gather(*running))
        except BaseException:
            # a refusal for every request (401/403/404) or Ctrl-C: stop the others before closing the
            # session, so none starts a request on it (what they had received is already journaled)
            for task in running:
                task.cancel()
            await asyncio.gather(*running, return_exceptions=True)
            raise
        finally:
            st.rate_limit_wait_s += self.limiter.waited - waited_before
            if bar is not None:
                bar.close()
            if session is not None:
                await session.aclose()

    async def _solve(self, task: Task, get_session, st: StageStats) -> Outcome:
        res = await ask_until_valid(task.messages, lambda conv, attempt: self._ask(task, conv, attempt, get_session, st),
                                    task.parse, self.max_attempts, feedback)
        st.reasks += res.attempts - 1
        if res.endpoint_error is not None:  # retries exhausted: not journaled, so a rerun tries again
            return Outcome(task, attempts=res.attempts, error=f"endpoint: {res.endpoint_error}")
        if res.invalid is not None:
            return Outcome(task, attempts=res.attempts, error=f"invalid after {res.attempts} tries: {res.invalid}",
                           last_answer=(res.last_answer or "")[:300])
        return Outcome(task, res.value, attempts=res.attempts)

    async def _ask(self, task: Task, messages: list[dict], attempt: int, get_session, st: StageStats) -> str:
        from rolecraft.api.client import chat_content_and_usage

        model = self.llm.model
        phash = prompt_hash(messages, task.key_tag)
        hit = self.journal.get(model, phash, self._pkey)
        if hit is not None:
            st.answers_from_journal += 1
            st.journal_prompt_tokens += hit.prompt_tokens
            st.journal_completion_tokens += hit.completion_tokens
            return hit.content
        # what OpenAI counts against tokens/min when a request arrives: the prompt plus max_tokens
        # (the surplus is booked back by settle() once the real usage is known)
        expect = self.llm.max_tokens or task.expect_tokens
        estimate = estimate_messages(messages) + expect if self.limiter.active else 0
        body = {"model": model, "messages": messages, **self.params}
        (content, pt, ct), tries = await get_session().post(
            "/chat/completions", body, parse=chat_content_and_usage,
            before_try=lambda: self.limiter.acquire(estimate), headers={STAGE_HEADER: task.stage})
        st.requests += tries
        st.retries += tries - 1
        st.prompt_tokens += pt
        st.completion_tokens += ct
        self.limiter.settle(estimate, pt + ct)
        self.journal.put(model, phash, self._pkey, Entry(content, pt, ct), stage=task.stage, item=task.item,
                         attempt=attempt)
        return content
