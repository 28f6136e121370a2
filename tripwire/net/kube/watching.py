"""Watching a resource without losing or repeating changes: list, watch, resume, relist.

A watch stream ends all the time (server timeouts, apiserver restarts, network blips) and its
resourceVersion can expire (410 Gone: etcd compacted it, or a restarted apiserver's watch cache
starts after it). Like client-go's reflector, `Reflector` keeps the objects it has reported; it
resumes a watch from the last resourceVersion it saw, and when that is gone it lists again and
reports only the difference against what it already reported — so a relist does not repeat
ADDs, and a change made while nobody watched still arrives, as one ADD, UPDATE or DELETE.

Duplicates are also guarded at the event level: a watch event whose object is already known at
that resourceVersion (or a newer one) is dropped, and so is a DELETED of an object that is not
known. A caller that persists what it delivered can put it back into `known` before the first
list, so a restart reports only what changed while it was away.

`changes()` is an `async for` generator with an injectable sleep and backoff, so tests can pace
and stop it; `relist()` is public so a caller can do the first list itself and fail fast.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Literal

from tripwire import backoff
from tripwire.net.kube import client as kube_client

log = logging.getLogger(__name__)

JSON = kube_client.JSON
ChangeType = Literal["ADD", "UPDATE", "DELETE"]
Key = tuple[str, str]

# A watch that ends this soon without a single event counts as a failure (backoff), so a
# server that closes watches at once is not hammered in a tight loop.
_QUICK_END = 1.0


@dataclasses.dataclass(frozen=True, slots=True)
class Change:
    """One change to report: `obj` is the object now (the last known state for DELETE), `old`
    the state reported before (UPDATE, and DELETE when known)."""

    type: ChangeType
    obj: JSON
    old: JSON | None = None


def key_of(obj: JSON) -> Key:
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace") or ""), str(meta.get("name") or "")


def resource_version(obj: JSON) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion") or "")


def uid_of(obj: JSON) -> str:
    return str((obj.get("metadata") or {}).get("uid") or "")


def _not_newer(new: str, old: str) -> bool:
    """Whether resourceVersion `new` is `old` or older. resourceVersions are opaque to clients,
    but every apiserver backed by etcd uses its revision numbers; compare numerically when both
    are numbers, else only equality means "seen"."""
    if new == old:
        return True
    if new.isdigit() and old.isdigit():
        return int(new) < int(old)
    return False


def _default_delays() -> Iterator[float]:
    return backoff.delays(duration=0.2, factor=2.0, jitter=0.2, cap=10.0)


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
    known: dict[Key, JSON] = dataclasses.field(default_factory=dict)
    resource_version: str | None = None
    synced: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)
    relists: int = 0
    delays: Callable[[], Iterator[float]] = _default_delays
    # Watch requests started and 410s seen: for tests and logs.
    watches: int = 0
    expired: int = 0

    async def changes(self) -> AsyncIterator[Change]:
        """List (unless `relist()` was already called), then watch forever, relisting on 410."""
        waits = self.delays()
        loop = asyncio.get_running_loop()
        just_listed = False
        while True:
            try:
                if self.resource_version is None:
                    for change in await self.relist():
                        yield change
                    just_listed = True
                self.watches += 1
                started = loop.time()
                received = False
                stream = self.client.watch_stream(
                    self.resource,
                    namespace=self.namespace,
                    resource_version=self.resource_version,
                    label_selector=self.label_selector,
                    field_selector=self.field_selector,
                    timeout_seconds=self.watch_timeout,
                )
                async with contextlib.aclosing(stream):
                    async for event in stream:
                        received = True
                        just_listed = False
                        for change in self._apply(event):
                            yield change
                if received or loop.time() - started >= _QUICK_END:
                    waits = self.delays()
                    continue
                delay = next(waits)
                log.info("watch of %s ended at once, again in %.1fs", self.description, delay)
                await self.sleep(delay)
            except kube_client.ApiError as exc:
                if exc.gone:
                    self.expired += 1
                    log.info(
                        "watch of %s expired (410), relisting: %s", self.description, exc.message
                    )
                    self.resource_version = None
                    if just_listed:
                        # Gone right after a fresh list: do not spin list/410/list.
                        await self.sleep(next(waits))
                    continue
                delay = next(waits)
                log.warning("watch of %s failed, again in %.1fs: %s", self.description, delay, exc)
                await self.sleep(delay)
            except kube_client.KubeError as exc:
                delay = next(waits)
                log.warning("watch of %s lost, again in %.1fs: %s", self.description, delay, exc)
                await self.sleep(delay)

    @property
    def description(self) -> str:
        where = f" in {self.namespace}" if self.namespace else ""
        return f"{self.resource.plural}.{self.resource.api_version}{where}"

    async def relist(self) -> list[Change]:
        """List the collection and return what differs from `known`; watch from the list's
        resourceVersion next. Raises `KubeError` when the list fails."""
        listing = await self.client.list(
            self.resource,
            namespace=self.namespace,
            label_selector=self.label_selector,
            field_selector=self.field_selector,
        )
        self.relists += 1
        kind = self.resource.kind
        api_version = self.resource.api_version
        seen: dict[Key, JSON] = {}
        out: list[Change] = []
        for obj in listing.get("items") or []:
            # List items omit kind/apiVersion; watch events carry them. Make both alike.
            obj.setdefault("kind", kind)
            obj.setdefault("apiVersion", api_version)
            key = key_of(obj)
            seen[key] = obj
            old = self.known.get(key)
            if old is None:
                out.append(Change("ADD", obj))
            elif uid_of(old) != uid_of(obj):
                # Deleted and created again while nobody watched: two changes.
                out.append(Change("DELETE", old))
                out.append(Change("ADD", obj))
            elif resource_version(old) != resource_version(obj):
                out.append(Change("UPDATE", obj, old))
        for key, old in self.known.items():
            if key not in seen:
                out.append(Change("DELETE", old))
        self.known = seen
        self.resource_version = resource_version(listing) or None
        self.synced.set()
        if self.relists > 1 or out:
            log.info(
                "listed %s: %d object(s), %d change(s) to report (list #%d)",
                self.description,
                len(seen),
                len(out),
                self.relists,
            )
        return out

    def _apply(self, event: JSON) -> list[Change]:
        kind = event.get("type")
        obj: JSON = event.get("object") or {}
        rv = resource_version(obj)
        if rv:
            self.resource_version = rv
        if kind not in ("ADDED", "MODIFIED", "DELETED"):
            return []  # BOOKMARK (only moves the resourceVersion), or a type we do not know
        key = key_of(obj)
        old = self.known.get(key)
        if kind == "DELETED":
            if old is None or uid_of(old) != uid_of(obj):
                return []  # never reported (or already reported gone by a relist)
            del self.known[key]
            return [Change("DELETE", obj, old)]
        if old is not None and uid_of(old) == uid_of(obj):
            if _not_newer(rv, resource_version(old)):
                return []  # already reported (by the list that preceded this watch)
            self.known[key] = obj
            return [Change("UPDATE", obj, old)]
        self.known[key] = obj
        if old is not None:
            # Same name, new uid, and the DELETED of the old one never came: report both.
            return [Change("DELETE", old), Change("ADD", obj)]
        return [Change("ADD", obj)]


__all__ = ["Change", "ChangeType", "Reflector", "key_of", "resource_version", "uid_of"]
