"""The resource gateway's spec, filters and restart state, without a real apiserver.

Spec and filter checks are pure. The source itself runs against the scripted fake apiserver of
test_kube_watching, to pin what a restart emits (only what changed while it was away) and what
`afterStart` suppresses — behaviour the real-apiserver tests cannot stage as precisely.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from typing import Any

import pydantic
import pytest

from gateways import base, resource
from tripwire import errors, events, secrets
from tripwire.net.kube import watching

from .test_kube_watching import NS, FakeApiserver, serving


def spec(**fields: Any) -> resource.ResourceSpec:
    return resource.ResourceSpec.model_validate({"version": "v1", "resource": "pods", **fields})


# --- spec ---------------------------------------------------------------------------------


def test_argo_manifest_shape_loads() -> None:
    s = spec(
        namespace="argo-events",
        group="",
        eventTypes=["ADD", "DELETE"],
        filter={
            "prefix": "job-",
            "afterStart": True,
            "createdBy": "2024-01-01T00:00:00Z",
            "labels": [
                {"key": "app", "operation": "==", "value": "web"},
                {"key": "tier", "operation": "in", "value": "a, b"},
                {"key": "example.com/owner"},  # empty operation means =, empty value
                {"key": "canary", "operation": "!"},
                {"key": "gen", "operation": "gt", "value": "3"},
            ],
            "fields": [{"key": "status.phase", "operation": "!=", "value": "^Succeeded$"}],
        },
        metadata={"team": "ml"},
    )
    assert s.event_types == ["ADD", "DELETE"]
    assert s.label_selector() == "app==web,tier in (a,b),example.com/owner=,!canary,gen>3"
    assert s.filter is not None and s.filter.after_start


def test_defaults_watch_everything_everywhere() -> None:
    s = spec()
    assert s.event_types == ["ADD", "UPDATE", "DELETE"]
    assert s.namespace == "" and s.label_selector() is None


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"resource": "Pod"}, "lowercase plural"),
        ({"version": "1"}, "API version"),
        ({"group": "Not_A_Group"}, "API group"),
        ({"namespace": "Bad_NS"}, "namespace name"),
        ({"eventTypes": ["CREATE"]}, "ADD"),
        ({"eventTypes": []}, "at least 1"),
        ({"filter": {"labels": [{"key": "app", "operation": "like", "value": "x"}]}}, "unknown"),
        ({"filter": {"labels": [{"key": "a", "operation": "in", "value": "x,,y"}]}}, "comma"),
        ({"filter": {"labels": [{"key": "a", "operation": "exists", "value": "x"}]}}, "no value"),
        ({"filter": {"labels": [{"key": "a", "operation": "gt", "value": "x"}]}}, "integer"),
        ({"filter": {"labels": [{"key": "bad key!", "value": "x"}]}}, "label key"),
        ({"filter": {"labels": [{"key": "a", "value": "white space"}]}}, "label value"),
        (
            {"filter": {"fields": [{"key": "a", "operation": "in", "value": "x"}]}},
            "field operation",
        ),
        ({"filter": {"fields": [{"key": "a", "value": "(unclosed"}]}}, "regular expression"),
        ({"filter": {"unknown": 1}}, "Extra inputs"),
    ],
)
def test_invalid_specs_are_rejected_before_running(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(pydantic.ValidationError, match=message):
        spec(**fields)


def test_watch_key_changes_with_what_is_watched_only() -> None:
    assert spec().watch_key() == spec(metadata={"a": "b"}).watch_key()
    assert spec().watch_key() != spec(namespace="x").watch_key()
    labels = {"labels": [{"key": "app", "value": "web"}]}
    assert spec().watch_key() != spec(filter=labels).watch_key()


# --- client-side filters --------------------------------------------------------------------------


def obj(name: str, **extra: Any) -> dict[str, Any]:
    meta = {"name": name, "namespace": NS, "uid": f"uid-{name}", "resourceVersion": "1"}
    meta["creationTimestamp"] = extra.pop("created", "2024-05-01T10:00:00Z")
    return {"metadata": meta, **extra}


def test_filter_prefix_created_by_and_fields() -> None:
    f = resource.Filter(
        resource.ResourceFilter.model_validate(
            {
                "prefix": "job-",
                "createdBy": "2024-05-01T10:00:00Z",
                "fields": [
                    {"key": "status.phase", "operation": "==", "value": "Run"},
                    {"key": "spec.replicas", "operation": "!=", "value": "^0$"},
                ],
            }
        )
    )
    good = obj("job-1", status={"phase": "Running"}, spec={"replicas": 2})
    assert f.passes(good)
    assert not f.passes({**good, "metadata": {**good["metadata"], "name": "other"}})
    assert not f.passes(obj("job-1", created="2024-05-01T10:00:01Z", status={"phase": "Run"}))
    assert not f.passes(obj("job-1", status={"phase": "Pending"}, spec={"replicas": 1}))
    assert not f.passes(obj("job-1", status={"phase": "Running"}, spec={"replicas": 0}))
    assert not f.passes(obj("job-1", spec={"replicas": 1}))  # a missing path fails


def test_event_id_is_stable_per_observed_change() -> None:
    add = watching.Change("ADD", obj("a"))
    same = resource.event_id(gateway="g", name="e", change=add)
    assert same == resource.event_id(gateway="g", name="e", change=watching.Change("ADD", obj("a")))
    assert same != resource.event_id(gateway="g", name="e2", change=add)
    assert same != resource.event_id(
        gateway="g", name="e", change=watching.Change("DELETE", obj("a"))
    )


# --- the source against the fake apiserver ----------------------------------------------------


class MemoryStore:
    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}

    async def get(self, key: str) -> bytes | None:
        return self.data.get(key)

    async def scan(self, prefix: str = "") -> list[tuple[str, bytes]]:
        return sorted((k, v) for k, v in self.data.items() if k.startswith(prefix))

    async def write(self, changes: Mapping[str, bytes | None]) -> None:
        for key, value in changes.items():
            if value is None:
                self.data.pop(key, None)
            else:
                self.data[key] = value


class Sink:
    def __init__(self, *, fail: int = 0) -> None:
        self.events: list[events.Event] = []
        self.fail = fail

    async def __call__(self, event: events.Event) -> None:
        if self.fail:
            self.fail -= 1
            raise errors.BusUnavailableError("bus down")
        self.events.append(event)

    def summary(self) -> list[tuple[str, str]]:
        return [(e.data["type"], e.data["body"]["metadata"]["name"]) for e in self.events]

    async def count(self, n: int, timeout: float = 5.0) -> list[tuple[str, str]]:
        async with asyncio.timeout(timeout):
            while len(self.events) < n:  # noqa: ASYNC110 - a test sink, polled
                await asyncio.sleep(0.005)
        await asyncio.sleep(0.05)
        return self.summary()


async def _no_sleep(_: float) -> None:
    await asyncio.sleep(0)


@contextlib.asynccontextmanager
async def running(
    fake_client: Any, fields: dict[str, Any], *, sink: Sink, store: MemoryStore
) -> Any:
    context = base.SourceContext(
        gateway="cluster",
        name="cms",
        kind=resource.KIND,
        dispatch=sink,
        store=store,
        secrets=secrets.LocalResolver(),
    )
    s = resource.ResourceSpec.model_validate(
        {"version": "v1", "resource": "configmaps", "namespace": NS, **fields}
    )
    src = resource.ResourceSource(
        spec=s,
        context=context,
        client=fake_client,
        sleep=_no_sleep,
        retry_delays=lambda: iter([0.0] * 100),
    )
    async with contextlib.AsyncExitStack() as stack:
        await src.start(stack)
        yield src


async def test_restart_emits_only_what_changed_while_down() -> None:
    fake = FakeApiserver()
    store = MemoryStore()
    await fake.create("kept")
    await fake.create("edited")
    await fake.create("removed")
    async with serving(fake) as client:
        first = Sink()
        async with running(client, {}, sink=first, store=store):
            assert await first.count(3) == [("ADD", "kept"), ("ADD", "edited"), ("ADD", "removed")]
        # Down: three changes nobody watched.
        await fake.update("edited", {"k": "v"})
        await fake.delete("removed")
        await fake.create("born")
        second = Sink()
        async with running(client, {}, sink=second, store=store):
            got = await second.count(3)
        assert got == [("UPDATE", "edited"), ("ADD", "born"), ("DELETE", "removed")]
        assert second.events[0].data["oldBody"]["data"] == {}
        # The UPDATE/ADD ids equal those a live watch would have given: dedupe-compatible.
        assert len({e.id for e in first.events + second.events}) == 6


async def test_after_start_suppresses_only_the_first_list() -> None:
    fake = FakeApiserver()
    store = MemoryStore()
    await fake.create("old")
    async with serving(fake) as client:
        sink = Sink()
        fields = {"filter": {"afterStart": True}}
        async with running(client, fields, sink=sink, store=store):
            await fake.create("new")
            await fake.update("old", {"k": "v"})
            assert await sink.count(2) == [("ADD", "new"), ("UPDATE", "old")]
        # Created while the gateway was down: after its (first) start, so reported.
        await fake.create("while-down")
        sink2 = Sink()
        async with running(client, fields, sink=sink2, store=store):
            assert await sink2.count(1) == [("ADD", "while-down")]


async def test_event_types_and_prefix_filter_but_state_follows_everything() -> None:
    fake = FakeApiserver()
    store = MemoryStore()
    async with serving(fake) as client:
        sink = Sink(fail=2)  # the bus is down at first: retried, not lost
        fields = {"eventTypes": ["DELETE", "ADD"], "filter": {"prefix": "x-"}}
        async with running(client, fields, sink=sink, store=store) as src:
            await fake.create("x-a")
            await fake.create("y-b")
            await fake.update("x-a", {"k": "v"})
            await fake.delete("x-a")
            assert await sink.count(2) == [("ADD", "x-a"), ("DELETE", "x-a")]
            event = sink.events[0]
            assert event.type == "resource" and event.source == "cluster" and event.subject == "cms"
            assert event.data["group"] == "" and event.data["resource"] == "configmaps"
            assert event.data["oldBody"] is None
            assert src.reflector is not None
        state = [k.rsplit("/", 2)[-1] for k in store.data if "/o/" in k]
        assert state == ["y-b"]
