"""The bus contract (tripwire/bus/base.py), run against every bus implementation.

A new bus joins by adding a factory to `BUSES`; the tests say what "durable", "acknowledged"
and "redelivered" mean, so the runtime can rely on them whatever the bus.
"""

from __future__ import annotations

import asyncio
import contextlib
import pathlib
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from tripwire import errors, events
from tripwire.bus import base
from tripwire.bus.embedded import bus as embedded  # the module whose constants are patched

OpenBus = Callable[..., contextlib.AbstractAsyncContextManager[base.Bus]]


@contextlib.asynccontextmanager
async def _running(bus: base.Bus) -> AsyncIterator[base.Bus]:
    async with contextlib.AsyncExitStack() as stack:
        await bus.start(stack)
        yield bus


# sqlite: every commit by the journal's writer task (group commit); sqlite-inline: a publish that
# finds nothing else queued commits in its own loop turn (what low rates do); memory: no journal.
@pytest.fixture(params=["sqlite", "sqlite-inline", "memory"])
def kind(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "sqlite":
        monkeypatch.setattr(embedded, "_INLINE_GAP", float("inf"))
    elif request.param == "sqlite-inline":
        monkeypatch.setattr(embedded, "_INLINE_GAP", -1.0)
    return str(request.param)


@pytest.fixture
def open_bus(kind: str, tmp_path: pathlib.Path) -> OpenBus:
    """Opens the bus of this test's kind; calling it again reopens the same durable state."""

    def opener(**options: int) -> contextlib.AbstractAsyncContextManager[base.Bus]:
        path = tmp_path / "state" if kind != "memory" else None
        return _running(embedded.EmbeddedBus(path=path, **options))  # type: ignore[arg-type]

    return opener


def _event(n: int, *, gateway: str = "gw", name: str = "push") -> events.Event:
    return events.Event(
        id=f"id-{gateway}-{name}-{n}", source=gateway, subject=name, type="webhook", data={"n": n}
    )


def _subject(name: str = "push", gateway: str = "gw") -> str:
    return base.subject(prefix=base.DEFAULT_PREFIX, gateway=gateway, event=name)


async def _take(sub: base.Subscription, count: int) -> list[base.Message]:
    out: list[base.Message] = []

    async def collect() -> None:
        async for msg in sub:
            out.append(msg)
            if len(out) == count:
                return

    await asyncio.wait_for(collect(), timeout=10)
    return out


async def _nothing_more(sub: base.Subscription) -> None:
    """No further message arrives within a short while."""

    async def first() -> base.Message:
        async for msg in sub:
            return msg
        raise AssertionError("subscription ended")

    with pytest.raises(TimeoutError):
        await asyncio.wait_for(first(), timeout=0.2)


async def test_delivers_in_order_only_the_subscribed_subjects(open_bus: OpenBus) -> None:
    async with open_bus() as bus:
        sub = await bus.subscribe(consumer="s", subjects=[_subject("push")])
        for n in range(5):
            await bus.publish(_event(n))
            await bus.publish(_event(n, name="other"))
        got = await _take(sub, 5)
        assert [m.event.data["n"] for m in got] == [0, 1, 2, 3, 4]
        assert all(m.event.subject == "push" and m.deliveries == 1 for m in got)
        assert [m.seq for m in got] == sorted(m.seq for m in got)
        for m in got:
            await m.ack()
        await _nothing_more(sub)


async def test_new_consumer_starts_at_the_end(open_bus: OpenBus) -> None:
    async with open_bus() as bus:
        await bus.publish(_event(1))
        sub = await bus.subscribe(consumer="late", subjects=[_subject()])
        await bus.publish(_event(2))
        [msg] = await _take(sub, 1)
        assert msg.event.data == {"n": 2}


async def test_every_consumer_gets_its_own_copy(open_bus: OpenBus) -> None:
    async with open_bus() as bus:
        a = await bus.subscribe(consumer="a", subjects=[_subject()])
        b = await bus.subscribe(consumer="b", subjects=[_subject()])
        await bus.publish(_event(7))
        assert [m.event.id for m in await _take(a, 1)] == ["id-gw-push-7"]
        assert [m.event.id for m in await _take(b, 1)] == ["id-gw-push-7"]


async def test_same_event_id_is_published_once(open_bus: OpenBus) -> None:
    async with open_bus() as bus:
        sub = await bus.subscribe(consumer="s", subjects=[_subject()])
        await bus.publish(_event(1))
        await bus.publish(_event(1))
        await bus.publish(_event(2))
        got = await _take(sub, 2)
        assert [m.event.data["n"] for m in got] == [1, 2]


async def test_event_round_trips_unchanged(open_bus: OpenBus, kind: str) -> None:
    original = _event(3)
    original.data = {"body": {"ref": "refs/heads/main", "list": [1, 2.5, None, True]}}
    original.extensions["traceparent"] = "00-abc-def-01"
    async with open_bus() as bus:
        sub = await bus.subscribe(consumer="s", subjects=[_subject()])
        await bus.publish(original)
        [msg] = await _take(sub, 1)
        await msg.ack()
    if kind == "memory":
        return
    async with open_bus() as bus:
        # Reading it back from the journal gives the same event.
        stored = await _replayed_after_restart(bus, original)
        assert stored.to_dict() == original.to_dict()


async def _replayed_after_restart(bus: base.Bus, event: events.Event) -> events.Event:
    sub = await bus.subscribe(consumer="fresh", subjects=[_subject()])
    # A fresh consumer sees only new events: publish a copy under a new id and compare data.
    copy = events.from_bytes(event.to_bytes())
    copy.id = "copy"
    await bus.publish(copy)
    [msg] = await _take(sub, 1)
    msg.event.id = event.id
    return msg.event


async def test_nak_redelivers_after_the_delay(open_bus: OpenBus) -> None:
    async with open_bus() as bus:
        sub = await bus.subscribe(consumer="s", subjects=[_subject()])
        await bus.publish(_event(1))
        [first] = await _take(sub, 1)
        await first.nak(delay=0.05)
        [again] = await _take(sub, 1)
        assert again.event.id == first.event.id and again.deliveries == 2
        await again.ack()
        await _nothing_more(sub)


async def test_unacked_messages_are_redelivered_after_restart(open_bus: OpenBus, kind: str) -> None:
    if kind == "memory":
        pytest.skip("an in-memory bus forgets everything when the process ends, by design")
    async with open_bus() as bus:
        sub = await bus.subscribe(consumer="s", subjects=[_subject()])
        for n in range(6):
            await bus.publish(_event(n))
        got = await _take(sub, 6)
        # Out of order acks: 0, 2, 5 done; 1, 3, 4 were in flight when the process stopped.
        for m in (got[0], got[2], got[5]):
            await m.ack()
    async with open_bus() as bus:
        sub = await bus.subscribe(consumer="s", subjects=[_subject()])
        again = await _take(sub, 3)
        assert [m.event.data["n"] for m in again] == [1, 3, 4]
        assert all(m.deliveries > 1 for m in again)
        for m in again:
            await m.ack()
        await bus.publish(_event(9))
        [live] = await _take(sub, 1)
        assert live.event.data == {"n": 9} and live.deliveries == 1
        await live.ack()
    async with open_bus() as bus:
        sub = await bus.subscribe(consumer="s", subjects=[_subject()])
        await _nothing_more(sub)


def _publishing(bus: base.Bus, count: int) -> asyncio.Task[None]:
    """Publishes `count` events in a task: the in-memory bus holds a publisher back while a
    consumer has `max_pending` events unacknowledged, so the test must consume meanwhile."""

    async def publish() -> None:
        for n in range(count):
            await bus.publish(_event(n))

    return asyncio.create_task(publish(), name="test-publisher")


async def test_slow_consumer_gets_every_event_without_loss_or_dupes(
    open_bus: OpenBus, kind: str
) -> None:
    async with open_bus(max_pending=4) as bus:
        sub = await bus.subscribe(consumer="slow", subjects=[_subject()])
        publishing = _publishing(bus, 200)
        if kind != "memory":
            # All of them go in at once: the consumer falls behind and is fed from the journal.
            await asyncio.wait_for(publishing, timeout=10)
        seen: list[int] = []
        async for msg in sub:
            seen.append(msg.event.data["n"])
            await msg.ack()
            if len(seen) == 200:
                break
        await asyncio.wait_for(publishing, timeout=10)
        assert seen == list(range(200))
        await _nothing_more(sub)


async def test_store_is_atomic_and_durable(open_bus: OpenBus, kind: str) -> None:
    async with open_bus() as bus:
        store = bus.store("sensor/a")
        other = bus.store("sensor/b")
        await store.write({"dep/x": b"1", "dep/y": b"2", "fired/k": b"3"})
        await store.write({"dep/y": None})
        await other.write({"dep/x": b"other"})
        assert await store.get("dep/x") == b"1"
        assert await store.get("dep/y") is None
        assert await store.scan("dep/") == [("dep/x", b"1")]
    if kind == "memory":
        return
    async with open_bus() as bus:
        assert await bus.store("sensor/a").scan() == [("dep/x", b"1"), ("fired/k", b"3")]
        assert await bus.store("sensor/b").get("dep/x") == b"other"


async def test_publish_fails_loudly_when_the_journal_cannot_write(
    open_bus: OpenBus, kind: str
) -> None:
    if kind == "memory":
        pytest.skip("an in-memory bus has no journal to fill")
    async with open_bus() as bus:
        assert isinstance(bus, embedded.EmbeddedBus)
        sub = await bus.subscribe(consumer="s", subjects=[_subject()])
        await bus.publish(_event(0))
        [m] = await _take(sub, 1)
        await m.ack()
        # A full disk, as SQLite reports it: the page limit is what the file has now.
        full = _set_page_limit(bus, 0)
        await full
        big = _event(1)
        big.data = {"pad": "x" * 200_000}
        with pytest.raises(errors.BusUnavailableError, match="full"):
            await bus.publish(big)
        await _nothing_more(sub)
        await _set_page_limit(bus, 1_000_000)
        await bus.publish(_event(2))
        [after] = await _take(sub, 1)
        assert after.event.data == {"n": 2}
        await after.ack()


def _set_page_limit(bus: embedded.EmbeddedBus, pages: int) -> Awaitable[None]:
    def apply() -> None:
        db = bus._db  # simulating a full disk needs the connection
        assert db is not None
        current = db.execute("PRAGMA page_count").fetchone()[0]
        db.execute(f"PRAGMA max_page_count = {max(pages, current)}")

    executor = bus._executor
    return asyncio.get_running_loop().run_in_executor(executor, apply)


async def test_a_handler_gets_every_message_pushed_in_order(open_bus: OpenBus, kind: str) -> None:
    got: list[base.Message] = []
    async with open_bus(max_pending=4) as bus:
        sub = await bus.subscribe(consumer="push", subjects=[_subject()], handler=got.append)
        publishing = _publishing(bus, 10)
        await asyncio.sleep(0.05)
        # At most max_pending unacked at once (durable: the consumer is behind; in memory: the
        # publisher waits); acks let the rest through.
        while len(got) < 10:
            for msg in got:
                await msg.ack()
            await asyncio.sleep(0.01)
        await asyncio.wait_for(publishing, timeout=10)
        assert [m.event.data["n"] for m in got] == list(range(10))
        for msg in got:
            await msg.ack()
        await got[0].nak(delay=0)  # acked already: nothing happens
        assert len(got) == 10
        with pytest.raises(TypeError, match="pushes to its handler"):
            async for _ in sub:
                pass


async def test_a_handler_gets_unacked_messages_again_after_restart(
    open_bus: OpenBus, kind: str
) -> None:
    if kind == "memory":
        pytest.skip("an in-memory bus forgets everything when the process ends, by design")
    first: list[base.Message] = []
    async with open_bus() as bus:
        await bus.subscribe(consumer="push", subjects=[_subject()], handler=first.append)
        for n in range(3):
            await bus.publish(_event(n))
        await asyncio.sleep(0.05)
        await first[1].ack()
    again: list[base.Message] = []
    async with open_bus() as bus:
        await bus.subscribe(consumer="push", subjects=[_subject()], handler=again.append)
        await asyncio.sleep(0.05)
        assert [(m.event.data["n"], m.deliveries > 1) for m in again] == [(0, True), (2, True)]
