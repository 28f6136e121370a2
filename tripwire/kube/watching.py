"""Watching a resource without losing or repeating changes: list, watch, resume, relist.

A watch stream ends all the time (server timeouts, apiserver restarts, network blips) and its
resourceVersion can expire (410 Gone). Like client-go's reflector, `reflect` keeps the objects
it has seen; it resumes a watch from the last resourceVersion, and when that is gone it lists
again and reports only the difference against what it already reported — so a relist does not
repeat ADDs, and a change made while nobody watched still arrives, as one UPDATE or DELETE.
It is an `async for` generator with an injectable sleep, so tests can stop and pace it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Literal

from tripwire import backoff
from tripwire.kube import client as kube_client

log = logging.getLogger(__name__)

JSON = kube_client.JSON
ChangeType = Literal["ADD", "UPDATE", "DELETE"]


@dataclasses.dataclass(frozen=True, slots=True)
class Change:
    type: ChangeType
    obj: JSON
    old: JSON | None = None


def _key(obj: JSON) -> tuple[str, str]:
    meta = obj.get("metadata", {})
    return meta.get("namespace", ""), meta.get("name", "")


def _rv(obj: JSON) -> str:
    return str(obj.get("metadata", {}).get("resourceVersion", ""))


def _uid(obj: JSON) -> str:
    return str(obj.get("metadata", {}).get("uid", ""))


@dataclasses.dataclass
class Reflector:
    """The state of one watched collection; `changes()` yields what happens to it."""

    client: kube_client.Client
    resource: kube_client.Resource
    namespace: str | None = None
    label_selector: str | None = None
    field_selector: str | None = None
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    watch_timeout: int = 300
    known: dict[tuple[str, str], JSON] = dataclasses.field(default_factory=dict)
    resource_version: str | None = None
    synced: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)
    relists: int = 0

    async def changes(self) -> AsyncIterator[Change]:
        waits = backoff.delays(duration=0.2, factor=2.0, jitter=0.2, cap=10.0)
        while True:
            try:
                if self.resource_version is None:
                    for change in await self._relist():
                        yield change
                    self.synced.set()
                async for event in self.client.watch_stream(
                    self.resource,
                    namespace=self.namespace,
                    resource_version=self.resource_version,
                    label_selector=self.label_selector,
                    field_selector=self.field_selector,
                    timeout_seconds=self.watch_timeout,
                ):
                    applied = self._apply(event)
                    if applied is not None:
                        yield applied
                waits = backoff.delays(duration=0.2, factor=2.0, jitter=0.2, cap=10.0)
            except kube_client.ApiError as exc:
                if exc.gone:
                    log.info("watch of %s expired (410), relisting", self.resource.plural)
                    self.resource_version = None
                    continue
                delay = next(waits)
                log.warning(
                    "watch of %s failed, retrying in %.1fs: %s", self.resource.plural, delay, exc
                )
                await self.sleep(delay)
            except kube_client.KubeError as exc:
                delay = next(waits)
                log.warning(
                    "watch of %s lost, retrying in %.1fs: %s", self.resource.plural, delay, exc
                )
                await self.sleep(delay)

    async def _relist(self) -> list[Change]:
        listing = await self.client.list(
            self.resource,
            namespace=self.namespace,
            label_selector=self.label_selector,
            field_selector=self.field_selector,
        )
        self.relists += 1
        kind = self.resource.kind
        api_version = self.resource.api_version
        seen: dict[tuple[str, str], JSON] = {}
        out: list[Change] = []
        for obj in listing.get("items", []):
            # List items omit kind/apiVersion; watch events carry them. Make both alike.
            obj.setdefault("kind", kind)
            obj.setdefault("apiVersion", api_version)
            key = _key(obj)
            seen[key] = obj
            old = self.known.get(key)
            if old is None:
                out.append(Change("ADD", obj))
            elif _uid(old) != _uid(obj):
                out.append(Change("DELETE", old))
                out.append(Change("ADD", obj))
            elif _rv(old) != _rv(obj):
                out.append(Change("UPDATE", obj, old))
        for key, old in self.known.items():
            if key not in seen:
                out.append(Change("DELETE", old))
        self.known = seen
        self.resource_version = str(listing.get("metadata", {}).get("resourceVersion", "")) or None
        return out

    def _apply(self, event: JSON) -> Change | None:
        kind = event.get("type")
        obj: JSON = event.get("object", {})
        rv = _rv(obj)
        if rv:
            self.resource_version = rv
        if kind == "BOOKMARK":
            return None
        key = _key(obj)
        old = self.known.get(key)
        if kind == "DELETED":
            self.known.pop(key, None)
            return Change("DELETE", obj, old)
        if old is not None and _rv(old) == rv:
            return None  # already reported (e.g. by the list that preceded this watch)
        self.known[key] = obj
        if old is None or _uid(old) != _uid(obj):
            return Change("ADD", obj)
        return Change("UPDATE", obj, old)
