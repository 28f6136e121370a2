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
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, ClassVar, Protocol

import pydantic

from tripwire import events, secrets
from tripwire.bus import base as bus_base

log = logging.getLogger(__name__)

Dispatch = Callable[[events.Event], Awaitable[None]]

KINDS: dict[str, str] = {
    "webhook": "gateways.webhook:WebhookSource",
    "calendar": "gateways.calendar:CalendarSource",
    "resource": "gateways.resource:ResourceSource",
    "s3": "gateways.s3:S3Source",
    "minio": "gateways.s3:S3Source",  # Argo Events' name for the same source
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
    # A started `tripwire.kube.client.Client` when the process talks to Kubernetes, else None.
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
