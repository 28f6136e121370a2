"""Delivery state of the embedded bus's consumers: what each has been given and has acked.

Consumers are durable: each has a cursor (every event at or below it is acknowledged) and a set
of acknowledged sequence numbers above it. When a consumer starts, events past its cursor that
it has not acknowledged are delivered again. A consumer with too many unacknowledged messages
(`max_pending`) stops receiving live events and later catches up from the journal, so a slow
sensor bounds memory instead of growing a queue.

In memory there is no journal to catch up from, so the bound pushes back on publishers instead:
a consumer counts its free slots (`room`) and keeps the publishers waiting for one (`blocked`),
in arrival order. The bus (`bus.py`) owns the consumers and does the waiting; this module keeps
the per-consumer bookkeeping that every publish, delivery and ack touches, and knows its bus
only through `Owner`, the few things a consumer asks of it.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Protocol

from tripwire import events
from tripwire.bus import base

log = logging.getLogger(__name__)


class Owner(Protocol):
    """What a consumer needs of its bus (`bus.EmbeddedBus`)."""

    durable: bool
    max_pending: int
    # Consumers whose cursor may have moved since the last commit.
    dirty: set[Consumer]

    def enqueue_ack(self, consumer: str, seq: int) -> None: ...

    def feed(self, consumer: Consumer, *, deliveries: int = 1) -> None:
        """Deliver from the journal what a `behind` consumer missed."""
        ...

    def forget(self, consumer: Consumer) -> None:
        """A closed consumer leaves the routing."""
        ...


class Message:
    __slots__ = ("_consumer", "deliveries", "event", "seq")

    def __init__(self, consumer: Consumer, seq: int, event: events.Event, deliveries: int) -> None:
        self._consumer = consumer
        self.seq = seq
        self.event = event
        self.deliveries = deliveries

    async def ack(self) -> None:
        self._consumer.ack(self.seq)

    async def nak(self, *, delay: float = 0.0) -> None:
        self._consumer.nak(self, delay)


class Consumer:
    """One durable consumer's delivery state; also its `Subscription`.

    Live events are offered as they are committed. When `max_pending` messages are delivered
    but not acknowledged, the consumer is `behind`: live offers are ignored and, once acks make
    room, `EmbeddedBus.feed` reads the gap from the journal in order, then turns live again.

    In memory the consumer is never `behind`; `room` is `max_pending` less the events published
    for it and not yet acknowledged (in `pending`). `publish` takes one
    slot per consumer, or waits in `blocked` while `room` is 0; an ack gives a slot back and
    wakes the first waiter with that slot reserved for it, so a publish arriving later cannot
    take it: `pending` never exceeds `max_pending` and waiters go through in arrival order.
    """

    def __init__(
        self,
        bus: Owner,
        *,
        name: str,
        subjects: frozenset[str],
        cursor: int | None,
        handler: base.Handler | None = None,
    ) -> None:
        self.bus = bus
        self.name = name
        self.subjects = subjects
        self.handler = handler
        self.saved_cursor = cursor
        self.delivered_upto = cursor or 0
        self.pending: dict[int, Message] = {}
        self.queue: asyncio.Queue[Message | None] = asyncio.Queue()
        self.behind = False
        self.feed_scheduled = False
        self.acked_above: set[int] = set()
        self.closed = False
        self.timers: set[asyncio.TimerHandle] = set()
        self.room = bus.max_pending  # memory mode only; see the class docstring
        self.blocked: collections.deque[asyncio.Future[None]] = collections.deque()

    def offer(self, seq: int, event: events.Event, *, deliveries: int = 1, live: bool) -> bool:
        """Deliver one event; False when the consumer is full and must be fed later."""
        if self.closed or seq <= self.delivered_upto:
            return True
        if live and self.behind:
            return True  # `feed` will read it from the journal, in order
        if self.bus.durable and len(self.pending) >= self.bus.max_pending:
            self.behind = True
            return False
        self.delivered_upto = seq
        self.bus.dirty.add(self)
        msg = Message(self, seq, event, deliveries)
        self.pending[seq] = msg
        self.deliver(msg)
        return True

    def deliver(self, msg: Message) -> None:
        if self.handler is None:
            self.queue.put_nowait(msg)
            return
        try:
            self.handler(msg)
        except Exception:
            # The message stays pending: it is delivered again when the consumer restarts.
            log.exception("consumer %s failed on event %s", self.name, msg.event.id)

    def ack(self, seq: int) -> None:
        if self.pending.pop(seq, None) is None:
            return
        self.bus.dirty.add(self)
        self.bus.enqueue_ack(self.name, seq)
        self.room += 1
        if self.blocked:
            self.make_room()
        room = len(self.pending) <= self.bus.max_pending // 2
        if self.behind and room and not self.feed_scheduled:
            self.feed_scheduled = True
            asyncio.get_running_loop().call_soon(self.bus.feed, self)

    def make_room(self) -> None:
        """Memory mode: wake waiting publishers in order, one per free slot, each reserved."""
        blocked = self.blocked
        while blocked and self.room > 0:
            fut = blocked.popleft()
            if not fut.done():  # done: cancelled, its publisher is withdrawing
                self.room -= 1
                fut.set_result(None)

    def withdraw(self, fut: asyncio.Future[None]) -> None:
        """A waiting publisher gives up: forget it, or pass on the slot it was woken with."""
        if fut.done() and not fut.cancelled() and fut.exception() is None:
            if not self.closed:
                self.room += 1
                self.make_room()
            return
        with contextlib.suppress(ValueError):
            self.blocked.remove(fut)

    def nak(self, msg: Message, delay: float) -> None:
        if self.closed or msg.seq not in self.pending:
            return
        again = Message(self, msg.seq, msg.event, msg.deliveries + 1)
        self.pending[msg.seq] = again  # same key: keeps its place, so the cursor stays correct
        if delay <= 0:
            self.deliver(again)
            return
        handle: asyncio.TimerHandle

        def redeliver() -> None:
            self.timers.discard(handle)
            if not self.closed and self.pending.get(again.seq) is again:
                self.deliver(again)

        handle = asyncio.get_running_loop().call_later(delay, redeliver)
        self.timers.add(handle)

    def current_cursor(self, committed_seq: int) -> int:
        """Every event at or below this is acknowledged, or not for this consumer."""
        if self.pending:
            # Deliveries are in seq order and a nak keeps the key's place: first key is min.
            return next(iter(self.pending)) - 1
        if self.behind:
            return self.delivered_upto
        return max(committed_seq, self.delivered_upto)

    # -- Subscription ---------------------------------------------------------------------
    def __aiter__(self) -> AsyncIterator[base.Message]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[base.Message]:
        if self.handler is not None:
            raise TypeError(f"consumer {self.name!r} pushes to its handler; it is not iterable")
        while True:
            msg = await self.queue.get()
            if msg is None:
                return
            if self.pending.get(msg.seq) is msg:
                yield msg

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for handle in self.timers:
            handle.cancel()
        self.timers.clear()
        self.queue.put_nowait(None)
        self.bus.forget(self)
        # A closed consumer holds no one back: its waiters look again (without it, or, when
        # the bus is closing, to fail).
        while self.blocked:
            fut = self.blocked.popleft()
            if not fut.done():
                fut.set_result(None)
