"""What a Gateway's or Sensor's `status` subresource should say, as pure functions.

`kubectl get gw,sn` and `kubectl describe` are where users look first when nothing happened, so
the status follows the Kubernetes condition conventions (`type`, `status` "True"/"False",
`reason` CamelCase, `message`, `lastTransitionTime` that moves only when `status` flips,
`observedGeneration`) and carries the times the printer columns show. Building it is pure —
the reconciler hands in what the executor observed, the validation problems and the status
it last saw — so it is unit-tested without an apiserver, and a write happens only when the
result differs from what is stored (`merge_patch` is empty otherwise). Times have second
precision (metav1.Time), which also bounds writes under a steady event stream to one per
status check, never one per event.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Mapping, Sequence
from typing import Any, Literal

Kind = Literal["Gateway", "Sensor"]
READY = "Ready"
_MAX_MESSAGE = 2000

# Condition reasons (CamelCase, as Kubernetes asks).
RUNNING = "Running"
NOT_READY = "NotReady"
INVALID_SPEC = "InvalidSpec"
START_FAILED = "StartFailed"
PENDING = "Pending"


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class EntryState:
    """One gateway entry (a webhook endpoint, a calendar...) as the runtime sees it."""

    kind: str
    ready: bool
    error: str | None = None


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Observed:
    """What the executor knows about one running (or failed) object."""

    ready: bool
    error: str | None = None  # the object could not be started at all
    entries: Mapping[str, EntryState] = dataclasses.field(default_factory=dict)
    last_event: float | None = None  # wall time, gateways
    last_fired: float | None = None  # wall time, sensors


def rfc3339(when: float) -> str:
    """metav1.Time's wire format: UTC, second precision, `Z`."""
    return datetime.datetime.fromtimestamp(when, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _truncate(text: str) -> str:
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 3] + "..."


def ready_condition(
    *,
    kind: Kind,
    observed: Observed | None,
    problems: Sequence[str] | None,
) -> tuple[bool, str, str]:
    """(ready, reason, message) of the Ready condition."""
    if problems:
        return False, INVALID_SPEC, _truncate("; ".join(problems))
    if observed is None:
        return False, PENDING, f"the controller has not started this {kind} yet"
    if observed.error is not None:
        return False, START_FAILED, _truncate(observed.error)
    if kind == "Gateway":
        bad = [
            f"{name} ({entry.kind}): {entry.error or 'starting'}"
            for name, entry in sorted(observed.entries.items())
            if not entry.ready
        ]
        if bad:
            return False, NOT_READY, _truncate("not ready: " + "; ".join(bad))
        if not observed.ready:
            return False, NOT_READY, "starting"
        count = len(observed.entries)
        return True, RUNNING, f"{count} entr{'y' if count == 1 else 'ies'} ready"
    if not observed.ready:
        return False, NOT_READY, "starting: not subscribed yet"
    return True, RUNNING, "subscribed to its dependencies"


def build(
    *,
    kind: Kind,
    generation: int | None,
    observed: Observed | None,
    problems: Sequence[str] | None,
    previous: Mapping[str, Any] | None,
    now: float,
) -> dict[str, Any]:
    """The status to store. `previous` is the stored status: its transition time is kept while
    Ready does not flip, and its last event/firing times while the runtime has none newer (a
    restarted controller has not seen events from before the restart)."""
    previous = previous or {}
    ready, reason, message = ready_condition(kind=kind, observed=observed, problems=problems)
    value = "True" if ready else "False"
    old = _condition(previous, READY)
    if old is not None and old.get("status") == value and old.get("lastTransitionTime"):
        transition = str(old["lastTransitionTime"])
    else:
        transition = rfc3339(now)
    condition: dict[str, Any] = {
        "type": READY,
        "status": value,
        "reason": reason,
        "message": message,
        "lastTransitionTime": transition,
    }
    out: dict[str, Any] = {"conditions": [condition]}
    if generation is not None:
        out["observedGeneration"] = generation
        condition["observedGeneration"] = generation
    if kind == "Gateway":
        if observed is not None and observed.entries:
            out["entries"] = {
                name: {
                    "kind": e.kind,
                    "ready": e.ready,
                    **({"message": e.error} if e.error else {}),
                }
                for name, e in sorted(observed.entries.items())
            }
        last = _later(previous.get("lastEventTime"), observed.last_event if observed else None)
        if last is not None:
            out["lastEventTime"] = last
    else:
        last = _later(previous.get("lastFiredTime"), observed.last_fired if observed else None)
        if last is not None:
            out["lastFiredTime"] = last
    return out


def _condition(status: Mapping[str, Any], kind: str) -> Mapping[str, Any] | None:
    for cond in status.get("conditions") or ():
        if isinstance(cond, Mapping) and cond.get("type") == kind:
            return cond
    return None


def _later(stored: Any, seen: float | None) -> str | None:
    """The newer of a stored RFC3339 time and a runtime wall time (same format sorts right)."""
    fresh = rfc3339(seen) if seen is not None else None
    old = stored if isinstance(stored, str) and stored else None
    if fresh is None or old is None:
        return fresh or old
    return max(fresh, old)


def merge_patch(current: Mapping[str, Any] | None, desired: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON merge patch (RFC 7386) turning `current` into `desired`; `{}` when equal.

    Keys only `current` has become `null` (deleted); maps recurse; anything else (lists such as
    `conditions`) is replaced whole, which is what merge patch does to lists anyway.
    """
    current = current or {}
    patch: dict[str, Any] = {}
    for key, value in desired.items():
        old = current.get(key)
        if isinstance(value, Mapping) and isinstance(old, Mapping):
            sub = merge_patch(old, value)
            if sub:
                patch[key] = sub
        elif old != value:
            patch[key] = value
    for key in current:
        if key not in desired:
            patch[key] = None
    return patch
