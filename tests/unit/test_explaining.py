"""`tripwire explain` output: what a user reads when a sensor did not fire."""

from __future__ import annotations

import socket

import pytest

from tripwire import errors
from tripwire.app import explaining


def test_render_says_what_is_missing_and_why_events_were_rejected() -> None:
    doc = {
        "sensor": "train",
        "dependencies": {
            "data": {"gateway": "s3", "event": "raw", "accepted": 0, "rejected": 0,
                     "latest": None},
            "code": {"gateway": "ci", "event": "push", "accepted": 2, "rejected": 1,
                     "latest": {"id": "e2", "time": "2026-01-01T00:00:00+00:00",
                                "age_seconds": 90.0}},
        },
        "rejected": [{"at": 0.0, "dependency": "code", "event_id": "e3",
                      "reason": "data[0] body.ref: got 'refs/heads/dev', want matching one of"
                                " ['main']"}],
        "triggers": {"launch": {"condition": "data(✗) && code(✓)", "satisfied": False,
                                "waiting_for": ["data"]}},
    }  # fmt: skip
    assert explaining.render(doc).splitlines() == [
        "sensor train",
        "  trigger launch: not fired: condition is false",
        "    condition  data(✗) && code(✓)",
        "    waiting for data",
        "  dependencies",
        "    data <- s3/raw: 0 accepted, 0 rejected; no event arrived yet: is the gateway running"
        " and the event name right?",
        "    code <- ci/push: 2 accepted, 1 rejected; latest e2 (2m ago)",
        "  recently rejected (newest last, 1)",
        "    00:00:00 code e3: data[0] body.ref: got 'refs/heads/dev', want matching one of"
        " ['main']",
    ]


def test_unreachable_runtime_is_a_clear_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(errors.TripwireError, match="cannot reach a tripwire runtime"):
        explaining.fetch(f"http://127.0.0.1:{port}", "x", timeout=2)
