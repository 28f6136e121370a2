"""The Reflector against a small fake apiserver: a real HTTP server speaking the watch protocol.

The real apiserver decides by itself when a watch expires or a connection drops; these tests
need those moments on cue, so the server here is scripted: it keeps a history of changes with
resourceVersions, answers lists and watches from any resourceVersion, sends a 410 ERROR event
for a compacted resourceVersion, and can drop every open watch connection. What is checked is
the Reflector's contract: every change exactly once, resume from the last resourceVersion
without a relist, and after a 410 a relist whose diff repeats nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import dataclasses
import uuid
from collections.abc import AsyncIterator, Callable

import orjson
import pytest
from aiohttp import web

from tripwire.net.kube import client as kube_client
from tripwire.net.kube import watching

NS = "demo"


@dataclasses.dataclass
class Watch:
    """One watch request the server received."""

    resource_version: str | None
    response: web.StreamResponse
    request: web.BaseRequest


class FakeApiserver:
    """ConfigMaps in one namespace, with a change history the watch replays from."""

    def __init__(self) -> None:
        self.rv = 100
        self.objects: dict[str, kube_client.JSON] = {}
        self.history: list[tuple[int, str, kube_client.JSON]] = []
        self.compacted = 0  # watches from a resourceVersion below this get 410
        self.watches: list[Watch] = []
        self.lists = 0
        self.gone_status = False  # answer the next watch with HTTP 410 instead of an event
        self.before_events: list[kube_client.JSON] = []  # sent first on the next watch
        self.changed = asyncio.Condition()

    # -- changes --------------------------------------------------------------------------
    async def _record(self, kind: str, obj: kube_client.JSON) -> kube_client.JSON:
        self.history.append((self.rv, kind, copy.deepcopy(obj)))
        async with self.changed:
            self.changed.notify_all()
        return obj

    async def create(self, name: str, data: dict[str, str] | None = None) -> kube_client.JSON:
        self.rv += 1
        obj = {
            "kind": "ConfigMap",
            "apiVersion": "v1",
            "metadata": {
                "name": name,
                "namespace": NS,
                "uid": str(uuid.uuid4()),
                "resourceVersion": str(self.rv),
            },
            "data": data or {},
        }
        self.objects[name] = obj
        return await self._record("ADDED", obj)

    async def update(self, name: str, data: dict[str, str]) -> kube_client.JSON:
        self.rv += 1
        obj = copy.deepcopy(self.objects[name])
        obj["data"] = data
        obj["metadata"]["resourceVersion"] = str(self.rv)
        self.objects[name] = obj
        return await self._record("MODIFIED", obj)

    async def delete(self, name: str) -> kube_client.JSON:
        self.rv += 1
        obj = copy.deepcopy(self.objects.pop(name))
        obj["metadata"]["resourceVersion"] = str(self.rv)
        return await self._record("DELETED", obj)

    def compact(self) -> None:
        """Forget the history: watching from any earlier resourceVersion is now 410."""
        self.compacted = self.rv
        self.history.clear()

    async def drop_watches(self) -> None:
        """Cut every open watch connection, as a restarting apiserver or a network blip does."""
        for watch in self.watches:
            if watch.request.transport is not None:
                watch.request.transport.close()
        async with self.changed:
            self.changed.notify_all()

    # -- HTTP -----------------------------------------------------------------------------
    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/api/v1", self._discovery)
        app.router.add_get(f"/api/v1/namespaces/{NS}/configmaps", self._collection)
        return app

    async def _discovery(self, request: web.Request) -> web.Response:
        resources = [{"name": "configmaps", "kind": "ConfigMap", "namespaced": True}]
        return web.json_response({"kind": "APIResourceList", "resources": resources})

    async def _collection(self, request: web.Request) -> web.StreamResponse:
        if request.query.get("watch") == "true":
            return await self._watch(request)
        self.lists += 1
        items = []
        for obj in self.objects.values():
            item = copy.deepcopy(obj)
            del item["kind"], item["apiVersion"]  # as the real apiserver lists them
            items.append(item)
        body = {
            "kind": "ConfigMapList",
            "metadata": {"resourceVersion": str(self.rv)},
            "items": items,
        }
        return web.Response(body=orjson.dumps(body), content_type="application/json")

    async def _watch(self, request: web.Request) -> web.StreamResponse:
        rv_text = request.query.get("resourceVersion")
        since = int(rv_text or "0")
        if self.gone_status:
            self.gone_status = False
            status = {"kind": "Status", "code": 410, "reason": "Expired", "message": "gone"}
            return web.Response(status=410, body=orjson.dumps(status))
        response = web.StreamResponse()
        response.content_type = "application/json"
        await response.prepare(request)
        self.watches.append(Watch(rv_text, response, request))
        if since < self.compacted:
            status = {
                "kind": "Status",
                "code": 410,
                "reason": "Expired",
                "message": f"too old resource version: {since} ({self.compacted})",
            }
            await response.write(orjson.dumps({"type": "ERROR", "object": status}) + b"\n")
            return response
        for event in self.before_events:
            await response.write(orjson.dumps(event) + b"\n")
        self.before_events = []
        sent = since
        while request.transport is not None and not request.transport.is_closing():
            for rv, kind, obj in list(self.history):
                if rv > sent:
                    await response.write(orjson.dumps({"type": kind, "object": obj}) + b"\n")
                    sent = rv
            async with self.changed:
                await self.changed.wait()
        return response


@contextlib.asynccontextmanager
async def serving(fake: FakeApiserver) -> AsyncIterator[kube_client.Client]:
    runner = web.AppRunner(fake.app(), shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    config = kube_client.Config(host=f"http://127.0.0.1:{port}", headers={}, ssl=False)
    try:
        async with contextlib.AsyncExitStack() as stack:
            client = kube_client.Client(config, qps=1000, burst=1000)
            await client.start(stack)
            yield client
    finally:
        async with fake.changed:
            fake.changed.notify_all()
        await runner.cleanup()


class Recorder:
    """Runs `reflector.changes()` in a task and keeps what it yields."""

    def __init__(self, reflector: watching.Reflector) -> None:
        self.reflector = reflector
        self.changes: list[watching.Change] = []
        self.task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        async for change in self.reflector.changes():
            self.changes.append(change)

    def start(self) -> None:
        self.task = asyncio.create_task(self._run(), name="test-reflector")

    async def stop(self) -> None:
        assert self.task is not None
        self.task.cancel()
        await asyncio.wait([self.task])

    async def until(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        async with asyncio.timeout(timeout):
            # Predicates span the fake server and the reflector; polling keeps both simple.
            while not predicate():  # noqa: ASYNC110
                await asyncio.sleep(0.005)

    async def count(self, n: int) -> list[tuple[str, str, str]]:
        await self.until(lambda: len(self.changes) >= n)
        await asyncio.sleep(0.05)  # anything extra (a duplicate) would arrive now
        return self.summary()

    def summary(self) -> list[tuple[str, str, str]]:
        return [
            (c.type, c.obj["metadata"]["name"], c.obj["metadata"]["resourceVersion"])
            for c in self.changes
        ]


async def _no_sleep(_: float) -> None:
    await asyncio.sleep(0)


@pytest.fixture
async def fake() -> FakeApiserver:
    return FakeApiserver()


async def _reflector(client: kube_client.Client, **kwargs: object) -> watching.Reflector:
    res = await client.resource_by_plural(group="", version="v1", plural="configmaps")
    return watching.Reflector(client=client, resource=res, namespace=NS, **kwargs)  # type: ignore[arg-type]


async def test_list_then_watch_reports_each_change_once(fake: FakeApiserver) -> None:
    await fake.create("a", {"k": "1"})
    await fake.create("b")
    async with serving(fake) as client:
        rec = Recorder(await _reflector(client, sleep=_no_sleep))
        rec.start()
        try:
            assert await rec.count(2) == [("ADD", "a", "101"), ("ADD", "b", "102")]
            assert rec.changes[0].obj["kind"] == "ConfigMap"  # list items made like watch objects
            await fake.update("a", {"k": "2"})
            await fake.delete("b")
            await fake.create("c")
            assert (await rec.count(5))[2:] == [
                ("UPDATE", "a", "103"),
                ("DELETE", "b", "104"),
                ("ADD", "c", "105"),
            ]
            assert rec.changes[2].old is not None
            assert rec.changes[2].old["data"] == {"k": "1"}
            assert [w.resource_version for w in fake.watches] == ["102"]
        finally:
            await rec.stop()


async def test_dropped_connection_resumes_from_last_version_without_relist(
    fake: FakeApiserver,
) -> None:
    await fake.create("a")
    async with serving(fake) as client:
        rec = Recorder(await _reflector(client, sleep=_no_sleep))
        rec.start()
        try:
            await rec.count(1)
            await fake.update("a", {"k": "1"})
            await rec.count(2)
            await fake.drop_watches()
            # Changes while nobody watches arrive after the resume, from history.
            await fake.create("b")
            await fake.update("a", {"k": "2"})
            assert await rec.count(4) == [
                ("ADD", "a", "101"),
                ("UPDATE", "a", "102"),
                ("ADD", "b", "103"),
                ("UPDATE", "a", "104"),
            ]
            assert fake.lists == 1
            assert [w.resource_version for w in fake.watches][:2] == ["101", "102"]
        finally:
            await rec.stop()


async def test_expired_watch_relists_and_reports_only_the_difference(fake: FakeApiserver) -> None:
    for name in ("same", "changed", "gone", "replaced"):
        await fake.create(name)
    async with serving(fake) as client:
        reflector = await _reflector(client, sleep=_no_sleep)
        rec = Recorder(reflector)
        rec.start()
        try:
            await rec.count(4)
            await fake.drop_watches()
            # While disconnected: every kind of change, then the history is compacted away.
            await fake.update("changed", {"k": "1"})
            await fake.delete("gone")
            await fake.delete("replaced")
            await fake.create("replaced")
            await fake.create("new")
            fake.compact()
            assert (await rec.count(9))[4:] == [
                ("UPDATE", "changed", "105"),
                ("DELETE", "replaced", "104"),  # the old incarnation, at its last known version
                ("ADD", "replaced", "108"),
                ("ADD", "new", "109"),
                ("DELETE", "gone", "103"),
            ]
            assert reflector.expired == 1
            assert fake.lists == 2
            assert reflector.relists == 2
            # The watch after the relist starts at the list's version and keeps going.
            await fake.update("same", {"k": "x"})
            assert (await rec.count(10))[9:] == [("UPDATE", "same", "110")]
            assert fake.watches[-1].resource_version == "109"
        finally:
            await rec.stop()


async def test_410_status_on_the_watch_request_relists(fake: FakeApiserver) -> None:
    await fake.create("a")
    async with serving(fake) as client:
        reflector = await _reflector(client, sleep=_no_sleep)
        fake.gone_status = True
        rec = Recorder(reflector)
        rec.start()
        try:
            await rec.until(lambda: len(fake.watches) == 1)
            await fake.create("b")
            assert await rec.count(2) == [("ADD", "a", "101"), ("ADD", "b", "102")]
            assert fake.lists == 2  # the first list, and the one after the 410
            assert reflector.expired == 1
        finally:
            await rec.stop()


async def test_replayed_and_stale_events_are_not_reported_twice(fake: FakeApiserver) -> None:
    a = await fake.create("a")
    async with serving(fake) as client:
        # A watch that (wrongly, or after an apiserver fail-over) starts with what the list
        # already showed: the same version of `a`, and a DELETED of an object never seen.
        ghost = {
            "metadata": {"name": "ghost", "namespace": NS, "uid": "x", "resourceVersion": "90"}
        }
        fake.before_events = [
            {"type": "ADDED", "object": a},
            {"type": "DELETED", "object": ghost},
        ]
        rec = Recorder(await _reflector(client, sleep=_no_sleep))
        rec.start()
        try:
            await rec.until(lambda: len(fake.watches) == 1)
            await fake.update("a", {"k": "1"})
            assert await rec.count(2) == [("ADD", "a", "101"), ("UPDATE", "a", "102")]
        finally:
            await rec.stop()


async def test_bookmark_moves_the_resume_point(fake: FakeApiserver) -> None:
    await fake.create("a")
    async with serving(fake) as client:
        bookmark = {"kind": "ConfigMap", "metadata": {"resourceVersion": "150"}}
        fake.before_events = [{"type": "BOOKMARK", "object": bookmark}]
        rec = Recorder(await _reflector(client, sleep=_no_sleep))
        rec.start()
        try:
            await rec.count(1)
            await rec.until(lambda: len(fake.watches) == 1)
            await asyncio.sleep(0.05)
            fake.rv = 150
            await fake.drop_watches()
            await fake.create("b")
            assert await rec.count(2) == [("ADD", "a", "101"), ("ADD", "b", "151")]
            assert fake.watches[1].resource_version == "150"
        finally:
            await rec.stop()


async def test_objects_larger_than_aiohttps_line_limit(fake: FakeApiserver) -> None:
    async with serving(fake) as client:
        rec = Recorder(await _reflector(client, sleep=_no_sleep))
        rec.start()
        try:
            await rec.until(lambda: len(fake.watches) == 1)
            big = "x" * (900 * 1024)  # one watch line of ~900 KiB (ConfigMaps go up to 1 MiB)
            await fake.create("big", {"blob": big})
            await fake.create("after")
            assert await rec.count(2) == [("ADD", "big", "101"), ("ADD", "after", "102")]
            assert rec.changes[0].obj["data"]["blob"] == big
        finally:
            await rec.stop()


async def test_unreachable_server_backs_off_then_recovers(fake: FakeApiserver) -> None:
    await fake.create("a")
    waits: list[float] = []

    async def sleep(delay: float) -> None:
        waits.append(delay)
        await asyncio.sleep(0)

    async with serving(fake) as client:
        reflector = await _reflector(
            client, sleep=sleep, delays=lambda: iter([1.0, 2.0, 4.0, 8.0, 8.0, 8.0])
        )
        rec = Recorder(reflector)
        fake.gone_status = False
        # Make the watch fail three times with a 500 before it works.
        failures = 3
        original = fake._watch

        async def flaky(request: web.Request) -> web.StreamResponse:
            nonlocal failures
            if failures:
                failures -= 1
                return web.Response(status=500, body=b'{"message": "etcd leader changed"}')
            return await original(request)

        fake._watch = flaky  # type: ignore[method-assign]
        rec.start()
        try:
            await rec.count(1)
            await rec.until(lambda: len(fake.watches) == 1)
            await fake.create("b")
            assert await rec.count(2) == [("ADD", "a", "101"), ("ADD", "b", "102")]
            assert waits == [1.0, 2.0, 4.0]
            assert fake.lists == 1  # a 500 is not a reason to relist
        finally:
            await rec.stop()
