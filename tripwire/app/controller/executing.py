"""Where the controller's objects run: the `Executor` seam and its in-process implementation.

The reconciler decides *what* should run (the valid objects of each namespace) and asks an
executor to make it so; it never touches a runtime. Today the executor runs everything inside
the controller process — one `tripwire.app.runtime.Runtime` per namespace, exactly what
`tripwire run` uses — and a later mode will create one Deployment (+ Service) per object running
`tripwire gateway NAME` / `tripwire sensor NAME` on the distributed bus: that mode implements
the same three calls.

In-process choices:

- One runtime per namespace, because a namespace is the scope of names (a Sensor's
  `gatewayName` means "the Gateway of that name next to me") and of Secret references; its
  embedded bus journal lives in `<state-dir>/<namespace>`, so a restart on the same state
  dir redelivers what was not acknowledged.
- The HTTP servers, the outgoing HTTP session and the Kubernetes client are shared by all
  namespaces: one webhook port may carry endpoints of Gateways in several namespaces, and
  one connection pool and rate limiter to the apiserver is what the apiserver wants.
- Objects are added, replaced and removed one by one (the runtime's `add_*`/`remove_*`,
  with the same "restart only when the spec changed" rule as `Runtime.apply`), so an object
  that fails to start is reported on its own status instead of stopping the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import pathlib
from collections.abc import Iterable
from typing import Any, Protocol

import aiohttp

from gateways import manifest as gateway_manifest
from gateways import serving
from sensors import manifest as sensor_manifest
from tripwire import errors
from tripwire.app import runtime
from tripwire.app.controller import secrets, status
from tripwire.net.kube import client as kube_client

log = logging.getLogger(__name__)


class Executor(Protocol):
    """Runs the valid objects the reconciler hands it and reports how they do."""

    async def start(self, stack: contextlib.AsyncExitStack) -> None: ...

    async def apply(
        self,
        namespace: str,
        *,
        gateways: Iterable[gateway_manifest.GatewayBase],
        sensors: Iterable[sensor_manifest.SensorBase],
    ) -> None:
        """Make these the running objects of `namespace`: start, restart on spec change, stop."""

    def status(self, namespace: str, *, kind: status.Kind, name: str) -> status.Observed | None:
        """How one object does; None when it is not running (or not known)."""

    def failed(self, namespace: str) -> bool:
        """Whether something in `namespace` failed to start (the reconciler retries it)."""

    def readiness(self) -> dict[str, Any]:
        """For `/readyz`: per namespace, what runs and what is not ready."""


@dataclasses.dataclass
class _Namespace:
    runtime: runtime.Runtime
    stack: contextlib.AsyncExitStack
    failed: dict[tuple[str, str], str] = dataclasses.field(default_factory=dict)


class InProcessExecutor:
    """Every namespace's objects in this process, on one embedded bus per namespace."""

    def __init__(
        self,
        *,
        kube: kube_client.Client,
        state_dir: pathlib.Path,
        grace: float = 10.0,
    ) -> None:
        self.kube = kube
        self.state_dir = state_dir
        self.grace = grace
        self.servers = serving.Servers(shutdown_timeout=grace)
        self._session: aiohttp.ClientSession | None = None
        self._namespaces: dict[str, _Namespace] = {}
        # Namespaces whose runtime could not start (journal unusable): the error, per namespace.
        self._broken: dict[str, str] = {}

    async def start(self, stack: contextlib.AsyncExitStack) -> None:
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=256, limit_per_host=0),
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=10),
        )
        stack.push_async_callback(self._session.close)
        await self.servers.start(stack)
        # Last in, first out: runtimes stop (drain) before the servers and session close.
        stack.push_async_callback(self._close_all)

    def runtime(self, namespace: str) -> runtime.Runtime | None:
        ns = self._namespaces.get(namespace)
        return ns.runtime if ns is not None else None

    async def _namespace(self, namespace: str) -> _Namespace:
        found = self._namespaces.get(namespace)
        if found is not None:
            return found
        assert self._session is not None, "executor not started"
        options = runtime.Options(
            state_dir=self.state_dir / namespace, metrics_port=None, grace=self.grace
        )
        rt = runtime.Runtime(
            options=options,
            resolver=secrets.KubeResolver(self.kube, namespace),
            servers=self.servers,
            session=self._session,
            kube=self.kube,
            namespace=namespace,
        )
        stack = contextlib.AsyncExitStack()
        try:
            await rt.start(stack)
        except BaseException:
            await stack.aclose()
            raise
        found = _Namespace(runtime=rt, stack=stack)
        self._namespaces[namespace] = found
        log.info("namespace %s: runtime started (state in %s)", namespace, options.state_dir)
        return found

    async def apply(
        self,
        namespace: str,
        *,
        gateways: Iterable[gateway_manifest.GatewayBase],
        sensors: Iterable[sensor_manifest.SensorBase],
    ) -> None:
        want_gw = {g.metadata.name: g for g in gateways}
        want_sn = {s.metadata.name: s for s in sensors}
        if not want_gw and not want_sn:
            await self._drop(namespace)
            return
        try:
            ns = await self._namespace(namespace)
        except (OSError, errors.TripwireError) as exc:
            self._broken[namespace] = f"cannot start the namespace's runtime: {exc}"
            log.error("namespace %s: %s", namespace, self._broken[namespace])
            return
        self._broken.pop(namespace, None)
        rt = ns.runtime
        for name in set(rt.gateways) - set(want_gw):
            await rt.remove_gateway(name)
        for name in set(rt.sensors) - set(want_sn):
            await rt.remove_sensor(name)
        for key in [
            k for k in ns.failed if k[1] not in (want_gw if k[0] == "Gateway" else want_sn)
        ]:
            del ns.failed[key]
        # Sensors first: subscribed before a (re)started gateway can publish.
        for name, sensor in want_sn.items():
            current = rt.sensors.get(name)
            if current is None or current.spec != sensor.spec:
                await self._start(ns, "Sensor", name, rt.add_sensor(sensor))
        for name, gateway in want_gw.items():
            current = rt.gateways.get(name)
            if current is None or current.spec != gateway.spec:
                await self._start(ns, "Gateway", name, rt.add_gateway(gateway))

    async def _start(self, ns: _Namespace, kind: str, name: str, starting: Any) -> None:
        try:
            await starting
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # One object's failure (a trigger that cannot start) shows on its status only.
            log.exception("namespace %s: %s %s failed to start", ns.runtime.namespace, kind, name)
            ns.failed[(kind, name)] = f"{type(exc).__name__}: {exc}"
            return
        ns.failed.pop((kind, name), None)

    def failed(self, namespace: str) -> bool:
        """Whether something in `namespace` failed to start (worth another apply later)."""
        ns = self._namespaces.get(namespace)
        return namespace in self._broken or (ns is not None and bool(ns.failed))

    async def _drop(self, namespace: str) -> None:
        self._broken.pop(namespace, None)
        ns = self._namespaces.pop(namespace, None)
        if ns is not None:
            await ns.stack.aclose()
            log.info("namespace %s: no objects left, runtime stopped", namespace)

    async def _close_all(self) -> None:
        names = list(self._namespaces)
        await asyncio.gather(*(self._drop(name) for name in names))

    # -- observation ------------------------------------------------------------------------
    def status(self, namespace: str, *, kind: status.Kind, name: str) -> status.Observed | None:
        broken = self._broken.get(namespace)
        if broken is not None:
            return status.Observed(ready=False, error=broken)
        ns = self._namespaces.get(namespace)
        if ns is None:
            return None
        error = ns.failed.get((kind, name))
        if error is not None:
            return status.Observed(ready=False, error=error)
        rt = ns.runtime
        if kind == "Gateway":
            gw = rt.gateways.get(name)
            if gw is None:
                return None
            entries = {
                s.name: status.EntryState(kind=s.kind, ready=s.ready, error=s.error)
                for s in gw.sources
            }
            return status.Observed(
                ready=all(e.ready for e in entries.values()),
                entries=entries,
                last_event=gw.last_event,
            )
        sn = rt.sensors.get(name)
        if sn is None or sn.runner is None:
            return None
        return status.Observed(ready=sn.runner.ready.is_set(), last_fired=sn.runner.last_fired)

    def readiness(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, ns in sorted(self._namespaces.items()):
            state = ns.runtime.readiness()
            state["gateways"] = sorted(ns.runtime.gateways)
            state["sensors"] = sorted(ns.runtime.sensors)
            if ns.failed:
                state["failed"] = {f"{k}/{n}": e for (k, n), e in sorted(ns.failed.items())}
                state["ready"] = False
            out[name] = state
        for name, error in sorted(self._broken.items()):
            out[name] = {"ready": False, "error": error}
        return out
