"""The Kubernetes client's rate limiter: sustained QPS, and no burst beyond `burst` after idling."""

from __future__ import annotations

from tripwire.net.kube import client as kube_client


class FakeTime:
    def __init__(self) -> None:
        self.now = 1000.0

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds


async def _times(limiter: kube_client.RateLimiter, t: FakeTime, n: int) -> list[float]:
    out = []
    for _ in range(n):
        await limiter.acquire()
        out.append(round(t.now - 1000.0, 6))
    return out


async def test_burst_then_qps() -> None:
    t = FakeTime()
    limiter = kube_client.RateLimiter(qps=10, burst=3, clock=t.clock, sleep=t.sleep)
    assert await _times(limiter, t, 6) == [0.0, 0.0, 0.0, 0.1, 0.2, 0.3]


async def test_idle_period_banks_at_most_one_burst() -> None:
    t = FakeTime()
    limiter = kube_client.RateLimiter(qps=10, burst=3, clock=t.clock, sleep=t.sleep)
    await _times(limiter, t, 3)
    t.now += 3600  # an hour idle would be 36,000 tokens without the cap
    start = t.now - 1000.0
    times = [round(x - start, 6) for x in await _times(limiter, t, 6)]
    assert times == [0.0, 0.0, 0.0, 0.1, 0.2, 0.3]


async def test_every_window_of_one_second_holds_at_most_burst_plus_qps() -> None:
    t = FakeTime()
    limiter = kube_client.RateLimiter(qps=5, burst=2, clock=t.clock, sleep=t.sleep)
    times = await _times(limiter, t, 40)
    for i, start in enumerate(times):
        in_window = [x for x in times[i:] if x < start + 1.0]
        assert len(in_window) <= 2 + 5
