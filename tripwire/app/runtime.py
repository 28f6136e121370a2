"""The runtime: one asyncio process running gateways and sensors on one bus.

`tripwire run` builds it from files with the embedded bus; the controller builds one per
namespace and adds, replaces and removes objects as their custom resources change: one code
path for laptop and cluster.

Order matters both ways. Start: bus, shared HTTP client (and Kubernetes client when a kind
needs one), HTTP servers, sensors (subscribed before anything can publish), gateway sources,
then the health/metrics endpoint. Stop, the reverse: gateways stop taking requests, sensors
drain their in-flight triggers, clients close, the journal commits and closes.

Every object runs on its own exit stack, so one can be replaced or removed without touching
the others. A source that fails to start (a port in use, a missing secret) is retried with
backoff and reported not ready; it never stops the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import pathlib
import time
from collections.abc import Iterable
from typing import Any

import aiohttp
from aiohttp import web

from gateways import base as gateways_base
from gateways import manifest as gateway_manifest
from gateways import serving
from sensors import manifest as sensor_manifest
from sensors import running
from triggers import base as triggers_base
from tripwire import __version__, backoff, errors, events, metrics, secrets
from tripwire.bus import base as bus_base
from tripwire.bus import embedded
from tripwire.net import httpclient
from tripwire.net.kube import client as kube_client

log = logging.getLogger(__name__)

RUNTIME_KEY: web.AppKey[Runtime] = web.AppKey("runtime")


@dataclasses.dataclass(frozen=True, kw_only=True)
class Options:
    state_dir: pathlib.Path | None  # None: everything in memory (--ephemeral)
    metrics_host: str = "127.0.0.1"
    metrics_port: int | None = 9300
    grace: float = 10.0
    sync: str = "normal"
    kubeconfig: str | None = None


@dataclasses.dataclass(slots=True)
class SourceStatus:
    gateway: str
    kind: str
    name: str
    ready: bool = False
    error: str | None = None
    attempts: int = 0


@dataclasses.dataclass
class _Running:
    """One Gateway or Sensor object and what tears it down."""

    spec: Any
    stack: contextlib.AsyncExitStack
    sources: list[SourceStatus] = dataclasses.field(default_factory=list)
    runner: running.SensorRunner | None = None
    last_event: float | None = None


def uses_kubernetes(
    gateways: Iterable[gateway_manifest.GatewayBase], sensors: Iterable[sensor_manifest.SensorBase]
) -> bool:
    """Whether any kind in these objects declares `uses_kubernetes` (resource, k8s, ...)."""
    for gateway in gateways:
        for kind, _name, _spec in gateway.spec.entries():
            if getattr(gateways_base.load(kind), "uses_kubernetes", False):
                return True
    for sensor in sensors:
        for trigger in sensor.spec.triggers:
            kind, _spec = trigger.template.kind()
            if getattr(triggers_base.load(kind), "uses_kubernetes", False):
                return True
    return False


class Runtime:
    def __init__(
        self,
        *,
        options: Options,
        bus: bus_base.Bus | None = None,
        resolver: secrets.Resolver | None = None,
        servers: serving.Servers | None = None,
        session: aiohttp.ClientSession | None = None,
        kube: kube_client.Client | None = None,
        namespace: str | None = None,
    ) -> None:
        self.options = options
        self.namespace = namespace
        self.bus: bus_base.Bus = bus or embedded.EmbeddedBus(
            path=options.state_dir,
            sync="full" if options.sync == "full" else "normal",
        )
        self._owns_bus = bus is None
        self.resolver = resolver or secrets.LocalResolver()
        self.servers = servers or serving.Servers(shutdown_timeout=options.grace)
        self._owns_servers = servers is None
        self._session = session
        self._http: httpclient.Client | None = None
        self.kube = kube
        self.gateways: dict[str, _Running] = {}
        self.sensors: dict[str, _Running] = {}
        self.started = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def session(self) -> aiohttp.ClientSession:
        assert self._session is not None, "runtime not started"
        return self._session

    # -- lifecycle ------------------------------------------------------------------------
    async def start(
        self,
        stack: contextlib.AsyncExitStack,
        *,
        gateways: Iterable[gateway_manifest.GatewayBase] = (),
        sensors: Iterable[sensor_manifest.SensorBase] = (),
    ) -> None:
        gateways, sensors = list(gateways), list(sensors)
        if self._owns_bus:
            await self.bus.start(stack)
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=256, limit_per_host=0),
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=10),
            )
            stack.push_async_callback(self._session.close)
        if self._http is None:
            self._http = httpclient.Client(user_agent=f"tripwire/{__version__}")
            stack.push_async_callback(self._http.close)
        if self.kube is None and (
            self.options.kubeconfig is not None or uses_kubernetes(gateways, sensors)
        ):
            config = kube_client.load_config(kubeconfig=self.options.kubeconfig)
            self.kube = kube_client.Client(config)
            await self.kube.start(stack)
        if self._owns_servers:
            await self.servers.start(stack)
        stack.push_async_callback(self._stop_all)
        for sensor in sensors:
            await self.add_sensor(sensor)
        for gateway in gateways:
            await self.add_gateway(gateway)
        if self.options.metrics_port is not None:
            await self._serve_health(stack)
        self.started.set()

    async def _stop_all(self) -> None:
        """Intake first (gateways), then drain (sensors); each object on its own stack."""
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks)
        for name in list(self.gateways):
            await self.remove_gateway(name)
        await asyncio.gather(*(self.remove_sensor(name) for name in list(self.sensors)))

    async def apply(
        self,
        *,
        gateways: Iterable[gateway_manifest.GatewayBase],
        sensors: Iterable[sensor_manifest.SensorBase],
    ) -> None:
        """Make the running objects these: start new ones, restart changed ones, stop the rest."""
        want_gw = {g.metadata.name: g for g in gateways}
        want_sn = {s.metadata.name: s for s in sensors}
        for name in set(self.gateways) - set(want_gw):
            await self.remove_gateway(name)
        for name in set(self.sensors) - set(want_sn):
            await self.remove_sensor(name)
        for sensor in want_sn.values():
            current = self.sensors.get(sensor.metadata.name)
            if current is None or current.spec != sensor.spec:
                await self.add_sensor(sensor)
        for gateway in want_gw.values():
            current = self.gateways.get(gateway.metadata.name)
            if current is None or current.spec != gateway.spec:
                await self.add_gateway(gateway)

    # -- sensors --------------------------------------------------------------------------
    async def add_sensor(self, sensor: sensor_manifest.SensorBase) -> None:
        """Start a sensor; a running one of the same name is stopped (drained) first."""
        name = sensor.metadata.name
        await self.remove_sensor(name)
        stack = contextlib.AsyncExitStack()
        runner = running.SensorRunner(
            sensor=sensor,
            bus=self.bus,
            session=self.session,
            http=self._http,
            resolver=self.resolver,
            grace=self.options.grace,
            kube=self.kube,
            namespace=self.namespace,
        )
        try:
            await runner.start(stack)
        except BaseException:
            await stack.aclose()
            raise
        self.sensors[name] = _Running(spec=sensor.spec, stack=stack, runner=runner)
        log.info("sensor %s started", name)

    async def remove_sensor(self, name: str) -> None:
        obj = self.sensors.pop(name, None)
        if obj is not None:
            await obj.stack.aclose()
            log.info("sensor %s stopped", name)

    # -- gateways -------------------------------------------------------------------------
    async def add_gateway(self, gateway: gateway_manifest.GatewayBase) -> None:
        """Start every entry of a gateway; a running one of the same name is stopped first."""
        name = gateway.metadata.name
        await self.remove_gateway(name)
        obj = _Running(spec=gateway.spec, stack=contextlib.AsyncExitStack())
        self.gateways[name] = obj
        for kind, entry, spec in gateway.spec.entries():
            status = SourceStatus(gateway=name, kind=kind, name=entry)
            obj.sources.append(status)
            await self._start_source(obj, status, spec)

    async def remove_gateway(self, name: str) -> None:
        obj = self.gateways.pop(name, None)
        if obj is not None:
            await obj.stack.aclose()
            log.info("gateway %s stopped", name)

    def _dispatch(self, obj: _Running) -> gateways_base.Dispatch:
        publish = self.bus.publish

        async def dispatch(event: events.Event) -> None:
            await publish(event)
            obj.last_event = time.time()

        return dispatch

    async def _start_source(self, obj: _Running, status: SourceStatus, spec: Any) -> None:
        context = gateways_base.SourceContext(
            gateway=status.gateway,
            name=status.name,
            kind=status.kind,
            dispatch=self._dispatch(obj),
            store=self.bus.store(f"gateway/{status.gateway}/{status.name}"),
            secrets=self.resolver,
            servers=self.servers,
            kube=self.kube,
            namespace=self.namespace,
        )
        source = gateways_base.load(status.kind)(spec=spec, context=context)
        if await self._try_start(obj.stack, status, source):
            return
        # Keep trying in the background; the rest of the process runs meanwhile.
        task = asyncio.create_task(
            self._retry_source(obj.stack, status, source),
            name=f"source-{status.gateway}-{status.name}",
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        obj.stack.callback(task.cancel)

    async def _try_start(
        self,
        stack: contextlib.AsyncExitStack,
        status: SourceStatus,
        source: gateways_base.Source,
    ) -> bool:
        status.attempts += 1
        try:
            await source.start(stack)
        except (errors.SourceError, errors.SecretError, kube_client.KubeError, OSError) as exc:
            status.error = str(exc)
            log.error(
                "gateway %s %s %r not ready (attempt %d): %s",
                status.gateway, status.kind, status.name, status.attempts, exc,
            )  # fmt: skip
            return False
        status.ready, status.error = True, None
        log.info("gateway %s %s %r ready", status.gateway, status.kind, status.name)
        return True

    async def _retry_source(
        self,
        stack: contextlib.AsyncExitStack,
        status: SourceStatus,
        source: gateways_base.Source,
    ) -> None:
        for delay in backoff.delays(duration=1.0, factor=2.0, jitter=0.1, cap=30.0):
            await asyncio.sleep(delay)
            if await self._try_start(stack, status, source):
                return

    # -- health, readiness, metrics, explain ------------------------------------------------
    def readiness(self) -> dict[str, Any]:
        not_ready: list[dict[str, Any]] = [
            {"gateway": s.gateway, "kind": s.kind, "name": s.name, "error": s.error}
            for obj in self.gateways.values()
            for s in obj.sources
            if not s.ready
        ]
        not_ready += [
            {"sensor": name}
            for name, obj in self.sensors.items()
            if obj.runner is not None and not obj.runner.ready.is_set()
        ]
        return {"ready": not not_ready, "not_ready": not_ready}

    def runner(self, sensor: str) -> running.SensorRunner | None:
        obj = self.sensors.get(sensor)
        return obj.runner if obj is not None else None

    async def _serve_health(self, stack: contextlib.AsyncExitStack) -> None:
        app = web.Application()
        app[RUNTIME_KEY] = self
        app.router.add_get("/healthz", _healthz)
        app.router.add_get("/readyz", _readyz)
        app.router.add_get("/metrics", _metrics)
        app.router.add_get("/explain/{sensor}", _explain)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        stack.push_async_callback(runner.cleanup)
        site = web.TCPSite(runner, self.options.metrics_host, self.options.metrics_port)
        await site.start()


async def _healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok")


async def _readyz(request: web.Request) -> web.Response:
    state = request.app[RUNTIME_KEY].readiness()
    return web.json_response(state, status=200 if state["ready"] else 503)


async def _metrics(request: web.Request) -> web.Response:
    return web.Response(body=metrics.exposition(), content_type="text/plain", charset="utf-8")


async def _explain(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME_KEY]
    runner = runtime.runner(request.match_info["sensor"])
    if runner is None:
        known = ", ".join(sorted(runtime.sensors)) or "none"
        return web.json_response(
            {"error": f"no sensor {request.match_info['sensor']!r} (running: {known})"},
            status=404,
        )
    return web.json_response(runner.explain())
