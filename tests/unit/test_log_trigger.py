"""The log trigger: one structured INFO line per firing, truncation, and `intervalSeconds`."""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pydantic
import pytest

from triggers import base, log
from tripwire import events, secrets


@pytest.fixture
async def context() -> AsyncIterator[base.TriggerContext]:
    async with aiohttp.ClientSession() as session:
        yield base.TriggerContext(
            sensor="retrain", trigger="train", session=session, secrets=secrets.LocalResolver()
        )


def _event(event_id: str, data: Any) -> events.Event:
    return events.Event(id=event_id, source="ci", subject="push", type="webhook", data=data)


def _firing(key: str = "key-1", data: Any = None) -> base.Firing:
    return base.Firing(
        key=key,
        sensor="retrain",
        trigger="train",
        events={
            "pushed": _event("ev-1", {"body": {"ref": "main"}} if data is None else data),
            "nightly": _event("ev-2", {"eventTime": "2024-01-02T02:00:00Z"}),
        },
    )


def _lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "tripwire.trigger.log"]


async def test_one_structured_line_per_firing(
    context: base.TriggerContext, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="tripwire.trigger.log")
    trigger = log.LogTrigger(spec={}, context=context)
    async with contextlib.AsyncExitStack() as stack:
        await trigger.start(stack)
        assert await trigger.fire(_firing()) is True

    [record] = _lines(caplog)
    assert record.levelno == logging.INFO
    message = record.getMessage()
    assert message.startswith("trigger fired: ")
    payload = json.loads(message.removeprefix("trigger fired: "))
    assert payload == {
        "sensor": "retrain",
        "trigger": "train",
        "triggerKey": "key-1",
        "events": {
            "nightly": {
                "id": "ev-2",
                "source": "ci",
                "subject": "push",
                "data": {"eventTime": "2024-01-02T02:00:00Z"},
            },
            "pushed": {
                "id": "ev-1",
                "source": "ci",
                "subject": "push",
                "data": {"body": {"ref": "main"}},
            },
        },
    }
    assert _logged(record) == payload


async def test_large_data_is_truncated(
    context: base.TriggerContext, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="tripwire.trigger.log")
    trigger = log.LogTrigger(spec={}, context=context)
    await trigger.fire(_firing(data={"blob": "x" * 10_000}))
    [record] = _lines(caplog)
    data = _logged(record)["events"]["pushed"]["data"]
    assert isinstance(data, str)
    assert data.endswith("... (10011 characters)")
    assert len(record.getMessage()) < 2_000


async def test_unusual_data_does_not_fail(
    context: base.TriggerContext, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="tripwire.trigger.log")
    trigger = log.LogTrigger(spec={}, context=context)
    assert await trigger.fire(_firing(data={1: 2**70, "b": b"bytes"})) is True
    assert len(_lines(caplog)) == 1


async def test_interval_limits_lines(
    context: base.TriggerContext, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="tripwire.trigger.log")
    now = [100.0]
    trigger = log.LogTrigger(
        spec=log.LogTriggerSpec(interval_seconds=10), context=context, clock=lambda: now[0]
    )
    outcomes = []
    for at in (100.0, 105.0, 109.9, 110.0, 111.0, 125.0):
        now[0] = at
        outcomes.append(await trigger.fire(_firing(key=f"k{at}")))
    assert outcomes == [True, False, False, True, False, True]
    keys = [_logged(r)["triggerKey"] for r in _lines(caplog)]
    assert keys == ["k100.0", "k110.0", "k125.0"]


def test_spec_validation() -> None:
    assert log.LogTriggerSpec.model_validate({"intervalSeconds": 5}).interval_seconds == 5
    with pytest.raises(pydantic.ValidationError):
        log.LogTriggerSpec.model_validate({"intervalSeconds": -1})
    with pytest.raises(pydantic.ValidationError):
        log.LogTriggerSpec.model_validate({"interval": 5})


def test_registered_kind() -> None:
    assert base.load("log") is log.LogTrigger


def _logged(record: logging.LogRecord) -> Any:
    """The firing record a log line carries, parsed back from its JSON text."""
    message = record.getMessage()
    assert message.startswith("trigger fired: ")
    return json.loads(message.removeprefix("trigger fired: "))
