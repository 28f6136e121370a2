"""The gateway family interface: what a source kind implements and how kinds are found.

A gateway manifest maps kinds to named entries (`spec.webhook.push: {...}`). Each entry becomes
one `Source` built by its kind's class with a `SourceContext`: the source never sees the bus,
only `context.dispatch(event)`, which returns once the event is durable and raises
`BusUnavailableError` when it cannot be — so a webhook can answer 503 and a stream source can
leave the upstream message unacknowledged. Tests pass a list-appending `dispatch`.

Kinds are looked up lazily in `KINDS` (`"webhook": "gateways.webhook:WebhookSource"`), so adding
a kind is one module and one line here. A kind module imports its optional client library
(boto3, aiokafka, ...) inside `start()`, never at import time: building the manifest model
imports every kind module.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import importlib
import logging
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from typing import Any, ClassVar, Protocol

import pydantic

from tripwire import errors, events, metrics, secrets
from tripwire.bus import base as bus_base

log = logging.getLogger(__name__)

Dispatch = Callable[[events.Event], Awaitable[None]]

KINDS: dict[str, str] = {
    "webhook": "gateways.webhook:WebhookSource",
    "calendar": "gateways.calendar:CalendarSource",
    "resource": "gateways.resource:ResourceSource",
    "s3": "gateways.s3.source:S3Source",
    "minio": "gateways.s3.source:S3Source",  # Argo Events' name for the same source
}


@dataclasses.dataclass(frozen=True, kw_only=True)
class SourceContext:
    """Everything a source may use; nothing else (no bus, no sensors)."""

    gateway: str
    name: str
    kind: str
    dispatch: Dispatch
    store: bus_base.Store
    secrets: secrets.Resolver
    # Shared HTTP servers of the process (gateways.serving.Servers); typed loosely here so this
    # module does not import aiohttp for kinds that do not serve HTTP.
    servers: Any = None
    # A started `tripwire.net.kube.client.Client` when the process talks to Kubernetes, else None.
    kube: Any = None
    # The namespace of the Gateway object (controller mode); None for `tripwire run` files.
    namespace: str | None = None

    def event(
        self,
        data: Any,
        *,
        id: str | None = None,  # the CloudEvents attribute name
        content_type: str = "application/json",
    ) -> events.Event:
        """A new event of this entry; `id` from the source's natural id when it has one."""
        return events.Event(
            id=id if id is not None else events.new_id(),
            source=self.gateway,
            subject=self.name,
            type=self.kind,
            data=data,
            datacontenttype=content_type,
        )


class Source(Protocol):
    """One running gateway entry."""

    async def start(self, stack: contextlib.AsyncExitStack) -> None:
        """Start listening and register teardown on `stack`; return once listening.

        Raise `SourceError` (or let a connection error escape) to be restarted with backoff.
        """
        ...


class SourceKind(Protocol):
    """The class a kind module exports: its spec model and a constructor."""

    spec_model: ClassVar[type[pydantic.BaseModel]]

    def __call__(self, *, spec: Any, context: SourceContext) -> Source: ...


class DurableDispatch:
    """Dispatch until the bus has the event, for sources that cannot leave their input
    unacknowledged (a watch, a bucket listing, a notification stream): a `BusError` is
    retried with backoff instead of dropping the change. Counts received, published and
    failed attempts in the process metrics."""

    def __init__(
        self,
        context: SourceContext,
        *,
        delays: Callable[[], Iterator[float]],
        sleep: Callable[[float], Awaitable[None]],
        where: str,
    ) -> None:
        labels = {"gateway": context.gateway, "event": context.name}
        self._dispatch = context.dispatch
        self._delays = delays
        self._sleep = sleep
        self._where = where
        self._received = metrics.EVENTS_RECEIVED.labels(**labels)
        self._published = metrics.EVENTS_PUBLISHED.labels(**labels)
        self._failed = metrics.EVENTS_FAILED.labels(reason="bus_unavailable", **labels)

    async def __call__(self, event: events.Event) -> None:
        self._received.inc()
        for attempt, delay in enumerate(self._delays(), start=1):
            try:
                await self._dispatch(event)
            except errors.BusError as exc:
                self._failed.inc()
                log.warning(
                    "%s: event %s not durable, attempt %d, again in %.1fs: %s",
                    self._where, event.id, attempt, delay, exc,
                )  # fmt: skip
                await self._sleep(delay)
                continue
            self._published.inc()
            return


def start_loop(
    stack: contextlib.AsyncExitStack,
    work: Coroutine[Any, Any, None],
    *,
    name: str,
    where: str,
) -> asyncio.Task[None]:
    """Run a source's endless loop (a schedule, a watch, a stream) as a named task.

    A loop that ends or dies is logged loudly, since its entry then silently produces nothing;
    teardown on `stack` cancels it and waits for it to finish.
    """
    task = asyncio.create_task(work, name=name)

    def ended(done: asyncio.Task[None]) -> None:
        if done.cancelled():
            return
        exc = done.exception()
        if exc is not None:
            log.error("%s: its loop died; no further events", where, exc_info=exc)
        else:
            log.error("%s: its loop ended; no further events", where)

    async def stop() -> None:
        task.cancel()
        # wait() rather than `await task`: our own cancellation must still propagate.
        await asyncio.wait([task])

    task.add_done_callback(ended)
    stack.push_async_callback(stop)
    return task


@functools.cache
def load(kind: str) -> SourceKind:
    """The source class of `kind`; KeyError for an unknown kind."""
    module_name, _, attr = KINDS[kind].partition(":")
    module = importlib.import_module(module_name)
    cls: SourceKind = getattr(module, attr)
    return cls


def spec_models() -> dict[str, type[pydantic.BaseModel]]:
    """Every kind's entry model, in registry order (for the manifest model and the CRD)."""
    return {kind: load(kind).spec_model for kind in KINDS}


__all__ = ["KINDS", "Dispatch", "Source", "SourceContext", "SourceKind", "load"]
