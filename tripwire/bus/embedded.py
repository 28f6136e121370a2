"""The embedded bus: one process, durable in a SQLite WAL journal, or purely in memory.

`tripwire run` needs a bus that survives a crash of its own process without running a server.
A journal in SQLite (WAL mode) gives that: `publish` returns once the event's row is committed.

Group commit keeps throughput from collapsing: every publish, ack, cursor move and key-value
write is queued; one writer task takes everything queued, commits it in one transaction and
then routes the new events to their consumers and releases all the waiting publishers at once.
Under load, batches grow by themselves. At low rates (the journal idle for 2 ms) a publish
commits in its own loop turn instead of waking the writer for a batch of one. With
`sync="normal"` the commit runs on the loop (a write() into the page cache, tens of µs: cheaper
than two thread hops); with `sync="full"` its fsync runs on a worker thread. Publishers are
released one loop turn after the routing, so the consumers' work (a trigger's request) goes out
before the publisher's reply (a webhook's 200), which keeps that reply off the effect's path.

Consumers are durable: each has a cursor (every event at or below it is acknowledged) and a set
of acknowledged sequence numbers above it. When a consumer starts, events past its cursor that
it has not acknowledged are delivered again. A consumer with too many unacknowledged messages
(`max_pending`) stops receiving live events and later catches up from the journal, so a slow
sensor bounds memory instead of growing a queue. Events at or below every consumer's cursor
are trimmed.

Durability: `synchronous=NORMAL` in WAL mode survives a crash of this process (the commit is
in the OS page cache), not a power loss; `sync="full"` adds an fsync per batch for that.
With `path=None` (`--ephemeral`) nothing touches the disk: same semantics within one process,
except for how a slow consumer is bounded. In memory there is no journal to catch up from, so
the bound pushes back on publishers instead: a publish to a subject whose consumer already holds
`max_pending` events (delivered, not acknowledged) waits until acks make room,
publishers in arrival order, and raises `BusUnavailableError` after `publish_timeout` seconds
(the webhook gateway answers 503 + Retry-After). While no consumer is full, a publish pays a
few comparisons for this and nothing more. A publish routes its event at once; while its
consumers are quiet (at most `_QUIET` events unacknowledged) it yields one loop turn before
returning, so their work (a trigger's request) goes out before the publisher's reply, as with
the journal's release. Under load it returns at once: there the order buys no latency (the
loop is busy either way) and the extra task step cost every event ~3 µs of CPU.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import dataclasses
import logging
import pathlib
import sqlite3
import time
from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from typing import Literal

from tripwire import errors, events, metrics
from tripwire.bus import base

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY, subject TEXT NOT NULL, id TEXT NOT NULL,
    ts REAL NOT NULL, body BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS consumers (name TEXT PRIMARY KEY, cursor INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS acks (
    consumer TEXT NOT NULL, seq INTEGER NOT NULL, PRIMARY KEY (consumer, seq)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS kv (
    ns TEXT NOT NULL, key TEXT NOT NULL, value BLOB NOT NULL, PRIMARY KEY (ns, key)) WITHOUT ROWID;
"""

# Unacknowledged events a consumer may hold. Durable: past it the consumer reads the journal
# later, so it can be large. In memory: past it publishers wait, and it is kept near what the
# process can have in flight at once (the HTTP client's 256 connections): thousands of firings
# queued behind a connection pool cost CPU on every event (measured: 4096 made the in-memory
# pipeline ~15% more expensive per event under overload than 256) and hold memory for nothing.
DURABLE_MAX_PENDING = 4096
MEMORY_MAX_PENDING = 256
_CATCH_UP_PAGE = 512
# A publish commits in its own loop turn when the journal has been idle this long (seconds).
_INLINE_GAP = 0.002
# In memory, a publish yields to its consumers only while each holds at most this many events.
_QUIET = 4
_TRIM_STEP = 2000


@dataclasses.dataclass(slots=True)
class _Batch:
    """Everything queued since the last commit."""

    rows: list[tuple[int, str, str, float, bytes]] = dataclasses.field(default_factory=list)
    published: list[tuple[int, str, events.Event]] = dataclasses.field(default_factory=list)
    acks: list[tuple[str, int]] = dataclasses.field(default_factory=list)
    kv: dict[tuple[str, str], bytes | None] = dataclasses.field(default_factory=dict)
    waiters: list[asyncio.Future[None]] = dataclasses.field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.rows or self.acks or self.kv or self.waiters)


def _time_out(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_exception(TimeoutError())


def _release(waiters: list[asyncio.Future[None]]) -> None:
    for fut in waiters:
        if not fut.done():
            fut.set_result(None)


class _Message:
    __slots__ = ("_consumer", "deliveries", "event", "seq")

    def __init__(self, consumer: _Consumer, seq: int, event: events.Event, deliveries: int) -> None:
        self._consumer = consumer
        self.seq = seq
        self.event = event
        self.deliveries = deliveries

    async def ack(self) -> None:
        self._consumer.ack(self.seq)

    async def nak(self, *, delay: float = 0.0) -> None:
        self._consumer.nak(self, delay)


class _Consumer:
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
        bus: EmbeddedBus,
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
        self.pending: dict[int, _Message] = {}
        self.queue: asyncio.Queue[_Message | None] = asyncio.Queue()
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
        msg = _Message(self, seq, event, deliveries)
        self.pending[seq] = msg
        self.deliver(msg)
        return True

    def deliver(self, msg: _Message) -> None:
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

    def nak(self, msg: _Message, delay: float) -> None:
        if self.closed or msg.seq not in self.pending:
            return
        again = _Message(self, msg.seq, msg.event, msg.deliveries + 1)
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


class _Store:
    def __init__(self, bus: EmbeddedBus, namespace: str) -> None:
        self._bus = bus
        self._ns = namespace

    async def get(self, key: str) -> bytes | None:
        return self._bus.kv.get(self._ns, {}).get(key)

    async def scan(self, prefix: str = "") -> list[tuple[str, bytes]]:
        entries = self._bus.kv.get(self._ns, {})
        return sorted((k, v) for k, v in entries.items() if k.startswith(prefix))

    async def write(self, changes: Mapping[str, bytes | None]) -> None:
        await self._bus.write_kv(self._ns, changes)


class EmbeddedBus:
    """`base.Bus` in one process; `path=None` keeps everything in memory."""

    def __init__(
        self,
        *,
        path: pathlib.Path | None,
        prefix: str = base.DEFAULT_PREFIX,
        sync: Literal["normal", "full"] = "normal",
        dedupe_window: float = 120.0,
        max_pending: int | None = None,
        max_age: float = 72 * 3600.0,
        publish_timeout: float = 5.0,
    ) -> None:
        self.prefix = prefix
        self.path = path
        self.durable = path is not None
        if max_pending is None:
            max_pending = DURABLE_MAX_PENDING if path is not None else MEMORY_MAX_PENDING
        self.max_pending = max_pending
        self._quiet_room = max_pending - _QUIET  # `room` of a consumer holding _QUIET events
        self._publish_timeout = publish_timeout  # memory mode: longest wait for a full consumer
        self._sync = sync
        self._dedupe_window = dedupe_window
        self._max_age = max_age
        self._recent_ids: collections.OrderedDict[str, float] = collections.OrderedDict()
        self._last_seq = 0
        self._by_subject: dict[str, list[_Consumer]] = {}
        self._consumers: dict[str, _Consumer] = {}
        self.kv: dict[str, dict[str, bytes]] = {}
        self._batch = _Batch()
        self._wakeup = asyncio.Event()
        self._db: sqlite3.Connection | None = None
        self._reader: sqlite3.Connection | None = None
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._writer_task: asyncio.Task[None] | None = None
        self._committed_seq = 0
        self._failure: str | None = None
        self._closing = False
        self._commits = 0
        self._trimmed_upto = 0
        self.dirty: set[_Consumer] = set()
        self._checkpointer: sqlite3.Connection | None = None
        self._checkpointing: asyncio.Future[None] | None = None
        self._inline = sync == "normal"  # a commit with an fsync never runs on the loop
        self._last_commit = 0.0  # time.monotonic() of the last commit
        self._publish_seconds = metrics.PUBLISH_SECONDS.labels("embedded")

    # -- lifecycle --------------------------------------------------------------------------
    async def start(self, stack: contextlib.AsyncExitStack) -> None:
        if self.path is not None:
            self.path.mkdir(parents=True, exist_ok=True)
            self._executor = concurrent.futures.ThreadPoolExecutor(
                max_workers=1, thread_name_prefix="tripwire-journal"
            )
            await asyncio.get_running_loop().run_in_executor(self._executor, self._open)
            self._writer_task = asyncio.create_task(self._write_loop(), name="bus-journal-writer")
        stack.push_async_callback(self._close)

    def _open(self) -> None:
        assert self.path is not None
        file = self.path / "journal.db"
        db = sqlite3.connect(file, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(f"PRAGMA synchronous={'FULL' if self._sync == 'full' else 'NORMAL'}")
        db.execute("PRAGMA wal_autocheckpoint=0")  # see _maybe_checkpoint
        db.executescript(_SCHEMA)
        first = db.execute("SELECT min(seq) FROM events").fetchone()[0]
        self._trimmed_upto = (first - 1) if first is not None else 0
        row = db.execute("SELECT max(seq) FROM events").fetchone()
        cursors = db.execute("SELECT max(cursor) FROM consumers").fetchone()
        self._last_seq = max(row[0] or 0, cursors[0] or 0)
        self._committed_seq = self._last_seq
        horizon = time.time() - self._dedupe_window
        for event_id, ts in db.execute(
            "SELECT id, ts FROM events WHERE ts >= ? ORDER BY seq", (horizon,)
        ):
            self._recent_ids[event_id] = ts
        for ns, key, value in db.execute("SELECT ns, key, value FROM kv"):
            self.kv.setdefault(ns, {})[key] = value
        self._db = db
        reader = sqlite3.connect(file, isolation_level=None, check_same_thread=False)
        reader.execute("PRAGMA query_only=1")
        self._reader = reader
        self._checkpointer = sqlite3.connect(file, isolation_level=None, check_same_thread=False)

    async def _close(self) -> None:
        # Refuse new publishes, let the writer commit what is queued (cursors included, while
        # the consumers are still registered), then end the consumers and close the files.
        # Closing a consumer wakes the publishers waiting for it; they see `_closing` and fail.
        self._closing = True
        if self._writer_task is not None:
            self._wakeup.set()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer_task
        for consumer in list(self._consumers.values()):
            await consumer.close()
        if self._executor is not None:
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(self._executor, self._close_db)
            self._executor.shutdown(wait=True)

    def _close_db(self) -> None:
        for db in (self._db, self._reader, self._checkpointer):
            if db is not None:
                db.close()
        self._db = self._reader = self._checkpointer = None

    @property
    def healthy(self) -> bool:
        return self._failure is None

    # -- publish ----------------------------------------------------------------------------
    def _is_duplicate(self, event_id: str, now: float) -> bool:
        recent = self._recent_ids
        horizon = now - self._dedupe_window
        while recent:
            oldest_id, ts = next(iter(recent.items()))
            if ts >= horizon:
                break
            del recent[oldest_id]
        if event_id in recent:
            return True
        recent[event_id] = now
        return False

    async def publish(self, event: events.Event) -> None:
        if self._closing:
            raise errors.BusUnavailableError("the bus is shutting down")
        now = time.time()
        subject = f"{self.prefix}.{event.source}.{event.subject}"
        if not self.durable:
            consumers: Sequence[_Consumer] = self._by_subject.get(subject, ())
            for consumer in consumers:
                if consumer.room <= 0:
                    taken = await self._room_for(subject, event.id)
                    if taken is None:
                        return  # a duplicate
                    consumers = taken
                    break
            else:  # no consumer full: the fast path
                if self._is_duplicate(event.id, now):
                    return
                for consumer in consumers:
                    consumer.room -= 1  # a slot in each: `ack` gives it back
            self._last_seq += 1
            seq = self._last_seq
            quiet = True
            for consumer in consumers:
                consumer.offer(seq, event, live=True)
                quiet = quiet and consumer.room >= self._quiet_room
            if quiet:
                await asyncio.sleep(0)  # the consumers' work goes first (module docstring)
            return
        if self._is_duplicate(event.id, now):
            return
        self._last_seq += 1
        seq = self._last_seq
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        batch = self._batch
        batch.rows.append((seq, subject, event.id, now, event.to_bytes()))
        batch.published.append((seq, subject, event))
        batch.waiters.append(fut)
        if (
            len(batch.waiters) == 1
            and not self._wakeup.is_set()
            and self._inline
            and self._failure is None
            and time.monotonic() - self._last_commit > _INLINE_GAP
        ):
            # Low rate (no commit for a while, nothing else queued): commit in this turn
            # rather than wake the writer for a batch of one, a loop turn sooner. Under load
            # commits follow each other closely and the writer's group commit takes over.
            self._commit_now()
        else:
            self._wakeup.set()
        try:
            await fut
        except errors.BusUnavailableError:
            self._recent_ids.pop(event.id, None)
            raise
        self._publish_seconds.observe(time.time() - now)

    async def _room_for(self, subject: str, event_id: str) -> Sequence[_Consumer] | None:
        """Memory mode: wait for a slot in every consumer of `subject`, take them, return them.

        The slow path of `publish`, taken only when a consumer is full. None for a duplicate
        (nothing taken). Raises `BusUnavailableError` after `publish_timeout` seconds, or when
        the bus closes meanwhile.
        """
        seen = self._recent_ids.get(event_id)
        if seen is not None and seen >= time.time() - self._dedupe_window:
            return None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._publish_timeout
        released: _Consumer | None = None
        while True:
            consumers = self._by_subject.get(subject, ())
            full = next((c for c in consumers if c.room <= 0), None)
            if full is None:
                # Checked again: the same id may have been published while this one waited.
                if self._is_duplicate(event_id, time.time()):
                    if released is not None:
                        released.make_room()
                    return None
                for consumer in consumers:
                    consumer.room -= 1
                return consumers
            if released is not None:
                released.make_room()  # we wait for another consumer: the slot goes to the next
                released = None
            fut: asyncio.Future[None] = loop.create_future()
            full.blocked.append(fut)
            # A timer on the future, not `asyncio.timeout_at`: under overload every publish
            # waits here, and the context manager costs several times as much per wait.
            timer = loop.call_at(deadline, _time_out, fut)
            try:
                await fut
            except TimeoutError:
                full.withdraw(fut)
                if self._closing:
                    raise errors.BusUnavailableError("the bus is shutting down") from None
                raise errors.BusUnavailableError(
                    f"consumer {full.name!r} is full ({self.max_pending} unacknowledged, its"
                    f" max_pending): no room within {self._publish_timeout:g} s"
                ) from None
            except BaseException:  # cancelled
                full.withdraw(fut)
                raise
            finally:
                timer.cancel()
            if self._closing:
                raise errors.BusUnavailableError("the bus is shutting down")
            if not full.closed:
                # Woken with a slot reserved: give it back; the next pass takes it again.
                full.room += 1
                released = full

    def _route(self, seq: int, subject: str, event: events.Event) -> None:
        for consumer in self._by_subject.get(subject, ()):
            consumer.offer(seq, event, live=True)

    # -- consumers --------------------------------------------------------------------------
    async def subscribe(
        self,
        *,
        consumer: str,
        subjects: Collection[str],
        handler: base.Handler | None = None,
    ) -> base.Subscription:
        if consumer in self._consumers:
            raise errors.BusError(f"consumer {consumer!r} is already subscribed")
        cursor: int | None = None
        if self._reader is not None:
            row = self._reader.execute(
                "SELECT cursor FROM consumers WHERE name = ?", (consumer,)
            ).fetchone()
            if row is not None:
                cursor = row[0]
        state = _Consumer(
            self, name=consumer, subjects=frozenset(subjects), cursor=cursor, handler=handler
        )
        if cursor is None:
            # A new consumer starts at the end of the journal (JetStream DeliverNew).
            state.delivered_upto = self._last_seq
        elif self._reader is not None:
            state.acked_above = {
                seq
                for (seq,) in self._reader.execute(
                    "SELECT seq FROM acks WHERE consumer = ? AND seq > ?", (consumer, cursor)
                )
            }
            state.behind = True
            self.feed(state, deliveries=2)
        self._consumers[consumer] = state
        for subject in state.subjects:
            self._by_subject.setdefault(subject, []).append(state)
        if self.durable:
            self.dirty.add(state)
            self._wakeup.set()  # the next commit records the consumer and its cursor
        return state

    def feed(self, consumer: _Consumer, *, deliveries: int = 1) -> None:
        """Deliver from the journal what a `behind` consumer missed, then turn it live.

        Synchronous on purpose: between the last page read and `behind = False` nothing else
        runs on the loop, so no live event can slip between the journal and the live stream.
        Rows committed but not yet routed are read here and skipped later by `offer`.
        """
        consumer.feed_scheduled = False
        if consumer.closed or not consumer.behind or self._reader is None:
            return
        while True:
            rows = self._journal_page(consumer, consumer.delivered_upto)
            for seq, body in rows:
                if seq in consumer.acked_above:
                    consumer.delivered_upto = seq
                    continue
                event = events.from_bytes(body)
                if not consumer.offer(seq, event, deliveries=deliveries, live=False):
                    return  # full again; acks schedule the next feed
            if len(rows) < _CATCH_UP_PAGE:
                consumer.delivered_upto = max(consumer.delivered_upto, self._committed_seq)
                consumer.behind = False
                consumer.acked_above.clear()
                return

    def _journal_page(self, consumer: _Consumer, after: int) -> list[tuple[int, bytes]]:
        assert self._reader is not None
        marks = ",".join("?" * len(consumer.subjects))
        rows: list[tuple[int, bytes]] = self._reader.execute(
            f"SELECT seq, body FROM events WHERE seq > ? AND subject IN ({marks})"  # noqa: S608
            " ORDER BY seq LIMIT ?",
            (after, *consumer.subjects, _CATCH_UP_PAGE),
        ).fetchall()
        return rows

    def forget(self, consumer: _Consumer) -> None:
        if self._consumers.get(consumer.name) is consumer:
            del self._consumers[consumer.name]
        for subject in consumer.subjects:
            subscribed = self._by_subject.get(subject, [])
            if consumer in subscribed:
                subscribed.remove(consumer)
        if self.durable and not self._closing:
            self._wakeup.set()

    def enqueue_ack(self, consumer: str, seq: int) -> None:
        if self.durable:
            self._batch.acks.append((consumer, seq))
            self._wakeup.set()

    # -- key-value --------------------------------------------------------------------------
    def store(self, namespace: str) -> base.Store:
        return _Store(self, namespace)

    async def write_kv(self, namespace: str, changes: Mapping[str, bytes | None]) -> None:
        entries = self.kv.setdefault(namespace, {})
        for key, value in changes.items():
            if value is None:
                entries.pop(key, None)
            else:
                entries[key] = value
        if not self.durable:
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        for key, value in changes.items():
            self._batch.kv[(namespace, key)] = value
        self._batch.waiters.append(fut)
        self._wakeup.set()
        await fut

    # -- the writer -------------------------------------------------------------------------
    async def _write_loop(self) -> None:
        loop = asyncio.get_running_loop()
        backoff = 0.05
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            work = self._take()
            if work is None:
                if self._closing:
                    return
                continue
            batch, cursors, trim = work
            try:
                if self._sync == "full":
                    # An fsync per batch: keep it off the event loop.
                    await loop.run_in_executor(self._executor, self._commit, batch, cursors, trim)
                else:
                    # No fsync in WAL + NORMAL: a commit is a write() into the page cache,
                    # tens of µs — cheaper inline than the two thread hops and the GIL
                    # hand-over a worker would cost on every publish.
                    self._commit(batch, cursors, trim)
            except sqlite3.Error as exc:
                self._failed(batch, cursors, exc)
                await asyncio.sleep(backoff)
                # Bounded so that a publisher waiting on a failing disk hears within 0.5 s.
                backoff = min(backoff * 2, 0.5)
                self._wakeup.set()
                continue
            backoff = 0.05
            self._done(batch, cursors)
            if self._closing and not self._batch:
                return

    def _commit_now(self) -> None:
        """Commit what is queued right here, in the publisher's turn (see `publish`)."""
        work = self._take()
        if work is None:
            return
        batch, cursors, trim = work
        try:
            self._commit(batch, cursors, trim)
        except sqlite3.Error as exc:
            self._failed(batch, cursors, exc)
            self._wakeup.set()  # the writer retries what can be retried, with its backoff
            return
        self._done(batch, cursors)

    def _take(self) -> tuple[_Batch, dict[str, int], int | None] | None:
        """Everything the next commit holds, or None when there is nothing to write."""
        batch, self._batch = self._batch, _Batch()
        self._commits += 1
        cursors = self._cursor_changes()
        trim = self._trim_point()
        if not batch and not cursors and trim is None:
            return None
        return batch, cursors, trim

    def _failed(self, batch: _Batch, cursors: Mapping[str, int], exc: sqlite3.Error) -> None:
        self._failure = str(exc)
        log.error("journal commit failed: %s", exc)
        for fut in batch.waiters:
            if not fut.done():
                fut.set_exception(errors.BusUnavailableError(f"journal: {exc}"))
        # Acks and cursors are safe to retry; they are put back for the next commit.
        self._batch.acks[:0] = batch.acks
        for name in cursors:
            consumer = self._consumers.get(name)
            if consumer is not None:
                self.dirty.add(consumer)

    def _done(self, batch: _Batch, cursors: Mapping[str, int]) -> None:
        """After a commit: cursors saved, published events routed, publishers released."""
        self._failure = None
        self._last_commit = time.monotonic()
        for name, cursor in cursors.items():
            consumer = self._consumers.get(name)
            if consumer is not None:
                consumer.saved_cursor = cursor
        for seq, subject, event in batch.published:
            self._committed_seq = seq
            self._route(seq, subject, event)
        if batch.published:
            # Publishers hear one loop turn later: the consumers' work (a trigger's
            # request) then leaves before the publisher's own reply (the webhook's 200),
            # which puts the reply's send off the effect's critical path (~0.3 ms here).
            asyncio.get_running_loop().call_soon(_release, batch.waiters)
        else:
            _release(batch.waiters)
        self._maybe_checkpoint()

    def _cursor_changes(self) -> dict[str, int]:
        """Cursors that moved since the last commit, of consumers that had deliveries or acks.

        Every 256 commits all consumers are looked at, so that the cursor of a consumer whose
        subjects are quiet still follows the journal (and lets it be trimmed).
        """
        if self._commits % 256 == 0:
            self.dirty.update(self._consumers.values())
        changes = {}
        for consumer in self.dirty:
            if consumer.closed:
                continue
            cursor = consumer.current_cursor(self._committed_seq)
            if cursor != consumer.saved_cursor:
                changes[consumer.name] = cursor
        self.dirty.clear()
        return changes

    def _trim_point(self) -> int | None:
        if self._commits % 64 or not self._consumers:
            return None
        floor = min(c.saved_cursor or 0 for c in self._consumers.values())
        if floor <= self._trimmed_upto:
            return None
        # A bounded step per commit keeps an inline commit short after a long backlog.
        return min(floor, self._trimmed_upto + _TRIM_STEP)

    def _maybe_checkpoint(self) -> None:
        """Move the WAL into the database on the worker thread, never inside a commit.

        SQLite's automatic checkpoint would run inside whichever commit crosses the threshold,
        with an fsync, stalling that publish (and, inline, the loop) for milliseconds.
        """
        if self._commits % 128 or self._checkpointing is not None:
            return
        loop = asyncio.get_running_loop()
        fut = loop.run_in_executor(self._executor, self._checkpoint)
        self._checkpointing = fut
        fut.add_done_callback(self._checkpoint_done)

    def _checkpoint(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.execute("PRAGMA wal_checkpoint(PASSIVE)")

    def _checkpoint_done(self, fut: asyncio.Future[None]) -> None:
        self._checkpointing = None
        if not fut.cancelled() and fut.exception() is not None:
            log.warning("journal checkpoint failed: %s", fut.exception())

    def _commit(self, batch: _Batch, cursors: Mapping[str, int], trim: int | None) -> None:
        db = self._db
        assert db is not None
        db.execute("BEGIN")
        try:
            if batch.rows:
                db.executemany("INSERT INTO events VALUES (?, ?, ?, ?, ?)", batch.rows)
            # An ack at or below its consumer's new cursor is implied by the cursor: writing
            # it only to delete it below would touch the acks table on every in-order commit.
            acks = [(c, seq) for c, seq in batch.acks if seq > cursors.get(c, 0)]
            if acks:
                db.executemany("INSERT OR IGNORE INTO acks VALUES (?, ?)", acks)
            for name, cursor in cursors.items():
                db.execute(
                    "INSERT INTO consumers VALUES (?, ?) ON CONFLICT(name)"
                    " DO UPDATE SET cursor = excluded.cursor",
                    (name, cursor),
                )
                db.execute("DELETE FROM acks WHERE consumer = ? AND seq <= ?", (name, cursor))
            for (ns, key), value in batch.kv.items():
                if value is None:
                    db.execute("DELETE FROM kv WHERE ns = ? AND key = ?", (ns, key))
                else:
                    db.execute("INSERT OR REPLACE INTO kv VALUES (?, ?, ?)", (ns, key, value))
            if trim is not None:
                # Consumers not running in this process hold their events back, up to max_age.
                row = db.execute("SELECT min(cursor) FROM consumers").fetchone()
                floor = min(trim, row[0] if row[0] is not None else trim)
                aged = db.execute(
                    "SELECT max(seq) FROM (SELECT seq, ts FROM events WHERE seq > ?"
                    " ORDER BY seq LIMIT ?) WHERE ts < ?",
                    (self._trimmed_upto, _TRIM_STEP, time.time() - self._max_age),
                ).fetchone()[0]
                floor = max(floor, aged or 0)
                db.execute(
                    "DELETE FROM events WHERE seq > ? AND seq <= ?", (self._trimmed_upto, floor)
                )
            db.execute("COMMIT")
            if trim is not None:
                self._trimmed_upto = max(self._trimmed_upto, floor)
        except BaseException:
            # Some errors (SQLITE_FULL) have already rolled the transaction back.
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
