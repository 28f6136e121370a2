"""Reporting observed S3 records as events: once per object version, and only when durable.

Every mode of the s3 gateway ends here. Neither a listing nor MinIO's stream can be
acknowledged, so a record is dispatched until the bus has it (backing off while it is down),
and only then does its object go into the listing's recent set; a record whose object is in
that set, or is being dispatched right now (the stream and a reconciling listing can see the
same object at once), is not reported again.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Awaitable, Callable, Iterator, Mapping

from gateways import base
from gateways.s3 import listing as s3_listing
from gateways.s3 import records as s3_records
from tripwire import events

log = logging.getLogger(__name__)


class Reporter:
    """Dispatches one entry's records; `tracks`: keep reported creations in the recent set
    (only listings prune it, so only entries that list keep one)."""

    def __init__(
        self,
        *,
        context: base.SourceContext,
        book: s3_listing.StoredLedger,
        tracks: bool,
        metadata: Mapping[str, str],
        where: str,
        retry_delays: Callable[[], Iterator[float]],
        sleep: Callable[[float], Awaitable[None]],
    ) -> None:
        self._context = context
        self._book = book
        self._tracks = tracks
        self._metadata = metadata
        self._where = where
        self._retry_delays = retry_delays
        self._sleep = sleep
        self._inflight: set[str] = set()
        self._dispatch = base.DurableDispatch(
            context, delays=self._retry_delays, sleep=self._sleep, where=self._where
        )

    def event(self, observed: s3_records.Observed) -> events.Event:
        event = self._context.event(
            {"notification": [observed.record], "metadata": dict(self._metadata)},
            id=s3_records.event_id(
                gateway=self._context.gateway,
                name=self._context.name,
                bucket=observed.bucket,
                key=observed.key,
                tag=observed.tag,
                family="created" if observed.created else "removed",
            ),
        )
        if observed.when_ms is not None:
            event.time = datetime.datetime.fromtimestamp(observed.when_ms / 1000, datetime.UTC)
        return event

    async def emit(self, observed: s3_records.Observed) -> bool:
        """Dispatch one record unless its object was already reported; True if dispatched."""
        tracked = observed.created and self._tracks
        ident = s3_records.digest(observed.key, observed.etag) if tracked else None
        if ident is not None and (ident in self._book.ledger.recent or ident in self._inflight):
            return False
        if ident is not None:
            self._inflight.add(ident)
        try:
            await self._dispatch(self.event(observed))
            if ident is not None:
                self._book.remember(ident, observed.when_ms or s3_records.to_ms(events.now()))
        finally:
            if ident is not None:
                self._inflight.discard(ident)
        return True


__all__ = ["Reporter"]
