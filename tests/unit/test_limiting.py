"""The trigger rate limit: never more than N in ANY window of one period, idle or not."""

from __future__ import annotations

import asyncio

from sensors import limiting


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds


def _max_in_any_window(starts: list[float], period: float) -> int:
    return max(sum(1 for t in starts if s <= t < s + period) for s in starts)


async def test_three_per_minute_holds_in_every_sliding_minute_across_idle_periods() -> None:
    t = FakeTime()
    limiter = limiting.SlidingWindowLimiter(limit=3, period=60, clock=t.clock, sleep=t.sleep)
    starts: list[float] = []
    # Bursts separated by idle periods of various lengths, some shorter than the period.
    for burst, idle in ((7, 0), (5, 200), (4, 30), (6, 59.5), (3, 61), (8, 1)):
        t.now += idle
        for _ in range(burst):
            await limiter.acquire()
            starts.append(t.now)
    assert len(starts) == 33
    assert _max_in_any_window(starts, 60) == 3
    # And it is not stingier than it must be: after a long idle, a full burst goes at once.
    t.now += 1000
    before = t.now
    for _ in range(3):
        await limiter.acquire()
    assert t.now == before


async def test_concurrent_firings_queue_in_order() -> None:
    t = FakeTime()
    limiter = limiting.SlidingWindowLimiter(limit=2, period=1, clock=t.clock, sleep=t.sleep)
    order: list[int] = []

    async def fire(i: int) -> None:
        await limiter.acquire()
        order.append(i)

    await asyncio.gather(*(fire(i) for i in range(6)))
    assert order == list(range(6))
