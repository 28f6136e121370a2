"""The runtime: one asyncio process running gateways and sensors on one bus.

`tripwire run` builds it from files with the embedded bus; `tripwire gateway`/`sensor` and the
controller build it with other buses and subsets: one code path for laptop and cluster.

Order matters both ways. Start: bus, shared HTTP client, sensors (subscribed before anything
can publish), HTTP servers, gateway sources, then the health/metrics endpoint. Stop, the
reverse: gateways stop taking requests, sensors drain their in-flight triggers, the client
closes, the journal commits and closes. Each step is registered on one AsyncExitStack.

A source that fails to start (a port in use, a missing secret) is retried with backoff and
reported not ready; it never stops the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import pathlib
from typing import Any

import aiohttp
from aiohttp import web

from gateways import base as gateways_base
from gateways import manifest as gateway_manifest
from gateways import serving
from sensors import manifest as sensor_manifest
from sensors import running
from tripwire import backoff, errors, metrics, secrets
from tripwire.bus import base as bus_base
from tripwire.bus import embedded

log = logging.getLogger(__name__)

RUNTIME_KEY: web.AppKey[Runtime] = web.AppKey("runtime")


@dataclasses.dataclass(frozen=True, kw_only=True)
class Options:
    state_dir: pathlib.Path | None  # None: everything in memory (--ephemeral)
    metrics_host: str = "127.0.0.1"
    metrics_port: int | None = 9300
    grace: float = 10.0
    sync: str = "normal"


@dataclasses.dataclass(slots=True)
class SourceStatus:
    gateway: str
    kind: str
    name: str
    ready: bool = False
    error: str | None = None
    attempts: int = 0


class Runtime:
    def __init__(
        self,
        *,
        gateways: list[gateway_manifest.GatewayBase],
        sensors: list[sensor_manifest.SensorBase],
        options: Options,
        bus: bus_base.Bus | None = None,
        resolver: secrets.Resolver | None = None,
    ) -> None:
        self.gateways = gateways
        self.sensors = sensors
        self.options = options
        self.bus: bus_base.Bus = bus or embedded.EmbeddedBus(
            path=options.state_dir,
            sync="full" if options.sync == "full" else "normal",
        )
        self.resolver = resolver or secrets.LocalResolver()
        self.sources: list[SourceStatus] = []
        self.sensor_runners: dict[str, running.SensorRunner] = {}
        self.servers = serving.Servers(shutdown_timeout=options.grace)
        self.started = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self, stack: contextlib.AsyncExitStack) -> None:
        await self.bus.start(stack)
        session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=256, limit_per_host=0),
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=10),
        )
        stack.push_async_callback(session.close)
        for sensor in self.sensors:
            runner = running.SensorRunner(
                sensor=sensor,
                bus=self.bus,
                session=session,
                resolver=self.resolver,
                grace=self.options.grace,
            )
            await runner.start(stack)
            self.sensor_runners[runner.name] = runner
        await self.servers.start(stack)
        stack.push_async_callback(self._cancel_supervisors)
        for gateway in self.gateways:
            for kind, name, spec in gateway.spec.entries():
                status = SourceStatus(gateway=gateway.metadata.name, kind=kind, name=name)
                self.sources.append(status)
                await self._start_source(stack, status, spec)
        if self.options.metrics_port is not None:
            await self._serve_health(stack)
        self.started.set()

    async def _cancel_supervisors(self) -> None:
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks)

    async def _start_source(
        self, stack: contextlib.AsyncExitStack, status: SourceStatus, spec: Any
    ) -> None:
        context = gateways_base.SourceContext(
            gateway=status.gateway,
            name=status.name,
            kind=status.kind,
            dispatch=self.bus.publish,
            store=self.bus.store(f"gateway/{status.gateway}/{status.name}"),
            secrets=self.resolver,
            servers=self.servers,
        )
        source = gateways_base.load(status.kind)(spec=spec, context=context)
        if await self._try_start(stack, status, source):
            return
        # Keep trying in the background; the rest of the process runs meanwhile.
        task = asyncio.create_task(
            self._retry_source(stack, status, source),
            name=f"source-{status.gateway}-{status.name}",
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _try_start(
        self,
        stack: contextlib.AsyncExitStack,
        status: SourceStatus,
        source: gateways_base.Source,
    ) -> bool:
        status.attempts += 1
        try:
            await source.start(stack)
        except (errors.SourceError, errors.SecretError, OSError) as exc:
            status.error = str(exc)
            log.error(
                "gateway %s %s %r not ready (attempt %d): %s",
                status.gateway,
                status.kind,
                status.name,
                status.attempts,
                exc,
            )
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
        not_ready = [
            {"gateway": s.gateway, "kind": s.kind, "name": s.name, "error": s.error}
            for s in self.sources
            if not s.ready
        ]
        not_ready += [
            {"sensor": name} for name, r in self.sensor_runners.items() if not r.ready.is_set()
        ]
        return {"ready": not not_ready, "not_ready": not_ready}

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
    runner = runtime.sensor_runners.get(request.match_info["sensor"])
    if runner is None:
        known = ", ".join(sorted(runtime.sensor_runners)) or "none"
        return web.json_response(
            {"error": f"no sensor {request.match_info['sensor']!r} (running: {known})"},
            status=404,
        )
    return web.json_response(runner.explain())
