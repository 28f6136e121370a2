"""The s3 gateway: new (and removed) objects in an S3-compatible bucket become events.

Argo Events' `minio` source (accepted here as the `minio` kind, an alias of `s3`), with Argo's
fields — `bucket: {name}`, `endpoint` (`host:port`, or a URL whose scheme wins), `region`,
`insecure` (http instead of https), `accessKey`/`secretKey` (env, file or Secret references;
without them boto3's default credential chain), `caCertificate`, `events`, `filter {prefix,
suffix}`, `metadata` — plus a choice of how the bucket is observed, per entry (`mode`):

- `notify` (default): MinIO's ListenBucketNotification stream, a long-lived GET signed with
  botocore's SigV4 and read with aiohttp, reconnecting with backoff.
- `poll`: listing the bucket every `pollInterval`, for stores without notifications.
- `sqs`: S3 event notifications delivered to an SQS queue (`queueUrl`), long-polled; a message
  is deleted only after its events are durable on the bus.

Event data is `{notification: [one S3 event record], metadata}` in every mode, with keys in
AWS's encoding and ids that dedupe one object however it is observed (`s3_records`). Listings
report what changed since a watermark, exactly once and in memory bounded by the rate of change,
not the size of the bucket (`s3_listing`); the stream and SQS are `s3_streaming`, over the
entry's signed `s3_connections`; `s3_reporting` dispatches until durable. This module holds the
spec and runs the parts together.

**Notify reconciles.** Notification streams are not durable: on every (re)connect, once the
stream is subscribed, a listing runs, so objects created while the gateway was down (or
the stream was dropped) are reported, and the stream's own events go into the recent set so the
scan does not repeat them. The scan also runs every `pollInterval` (default 10m in this mode)
as a safety net for events MinIO drops for slow listeners. It needs `s3:ObjectCreated:*` among
the events; with narrower events `notify` only streams.

**Deletes.** `notify` and `sqs` report removals as the server does. `poll` reports creations
only: finding deletions means diffing whole listings, i.e. memory in the size of the bucket.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import re
import urllib.parse
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, ClassVar, Literal

import aiohttp
import pydantic

from gateways import base
from gateways.s3 import connections as s3_connections
from gateways.s3 import listing as s3_listing
from gateways.s3 import records as s3_records
from gateways.s3 import reporting as s3_reporting
from gateways.s3 import streaming as s3_streaming
from tripwire import backoff, errors, events, manifests, secrets

log = logging.getLogger(__name__)

KIND = "s3"
STATE_PREFIX = "s3/"
Mode = Literal["notify", "poll", "sqs"]
DEFAULT_POLL_INTERVAL = 30.0
DEFAULT_RESYNC_INTERVAL = 600.0
DEFAULT_OVERLAP = 120.0
_QUEUE = 10_000

_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


# --- the spec ------------------------------------------------------------------------------------


class S3Bucket(manifests.Model):
    """Argo Events' `S3Bucket`; the gateway watches the whole bucket (see `filter`)."""

    name: str = pydantic.Field(description="The bucket to watch.")
    key: str | None = pydantic.Field(
        default=None, description="Not used by the gateway (Argo's artifact key): use filter."
    )

    @pydantic.field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _BUCKET.match(value) or ".." in value:
            raise ValueError(
                f"{value!r} is not a bucket name (3-63 lowercase letters, digits, '.' or '-')"
            )
        return value

    @pydantic.field_validator("key")
    @classmethod
    def _no_key(cls, value: str | None) -> str | None:
        if value:
            raise ValueError("a gateway watches a bucket, not one key: use filter.prefix")
        return value


class S3Filter(manifests.Model):
    """Argo Events' `S3Filter`: the object key starts with `prefix` and ends with `suffix`."""

    prefix: str = ""
    suffix: str = ""

    def passes(self, key: str) -> bool:
        return key.startswith(self.prefix) and key.endswith(self.suffix)


class S3Spec(manifests.Model):
    """One s3 (or minio) entry: Argo Events' fields plus `mode` and its settings."""

    bucket: S3Bucket
    endpoint: str | None = pydantic.Field(
        default=None,
        description="host:port (https, or http with insecure), or a URL whose scheme wins."
        " Default: AWS, s3.<region>.amazonaws.com.",
    )
    region: str = pydantic.Field(default="us-east-1", min_length=1)
    insecure: bool = pydantic.Field(default=False, description="Use http instead of https.")
    access_key: secrets.SecretRef | None = None
    secret_key: secrets.SecretRef | None = None
    ca_certificate: secrets.SecretRef | None = pydantic.Field(
        default=None, description="PEM of the CA that signed the endpoint's certificate."
    )
    events: list[str] = pydantic.Field(
        default_factory=lambda: [s3_records.CREATED_ALL],
        min_length=1,
        description="S3 event names, with or without the s3: prefix (default ObjectCreated:*).",
    )
    filter: S3Filter | None = None
    mode: Mode = pydantic.Field(
        default="notify",
        description="notify: MinIO's notification stream (+ reconcile by listing); poll:"
        " listing with a watermark; sqs: S3 notifications delivered to an SQS queue.",
    )
    poll_interval: manifests.Duration | None = pydantic.Field(
        default=None,
        description="poll: time between listings (default 30s); notify: time between"
        " reconciling listings (default 10m).",
    )
    overlap: manifests.Duration = pydantic.Field(
        default=DEFAULT_OVERLAP,
        description="How far behind the watermark a listing still looks for late objects.",
    )
    queue_url: str | None = pydantic.Field(default=None, description="sqs: the queue's URL.")
    emit_existing: bool = pydantic.Field(
        default=False,
        description="On the first start, report the objects that already exist (poll, notify).",
    )
    metadata: dict[str, str] = pydantic.Field(
        default_factory=dict, description="Copied into every event's data.metadata."
    )

    @pydantic.field_validator("events")
    @classmethod
    def _events(cls, value: list[str]) -> list[str]:
        problems: list[tuple[manifests.Location, str]] = []
        names: list[str] = []
        for i, item in enumerate(value):
            try:
                names.append(s3_records.event_name(item))
            except ValueError as exc:
                problems.append(((i,), str(exc)))
        if problems:
            raise manifests.FieldError(problems)
        return list(dict.fromkeys(names))

    @pydantic.field_validator("endpoint")
    @classmethod
    def _endpoint(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urllib.parse.urlsplit(value if "://" in value else f"//{value}")
        if "://" in value and parts.scheme not in ("http", "https"):
            raise ValueError(f"endpoint {value!r}: the scheme must be http or https")
        if not parts.hostname or parts.path.strip("/") or parts.query:
            raise ValueError(f"endpoint {value!r}: expected host[:port] or http(s)://host[:port]")
        return value.rstrip("/")

    @pydantic.field_validator("poll_interval")
    @classmethod
    def _interval(cls, value: float | None) -> float | None:
        if value is not None and value < 1.0:
            raise ValueError("must be at least 1s")
        return value

    @pydantic.model_validator(mode="after")
    def _consistent(self) -> S3Spec:
        problems: list[tuple[manifests.Location, str]] = []
        if (self.access_key is None) != (self.secret_key is None):
            where = "secretKey" if self.secret_key is None else "accessKey"
            problems.append(((where,), "set both accessKey and secretKey, or neither"))
        if self.mode == "sqs":
            if not self.queue_url:
                problems.append((("queueUrl",), "mode sqs needs the queue's URL"))
            elif urllib.parse.urlsplit(self.queue_url).scheme not in ("http", "https"):
                problems.append((("queueUrl",), "expected an http(s) URL"))
        elif self.queue_url is not None:
            problems.append((("queueUrl",), "only used with mode sqs"))
        if self.mode == "poll" and self.events != [s3_records.CREATED_ALL]:
            problems.append(
                (
                    ("events",),
                    "poll mode reports creations only and cannot tell how an object was"
                    " written: use [s3:ObjectCreated:*] (or notify/sqs for other events)",
                )
            )
        if problems:
            raise manifests.FieldError(problems)
        return self

    @property
    def prefix(self) -> str:
        return self.filter.prefix if self.filter is not None else ""

    @property
    def suffix(self) -> str:
        return self.filter.suffix if self.filter is not None else ""

    def endpoint_url(self) -> str:
        """Scheme, host and port of the S3 API."""
        if self.endpoint is None:
            return f"https://s3.{self.region}.amazonaws.com"
        if "://" in self.endpoint:
            return self.endpoint
        return f"{'http' if self.insecure else 'https'}://{self.endpoint}"

    def interval(self) -> float:
        """Seconds between listings: poll's pace, or notify's reconciling safety net."""
        if self.poll_interval is not None:
            return self.poll_interval
        return DEFAULT_POLL_INTERVAL if self.mode == "poll" else DEFAULT_RESYNC_INTERVAL

    def reconciles(self) -> bool:
        """Whether listings run in this mode (poll always; notify when creations are wanted)."""
        return self.mode == "poll" or (
            self.mode == "notify" and s3_records.CREATED_ALL in self.events
        )

    def watch_key(self) -> str:
        """Identifies what is watched; persisted state of another watch is not reused."""
        text = "\n".join((self.endpoint_url(), self.bucket.name, self.prefix, self.suffix))
        return hashlib.sha256(text.encode()).hexdigest()[:16]


# --- the source -----------------------------------------------------------------------------------


def _retry_delays() -> Iterator[float]:
    return backoff.delays(duration=0.5, factor=2.0, jitter=0.1, cap=30.0)


class S3Source:
    """One s3 entry: observe the bucket in its mode and dispatch one event per record."""

    spec_model: ClassVar[type[pydantic.BaseModel]] = S3Spec

    def __init__(
        self,
        *,
        spec: S3Spec,
        context: base.SourceContext,
        retry_delays: Callable[[], Iterator[float]] = _retry_delays,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._spec = spec
        self._context = context
        self._retry_delays = retry_delays
        self._sleep = sleep
        self._events = frozenset(spec.events)
        self._filter = spec.filter or S3Filter()
        self._where = f"{context.kind} {context.gateway}/{context.name}"
        self._record_source = "minio:s3" if context.kind == "minio" else "aws:s3"
        self._book = s3_listing.StoredLedger(
            store=context.store,
            root=STATE_PREFIX,
            prefix=f"{STATE_PREFIX}{spec.watch_key()}/",
            overlap_ms=int(spec.overlap * 1000),
            where=self._where,
            retry_delays=retry_delays,
            sleep=sleep,
        )
        # Only listings prune the recent set: without them (sqs, narrow notify) keep none.
        self._tracks = spec.reconciles()
        self._reporter = s3_reporting.Reporter(
            context=context,
            book=self._book,
            tracks=self._tracks,
            metadata=spec.metadata,
            where=self._where,
            retry_delays=retry_delays,
            sleep=sleep,
        )
        self._tasks: list[asyncio.Task[None]] = []
        self._session: aiohttp.ClientSession | None = None
        self._client: Any = None
        self._listing: s3_listing.Listing | None = None
        self._channel: s3_streaming.Channel | None = None
        self._queue: asyncio.Queue[s3_records.Observed] = asyncio.Queue(maxsize=_QUEUE)
        # Observable progress, for tests and readiness.
        self.scans = 0
        self.scanned = asyncio.Event()
        self.connections = 0

    @property
    def spec(self) -> S3Spec:
        return self._spec

    @property
    def ledger(self) -> s3_listing.Ledger:
        return self._book.ledger

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self, stack: contextlib.AsyncExitStack) -> None:
        """Connect, check the bucket, load the watermark, then observe in tasks on `stack`.

        In notify mode this returns once the stream is subscribed, so anything written after
        `start()` returns is seen. Failures before that are `SourceError`s (retried), and leave
        nothing running.
        """
        stack.push_async_callback(self._stop)
        try:
            await self._start(stack)
        except BaseException:
            await self._stop()
            raise
        log.info(
            "%s: observing bucket %s (%s mode)",
            self._where,
            self._spec.bucket.name,
            self._spec.mode,
        )

    async def _start(self, stack: contextlib.AsyncExitStack) -> None:
        spec = self._spec
        endpoint = spec.endpoint_url()
        if spec.mode == "sqs":
            assert spec.queue_url is not None
            parts = urllib.parse.urlsplit(spec.queue_url)
            endpoint = f"{parts.scheme}://{parts.netloc}"
        conn = await s3_connections.connect(
            endpoint=endpoint,
            region=spec.region,
            access_key=spec.access_key,
            secret_key=spec.secret_key,
            ca_certificate=spec.ca_certificate,
            resolver=self._context.secrets,
            stack=stack,
        )
        if spec.mode != "sqs":
            try:
                self._client = await asyncio.to_thread(conn.s3_client)
            except ImportError:
                raise errors.SourceError(
                    f"{self._where}: boto3 is missing: pip install tripwire[s3]"
                ) from None
            self._listing = s3_listing.Listing(
                client=self._client,
                bucket=spec.bucket.name,
                prefix=spec.prefix,
                suffix=spec.suffix,
                region=spec.region,
                record_source=self._record_source,
                where=self._where,
            )
            head = await s3_connections.in_thread(
                self._where, self._client.head_bucket, Bucket=spec.bucket.name
            )
            await self._book.load()
            if self._tracks and not self._book.ledger.started and not spec.emit_existing:
                server = s3_listing.server_ms(head)
                self._book.ledger.start_at(
                    server if server is not None else s3_records.to_ms(events.now())
                )
                await self._book.flush()
                log.info("%s: first start; objects that exist now are not reported", self._where)
        self._session = s3_streaming.open_session()
        self._channel = s3_streaming.Channel(
            session=self._session,
            conn=conn,
            where=self._where,
            retry_delays=self._retry_delays,
            sleep=self._sleep,
        )
        self._spawn(self._book.flusher(), "flush")
        if spec.mode == "poll":
            self._spawn(self._scan_loop(), "poll")
        elif spec.mode == "sqs":
            assert spec.queue_url is not None
            self._spawn(self._channel.consume(spec.queue_url, handle=self._handle), "sqs")
        else:
            first: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            url = s3_streaming.listen_url(
                endpoint=conn.endpoint,
                bucket=spec.bucket.name,
                events=spec.events,
                prefix=spec.prefix,
                suffix=spec.suffix,
            )
            self._spawn(self._dispatch_loop(), "dispatch")
            self._spawn(
                self._channel.follow(
                    url, first=first, on_connect=self._connected, handle=self._enqueue
                ),
                "notify",
            )
            await first

    def _spawn(self, coro: Any, what: str) -> None:
        task = asyncio.create_task(
            coro, name=f"{KIND}-{what}-{self._context.gateway}-{self._context.name}"
        )
        task.add_done_callback(self._ended)
        self._tasks.append(task)

    def _ended(self, task: asyncio.Task[None]) -> None:
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            log.error("%s: task %s died", self._where, task.get_name(), exc_info=exc)
        else:
            log.error("%s: task %s ended; no further events", self._where, task.get_name())

    async def _stop(self) -> None:
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        if tasks:
            # wait() rather than gather: our own cancellation must still propagate.
            await asyncio.wait(tasks)
        await self._book.save_remaining()
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._client is not None:
            client, self._client = self._client, None
            await asyncio.to_thread(client.close)

    # -- dispatching ----------------------------------------------------------------------

    def _wanted(self, observed: s3_records.Observed) -> bool:
        return (
            observed.bucket == self._spec.bucket.name
            and s3_records.name_matches(observed.name, self._events)
            and self._filter.passes(observed.key)
        )

    async def _handle(self, observed: s3_records.Observed) -> None:
        """sqs: dispatch a wanted record now (its message is deleted once all are durable)."""
        if self._wanted(observed):
            await self._reporter.emit(observed)

    # -- listing (poll, and notify's reconcile) -------------------------------------------

    async def scan(self) -> int:
        """One listing: report what is new since the watermark, then move it. Returns the
        number of events dispatched."""
        assert self._listing is not None
        emitted = await self._listing.scan(self._book, emit=self._reporter.emit)
        self.scans += 1
        self.scanned.set()
        return emitted

    async def _scan_loop(self) -> None:
        """Scan now, then every interval; a failing scan is retried with backoff."""
        interval = self._spec.interval()
        while True:
            delays = self._retry_delays()
            while True:
                try:
                    emitted = await self.scan()
                    break
                except (errors.SourceError, OSError) as exc:
                    delay = next(delays)
                    log.warning("%s: listing failed, again in %.1fs: %s", self._where, delay, exc)
                    await self._sleep(delay)
            if emitted:
                log.info("%s: listing reported %d new object(s)", self._where, emitted)
            await self._sleep(interval)

    # -- notify ---------------------------------------------------------------------------

    def _connected(self) -> asyncio.Task[None] | None:
        """A (re)subscription: reconcile by listing while it lasts, if creations are wanted."""
        self.connections += 1
        if not self._spec.reconciles():
            return None
        return asyncio.create_task(
            self._scan_loop(),
            name=f"{KIND}-reconcile-{self._context.gateway}-{self._context.name}",
        )

    async def _enqueue(self, observed: s3_records.Observed) -> None:
        if self._wanted(observed):
            await self._queue.put(observed)

    async def _dispatch_loop(self) -> None:
        """Dispatch queued stream records in order; reading never waits for the bus."""
        while True:
            observed = await self._queue.get()
            await self._reporter.emit(observed)


__all__ = [
    "DEFAULT_OVERLAP",
    "DEFAULT_POLL_INTERVAL",
    "DEFAULT_RESYNC_INTERVAL",
    "KIND",
    "S3Bucket",
    "S3Filter",
    "S3Source",
    "S3Spec",
]
