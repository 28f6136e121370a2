"""The process's shared HTTP servers: many endpoints, of any gateway, on few ports.

Argo Events runs one HTTP server per port and lets every webhook-like entry that names the port
add its endpoint to it; a Tripwire process runs many gateways at once, so the same port may
carry endpoints of different gateways. Sources come and go while the process runs (a failing
source is restarted with backoff, a changed manifest swaps entries), and aiohttp's router is
frozen once the application starts, so this module does not use it: each port has one low-level
`web.Server` whose handler looks the request path up in a plain dict — one hash lookup on the
hot path, no regex, no middleware chain.

A port's listening socket opens when its first route is added and closes when its last route
is removed. Every port also answers `GET /healthz` with 200 `ok` (a liveness probe that needs no
endpoint to exist) and any unknown path with 404 and a one-line reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from tripwire import errors

log = logging.getLogger(__name__)

Handler = Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]
RemoveRoute = Callable[[], Awaitable[None]]

HEALTH_PATH = "/healthz"
# Argo Events binds all interfaces; a pod has to be reachable through its Service.
DEFAULT_HOST = "0.0.0.0"  # noqa: S104
# Bounded shutdown (DESIGN "Failure and input rules"): in-flight requests get this long to
# finish once a port closes; then their connections are dropped.
DEFAULT_SHUTDOWN_TIMEOUT = 10.0
# An unknown path is echoed in the 404 body; cap it so a huge URL does not come back in full.
_MAX_ECHOED_PATH = 200


class RouteConflictError(errors.SourceError, ValueError):
    """A route cannot be added: its path is taken, reserved, or the port is bound elsewhere.

    A `SourceError`, so the runtime shows the source not ready and retries it (the other owner
    may go away); also a `ValueError`, since the request itself is what is wrong.
    """


def normalize_path(path: str) -> str:
    """The key a route is stored under: the path with exactly one leading `/`.

    Matching is exact otherwise (`/push` and `/push/` are different endpoints), as in Argo.
    """
    return "/" + path.lstrip("/")


@dataclasses.dataclass(slots=True)
class _Route:
    handler: Handler
    owner: str


class _Listener:
    """One listening (host, port): its aiohttp server, runner, site, and route table."""

    def __init__(self, *, host: str, port: int, shutdown_timeout: float) -> None:
        self.host = host
        self.port = port
        self.routes: dict[str, _Route] = {}
        self._shutdown_timeout = shutdown_timeout
        self._runner: web.ServerRunner | None = None

    async def open(self) -> None:
        # access_log=None: an access-log line per request costs more than the rest of the
        # routing; gateways log what they reject, metrics count the rest.
        server = web.Server(self._handle, access_log=None)
        runner = web.ServerRunner(server, shutdown_timeout=self._shutdown_timeout)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port)
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            raise errors.SourceError(
                f"cannot listen on {self.host}:{self.port}: {exc.strerror or exc}"
            ) from exc
        except BaseException:
            # Cancelled while binding: do not leave a half-set-up runner behind.
            await runner.cleanup()
            raise
        self._runner = runner
        log.info("listening on %s:%d", self.host, self.port)

    async def close(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
            log.info("stopped listening on %s:%d", self.host, self.port)

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        path = request.path
        route = self.routes.get(path)
        if route is not None:
            return await route.handler(request)
        if path == HEALTH_PATH:
            return web.Response(body=b"ok", content_type="text/plain", charset="utf-8")
        shown = path if len(path) <= _MAX_ECHOED_PATH else path[:_MAX_ECHOED_PATH] + "..."
        return web.Response(
            status=404,
            text=f"no endpoint {shown} on this port",
        )


class Servers:
    """All HTTP listeners of the process, keyed by port; routes may change while running.

    Usage: `await servers.start(stack)` once, then each source calls
    `remove = await servers.add_route(port=..., path=..., handler=..., owner=...)` and pushes
    `remove` on its own stack. Closing the stack given to `start` closes every port still open.
    """

    def __init__(self, *, shutdown_timeout: float = DEFAULT_SHUTDOWN_TIMEOUT) -> None:
        self._shutdown_timeout = shutdown_timeout
        self._listeners: dict[int, _Listener] = {}
        # Serializes opening and closing ports: two sources adding the first routes of one port
        # at once must open it once. Not on the request path.
        self._lock = asyncio.Lock()
        self._started = False

    async def start(self, stack: contextlib.AsyncExitStack) -> None:
        """Ready to take routes; closing `stack` closes every listener still open."""
        self._started = True
        stack.push_async_callback(self.close)

    def ports(self) -> list[int]:
        """Ports currently listening (for tests and status)."""
        return sorted(self._listeners)

    async def add_route(
        self,
        *,
        port: int,
        path: str,
        handler: Handler,
        host: str = DEFAULT_HOST,
        owner: str = "",
    ) -> RemoveRoute:
        """Serve `handler` at `path` on `port`, opening the port on first use.

        `owner` names the caller in conflict messages (e.g. `gateway ci webhook push`).
        Returns an idempotent coroutine function that removes the route and closes the port
        when it was the last one. Raises `RouteConflictError` when the path is taken or
        reserved, or when the port already listens on another host; `SourceError` when the
        port cannot be bound.
        """
        if not self._started:
            raise RuntimeError("Servers.start() must be called before add_route()")
        key = normalize_path(path)
        if key == HEALTH_PATH:
            raise RouteConflictError(
                f"{owner or 'a route'}: path {HEALTH_PATH} on port {port} is reserved"
                " for the health check"
            )
        async with self._lock:
            listener = self._listeners.get(port)
            if listener is None:
                listener = _Listener(host=host, port=port, shutdown_timeout=self._shutdown_timeout)
                await listener.open()
                self._listeners[port] = listener
            elif listener.host != host:
                # One socket per port: 0.0.0.0 and 127.0.0.1 on the same port cannot coexist.
                others = ", ".join(sorted({r.owner for r in listener.routes.values()}))
                raise RouteConflictError(
                    f"{owner or 'a route'} wants port {port} on host {host}, but it already"
                    f" listens on host {listener.host} for {others}"
                )
            existing = listener.routes.get(key)
            if existing is not None:
                raise RouteConflictError(
                    f"endpoint {key} on port {port} is claimed twice:"
                    f" by {existing.owner or 'an unnamed route'}"
                    f" and by {owner or 'an unnamed route'}"
                )
            route = _Route(handler=handler, owner=owner)
            listener.routes[key] = route

        async def remove() -> None:
            await self._remove(port=port, key=key, route=route)

        return remove

    async def _remove(self, *, port: int, key: str, route: _Route) -> None:
        async with self._lock:
            listener = self._listeners.get(port)
            # Identity check keeps `remove` idempotent and harmless after a re-add by another.
            if listener is None or listener.routes.get(key) is not route:
                return
            del listener.routes[key]
            if listener.routes:
                return
            del self._listeners[port]
            await listener.close()

    async def close(self) -> None:
        """Close every listener (routes are dropped); safe to call twice."""
        async with self._lock:
            listeners = list(self._listeners.values())
            self._listeners.clear()
            for listener in listeners:
                await listener.close()


__all__ = [
    "DEFAULT_HOST",
    "HEALTH_PATH",
    "Handler",
    "RemoveRoute",
    "RouteConflictError",
    "Servers",
    "normalize_path",
]
