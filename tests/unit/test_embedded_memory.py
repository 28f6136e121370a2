"""Backpressure of the in-memory embedded bus (`--ephemeral`): a slow consumer bounds memory.

With no journal to catch up from, a consumer holding `max_pending` unacknowledged events makes
`publish` wait for an ack, and fail with `BusUnavailableError` after `publish_timeout`. The
durable bus is covered by the contract suite (tests/contract/test_bus.py), whose semantics
this does not change.

Synchronisation is on conditions (`_until`), futures and task completion; timeouts are only
hang guards, except where the publish timeout itself is under test.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Sized

import pytest

from tripwire import errors, events
from tripwire.bus import base, embedded
from tripwire.bus.embedded import bus as embedded_bus
from tripwire.bus.embedded import consumers

GUARD = 10.0  # seconds; only ever reached when a test is broken


def _subject(name: str = "push") -> str:
    return base.subject(prefix=base.DEFAULT_PREFIX, gateway="gw", event=name)


def _event(n: int, *, name: str = "push") -> events.Event:
    return events.Event(
        id=f"id-{name}-{n}", source="gw", subject=name, type="webhook", data={"n": n}
    )


@contextlib.asynccontextmanager
async def _memory_bus(
    *, max_pending: int, publish_timeout: float = GUARD
) -> AsyncIterator[embedded.EmbeddedBus]:
    bus = embedded.EmbeddedBus(path=None, max_pending=max_pending, publish_timeout=publish_timeout)
    async with contextlib.AsyncExitStack() as stack:
        await bus.start(stack)
        yield bus


async def _consumer(
    bus: embedded.EmbeddedBus, name: str, got: list[base.Message], subject: str = _subject()
) -> consumers.Consumer:
    sub = await bus.subscribe(consumer=name, subjects=[subject], handler=got.append)
    assert isinstance(sub, consumers.Consumer)  # its pending and waiting publishers are looked at
    return sub


async def _until(condition: Callable[[], bool]) -> None:
    """Let the loop run until `condition` holds: routing and wake-ups take a loop turn or two."""
    async with asyncio.timeout(GUARD):
        # Polling, not an event: the conditions are the bus's internal state, which has none.
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(0)


def _holds(items: Sized, count: int) -> Callable[[], bool]:
    return lambda: len(items) == count


def _numbers(got: list[base.Message]) -> list[int]:
    return [m.event.data["n"] for m in got]


async def test_a_full_consumer_holds_publish_until_an_ack() -> None:
    n = 3
    got: list[base.Message] = []
    async with _memory_bus(max_pending=n) as bus:
        sub = await _consumer(bus, "slow", got)
        for k in range(n):
            await asyncio.wait_for(bus.publish(_event(k)), GUARD)  # room: returns at once
        steps: list[str] = []

        async def publish_one_more() -> None:
            await bus.publish(_event(n))
            steps.append("published")

        blocked = asyncio.create_task(publish_one_more(), name="test-blocked-publisher")
        await _until(lambda: len(sub.blocked) == 1 and len(got) == n)
        assert not blocked.done() and len(sub.pending) == n
        steps.append("acked")
        await got[0].ack()
        await asyncio.wait_for(blocked, GUARD)
        assert steps == ["acked", "published"]
        await _until(lambda: len(got) == n + 1)
        assert _numbers(got) == [0, 1, 2, 3]
        assert len(sub.pending) == n


async def test_no_room_within_the_timeout_fails_the_publish_and_loses_nothing() -> None:
    got: list[base.Message] = []
    async with _memory_bus(max_pending=2, publish_timeout=0.05) as bus:
        sub = await _consumer(bus, "sensor-slow", got)
        await bus.publish(_event(0))
        await bus.publish(_event(1))
        with pytest.raises(
            errors.BusUnavailableError, match=r"'sensor-slow' is full \(2 unacknowledged"
        ):
            await asyncio.wait_for(bus.publish(_event(2)), GUARD)
        await _until(lambda: len(got) == 2)
        assert _numbers(got) == [0, 1]
        assert sorted(sub.pending) == [m.seq for m in got]
        assert not sub.blocked
        # The refused event was not taken for published: its retry, once there is room, is.
        await got[0].ack()
        await asyncio.wait_for(bus.publish(_event(2)), GUARD)
        await _until(lambda: len(got) == 3)
        assert _numbers(got) == [0, 1, 2]


async def test_a_full_consumer_does_not_hold_up_other_subjects() -> None:
    full: list[base.Message] = []
    other: list[base.Message] = []
    async with _memory_bus(max_pending=1) as bus:
        sub = await _consumer(bus, "full", full, _subject("a"))
        await _consumer(bus, "other", other, _subject("b"))
        await bus.publish(_event(0, name="a"))
        blocked = asyncio.create_task(bus.publish(_event(1, name="a")), name="test-blocked")
        await _until(lambda: len(sub.blocked) == 1)
        for k in range(5):
            await asyncio.wait_for(bus.publish(_event(k, name="b")), GUARD)
            await _until(_holds(other, k + 1))
            await other[k].ack()
            await asyncio.wait_for(bus.publish(_event(k, name="nobody-listens")), GUARD)
        assert _numbers(other) == [0, 1, 2, 3, 4]
        assert not blocked.done()
        await _until(lambda: len(full) == 1)
        await full[0].ack()
        await asyncio.wait_for(blocked, GUARD)
        await _until(lambda: len(full) == 2)


async def test_waiting_publishers_go_through_in_arrival_order() -> None:
    got: list[base.Message] = []
    async with _memory_bus(max_pending=1) as bus:
        sub = await _consumer(bus, "slow", got)
        await bus.publish(_event(0))
        done: list[int] = []

        async def publish(k: int) -> None:
            await bus.publish(_event(k))
            done.append(k)

        waiting = []
        for k in (1, 2, 3):
            waiting.append(asyncio.create_task(publish(k), name=f"test-publisher-{k}"))
            await _until(_holds(sub.blocked, k))
        for k in (1, 2, 3):
            await _until(_holds(got, k))
            await got[-1].ack()
            await asyncio.wait_for(waiting[k - 1], GUARD)
        assert done == [1, 2, 3]
        await _until(lambda: len(got) == 4)
        assert _numbers(got) == [0, 1, 2, 3]


async def test_a_cancelled_waiter_hands_its_slot_on() -> None:
    got: list[base.Message] = []
    async with _memory_bus(max_pending=1) as bus:
        sub = await _consumer(bus, "slow", got)
        await bus.publish(_event(0))
        first = asyncio.create_task(bus.publish(_event(1)), name="test-first")
        await _until(lambda: len(sub.blocked) == 1)
        second = asyncio.create_task(bus.publish(_event(2)), name="test-second")
        await _until(lambda: len(sub.blocked) == 2)
        await _until(lambda: len(got) == 1)
        # The ack wakes `first` with the slot reserved; it is cancelled before it runs.
        await got[0].ack()
        first.cancel()
        await asyncio.wait_for(second, GUARD)
        with pytest.raises(asyncio.CancelledError):
            await first
        await _until(lambda: len(got) == 2)
        assert _numbers(got) == [0, 2]
        assert not sub.blocked and len(sub.pending) == 1


async def test_a_duplicate_is_dropped_without_waiting_for_room() -> None:
    got: list[base.Message] = []
    async with _memory_bus(max_pending=1) as bus:
        sub = await _consumer(bus, "slow", got)
        await bus.publish(_event(0))
        await asyncio.wait_for(bus.publish(_event(0)), GUARD)  # full, but nothing to deliver
        assert not sub.blocked
        await _until(lambda: len(got) == 1)
        assert _numbers(got) == [0]


async def test_closing_a_full_consumer_releases_its_publishers() -> None:
    got: list[base.Message] = []
    async with _memory_bus(max_pending=1) as bus:
        sub = await _consumer(bus, "closing", got)
        await bus.publish(_event(0))
        blocked = asyncio.create_task(bus.publish(_event(1)), name="test-blocked")
        await _until(lambda: len(sub.blocked) == 1)
        await sub.close()
        await asyncio.wait_for(blocked, GUARD)  # published, to no one
        await asyncio.wait_for(bus.publish(_event(2)), GUARD)


async def test_closing_the_bus_fails_a_waiting_publish() -> None:
    got: list[base.Message] = []
    bus = embedded.EmbeddedBus(path=None, max_pending=1, publish_timeout=GUARD)
    async with contextlib.AsyncExitStack() as stack:
        await bus.start(stack)
        sub = await _consumer(bus, "slow", got)
        await bus.publish(_event(0))
        blocked = asyncio.create_task(bus.publish(_event(1)), name="test-blocked")
        await _until(lambda: len(sub.blocked) == 1)
    with pytest.raises(errors.BusUnavailableError, match="shutting down"):
        await asyncio.wait_for(blocked, GUARD)


async def test_memory_stays_bounded_under_concurrent_publishers() -> None:
    n = 8
    publishers, each = 4, 20  # 10 * n events in all
    high = 0
    got: list[base.Message] = []
    async with _memory_bus(max_pending=n) as bus:
        sub: consumers.Consumer | None = None
        acks: asyncio.Queue[base.Message] = asyncio.Queue()

        def handler(msg: base.Message) -> None:
            # Called as each event enters `pending`: sees every high-water mark.
            nonlocal high
            assert sub is not None
            high = max(high, len(sub.pending))
            got.append(msg)
            acks.put_nowait(msg)

        subscribed = await bus.subscribe(consumer="slow", subjects=[_subject()], handler=handler)
        assert isinstance(subscribed, consumers.Consumer)
        sub = subscribed

        async def publish(p: int) -> None:
            for k in range(each):
                await bus.publish(_event(p * 1000 + k))

        async def ack_slowly() -> None:
            for _ in range(publishers * each):
                msg = await acks.get()
                for _ in range(3):  # a few loop turns per ack: much slower than publishing
                    await asyncio.sleep(0)
                await msg.ack()

        async with asyncio.timeout(GUARD), asyncio.TaskGroup() as tasks:
            tasks.create_task(ack_slowly(), name="test-acker")
            for p in range(publishers):
                tasks.create_task(publish(p), name=f"test-publisher-{p}")
        assert len(got) == publishers * each
        assert high == n  # the bound was reached, and held exactly (no slack)
        numbers = _numbers(got)
        for p in range(publishers):
            # Nothing lost or doubled, and each publisher's events in its order.
            assert [x for x in numbers if x // 1000 == p] == [p * 1000 + k for k in range(each)]
        assert not sub.pending and not sub.blocked and sub.room == n


async def test_publish_lets_quiet_consumers_start_first_and_busy_ones_wait() -> None:
    # A consumer's handler starts its work in a task (as a sensor does). While the consumer
    # holds few events, that task runs before `publish` returns (a webhook's trigger request
    # leaves before its reply); once it holds more than `_QUIET`, publish returns at once.
    started: list[int] = []

    async def work(n: int) -> None:
        started.append(n)

    tasks: set[asyncio.Task[None]] = set()

    def handler(msg: base.Message) -> None:
        task = asyncio.get_running_loop().create_task(work(msg.event.data["n"]))
        tasks.add(task)

    async with _memory_bus(max_pending=64) as bus:
        await bus.subscribe(consumer="c", subjects=[_subject()], handler=handler)
        for n in range(embedded_bus._QUIET):
            await bus.publish(_event(n))
            assert started == list(range(n + 1))  # its work began before publish returned
        busy = embedded_bus._QUIET
        await bus.publish(_event(busy))
        assert busy not in started  # unacknowledged events above _QUIET: no yield
        await _until(lambda: busy in started)
        await asyncio.gather(*tasks)
