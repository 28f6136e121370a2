"""The embedded bus itself: publish, routing, subscribe, group commit, memory backpressure.

Group commit keeps throughput from collapsing: every publish, ack, cursor move and key-value
write is queued; one writer task takes everything queued, commits it in one transaction and
then routes the new events to their consumers and releases all the waiting publishers at once.
Under load, batches grow by themselves. At low rates (the journal idle for 2 ms) a publish
commits in its own loop turn instead of waking the writer for a batch of one. With
`sync="normal"` the commit runs on the loop (a write() into the page cache, tens of µs: cheaper
than two thread hops); with `sync="full"` its fsync runs on a worker thread. Publishers are
released one loop turn after the routing, so the consumers' work (a trigger's request) goes out
before the publisher's reply (a webhook's 200), which keeps that reply off the effect's path.
The journal file and its statements are in `journal.py`; the consumers' delivery state, and how
a slow one falls behind and catches up, in `consumers.py`.

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
import functools
import logging
import pathlib
import sqlite3
import time
from collections.abc import Collection, Mapping, Sequence
from typing import Literal

from tripwire import errors, events, metrics
from tripwire.bus import base
from tripwire.bus.embedded import consumers, journal

log = logging.getLogger(__name__)

# Unacknowledged events a consumer may hold. Durable: past it the consumer reads the journal
# later, so it can be large. In memory: past it publishers wait, and it is kept near what the
# process can have in flight at once (the HTTP client's 256 connections): thousands of firings
# queued behind a connection pool cost CPU on every event (measured: 4096 made the in-memory
# pipeline ~15% more expensive per event under overload than 256) and hold memory for nothing.
DURABLE_MAX_PENDING = 4096
MEMORY_MAX_PENDING = 256
# A publish commits in its own loop turn when the journal has been idle this long (seconds).
_INLINE_GAP = 0.002
# In memory, a publish yields to its consumers only while each holds at most this many events.
_QUIET = 4


@dataclasses.dataclass(slots=True)
class _Batch:
    """Everything queued since the last commit."""

    rows: list[journal.Row] = dataclasses.field(default_factory=list)
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
        self._by_subject: dict[str, list[consumers.Consumer]] = {}
        self._consumers: dict[str, consumers.Consumer] = {}
        self.kv: dict[str, dict[str, bytes]] = {}
        self._batch = _Batch()
        self._wakeup = asyncio.Event()
        self._journal: journal.Journal | None = None  # open between `start` and the close
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._writer_task: asyncio.Task[None] | None = None
        self._committed_seq = 0
        self._failure: str | None = None
        self._closing = False
        self._commits = 0
        self.dirty: set[consumers.Consumer] = set()
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
            opened, contents = await asyncio.get_running_loop().run_in_executor(
                self._executor,
                functools.partial(
                    journal.Journal.open,
                    self.path,
                    sync=self._sync,
                    max_age=self._max_age,
                    dedupe_window=self._dedupe_window,
                ),
            )
            self._last_seq = self._committed_seq = contents.last_seq
            for event_id, ts in contents.recent_ids:
                self._recent_ids[event_id] = ts
            for ns, entries in contents.kv.items():
                self.kv.setdefault(ns, {}).update(entries)
            self._journal = opened
            self._writer_task = asyncio.create_task(self._write_loop(), name="bus-journal-writer")
        stack.push_async_callback(self._close)

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
            opened, self._journal = self._journal, None
            if opened is not None:
                await asyncio.get_running_loop().run_in_executor(self._executor, opened.close)
            self._executor.shutdown(wait=True)

    @property
    def _db(self) -> sqlite3.Connection | None:
        """The journal's writing connection (the contract suite fills the disk through it)."""
        return self._journal.db if self._journal is not None else None

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
            subscribed: Sequence[consumers.Consumer] = self._by_subject.get(subject, ())
            for consumer in subscribed:
                if consumer.room <= 0:
                    taken = await self._room_for(subject, event.id)
                    if taken is None:
                        return  # a duplicate
                    subscribed = taken
                    break
            else:  # no consumer full: the fast path
                if self._is_duplicate(event.id, now):
                    return
                for consumer in subscribed:
                    consumer.room -= 1  # a slot in each: `ack` gives it back
            self._last_seq += 1
            seq = self._last_seq
            quiet = True
            for consumer in subscribed:
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

    async def _room_for(self, subject: str, event_id: str) -> Sequence[consumers.Consumer] | None:
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
        released: consumers.Consumer | None = None
        while True:
            subscribed = self._by_subject.get(subject, ())
            full = next((c for c in subscribed if c.room <= 0), None)
            if full is None:
                # Checked again: the same id may have been published while this one waited.
                if self._is_duplicate(event_id, time.time()):
                    if released is not None:
                        released.make_room()
                    return None
                for consumer in subscribed:
                    consumer.room -= 1
                return subscribed
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
        opened = self._journal
        cursor = opened.saved_cursor(consumer) if opened is not None else None
        state = consumers.Consumer(
            self, name=consumer, subjects=frozenset(subjects), cursor=cursor, handler=handler
        )
        if cursor is None:
            # A new consumer starts at the end of the journal (JetStream DeliverNew).
            state.delivered_upto = self._last_seq
        elif opened is not None:
            state.acked_above = opened.acks_above(consumer, cursor)
            state.behind = True
            self.feed(state, deliveries=2)
        self._consumers[consumer] = state
        for subject in state.subjects:
            self._by_subject.setdefault(subject, []).append(state)
        if self.durable:
            self.dirty.add(state)
            self._wakeup.set()  # the next commit records the consumer and its cursor
        return state

    def feed(self, consumer: consumers.Consumer, *, deliveries: int = 1) -> None:
        """Deliver from the journal what a `behind` consumer missed, then turn it live.

        Synchronous on purpose: between the last page read and `behind = False` nothing else
        runs on the loop, so no live event can slip between the journal and the live stream.
        Rows committed but not yet routed are read here and skipped later by `offer`.
        """
        consumer.feed_scheduled = False
        opened = self._journal
        if consumer.closed or not consumer.behind or opened is None:
            return
        while True:
            rows = opened.page(consumer.subjects, consumer.delivered_upto)
            for seq, body in rows:
                if seq in consumer.acked_above:
                    consumer.delivered_upto = seq
                    continue
                event = events.from_bytes(body)
                if not consumer.offer(seq, event, deliveries=deliveries, live=False):
                    return  # full again; acks schedule the next feed
            if len(rows) < journal.CATCH_UP_PAGE:
                consumer.delivered_upto = max(consumer.delivered_upto, self._committed_seq)
                consumer.behind = False
                consumer.acked_above.clear()
                return

    def forget(self, consumer: consumers.Consumer) -> None:
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
        opened = self._journal
        assert opened is not None  # the writer starts once the journal is open
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
                    await loop.run_in_executor(
                        self._executor,
                        opened.commit,
                        batch.rows,
                        batch.acks,
                        batch.kv,
                        cursors,
                        trim,
                    )
                else:
                    # No fsync in WAL + NORMAL: a commit is a write() into the page cache,
                    # tens of µs — cheaper inline than the two thread hops and the GIL
                    # hand-over a worker would cost on every publish.
                    opened.commit(batch.rows, batch.acks, batch.kv, cursors, trim)
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
        opened = self._journal
        assert opened is not None  # a durable bus commits once started
        try:
            opened.commit(batch.rows, batch.acks, batch.kv, cursors, trim)
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
        """Every 64 commits, trim up to the lowest cursor of the consumers running here."""
        if self._commits % 64 or not self._consumers or self._journal is None:
            return None
        floor = min(c.saved_cursor or 0 for c in self._consumers.values())
        return self._journal.trim_point(floor)

    def _maybe_checkpoint(self) -> None:
        """Move the WAL into the database on the worker thread, never inside a commit.

        SQLite's automatic checkpoint would run inside whichever commit crosses the threshold,
        with an fsync, stalling that publish (and, inline, the loop) for milliseconds.
        """
        opened = self._journal
        if self._commits % 128 or self._checkpointing is not None or opened is None:
            return
        loop = asyncio.get_running_loop()
        fut = loop.run_in_executor(self._executor, opened.checkpoint)
        self._checkpointing = fut
        fut.add_done_callback(self._checkpoint_done)

    def _checkpoint_done(self, fut: asyncio.Future[None]) -> None:
        self._checkpointing = None
        if not fut.cancelled() and fut.exception() is not None:
            log.warning("journal checkpoint failed: %s", fut.exception())
