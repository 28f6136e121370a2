"""The event envelope every gateway emits and every sensor reads: CloudEvents 1.0, structured.

One small class, serialized with orjson in the CloudEvents JSON format, so the same bytes sit in
the embedded journal, on JetStream and in an HTTP trigger payload. `data` keeps Argo Events'
shapes (webhook `{header, body, metadata}`, ...) so filters and parameters port unchanged.
"""

from __future__ import annotations

import dataclasses
import datetime
import os
from typing import Any

import orjson

SPEC_VERSION = "1.0"
_ENVELOPE = frozenset(
    {"specversion", "id", "source", "subject", "type", "time", "datacontenttype", "data"}
)


def new_id() -> str:
    """An id unique per emission, for sources without a natural id (128 random bits, hex).

    Not `uuid4().hex`: the same randomness without building a UUID object, ~4x cheaper on the
    webhook's hot path.
    """
    return os.urandom(16).hex()


def now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


@dataclasses.dataclass(slots=True)
class Event:
    """One event: `source` is the gateway, `subject` the event (entry) name, `type` the kind."""

    id: str
    source: str
    subject: str
    type: str
    data: Any
    time: datetime.datetime = dataclasses.field(default_factory=now)
    datacontenttype: str = "application/json"
    extensions: dict[str, str] = dataclasses.field(default_factory=dict)

    def context(self) -> dict[str, Any]:
        """The CloudEvents context attributes, as `contextKey` and context filters see them."""
        ctx: dict[str, Any] = {
            "specversion": SPEC_VERSION,
            "id": self.id,
            "source": self.source,
            "subject": self.subject,
            "type": self.type,
            "time": self.time.isoformat(),
            "datacontenttype": self.datacontenttype,
        }
        ctx.update(self.extensions)
        return ctx

    def to_dict(self) -> dict[str, Any]:
        doc = self.context()
        doc["data"] = self.data
        return doc

    def to_bytes(self) -> bytes:
        return orjson.dumps(self.to_dict())


def from_dict(doc: dict[str, Any]) -> Event:
    """Build an event from its structured CloudEvents form (inverse of `Event.to_dict`)."""
    extensions = {k: str(v) for k, v in doc.items() if k not in _ENVELOPE}
    raw_time = doc.get("time")
    time = datetime.datetime.fromisoformat(raw_time) if isinstance(raw_time, str) else now()
    return Event(
        id=str(doc["id"]),
        source=str(doc["source"]),
        subject=str(doc.get("subject", "")),
        type=str(doc["type"]),
        data=doc.get("data"),
        time=time,
        datacontenttype=str(doc.get("datacontenttype", "application/json")),
        extensions=extensions,
    )


def from_bytes(raw: bytes) -> Event:
    doc = orjson.loads(raw)
    if not isinstance(doc, dict):
        raise ValueError("a CloudEvent must be a JSON object")
    return from_dict(doc)
