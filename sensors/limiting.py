"""Trigger rate limits that hold in every window, including right after an idle period.

Argo's `rateLimit` (N requests per Second/Minute/Hour) is meant to protect the target. A token
bucket allows a full bucket after idling plus the refill within the same window; a fixed window
allows 2N across a window boundary. A sliding log cannot: a firing may start only when the N-th
most recent start is at least one period old, so no window of one period ever holds more than N
starts. Memory is N timestamps. Clock and sleep are injected so tests run on a fake clock.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Awaitable, Callable


class SlidingWindowLimiter:
    def __init__(
        self,
        *,
        limit: int,
        period: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if limit < 1 or period <= 0:
            raise ValueError("limit must be >= 1 and period > 0")
        self.limit = limit
        self.period = period
        self._clock = clock
        self._sleep = sleep
        self._starts: collections.deque[float] = collections.deque(maxlen=limit)
        self._lock = asyncio.Lock()  # FIFO: firings start in the order they asked

    async def acquire(self) -> None:
        """Wait until one more start keeps every window of `period` at `limit` or fewer."""
        async with self._lock:
            if len(self._starts) == self.limit:
                wait = self._starts[0] + self.period - self._clock()
                if wait > 0:
                    await self._sleep(wait)
            self._starts.append(self._clock())
