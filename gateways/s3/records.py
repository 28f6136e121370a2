"""S3 event records: their names, their keys' encoding, the records listings synthesize, ids.

Pure functions shared by every mode of the s3 gateway, so what the notification stream, SQS and
a listing report is one shape and one id. The stream and SQS deliver real records, with object
keys normalized here to AWS's URL encoding (space is `+`, `/` is kept; MinIO's stream sends raw
keys, its queue targets escape `/` as `%2F`); listings synthesize records named
`s3:ObjectCreated:Put` (a listing cannot tell how an object was written).

**Ids.** A creation's event id is a hash of (gateway, entry, bucket, key, ETag, "created"), so
the same object seen by the stream, the reconcile scan or a redelivered SQS message dedupes on
the bus. ETag rather than versionId, because listings carry no version ids: rewriting identical
bytes is the same event. A removal's id uses versionId, else the sequencer.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import urllib.parse
from typing import Any

import orjson

CREATED_ALL = "s3:ObjectCreated:*"
SYNTHESIZED_NAME = "s3:ObjectCreated:Put"

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


def records_of(body: str) -> list[dict[str, Any]] | None:
    """The S3 records of one queue message body (also SNS-wrapped); None if it is not one."""
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


__all__ = [
    "CREATED_ALL",
    "EVENT_NAMES",
    "SYNTHESIZED_NAME",
    "Observed",
    "clean_etag",
    "created_record",
    "decode_key",
    "digest",
    "encode_key",
    "event_id",
    "event_name",
    "iso_ms",
    "name_matches",
    "observe",
    "parse_time",
    "records_of",
    "to_ms",
]
