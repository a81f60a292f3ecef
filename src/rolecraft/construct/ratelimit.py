"""Client-side rate limits in requests/min and tokens/min, as token buckets.

A bucket holds ``burst_seconds`` worth of its per-minute budget and refills continuously, so a
run starts with a short burst and then settles at the limit. A request larger than the bucket
waits for a full bucket and takes it into debt (otherwise it could never go). Token costs are
estimates at send time; :meth:`RateLimiter.settle` books the difference once usage is known.
"""

from __future__ import annotations

import asyncio
import time


class TokenBucket:
    def __init__(self, per_minute: float, burst_seconds: float, clock=time.monotonic):
        if per_minute <= 0:
            raise ValueError(f"a rate limit must be positive, got {per_minute}")
        self.rate = per_minute / 60.0
        self.capacity = max(1.0, self.rate * burst_seconds)
        self.level = self.capacity
        self._clock = clock
        self._last = clock()

    def _refill(self) -> None:
        now = self._clock()
        self.level = min(self.capacity, self.level + (now - self._last) * self.rate)
        self._last = now

    def wait_time(self, amount: float) -> float:
        """Seconds until ``amount`` may be taken (0 = now)."""
        self._refill()
        need = min(amount, self.capacity)
        return 0.0 if self.level >= need else (need - self.level) / self.rate

    def take(self, amount: float) -> None:
        self._refill()
        self.level -= amount

    def give_back(self, amount: float) -> None:
        self._refill()
        self.level = min(self.capacity, self.level + amount)


class RateLimiter:
    """Both limits at once; callers are served first come, first served."""

    def __init__(self, requests_per_minute: float | None, tokens_per_minute: float | None, burst_seconds: float = 6.0):
        self.requests = TokenBucket(requests_per_minute, burst_seconds) if requests_per_minute is not None else None
        self.tokens = TokenBucket(tokens_per_minute, burst_seconds) if tokens_per_minute is not None else None
        self._lock = asyncio.Lock()
        self.waited = 0.0

    def new_loop(self) -> None:
        """The buckets carry over between event loops (stages); the lock must belong to the new one."""
        self._lock = asyncio.Lock()

    @property
    def active(self) -> bool:
        return self.requests is not None or self.tokens is not None

    async def acquire(self, tokens: int) -> None:
        if not self.active:
            return
        async with self._lock:
            while True:
                wait = max(self.requests.wait_time(1) if self.requests else 0.0,
                           self.tokens.wait_time(tokens) if self.tokens else 0.0)
                if wait <= 0:
                    break
                self.waited += wait
                await asyncio.sleep(wait)
            if self.requests:
                self.requests.take(1)
            if self.tokens:
                self.tokens.take(tokens)

    def settle(self, estimated: int, actual: int) -> None:
        """Book the real token count of a finished request against its estimate."""
        if self.tokens is None or actual <= 0:
            return
        if actual > estimated:
            self.tokens.take(actual - estimated)
        else:
            self.tokens.give_back(estimated - actual)
