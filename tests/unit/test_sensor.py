"""The sensor runner on the embedded bus: conditions, state, retries, isolation, restarts.

Triggers are the real `http` kind against a real aiohttp server in the test; the bus is the real
embedded bus (journal in tmp_path). Nothing here is mocked.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime
import hashlib
import pathlib
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web

from sensors import manifest as sensor_manifest
from sensors import running
from tripwire import events, secrets
from tripwire.bus import embedded


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclasses.dataclass
class Target:
    """Answers each request with the next scripted status (200 once the script is used up)."""

    url: str
    script: dict[str, list[int]] = dataclasses.field(default_factory=dict)
    received: list[tuple[str, str, dict[str, Any]]] = dataclasses.field(default_factory=list)
    changed: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        body = orjson.loads(await request.read())
        self.received.append((name, request.headers["Idempotency-Key"], body))
        self.changed.set()
        statuses = self.script.get(name, [])
        return web.Response(status=statuses.pop(0) if statuses else 200)

    async def wait(self, count: int, timeout: float = 5.0) -> None:
        async def reached() -> None:
            while len(self.received) < count:
                self.changed.clear()
                await self.changed.wait()

        await asyncio.wait_for(reached(), timeout)

    async def quiet(self) -> None:
        """Nothing more arrives for a little while."""
        before = len(self.received)
        await asyncio.sleep(0.2)
        assert len(self.received) == before, self.received[before:]


@pytest.fixture
async def target() -> AsyncIterator[Target]:
    port = _port()
    t = Target(url=f"http://127.0.0.1:{port}")
    app = web.Application()
    app.router.add_post("/{name}", t.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield t
    await runner.cleanup()


def _http(
    name: str,
    url: str,
    *,
    conditions: str | None = None,
    deps: tuple[str, ...] = ("a", "b"),
    **extra: Any,
) -> dict[str, Any]:
    template: dict[str, Any] = {
        "name": name,
        "http": {
            "url": f"{url}/{name}",
            "payload": [
                {"src": {"dependencyName": d, "dataKey": "n", "value": "-"}, "dest": d}
                for d in deps
            ],
        },
    }
    if conditions is not None:
        template["conditions"] = conditions
    return {"template": template, **extra}


def _sensor(*triggers: dict[str, Any], deps: tuple[str, ...] = ("a", "b")) -> Any:
    return sensor_manifest.model().model_validate(
        {
            "apiVersion": "tripwire.dev/v1alpha1",
            "kind": "Sensor",
            "metadata": {"name": "s"},
            "spec": {
                "dependencies": [
                    {
                        "name": d,
                        "gatewayName": "gw",
                        "eventName": d,
                        "filters": {
                            "data": [
                                {"path": "n", "type": "number", "value": ["0"], "comparator": ">="}
                            ]
                        },
                    }
                    for d in deps
                ],
                "triggers": list(triggers),
            },
        }
    )


@contextlib.asynccontextmanager
async def running_sensor(
    sensor: Any, state: pathlib.Path | None, **options: Any
) -> AsyncIterator[tuple[embedded.EmbeddedBus, running.SensorRunner]]:
    bus = embedded.EmbeddedBus(path=state)
    async with contextlib.AsyncExitStack() as stack:
        await bus.start(stack)
        session = aiohttp.ClientSession()
        stack.push_async_callback(session.close)
        runner = running.SensorRunner(
            sensor=sensor,
            bus=bus,
            session=session,
            resolver=secrets.LocalResolver(),
            grace=2,
            **options,
        )
        await runner.start(stack)
        yield bus, runner


_seq = 0


async def _emit(bus: embedded.EmbeddedBus, dep: str, n: int) -> events.Event:
    global _seq
    _seq += 1
    event = events.Event(
        id=f"{dep}-{n}-{_seq}", source="gw", subject=dep, type="webhook", data={"n": n}
    )
    await bus.publish(event)
    return event


@pytest.fixture(params=["durable", "ephemeral"])
def state(request: pytest.FixtureRequest, tmp_path: pathlib.Path) -> pathlib.Path | None:
    return tmp_path / "state" if request.param == "durable" else None


async def test_and_fires_once_both_arrived_with_the_latest_of_each(
    target: Target, state: pathlib.Path | None
) -> None:
    async with running_sensor(_sensor(_http("t", target.url)), state) as (bus, _):
        await _emit(bus, "a", 1)
        await _emit(bus, "a", 2)  # latest wins
        await target.quiet()
        await _emit(bus, "b", 3)
        await target.wait(1)
        assert target.received[0][2] == {"a": "2", "b": "3"}
        # Consumed: the next b alone does not fire.
        await _emit(bus, "b", 4)
        await target.quiet()
        await _emit(bus, "a", 5)
        await target.wait(2)
        assert target.received[1][2] == {"a": "5", "b": "4"}


async def test_or_fires_for_each_event_with_only_what_arrived(target: Target) -> None:
    async with running_sensor(_sensor(_http("t", target.url, conditions="a || b")), None) as (
        bus,
        _,
    ):
        await _emit(bus, "a", 1)
        await target.wait(1)
        await _emit(bus, "b", 2)
        await target.wait(2)
    assert [r[2] for r in target.received] == [
        {"a": "1", "b": "-"},
        {"a": "-", "b": "2"},
    ]


async def test_filtered_events_do_not_count_and_are_explained(target: Target) -> None:
    async with running_sensor(_sensor(_http("t", target.url)), None) as (bus, runner):
        await _emit(bus, "a", -1)
        await _emit(bus, "b", 1)
        await target.quiet()
        explained = runner.explain()
    assert explained["triggers"]["t"]["waiting_for"] == ["a"]
    assert explained["dependencies"]["a"] == {
        "gateway": "gw",
        "event": "a",
        "accepted": 0,
        "rejected": 1,
        "latest": None,
    }
    [rejected] = explained["rejected"]
    assert rejected["dependency"] == "a"
    assert rejected["reason"] == "data[0] n: got -1, want >= one of ['0']"


async def test_partial_state_survives_a_restart(target: Target, tmp_path: pathlib.Path) -> None:
    sensor = _sensor(_http("t", target.url))
    async with running_sensor(sensor, tmp_path) as (bus, _):
        await _emit(bus, "a", 7)
        await target.quiet()
    async with running_sensor(sensor, tmp_path) as (bus, _):
        await _emit(bus, "b", 8)
        await target.wait(1)
    assert target.received[0][2] == {"a": "7", "b": "8"}


async def test_temporary_failures_are_retried_with_the_same_key(target: Target) -> None:
    target.script["t"] = [500, 503]
    retry = {"retryStrategy": {"steps": 3, "duration": "10ms"}}
    sensor = _sensor(_http("t", target.url, conditions="a", deps=("a",), **retry), deps=("a",))
    async with running_sensor(sensor, None) as (bus, _):
        await _emit(bus, "a", 1)
        await target.wait(3)
        await target.quiet()
    keys = {key for _, key, _ in target.received}
    assert len(keys) == 1


async def test_a_failing_trigger_does_not_stop_the_others(target: Target) -> None:
    target.script["broken"] = [404] * 10
    sensor = _sensor(
        _http("broken", target.url, conditions="a", deps=("a",), retryStrategy={"steps": 5}),
        _http("fine", target.url, conditions="a", deps=("a",)),
        deps=("a",),
    )
    async with running_sensor(sensor, None) as (bus, _):
        for n in range(3):
            await _emit(bus, "a", n)
        await target.wait(6)
        await target.quiet()
    names = [name for name, _, _ in target.received]
    # 404 is permanent: one attempt per event, no retries; the other trigger fires every time.
    assert names.count("broken") == 3 and names.count("fine") == 3


def test_trigger_key_depends_on_sensor_trigger_and_event_ids() -> None:
    def ev(i: str) -> events.Event:
        return events.Event(id=i, source="g", subject="e", type="webhook", data=None)

    k = running.trigger_key(sensor="s", trigger="t", contributing={"a": ev("1"), "b": ev("2")})
    assert k == running.trigger_key(
        sensor="s", trigger="t", contributing={"b": ev("2"), "a": ev("1")}
    )
    assert k != running.trigger_key(
        sensor="s", trigger="u", contributing={"a": ev("1"), "b": ev("2")}
    )
    assert k != running.trigger_key(
        sensor="s", trigger="t", contributing={"a": ev("1"), "b": ev("3")}
    )


def test_trigger_keys_of_earlier_releases_are_kept() -> None:
    # Firing records persist keys across upgrades: the same events must give the same key.
    def ev(i: str) -> events.Event:
        return events.Event(id=i, source="g", subject="e", type="webhook", data=None)

    one = running.trigger_key(sensor="s", trigger="t", contributing={"d": ev("e1")})
    assert one == hashlib.sha256(b"s\0t\0d=e1").hexdigest()[:32]
    two = running.trigger_key(sensor="s", trigger="t", contributing={"b": ev("2"), "a": ev("1")})
    assert two == hashlib.sha256(b"s\0t\0a=1\0b=2").hexdigest()[:32]


async def test_transform_runs_before_filters_and_triggers_see_its_result(target: Target) -> None:
    sensor = sensor_manifest.model().model_validate(
        {
            "apiVersion": "tripwire.dev/v1alpha1",
            "kind": "Sensor",
            "metadata": {"name": "s"},
            "spec": {
                "dependencies": [
                    {
                        "name": "a",
                        "gatewayName": "gw",
                        "eventName": "a",
                        "transform": {"jq": "{n: (.n * 10)}"},
                        "filters": {
                            "data": [
                                {"path": "n", "type": "number", "value": ["20"], "comparator": ">="}
                            ]
                        },
                    }
                ],
                "triggers": [_http("t", target.url, deps=("a",))],
            },
        }
    )
    async with running_sensor(sensor, None) as (bus, runner):
        await _emit(bus, "a", 1)  # 10 after the transform: filtered out
        await _emit(bus, "a", 3)  # 30: passes, and the payload carries 30
        await target.wait(1)
        await target.quiet()
        assert [r[2] for r in target.received] == [{"a": "30"}]
        [rejected] = runner.explain()["rejected"]
        assert "got 10" in rejected["reason"]


async def test_trigger_level_parameters_edit_the_template_per_firing(target: Target) -> None:
    trigger = _http("t", target.url, conditions="a", deps=("a",))
    trigger["parameters"] = [
        {
            "src": {"dependencyName": "a", "dataTemplate": "{{ .Input.route }}"},
            "dest": "http.url",
            "operation": "append",
        },
    ]
    trigger["template"]["http"]["url"] = f"{target.url}/"
    sensor = _sensor(trigger, deps=("a",))
    async with running_sensor(sensor, None) as (bus, _):
        for route in ("first", "second"):
            await bus.publish(
                events.Event(
                    id=route,
                    source="gw",
                    subject="a",
                    type="webhook",
                    data={"n": 1, "route": route},
                )
            )
        await target.wait(2)
    assert sorted(name for name, _, _ in target.received) == ["first", "second"]


async def test_failing_for_good_goes_to_the_dlq_trigger_once(target: Target) -> None:
    target.script["t"] = [500] * 10
    trigger = _http(
        "t", target.url, conditions="a", deps=("a",), retryStrategy={"steps": 3, "duration": "10ms"}
    )
    trigger["dlqTrigger"] = {
        "template": {
            "name": "dead",
            "http": {
                "url": f"{target.url}/dlq",
                "payload": [{"src": {"dependencyName": "a", "dataKey": "n"}, "dest": "a"}],
            },
        }
    }
    async with running_sensor(_sensor(trigger, deps=("a",)), None) as (bus, _):
        await _emit(bus, "a", 7)
        await target.wait(4)
        await target.quiet()
    assert [name for name, _, _ in target.received] == ["t", "t", "t", "dlq"]
    keys = [key for _, key, _ in target.received]
    assert len(set(keys[:3])) == 1 and keys[3] != keys[0]
    assert target.received[3][2] == {"a": "7"}


async def test_success_after_failures_does_not_touch_the_dlq(target: Target) -> None:
    target.script["t"] = [503, 503]
    trigger = _http(
        "t", target.url, conditions="a", deps=("a",), retryStrategy={"steps": 3, "duration": "10ms"}
    )
    trigger["dlqTrigger"] = {"template": {"name": "dead", "http": {"url": f"{target.url}/dlq"}}}
    async with running_sensor(_sensor(trigger, deps=("a",)), None) as (bus, _):
        await _emit(bus, "a", 1)
        await target.wait(3)
        await target.quiet()
    assert [name for name, _, _ in target.received] == ["t", "t", "t"]


async def test_max_age_keeps_a_stale_event_from_completing_an_and(target: Target) -> None:
    sensor = _sensor(_http("t", target.url))
    sensor_doc = sensor.model_dump(by_alias=True)
    sensor_doc["spec"]["dependencies"][0]["maxAge"] = "1m"
    sensor = sensor_manifest.model().model_validate(sensor_doc)
    async with running_sensor(sensor, None) as (bus, _):
        stale = events.Event(
            id="old-a",
            source="gw",
            subject="a",
            type="webhook",
            data={"n": 1},
            time=events.now() - datetime.timedelta(minutes=5),
        )
        await bus.publish(stale)
        await _emit(bus, "b", 2)
        await target.quiet()  # a is five minutes old: too old to count
        await _emit(bus, "a", 3)
        await target.wait(1)
    assert target.received[0][2] == {"a": "3", "b": "2"}


class GatedSleep:
    """A sleep the test releases, advancing a fake wall clock by what was asked."""

    def __init__(self) -> None:
        self.now = time.time()
        self.asleep = asyncio.Event()
        self.release = asyncio.Event()

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.asleep.set()
        await self.release.wait()
        self.release.clear()
        self.asleep.clear()
        self.now += seconds


async def test_conditions_reset_clears_partial_state_at_the_cron_instant(target: Target) -> None:
    trigger = _http("t", target.url)
    trigger["template"]["conditionsReset"] = [
        {"byTime": {"cron": "0 23 * * *", "timezone": "Asia/Tokyo"}}
    ]
    gate = GatedSleep()
    async with running_sensor(_sensor(trigger), None, clock=gate.clock, sleep=gate.sleep) as (
        bus,
        runner,
    ):
        await asyncio.wait_for(gate.asleep.wait(), 5)  # the reset loop waits for 23:00 Tokyo
        await _emit(bus, "a", 1)
        await target.quiet()
        assert runner.explain()["triggers"]["t"]["waiting_for"] == ["b"]
        gate.release.set()  # 23:00 in Tokyo: a is forgotten
        await asyncio.wait_for(gate.asleep.wait(), 5)  # and it waits for the next one
        assert runner.explain()["triggers"]["t"]["waiting_for"] == ["a", "b"]
        await _emit(bus, "b", 2)
        await target.quiet()
        await _emit(bus, "a", 3)
        await target.wait(1)
    assert target.received[0][2] == {"a": "3", "b": "2"}


async def test_rate_limit_holds_the_second_firing_for_a_whole_unit(target: Target) -> None:
    trigger = _http(
        "t",
        target.url,
        conditions="a",
        deps=("a",),
        rateLimit={"unit": "Hour", "requestsPerUnit": 1},
    )
    waits: list[float] = []
    fake = [0.0]

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        fake[0] += seconds

    async with running_sensor(
        _sensor(trigger, deps=("a",)), None, sleep=sleep, monotonic=lambda: fake[0]
    ) as (bus, _):
        await _emit(bus, "a", 1)
        await _emit(bus, "a", 2)
        await target.wait(2)
    assert waits == [3600.0]
