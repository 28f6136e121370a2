"""`tripwire explain SENSOR`: why did (or didn't) a sensor fire, in words.

Users ask "why didn't it fire?" far more often than anything else. The runtime keeps, per
sensor, each dependency's latest accepted event, counts, the recent rejections with the filter
and the value that failed, and each trigger's condition with the truth of every name; this
module fetches that from `/explain/<sensor>` and prints it for a terminal.
"""

from __future__ import annotations

import datetime
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

import orjson

from tripwire import errors


def fetch(base_url: str, sensor: str, *, timeout: float = 5.0) -> dict[str, Any]:
    url = f"{base_url.rstrip('/')}/explain/{urllib.parse.quote(sensor, safe='')}"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - http(s) only
            doc: dict[str, Any] = orjson.loads(resp.read())
            return doc
    except urllib.error.HTTPError as exc:
        try:
            reason = orjson.loads(exc.read()).get("error", exc.reason)
        except orjson.JSONDecodeError:
            reason = exc.reason
        raise errors.TripwireError(f"{url}: {reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise errors.TripwireError(
            f"cannot reach a tripwire runtime at {base_url} ({reason}); is it running, and is"
            " --metrics-port the port given here with --url?"
        ) from None


def _age(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f}s ago"
    if seconds < 3600:
        return f"{seconds / 60:.0f}m ago"
    return f"{seconds / 3600:.1f}h ago"


def render(doc: dict[str, Any]) -> str:
    """The explanation as lines: triggers first (the answer), then dependencies, rejections."""
    lines = [f"sensor {doc['sensor']}"]
    for name, trig in doc.get("triggers", {}).items():
        verdict = "would fire now" if trig.get("satisfied") else "not fired: condition is false"
        lines.append(f"  trigger {name}: {verdict}")
        lines.append(f"    condition  {trig['condition']}")
        if trig.get("waiting_for"):
            lines.append(f"    waiting for {', '.join(trig['waiting_for'])}")
    lines.append("  dependencies")
    for name, dep in doc.get("dependencies", {}).items():
        where = f"{dep['gateway']}/{dep['event']}"
        counts = f"{dep['accepted']} accepted, {dep['rejected']} rejected"
        latest = dep.get("latest")
        if latest is None:
            tail = (
                "no event arrived yet: is the gateway running and the event name right?"
                if dep["accepted"] + dep["rejected"] == 0
                else "no event passed the filters"
            )
        else:
            tail = f"latest {latest['id']} ({_age(latest['age_seconds'])})"
        lines.append(f"    {name} <- {where}: {counts}; {tail}")
    rejected = doc.get("rejected", [])
    if rejected:
        lines.append(f"  recently rejected (newest last, {len(rejected)})")
        for r in rejected[-10:]:
            at = datetime.datetime.fromtimestamp(r["at"], datetime.UTC).strftime("%H:%M:%S")
            lines.append(f"    {at} {r['dependency']} {r['event_id']}: {r['reason']}")
    return "\n".join(lines)
