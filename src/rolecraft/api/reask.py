"""Ask, check the answer, and re-ask in the same conversation with the reason: one loop for every
caller that needs a well-formed answer (construction stages, the judge).

A check returns the parsed value or raises :class:`Invalid` whose message says what is wrong; that
message goes back to the model (through the caller's ``feedback`` wording) and into the record of
failures. An endpoint that keeps failing ends the loop at once: re-asking cannot fix it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable


class Invalid(ValueError):
    """The answer breaks the rules; ``str(e)`` tells the model what to fix."""


@dataclass
class Asked:
    """The loop's result: ``value`` when an answer passed, else ``invalid`` (the last reason) or
    ``endpoint_error``; ``history`` holds every rejected reply with its problem."""

    value: Any = None
    attempts: int = 0
    invalid: str | None = None
    endpoint_error: str | None = None
    last_answer: str | None = None
    history: list[dict] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.invalid is None and self.endpoint_error is None


async def ask_until_valid(messages: list[dict], ask: Callable[[list[dict], int], Awaitable[str | None]],
                          check: Callable[[str], Any], max_attempts: int,
                          feedback: Callable[[str], str]) -> Asked:
    """Up to ``max_attempts`` tries of ``ask(conversation, attempt)``; each invalid answer is appended
    with ``feedback(reason)`` as the next user turn. ``ask`` raises ApiError when the endpoint still
    failed after its retries (the loop stops and records it); ApiRefused propagates (the run stops)."""
    from rolecraft.api.client import ApiError, ApiRefused

    conv = list(messages)
    out = Asked()
    for attempt in range(1, max_attempts + 1):
        out.attempts = attempt
        try:
            answer = await ask(conv, attempt)
        except ApiRefused:
            raise
        except ApiError as e:
            out.endpoint_error = str(e)
            return out
        out.last_answer = answer or ""
        try:
            out.value, out.invalid = check(out.last_answer), None
            return out
        except Invalid as e:
            out.invalid = str(e)
            out.history.append({"reply": answer, "problem": str(e)})
            conv = conv + [{"role": "assistant", "content": out.last_answer},
                           {"role": "user", "content": feedback(str(e))}]
    return out
