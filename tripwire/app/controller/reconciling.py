"""The reconcile loop: custom resources in, running objects and their status out.

Two reflectors (`tripwire.net.kube.watching`) keep the Gateways and Sensors of one namespace or of
all of them; they resume watches from the last resourceVersion, relist on 410 Gone and ride out
apiserver restarts, so this module only sees "what exists now". Any change marks its namespace
dirty; the loop then validates every object of that namespace with the same pydantic models as
`tripwire run` (messages name field paths) and hands the valid ones to the executor, which
starts, restarts (spec changed) and stops objects. Level-triggered, like every Kubernetes
controller: a missed or repeated change cannot leave the wrong set running, and nothing
starts before both lists are in (a sensor's durable subscription must exist before its
gateway publishes on a first start).

A Sensor whose dependency names a Gateway that does not exist yet still runs: the Gateway
may be applied later, and its events then arrive. An invalid object is not run (stopped if it
ran) and says why in its status.

Status is written by a separate check every `status_interval` seconds and after each
reconcile, with a merge patch of only what changed (`status.merge_patch`), never per event.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable
from typing import Any

import pydantic

from gateways import manifest as gateway_manifest
from sensors import manifest as sensor_manifest
from tripwire import errors, manifests
from tripwire.app.controller import executing, status
from tripwire.net.kube import client as kube_client
from tripwire.net.kube import watching

log = logging.getLogger(__name__)

GATEWAYS = kube_client.Resource(
    group=manifests.GROUP, version="v1alpha1", plural="gateways", kind="Gateway", namespaced=True
)
SENSORS = kube_client.Resource(
    group=manifests.GROUP, version="v1alpha1", plural="sensors", kind="Sensor", namespaced=True
)
# Metadata the models accept from users; the apiserver adds more (ownerReferences,
# deletionTimestamp, generateName...) that a spec must not fail on.
_META_FIELDS = ("name", "namespace", "labels", "annotations")

Key = tuple[status.Kind, str, str]  # kind, namespace, name


@dataclasses.dataclass(frozen=True, slots=True)
class _Validated:
    """A validation result, cached per (uid, generation): the spec cannot change without
    the generation changing."""

    stamp: tuple[str, Any]
    model: Any | None
    problems: list[str]


def validate(kind: status.Kind, obj: kube_client.JSON) -> tuple[Any | None, list[str]]:
    """(model, []) or (None, problems), each problem naming its field path."""
    meta = obj.get("metadata") or {}
    namespace, name = meta.get("namespace", ""), meta.get("name", "")
    data = {
        "apiVersion": obj.get("apiVersion", manifests.API_VERSION),
        "kind": kind,
        "metadata": {k: meta[k] for k in _META_FIELDS if k in meta},
        "spec": obj.get("spec"),
    }
    doc = manifests.Document(file=f"{kind}/{namespace}/{name}", index=0, data=data, lines={})
    model: type[pydantic.BaseModel] = (
        gateway_manifest.model() if kind == "Gateway" else sensor_manifest.model()
    )
    try:
        return manifests.validate(doc, model), []
    except errors.ManifestError as exc:
        return None, [f"{p.path}: {p.message}" if p.path else p.message for p in exc.problems]


class Reconciler:
    """Watches, validates, applies and writes status; `start` returns once it runs."""

    def __init__(
        self,
        *,
        kube: kube_client.Client,
        executor: executing.Executor,
        namespace: str | None,
        status_interval: float = 2.0,
        resync_interval: float = 30.0,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.kube = kube
        self.executor = executor
        self.namespace = namespace
        self.status_interval = status_interval
        self.resync_interval = resync_interval
        self._wall = wall
        self.reflectors: dict[status.Kind, watching.Reflector] = {
            "Gateway": watching.Reflector(client=kube, resource=GATEWAYS, namespace=namespace),
            "Sensor": watching.Reflector(client=kube, resource=SENSORS, namespace=namespace),
        }
        self._dirty: set[str] = set()
        self._wake = asyncio.Event()
        self._validated: dict[Key, _Validated] = {}
        self._written: dict[Key, dict[str, Any]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self.synced = asyncio.Event()  # both lists in and the first apply done
        self.status_writes = 0

    async def start(self, stack: contextlib.AsyncExitStack) -> None:
        stack.push_async_callback(self._stop)
        for kind, reflector in self.reflectors.items():
            self._spawn(self._watch(reflector), f"watch-{kind.lower()}s")
        self._spawn(self._reconcile_loop(), "reconcile")
        self._spawn(self._status_loop(), "status")

    def _spawn(self, coro: Any, name: str) -> None:
        task = asyncio.create_task(coro, name=f"controller-{name}")
        task.add_done_callback(_loud_exit)
        self._tasks.append(task)

    async def _stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # -- watching and reconciling ---------------------------------------------------------
    async def _watch(self, reflector: watching.Reflector) -> None:
        async for change in reflector.changes():
            meta = change.obj.get("metadata") or {}
            self._dirty.add(str(meta.get("namespace", "")))
            self._wake.set()

    async def _reconcile_loop(self) -> None:
        await asyncio.gather(*(r.synced.wait() for r in self.reflectors.values()))
        log.info(
            "watching %s: %d gateway(s), %d sensor(s)",
            self.namespace or "all namespaces",
            len(self.reflectors["Gateway"].known),
            len(self.reflectors["Sensor"].known),
        )
        self._wake.set()
        last_resync = time.monotonic()
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.resync_interval)
            self._wake.clear()
            if time.monotonic() - last_resync >= self.resync_interval:
                # Retry what failed to start (e.g. a trigger whose kind needs a CRD added later).
                self._dirty |= {ns for ns in self._namespaces() if self.executor.failed(ns)}
                last_resync = time.monotonic()
            dirty, self._dirty = self._dirty, set()
            for namespace in sorted(dirty):
                try:
                    await self.reconcile(namespace)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    # A bug must not stop the other namespaces; try again at the next resync.
                    log.exception("reconciling namespace %s failed", namespace)
                    self._dirty.add(namespace)
            self.synced.set()

    def _namespaces(self) -> set[str]:
        return {ns for r in self.reflectors.values() for ns, _name in r.known}

    def _objects(self, kind: status.Kind, namespace: str) -> list[kube_client.JSON]:
        known = self.reflectors[kind].known
        return [obj for (ns, _name), obj in sorted(known.items()) if ns == namespace]

    def _validate(self, kind: status.Kind, obj: kube_client.JSON) -> _Validated:
        meta = obj.get("metadata") or {}
        key: Key = (kind, meta.get("namespace", ""), meta.get("name", ""))
        stamp = (str(meta.get("uid", "")), meta.get("generation") or meta.get("resourceVersion"))
        cached = self._validated.get(key)
        if cached is not None and cached.stamp == stamp:
            return cached
        model, problems = validate(kind, obj)
        result = _Validated(stamp, model, problems)
        self._validated[key] = result
        if problems:
            log.warning("%s %s/%s is invalid: %s", kind, key[1], key[2], "; ".join(problems))
        return result

    async def reconcile(self, namespace: str) -> None:
        valid: dict[status.Kind, list[Any]] = {"Gateway": [], "Sensor": []}
        present: set[Key] = set()
        for kind in valid:
            for obj in self._objects(kind, namespace):
                result = self._validate(kind, obj)
                present.add((kind, namespace, obj["metadata"]["name"]))
                if result.model is not None:
                    valid[kind].append(result.model)
        for key in [k for k in self._validated if k[1] == namespace and k not in present]:
            del self._validated[key]
            self._written.pop(key, None)
        await self.executor.apply(namespace, gateways=valid["Gateway"], sensors=valid["Sensor"])
        await self.write_statuses(namespace)

    # -- status ---------------------------------------------------------------------------
    async def _status_loop(self) -> None:
        await self.synced.wait()
        while True:
            await asyncio.sleep(self.status_interval)
            await self.write_statuses(None)

    async def write_statuses(self, namespace: str | None) -> None:
        """Patch the status of every object (of `namespace`) whose status should change."""
        for kind, reflector in self.reflectors.items():
            for (ns, _name), obj in list(reflector.known.items()):
                if namespace is None or ns == namespace:
                    await self._write_status(kind, obj)

    async def _write_status(self, kind: status.Kind, obj: kube_client.JSON) -> None:
        meta = obj.get("metadata") or {}
        namespace, name = str(meta.get("namespace", "")), str(meta.get("name", ""))
        key: Key = (kind, namespace, name)
        validated = self._validated.get(key)
        if validated is None:
            return  # not reconciled yet
        current = obj.get("status") or {}
        desired = status.build(
            kind=kind,
            generation=meta.get("generation"),
            observed=self.executor.status(namespace, kind=kind, name=name),
            problems=validated.problems,
            previous=self._written.get(key) or current,
            now=self._wall(),
        )
        patch = status.merge_patch(current, desired)
        # The reflector may not have seen our last write yet: do not write it twice.
        if not patch or desired == self._written.get(key):
            return
        resource = GATEWAYS if kind == "Gateway" else SENSORS
        try:
            await self.kube.patch(
                resource, name, {"status": patch}, namespace=namespace, subresource="status"
            )
        except kube_client.ApiError as exc:
            if not exc.not_found:
                log.warning("cannot write status of %s %s/%s: %s", kind, namespace, name, exc)
            return
        except kube_client.KubeError as exc:
            log.warning("cannot write status of %s %s/%s: %s", kind, namespace, name, exc)
            return
        self._written[key] = desired
        self.status_writes += 1


def _loud_exit(task: asyncio.Task[None]) -> None:
    """These tasks run forever; one that ends is a bug worth a loud line."""
    if task.cancelled():
        return
    exc = task.exception()
    log.error("controller task %s ended unexpectedly: %r", task.get_name(), exc, exc_info=exc)
