"""The `log` trigger: write one structured line per firing, for trying sensors out.

Argo Events' log trigger exists so that users can see a sensor fire before they point it at
anything real. Here it writes one INFO line per firing on logger `tripwire.trigger.log`: the
sensor, trigger and trigger key, and per dependency the event's id, source, subject and data
(cut to `_DATA_LIMIT` characters of JSON, so a large S3 notification does not flood the log).
The record is the line's message as JSON text, so it reads the same in text and JSON log formats.

`intervalSeconds` keeps Argo's meaning: at most one line per interval; firings in between
succeed without logging (they are not queued or counted).
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Callable
from typing import Any, ClassVar

import orjson
import pydantic

from triggers import base
from tripwire import manifests

LOGGER = logging.getLogger("tripwire.trigger.log")
_DATA_LIMIT = 1024


class LogTriggerSpec(manifests.Model):
    interval_seconds: int = pydantic.Field(default=0, ge=0)


class LogTrigger(base.PipelineTrigger[dict[str, Any], bool]):
    """Outcome: True when the line was written, False when `intervalSeconds` suppressed it."""

    spec_model: ClassVar[type[pydantic.BaseModel]] = LogTriggerSpec

    def __init__(
        self,
        *,
        spec: LogTriggerSpec | dict[str, Any],
        context: base.TriggerContext,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._spec = LogTriggerSpec.model_validate(spec)
        self._context = context
        # Injectable so tests check the interval without sleeping; monotonic, not wall time,
        # so a clock step cannot silence the trigger.
        self._clock = clock
        self._last: float | None = None

    async def start(self, stack: contextlib.AsyncExitStack) -> None:
        return None

    async def resolve(self, firing: base.Firing) -> dict[str, Any]:
        return {
            "sensor": firing.sensor,
            "trigger": firing.trigger,
            "triggerKey": firing.key,
            "events": {
                name: {
                    "id": event.id,
                    "source": event.source,
                    "subject": event.subject,
                    "data": _truncated(event.data),
                }
                for name, event in sorted(firing.events.items())
            },
        }

    def apply_parameters(self, resource: dict[str, Any], firing: base.Firing) -> dict[str, Any]:
        return resource  # the log trigger has no parameters

    async def execute(self, resource: dict[str, Any], firing: base.Firing) -> bool:
        now = self._clock()
        interval = self._spec.interval_seconds
        if self._last is not None and interval > 0 and now - self._last < interval:
            return False
        self._last = now
        LOGGER.info("trigger fired: %s", _dumps(resource))
        return True


def _truncated(data: Any) -> Any:
    """`data` itself when its JSON is short, else the first `_DATA_LIMIT` characters of it."""
    text = _dumps(data)
    if len(text) <= _DATA_LIMIT:
        return data
    return f"{text[:_DATA_LIMIT]}... ({len(text)} characters)"


def _dumps(value: Any) -> str:
    try:
        return orjson.dumps(value, default=str).decode()
    except TypeError:
        # Integers past 64 bits or non-string keys: a log line must never fail the firing.
        return json.dumps(value, default=str, ensure_ascii=False)


__all__ = ["LogTrigger", "LogTriggerSpec"]
