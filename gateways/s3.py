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

Event data is `{notification: [one S3 event record], metadata}` in every mode. The stream and
SQS deliver real records, with object keys normalized to AWS's URL encoding (space is `+`, `/`
is kept; MinIO's stream sends raw keys, its queue targets escape `/` as `%2F`); listings
synthesize records named `s3:ObjectCreated:Put` (a listing cannot tell how an object was
written).

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

**Notify reconciles.** Notification streams are not durable: on every (re)connect, once the
stream is subscribed, the scan above runs, so objects created while the gateway was down (or
the stream was dropped) are reported, and the stream's own events go into the recent set so the
scan does not repeat them. The scan also runs every `pollInterval` (default 10m in this mode)
as a safety net for events MinIO drops for slow listeners. It needs `s3:ObjectCreated:*` among
the events; with narrower events `notify` only streams.

**Deletes.** `notify` and `sqs` report removals as the server does. `poll` reports creations
only: finding deletions means diffing whole listings, i.e. memory in the size of the bucket.

**Ids.** A creation's event id is a hash of (gateway, entry, bucket, key, ETag, "created"), so
the same object seen by the stream, the reconcile scan or a redelivered SQS message dedupes on
the bus. ETag rather than versionId, because listings carry no version ids: rewriting identical
bytes is the same event. A removal's id uses versionId, else the sequencer.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime
import email.utils
import hashlib
import logging
import os
import re
import ssl
import tempfile
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any, ClassVar, Literal

import aiohttp
import orjson
import pydantic
import yarl

from gateways import base
from tripwire import backoff, errors, events, manifests, metrics, secrets

log = logging.getLogger(__name__)

KIND = "s3"
STATE_PREFIX = "s3/"
Mode = Literal["notify", "poll", "sqs"]
CREATED_ALL = "s3:ObjectCreated:*"
SYNTHESIZED_NAME = "s3:ObjectCreated:Put"
DEFAULT_POLL_INTERVAL = 30.0
DEFAULT_RESYNC_INTERVAL = 600.0
DEFAULT_OVERLAP = 120.0
_PAGE = 1000
_QUEUE = 10_000
_PING = 10  # seconds between MinIO's empty keep-alive records on the stream
_READ_TIMEOUT = 3 * _PING + 5.0

# The event names S3 and MinIO publish (a trailing `*` matches a family).
EVENT_NAMES: frozenset[str] = frozenset(
    "s3:" + name
    for name in (
        "ObjectCreated:*", "ObjectCreated:Put", "ObjectCreated:Post", "ObjectCreated:Copy",
        "ObjectCreated:CompleteMultipartUpload", "ObjectCreated:PutRetention",
        "ObjectCreated:PutLegalHold", "ObjectCreated:PutTagging", "ObjectCreated:DeleteTagging",
        "ObjectRemoved:*", "ObjectRemoved:Delete", "ObjectRemoved:DeleteMarkerCreated",
        "ObjectRemoved:DeleteAllVersions", "ObjectRemoved:NoOP",
        "ObjectAccessed:*", "ObjectAccessed:Get", "ObjectAccessed:Head",
        "ObjectAccessed:GetRetention", "ObjectAccessed:GetLegalHold",
        "ObjectAccessed:Attributes",
        "ObjectRestore:*", "ObjectRestore:Post", "ObjectRestore:Completed", "ObjectRestore:Delete",
        "ObjectTagging:*", "ObjectTagging:Put", "ObjectTagging:Delete",
        "ObjectAcl:Put", "ObjectTransition:*", "ObjectTransition:Failed",
        "ObjectTransition:Complete", "LifecycleExpiration:*", "LifecycleExpiration:Delete",
        "LifecycleExpiration:DeleteMarkerCreated", "LifecycleTransition",
        "IntelligentTiering", "Replication:*", "Replication:OperationFailedReplication",
        "Replication:OperationMissedThreshold", "Replication:OperationReplicatedAfterThreshold",
        "Replication:OperationNotTracked", "Replication:OperationCompletedReplication",
        "ReducedRedundancyLostObject", "Scanner:ManyVersions", "Scanner:BigPrefix",
    )
)  # fmt: skip

_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


# --- the spec ------------------------------------------------------------------------------------


def event_name(value: str) -> str:
    """`ObjectCreated:Put` or `s3:ObjectCreated:Put` -> `s3:ObjectCreated:Put`; ValueError if
    S3 has no such event."""
    name = value if value.startswith("s3:") else f"s3:{value}"
    if name not in EVENT_NAMES:
        raise ValueError(
            f"unknown S3 event {value!r}: use names such as s3:ObjectCreated:*,"
            " s3:ObjectCreated:Put, s3:ObjectRemoved:*, s3:ObjectRemoved:Delete"
        )
    return name


def name_matches(name: str, patterns: frozenset[str] | list[str]) -> bool:
    """Does an observed event name match one of the requested names (`:*` is a family)?"""
    for pattern in patterns:
        if pattern == name or (pattern.endswith("*") and name.startswith(pattern[:-1])):
            return True
    return False


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
        default_factory=lambda: [CREATED_ALL],
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
                names.append(event_name(item))
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
        if self.mode == "poll" and self.events != [CREATED_ALL]:
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
        return self.mode == "poll" or (self.mode == "notify" and CREATED_ALL in self.events)

    def watch_key(self) -> str:
        """Identifies what is watched; persisted state of another watch is not reused."""
        text = "\n".join((self.endpoint_url(), self.bucket.name, self.prefix, self.suffix))
        return hashlib.sha256(text.encode()).hexdigest()[:16]


# --- records and ids ------------------------------------------------------------------------------


def encode_key(key: str) -> str:
    """An object key as S3 event records carry it (AWS: URL-encoded, space as +, / kept)."""
    return urllib.parse.quote_plus(key, safe="/")


def decode_key(encoded: str) -> str:
    """The object key of a record (AWS's encoding or MinIO's, which also escapes /)."""
    return urllib.parse.unquote_plus(encoded)


def clean_etag(etag: str | None) -> str:
    return (etag or "").strip('"')


def digest(key: str, etag: str) -> str:
    """A compact identity of one object version, for the recent set."""
    return hashlib.blake2b(f"{key}\0{etag}".encode(), digest_size=8).hexdigest()


def event_id(*, gateway: str, name: str, bucket: str, key: str, tag: str, family: str) -> str:
    """The id of one observed change: the same whichever way it is observed, and again."""
    text = f"{gateway}\n{name}\n{bucket}\n{key}\n{tag}\n{family}"
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def iso_ms(ms: int) -> str:
    """Milliseconds since the epoch as S3's eventTime text (`2024-01-02T03:04:05.678Z`)."""
    moment = datetime.datetime.fromtimestamp(ms / 1000, datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def to_ms(moment: datetime.datetime) -> int:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return int(moment.timestamp() * 1000)


def parse_time(text: str | None) -> datetime.datetime | None:
    if not text:
        return None
    try:
        moment = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=datetime.UTC)


def created_record(
    *,
    bucket: str,
    key: str,
    size: int,
    etag: str,
    modified_ms: int,
    region: str,
    source: str = "aws:s3",
) -> dict[str, Any]:
    """The S3 event record of an object found by a listing (named s3:ObjectCreated:Put)."""
    return {
        "eventVersion": "2.1",
        "eventSource": source,
        "awsRegion": region,
        "eventTime": iso_ms(modified_ms),
        "eventName": SYNTHESIZED_NAME,
        "userIdentity": {"principalId": ""},
        "requestParameters": {"sourceIPAddress": ""},
        "responseElements": {},
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": "tripwire-listing",
            "bucket": {
                "name": bucket,
                "ownerIdentity": {"principalId": ""},
                "arn": f"arn:aws:s3:::{bucket}",
            },
            "object": {
                "key": encode_key(key),
                "size": size,
                "eTag": etag,
                "sequencer": f"{modified_ms * 1_000_000:016X}",
            },
        },
    }


@dataclasses.dataclass(frozen=True, slots=True)
class Observed:
    """One record as the source decides on it: what it is about and what to call it."""

    record: dict[str, Any]
    name: str
    bucket: str
    key: str
    etag: str
    created: bool
    tag: str
    when_ms: int | None


def observe(record: dict[str, Any], *, encoded: bool) -> Observed | None:
    """Read a record; normalize its key encoding. None if it is not about an object.

    `encoded`: the key is URL-encoded, as in records S3 (and MinIO's notification targets)
    deliver to queues; MinIO's ListenBucketNotification stream sends keys as they are.
    """
    s3 = record.get("s3")
    name = record.get("eventName")
    if not isinstance(s3, dict) or not isinstance(name, str):
        return None
    obj, bucket = s3.get("object"), s3.get("bucket")
    if not isinstance(obj, dict) or not isinstance(bucket, dict) or "key" not in obj:
        return None
    if not name.startswith("s3:"):
        name = f"s3:{name}"  # AWS writes `ObjectCreated:Put`, MinIO `s3:ObjectCreated:Put`
    key = decode_key(str(obj["key"])) if encoded else str(obj["key"])
    etag = clean_etag(obj.get("eTag"))
    created = name.startswith("s3:ObjectCreated:")
    version = str(obj.get("versionId") or "")
    tag = etag if created else (version if version not in ("", "null") else "")
    tag = tag or str(obj.get("sequencer") or record.get("eventTime") or "")
    moment = parse_time(record.get("eventTime"))
    normalized = dict(record, eventName=name)
    normalized["s3"] = dict(s3, object=dict(obj, key=encode_key(key)))
    return Observed(
        record=normalized,
        name=name,
        bucket=str(bucket.get("name") or ""),
        key=key,
        etag=etag,
        created=created,
        tag=tag,
        when_ms=to_ms(moment) if moment is not None else None,
    )


# --- the watermark --------------------------------------------------------------------------------

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


# --- talking to S3 and SQS ------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, kw_only=True)
class Connection:
    """Resolved endpoint and credentials of one entry."""

    endpoint: str
    region: str
    access_key: str | None
    secret_key: str | None
    ca_file: str | None

    def ssl(self) -> ssl.SSLContext | bool:
        if self.ca_file is None:
            return True
        return ssl.create_default_context(cafile=self.ca_file)

    def credentials(self) -> Any:
        """botocore Credentials for SigV4 (None: anonymous)."""
        from botocore.credentials import Credentials

        if self.access_key is not None and self.secret_key is not None:
            return Credentials(self.access_key, self.secret_key)
        import botocore.session

        return botocore.session.get_session().get_credentials()

    def signed_headers(
        self, *, method: str, url: str, service: str, body: bytes = b"", headers: Any = None
    ) -> dict[str, str]:
        """SigV4 headers for one request; `url` must be encoded exactly as it will be sent."""
        from botocore.auth import S3SigV4Auth, SigV4Auth
        from botocore.awsrequest import AWSRequest

        request = AWSRequest(method=method, url=url, data=body, headers=headers or {})
        creds = self.credentials()
        if creds is not None:
            auth = S3SigV4Auth if service == "s3" else SigV4Auth
            auth(creds, service, self.region).add_auth(request)
        return dict(request.headers.items())

    def s3_client(self) -> Any:
        """A boto3 S3 client (blocking: call in a thread)."""
        import boto3.session
        from botocore.config import Config

        config = Config(
            s3={"addressing_style": "path"},
            retries={"max_attempts": 3, "mode": "standard"},
            connect_timeout=10,
            read_timeout=60,
            max_pool_connections=4,
        )
        return boto3.session.Session().client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=self.region,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            verify=self.ca_file if self.ca_file is not None else True,
            config=config,
        )


def _server_ms(response: dict[str, Any]) -> int | None:
    """The server's Date header of a boto3 response, in milliseconds."""
    headers = response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
    date = headers.get("date")
    if not date:
        return None
    return to_ms(email.utils.parsedate_to_datetime(date))


def _retry_delays() -> Iterator[float]:
    return backoff.delays(duration=0.5, factor=2.0, jitter=0.1, cap=30.0)


def _is_client_error(exc: BaseException) -> bool:
    module = type(exc).__module__
    return module.startswith(("botocore", "boto3", "urllib3"))


# --- the source -----------------------------------------------------------------------------------


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
        self._prefix = f"{STATE_PREFIX}{spec.watch_key()}/"
        self._where = f"{context.kind} {context.gateway}/{context.name}"
        self._record_source = "minio:s3" if context.kind == "minio" else "aws:s3"
        self._ledger = Ledger(overlap_ms=int(spec.overlap * 1000))
        # Only listings prune the recent set: without them (sqs, narrow notify) keep none.
        self._tracks = spec.reconciles()
        self._inflight: set[str] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self._dirty = asyncio.Event()
        self._session: aiohttp.ClientSession | None = None
        self._client: Any = None
        self._conn: Connection | None = None
        self._queue: asyncio.Queue[Observed] = asyncio.Queue(maxsize=_QUEUE)
        # Observable progress, for tests and readiness.
        self.scans = 0
        self.scanned = asyncio.Event()
        self.connections = 0
        labels = {"gateway": context.gateway, "event": context.name}
        self._received = metrics.EVENTS_RECEIVED.labels(**labels)
        self._published = metrics.EVENTS_PUBLISHED.labels(**labels)
        self._failed = metrics.EVENTS_FAILED.labels(reason="bus_unavailable", **labels)

    @property
    def spec(self) -> S3Spec:
        return self._spec

    @property
    def ledger(self) -> Ledger:
        return self._ledger

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
        self._conn = await self._connection(stack)
        if spec.mode != "sqs":
            try:
                self._client = await asyncio.to_thread(self._conn.s3_client)
            except ImportError:
                raise errors.SourceError(
                    f"{self._where}: boto3 is missing: pip install tripwire[s3]"
                ) from None
            head = await self._s3(self._client.head_bucket, Bucket=spec.bucket.name)
            await self._load()
            if self._tracks and not self._ledger.started and not spec.emit_existing:
                server = _server_ms(head)
                self._ledger.start_at(server if server is not None else to_ms(events.now()))
                await self._write(self._ledger.take())
                log.info("%s: first start; objects that exist now are not reported", self._where)
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=None, connect=10, sock_read=_READ_TIMEOUT)
        )
        self._spawn(self._flusher(), "flush")
        if spec.mode == "poll":
            self._spawn(self._scan_loop(), "poll")
        elif spec.mode == "sqs":
            self._spawn(self._sqs_loop(), "sqs")
        else:
            first: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._spawn(self._dispatch_loop(), "dispatch")
            self._spawn(self._notify_loop(first), "notify")
            await first

    async def _connection(self, stack: contextlib.AsyncExitStack) -> Connection:
        spec, resolver = self._spec, self._context.secrets
        access = await resolver.resolve(spec.access_key) if spec.access_key else None
        secret = await resolver.resolve(spec.secret_key) if spec.secret_key else None
        ca_file: str | None = None
        if spec.ca_certificate is not None:
            pem = await resolver.resolve(spec.ca_certificate)
            handle = tempfile.NamedTemporaryFile(  # noqa: SIM115 - lives as long as the entry
                "w", suffix=".pem", prefix="tripwire-s3-ca-", delete=False
            )
            with handle:
                handle.write(pem)
            ca_file = handle.name
            stack.callback(os.unlink, ca_file)
        endpoint = spec.endpoint_url()
        if spec.mode == "sqs":
            assert spec.queue_url is not None
            parts = urllib.parse.urlsplit(spec.queue_url)
            endpoint = f"{parts.scheme}://{parts.netloc}"
        return Connection(
            endpoint=endpoint,
            region=spec.region,
            access_key=access,
            secret_key=secret,
            ca_file=ca_file,
        )

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
        changes = self._ledger.take()
        if changes:
            # The events behind these entries are durable: record them while we can.
            with contextlib.suppress(errors.BusError):
                await self._context.store.write(self._scoped(changes))
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._client is not None:
            client, self._client = self._client, None
            await asyncio.to_thread(client.close)

    # -- state ----------------------------------------------------------------------------

    def _scoped(self, changes: dict[str, bytes | None]) -> dict[str, bytes | None]:
        return {self._prefix + key: value for key, value in changes.items()}

    async def _load(self) -> None:
        try:
            entries = await self._context.store.scan(STATE_PREFIX)
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
            self._ledger.load(mine)
        except (ValueError, orjson.JSONDecodeError):
            log.warning("%s: unreadable state, starting afresh", self._where)
            self._ledger = Ledger(overlap_ms=self._ledger.overlap_ms)
            stale.update({self._prefix + key: None for key, _ in mine})
        if stale:
            log.info("%s: the watch changed, dropping %d state entries", self._where, len(stale))
            await self._context.store.write(stale)
        if self._ledger.started:
            log.info(
                "%s: resuming from watermark %s (%d recent object(s))",
                self._where,
                iso_ms(self._ledger.watermark or 0),
                len(self._ledger.recent),
            )

    async def _write(self, changes: dict[str, bytes | None]) -> None:
        if not changes:
            return
        for attempt, delay in enumerate(self._retry_delays(), start=1):
            try:
                await self._context.store.write(self._scoped(changes))
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

    async def _flusher(self) -> None:
        """Write the ledger's changes after their events are durable, coalescing bursts."""
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            await self._write(self._ledger.take())

    async def _flush(self) -> None:
        """Write now (end of a scan): the watermark must not wait for the flusher."""
        await self._write(self._ledger.take())

    # -- dispatching ----------------------------------------------------------------------

    def _event(self, observed: Observed) -> events.Event:
        event = self._context.event(
            {"notification": [observed.record], "metadata": dict(self._spec.metadata)},
            id=event_id(
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

    async def _emit(self, observed: Observed) -> bool:
        """Dispatch one record unless its object was already reported; True if dispatched."""
        tracked = observed.created and self._tracks
        ident = digest(observed.key, observed.etag) if tracked else None
        if ident is not None and (ident in self._ledger.recent or ident in self._inflight):
            return False
        if ident is not None:
            self._inflight.add(ident)
        try:
            await self._dispatch(self._event(observed))
            if ident is not None:
                self._ledger.remember(ident, observed.when_ms or to_ms(events.now()))
                self._dirty.set()
        finally:
            if ident is not None:
                self._inflight.discard(ident)
        return True

    async def _dispatch(self, event: events.Event) -> None:
        """Dispatch until durable: neither a listing nor a stream can be acknowledged."""
        self._received.inc()
        for attempt, delay in enumerate(self._retry_delays(), start=1):
            try:
                await self._context.dispatch(event)
            except errors.BusError as exc:
                self._failed.inc()
                log.warning(
                    "%s: event %s not durable, attempt %d, again in %.1fs: %s",
                    self._where,
                    event.id,
                    attempt,
                    delay,
                    exc,
                )
                await self._sleep(delay)
                continue
            self._published.inc()
            return

    def _wanted(self, observed: Observed) -> bool:
        return (
            observed.bucket == self._spec.bucket.name
            and name_matches(observed.name, self._events)
            and self._filter.passes(observed.key)
        )

    # -- listing (poll, and notify's reconcile) -------------------------------------------

    async def _s3(self, call: Callable[..., Any], **kwargs: Any) -> Any:
        try:
            return await asyncio.to_thread(call, **kwargs)
        except Exception as exc:
            if not _is_client_error(exc):
                raise
            raise errors.SourceError(f"{self._where}: {exc}") from exc

    async def _pages(self) -> AsyncIterator[dict[str, Any]]:
        """ListObjectsV2 pages of the watched prefix, one at a time (never the whole bucket)."""
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {
                "Bucket": self._spec.bucket.name,
                "Prefix": self._spec.prefix,
                "MaxKeys": _PAGE,
            }
            if token is not None:
                kwargs["ContinuationToken"] = token
            page = await self._s3(self._client.list_objects_v2, **kwargs)
            yield page
            token = page.get("NextContinuationToken")
            if not page.get("IsTruncated") or not token:
                return

    async def scan(self) -> int:
        """One listing: report what is new since the watermark, then move it. Returns the
        number of events dispatched."""
        ledger, spec = self._ledger, self._spec
        threshold = ledger.threshold()
        newest: int | None = None
        emitted = 0
        async for page in self._pages():
            server = _server_ms(page)
            if newest is None or (server is not None and server > newest):
                newest = server if server is not None else newest
            for item in page.get("Contents") or ():
                key: str = item["Key"]
                modified = to_ms(item["LastModified"])
                newest = modified if newest is None else max(newest, modified)
                if not key.endswith(spec.suffix):
                    continue
                etag = clean_etag(item.get("ETag"))
                if not ledger.is_new(digest(key, etag), modified, threshold):
                    continue
                record = created_record(
                    bucket=spec.bucket.name,
                    key=key,
                    size=int(item.get("Size") or 0),
                    etag=etag,
                    modified_ms=modified,
                    region=spec.region,
                    source=self._record_source,
                )
                observed = Observed(
                    record=record,
                    name=SYNTHESIZED_NAME,
                    bucket=spec.bucket.name,
                    key=key,
                    etag=etag,
                    created=True,
                    tag=etag,
                    when_ms=modified,
                )
                if await self._emit(observed):
                    emitted += 1
            await self._flush()
        ledger.advance(newest if newest is not None else (ledger.watermark or 0))
        await self._flush()
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

    def _listen_url(self) -> str:
        spec = self._spec
        query: list[tuple[str, str]] = [("events", name) for name in spec.events]
        query += [("ping", str(_PING))]
        if spec.prefix:
            query.append(("prefix", spec.prefix))
        if spec.suffix:
            query.append(("suffix", spec.suffix))
        # SigV4 signs the query exactly as sent: AWS's encoding, sorted, sent as is.
        text = urllib.parse.urlencode(sorted(query), quote_via=urllib.parse.quote)
        assert self._conn is not None
        return f"{self._conn.endpoint}/{urllib.parse.quote(spec.bucket.name)}?{text}"

    async def _notify_loop(self, first: asyncio.Future[None]) -> None:
        """Stream notifications; on every (re)connect run the reconciling scan loop.

        `first` resolves on the first subscription, or fails with the first error (then the
        loop ends and `start()` raises, to be retried by the runtime).
        """
        delays = self._retry_delays()
        while True:
            reconciler: asyncio.Task[None] | None = None
            try:
                async with self._stream() as response:
                    delays = self._retry_delays()
                    self.connections += 1
                    if not first.done():
                        first.set_result(None)
                    if self._spec.reconciles():
                        reconciler = asyncio.create_task(
                            self._scan_loop(),
                            name=f"{KIND}-reconcile-{self._context.gateway}-{self._context.name}",
                        )
                    await self._read(response)
                log.warning("%s: the notification stream ended; reconnecting", self._where)
            except (aiohttp.ClientError, TimeoutError, OSError, errors.SourceError) as exc:
                reason = str(exc) or type(exc).__name__
                if not first.done():
                    first.set_exception(errors.SourceError(f"{self._where}: {reason}"))
                    return
                delay = next(delays)
                log.warning(
                    "%s: notification stream failed, again in %.1fs: %s", self._where, delay, reason
                )
                await self._sleep(delay)
            finally:
                if reconciler is not None:
                    reconciler.cancel()
                    await asyncio.wait([reconciler])

    @contextlib.asynccontextmanager
    async def _stream(self) -> AsyncIterator[aiohttp.ClientResponse]:
        assert self._session is not None and self._conn is not None
        url = self._listen_url()
        headers = await asyncio.to_thread(
            self._conn.signed_headers, method="GET", url=url, service="s3"
        )
        async with self._session.get(
            yarl.URL(url, encoded=True), headers=headers, ssl=self._conn.ssl()
        ) as response:
            if response.status != 200:
                text = (await response.content.read(300)).decode("utf-8", "replace")
                raise errors.SourceError(
                    f"{self._where}: ListenBucketNotification answered HTTP {response.status}:"
                    f" {text}"
                )
            yield response

    async def _read(self, response: aiohttp.ClientResponse) -> None:
        """Queue each record of the stream; returns when the server closes it."""
        while True:
            line = await response.content.readline()
            if not line:
                return
            line = line.strip()
            if not line:
                continue  # keep-alive
            try:
                message = orjson.loads(line)
            except orjson.JSONDecodeError:
                log.warning("%s: ignoring unreadable notification %r", self._where, line[:200])
                continue
            for record in message.get("Records") or ():
                observed = observe(record, encoded=False)
                if observed is not None and self._wanted(observed):
                    await self._queue.put(observed)

    async def _dispatch_loop(self) -> None:
        """Dispatch queued stream records in order; reading never waits for the bus."""
        while True:
            observed = await self._queue.get()
            await self._emit(observed)

    # -- sqs ------------------------------------------------------------------------------

    async def _sqs(self, action: str, body: dict[str, Any]) -> dict[str, Any]:
        """One SQS call (AWS JSON 1.0 protocol), SigV4-signed; cancellable, unlike a thread."""
        assert self._session is not None and self._conn is not None
        url = f"{self._conn.endpoint}/"
        payload = orjson.dumps(body)
        base_headers = {
            "Content-Type": "application/x-amz-json-1.0",
            "X-Amz-Target": f"AmazonSQS.{action}",
        }
        headers = await asyncio.to_thread(
            self._conn.signed_headers,
            method="POST",
            url=url,
            service="sqs",
            body=payload,
            headers=base_headers,
        )
        async with self._session.post(
            url, data=payload, headers=headers, ssl=self._conn.ssl()
        ) as response:
            raw = await response.read()
            if response.status != 200:
                raise errors.SourceError(
                    f"{self._where}: SQS {action} answered HTTP {response.status}:"
                    f" {raw[:300].decode('utf-8', 'replace')}"
                )
            result: dict[str, Any] = orjson.loads(raw) if raw else {}
            return result

    def _records_of(self, body: str) -> list[dict[str, Any]] | None:
        """The S3 records of one message body (also SNS-wrapped); None if it is not one."""
        try:
            message = orjson.loads(body)
            if isinstance(message, dict) and message.get("Type") == "Notification":
                message = orjson.loads(message.get("Message") or "{}")
        except orjson.JSONDecodeError:
            return None
        if not isinstance(message, dict):
            return None
        if message.get("Event") == "s3:TestEvent":
            return []
        records = message.get("Records")
        return records if isinstance(records, list) else None

    async def _sqs_loop(self) -> None:
        """Long-poll the queue; dispatch each wanted record; delete after all are durable."""
        spec = self._spec
        delays = self._retry_delays()
        while True:
            try:
                reply = await self._sqs(
                    "ReceiveMessage",
                    {"QueueUrl": spec.queue_url, "MaxNumberOfMessages": 10, "WaitTimeSeconds": 20},
                )
                delays = self._retry_delays()
                done: list[dict[str, str]] = []
                for i, message in enumerate(reply.get("Messages") or ()):
                    records = self._records_of(str(message.get("Body") or ""))
                    if records is None:
                        log.warning(
                            "%s: deleting SQS message %s: not an S3 event notification",
                            self._where,
                            message.get("MessageId"),
                        )
                    for record in records or ():
                        observed = (
                            observe(record, encoded=True) if isinstance(record, dict) else None
                        )
                        if observed is not None and self._wanted(observed):
                            await self._emit(observed)
                    done.append({"Id": str(i), "ReceiptHandle": message["ReceiptHandle"]})
                if done:
                    result = await self._sqs(
                        "DeleteMessageBatch", {"QueueUrl": spec.queue_url, "Entries": done}
                    )
                    for failed in result.get("Failed") or ():
                        log.warning("%s: SQS delete failed: %s", self._where, failed)
            except (aiohttp.ClientError, TimeoutError, OSError, errors.SourceError) as exc:
                delay = next(delays)
                log.warning(
                    "%s: SQS receive failed, again in %.1fs: %s",
                    self._where,
                    delay,
                    exc or type(exc).__name__,
                )
                await self._sleep(delay)


__all__ = [
    "CREATED_ALL",
    "EVENT_NAMES",
    "KIND",
    "Ledger",
    "Observed",
    "S3Bucket",
    "S3Filter",
    "S3Source",
    "S3Spec",
    "created_record",
    "decode_key",
    "digest",
    "encode_key",
    "event_id",
    "event_name",
    "name_matches",
    "observe",
]
