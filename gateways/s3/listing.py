"""Listing a bucket against a watermark: what changed since the last listing, exactly once.

The s3 gateway's `poll` mode is this listing, and `notify` runs it to reconcile; `Ledger` is the
pure bookkeeping, `StoredLedger` keeps it in the gateway's state store, `Listing` walks the
bucket.

**Watermark.** Listings come in key order, not time order, so "what changed since last time"
is a high-water mark of LastModified (the server's clock, never ours) plus a set of recently
reported objects. A scan emits objects whose LastModified is after `watermark - overlap` and
that are not in the recent set; after the scan the watermark moves to the newest LastModified
(or the server's Date, whichever is later) and recent entries older than `watermark - overlap`
are dropped. `overlap` (default 2m) covers objects that become visible in a listing later than
their LastModified says (an upload in flight while the scan passed its key); an object whose
visibility lags more than that (a multipart upload on AWS takes its initiation time) can be
missed by a listing — `notify` and `sqs` see it anyway. The listing streams page by page: memory
holds one page plus the recent set, which grows with the rate of change, never with the size of
the bucket. The recent entries are written to the state store as they are reported (one key
each, after the event is durable); the watermark moves only at the end of a scan, in the same
atomic write that drops the expired entries, so a crash mid-scan resumes without loss or repeat.

**First start.** Without `emitExisting` the first start does not list at all: the server's
Date becomes the watermark and a `floor` below which nothing is ever reported (Date has whole
seconds: an object written in the second before the start may still be reported). With it, the
first scan reports every existing object (and holds one digest per reported object until that
scan ends).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import email.utils
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import orjson

from gateways.s3 import connections as s3_connections
from gateways.s3 import records as s3_records
from tripwire import errors
from tripwire.bus import base as bus_base

log = logging.getLogger(__name__)

PAGE = 1000

MARK_KEY = "mark"
RECENT_PREFIX = "r/"


class Ledger:
    """What listings have covered: watermark, floor and recent set (see the module docstring).

    Pure bookkeeping; times are milliseconds on the server's clock. Changes to persist
    accumulate in `take()`, so the caller decides when they are written (after dispatch).
    """

    def __init__(self, *, overlap_ms: int) -> None:
        self.overlap_ms = overlap_ms
        self.watermark: int | None = None
        self.floor: int | None = None
        self.recent: dict[str, int] = {}
        self._pending: dict[str, bytes | None] = {}

    @property
    def started(self) -> bool:
        return self.watermark is not None

    def threshold(self) -> int | None:
        """A listing reports objects modified after this (None: everything, first start)."""
        if self.watermark is None:
            return None
        low = self.watermark - self.overlap_ms
        return low if self.floor is None else max(low, self.floor)

    def is_new(self, ident: str, modified_ms: int, threshold: int | None) -> bool:
        return (threshold is None or modified_ms > threshold) and ident not in self.recent

    def remember(self, ident: str, ms: int) -> None:
        if self.recent.get(ident, -1) < ms:
            self.recent[ident] = ms
            self._pending[RECENT_PREFIX + ident] = str(ms).encode()

    def start_at(self, server_ms: int) -> None:
        """First start without emitExisting: nothing modified up to now is ever reported."""
        self.floor = server_ms
        self.advance(server_ms)

    def advance(self, to_ms: int) -> None:
        """A scan ended: move the watermark and forget what fell behind `threshold()`."""
        self.watermark = to_ms if self.watermark is None else max(self.watermark, to_ms)
        cut = self.threshold()
        assert cut is not None
        for ident in [i for i, ms in self.recent.items() if ms <= cut]:
            del self.recent[ident]
            self._pending[RECENT_PREFIX + ident] = None
        self._pending[MARK_KEY] = orjson.dumps({"watermark": self.watermark, "floor": self.floor})

    def take(self) -> dict[str, bytes | None]:
        pending, self._pending = self._pending, {}
        return pending

    def load(self, entries: list[tuple[str, bytes]]) -> None:
        """Restore from stored entries (keys relative to this watch); expired ones are
        dropped and their deletion queued."""
        for key, raw in entries:
            if key == MARK_KEY:
                mark = orjson.loads(raw)
                self.watermark, self.floor = mark.get("watermark"), mark.get("floor")
            elif key.startswith(RECENT_PREFIX):
                self.recent[key[len(RECENT_PREFIX) :]] = int(raw)
        cut = self.threshold()
        if cut is None:
            return
        for ident in [i for i, ms in self.recent.items() if ms <= cut]:
            del self.recent[ident]
            self._pending[RECENT_PREFIX + ident] = None


class StoredLedger:
    """A `Ledger` kept in the state store, under the key prefix of one watch.

    Entries under `root` but outside `prefix` belong to an earlier spec of the entry (another
    endpoint, bucket or filter) and are dropped on `load()`.
    """

    def __init__(
        self,
        *,
        store: bus_base.Store,
        root: str,
        prefix: str,
        overlap_ms: int,
        where: str,
        retry_delays: Callable[[], Iterator[float]],
        sleep: Callable[[float], Awaitable[None]],
    ) -> None:
        self.ledger = Ledger(overlap_ms=overlap_ms)
        self._store = store
        self._root = root
        self._prefix = prefix
        self._where = where
        self._retry_delays = retry_delays
        self._sleep = sleep
        self._dirty = asyncio.Event()

    def remember(self, ident: str, ms: int) -> None:
        """An object was reported (its event is durable); the flusher writes it soon."""
        self.ledger.remember(ident, ms)
        self._dirty.set()

    def _scoped(self, changes: dict[str, bytes | None]) -> dict[str, bytes | None]:
        return {self._prefix + key: value for key, value in changes.items()}

    async def load(self) -> None:
        try:
            entries = await self._store.scan(self._root)
        except errors.BusError as exc:
            raise errors.SourceError(f"{self._where}: cannot read state: {exc}") from exc
        mine: list[tuple[str, bytes]] = []
        stale: dict[str, bytes | None] = {}
        for key, raw in entries:
            if key.startswith(self._prefix):
                mine.append((key[len(self._prefix) :], raw))
            else:
                stale[key] = None  # state of a previous spec of this entry
        try:
            self.ledger.load(mine)
        except (ValueError, orjson.JSONDecodeError):
            log.warning("%s: unreadable state, starting afresh", self._where)
            self.ledger = Ledger(overlap_ms=self.ledger.overlap_ms)
            stale.update({self._prefix + key: None for key, _ in mine})
        if stale:
            log.info("%s: the watch changed, dropping %d state entries", self._where, len(stale))
            await self._store.write(stale)
        if self.ledger.started:
            log.info(
                "%s: resuming from watermark %s (%d recent object(s))",
                self._where,
                s3_records.iso_ms(self.ledger.watermark or 0),
                len(self.ledger.recent),
            )

    async def _write(self, changes: dict[str, bytes | None]) -> None:
        if not changes:
            return
        for attempt, delay in enumerate(self._retry_delays(), start=1):
            try:
                await self._store.write(self._scoped(changes))
                return
            except errors.BusError as exc:
                log.warning(
                    "%s: state not written, attempt %d, again in %.1fs: %s",
                    self._where,
                    attempt,
                    delay,
                    exc,
                )
                await self._sleep(delay)

    async def flusher(self) -> None:
        """Write the ledger's changes after their events are durable, coalescing bursts."""
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            await self._write(self.ledger.take())

    async def flush(self) -> None:
        """Write now (end of a scan): the watermark must not wait for the flusher."""
        await self._write(self.ledger.take())

    async def save_remaining(self) -> None:
        """On stop: one last attempt, no retries (the events behind these are durable)."""
        changes = self.ledger.take()
        if changes:
            # The events behind these entries are durable: record them while we can.
            with contextlib.suppress(errors.BusError):
                await self._store.write(self._scoped(changes))


def server_ms(response: dict[str, Any]) -> int | None:
    """The server's Date header of a boto3 response, in milliseconds."""
    headers = response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
    date = headers.get("date")
    if not date:
        return None
    return s3_records.to_ms(email.utils.parsedate_to_datetime(date))


@dataclasses.dataclass(frozen=True, kw_only=True)
class Listing:
    """How one entry lists its bucket: a boto3 client (blocking, called in threads) and the
    watched part of the bucket."""

    client: Any
    bucket: str
    prefix: str
    suffix: str
    region: str
    record_source: str
    where: str

    async def pages(self) -> AsyncIterator[dict[str, Any]]:
        """ListObjectsV2 pages of the watched prefix, one at a time (never the whole bucket)."""
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {
                "Bucket": self.bucket,
                "Prefix": self.prefix,
                "MaxKeys": PAGE,
            }
            if token is not None:
                kwargs["ContinuationToken"] = token
            page = await s3_connections.in_thread(self.where, self.client.list_objects_v2, **kwargs)
            yield page
            token = page.get("NextContinuationToken")
            if not page.get("IsTruncated") or not token:
                return

    async def scan(
        self,
        book: StoredLedger,
        *,
        emit: Callable[[s3_records.Observed], Awaitable[bool]],
    ) -> int:
        """One listing: report (`emit`) what is new since the watermark, then move it. Returns
        the number of events dispatched."""
        ledger = book.ledger
        threshold = ledger.threshold()
        newest: int | None = None
        emitted = 0
        async for page in self.pages():
            server = server_ms(page)
            if newest is None or (server is not None and server > newest):
                newest = server if server is not None else newest
            for item in page.get("Contents") or ():
                key: str = item["Key"]
                modified = s3_records.to_ms(item["LastModified"])
                newest = modified if newest is None else max(newest, modified)
                if not key.endswith(self.suffix):
                    continue
                etag = s3_records.clean_etag(item.get("ETag"))
                if not ledger.is_new(s3_records.digest(key, etag), modified, threshold):
                    continue
                record = s3_records.created_record(
                    bucket=self.bucket,
                    key=key,
                    size=int(item.get("Size") or 0),
                    etag=etag,
                    modified_ms=modified,
                    region=self.region,
                    source=self.record_source,
                )
                observed = s3_records.Observed(
                    record=record,
                    name=s3_records.SYNTHESIZED_NAME,
                    bucket=self.bucket,
                    key=key,
                    etag=etag,
                    created=True,
                    tag=etag,
                    when_ms=modified,
                )
                if await emit(observed):
                    emitted += 1
            await book.flush()
        ledger.advance(newest if newest is not None else (ledger.watermark or 0))
        await book.flush()
        return emitted


__all__ = ["PAGE", "Ledger", "Listing", "StoredLedger", "server_ms"]
