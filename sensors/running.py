"""Running one Sensor: consume its events, filter, keep condition state, fire its triggers.

The decision path is synchronous and in bus order (filters, state update, condition); every
await — persisting state, executing a trigger, acknowledging — runs in a per-message task, so a
slow trigger never stalls the decisions for the events behind it.

Exactly-once effects rest on the firing record. When a condition becomes true, the trigger key
(hash of sensor, trigger and contributing event ids) is written to the sensor's store together
with the cleared condition state, in one atomic write, before the trigger executes; the
trigger's effect carries the key (HTTP `Idempotency-Key`). The record is deleted in the same
batch as the message's ack. After a crash, every record still present is executed again with
the same key, and a redelivered event that a record already consumed only waits for it — so a
redelivery cannot launch a second effect, and a crash cannot lose one.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import orjson

from sensors import conditions, filters
from sensors import manifest as sensor_manifest
from triggers import base as triggers_base
from tripwire import backoff, errors, events, metrics, secrets
from tripwire.bus import base as bus_base

log = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]


def trigger_key(*, sensor: str, trigger: str, contributing: dict[str, events.Event]) -> str:
    """Stable id of one firing: the same events for the same trigger give the same key."""
    h = hashlib.sha256(f"{sensor}\0{trigger}".encode())
    for name in sorted(contributing):
        h.update(f"\0{name}={contributing[name].id}".encode())
    return h.hexdigest()[:32]


@dataclasses.dataclass(frozen=True, slots=True)
class RejectedEvent:
    at: float
    dependency: str
    event_id: str
    reason: str


@dataclasses.dataclass(slots=True)
class _Dependency:
    name: str
    filters: filters.CompiledFilters
    latest: events.Event | None = None


@dataclasses.dataclass(slots=True)
class _Trigger:
    name: str
    spec: sensor_manifest.TriggerBase
    impl: triggers_base.Trigger
    condition: conditions.Condition
    dependencies: frozenset[str]
    # Latest accepted event per dependency since the last firing (Argo semantics).
    state: dict[str, events.Event] = dataclasses.field(default_factory=dict)
    # Dependencies whose state is persisted in the store (so clearing knows what to delete).
    persisted: set[str] = dataclasses.field(default_factory=set)


@dataclasses.dataclass(slots=True)
class _Pending:
    """One firing in flight: the task executing it and the messages waiting for it."""

    task: asyncio.Task[None]
    event_ids: tuple[str, ...]


class SensorRunner:
    """One sensor on one bus. `start` subscribes and returns; teardown drains in-flight work."""

    def __init__(
        self,
        *,
        sensor: sensor_manifest.SensorBase,
        bus: bus_base.Bus,
        session: aiohttp.ClientSession,
        resolver: secrets.Resolver,
        sleep: Sleep = asyncio.sleep,
        grace: float = 10.0,
    ) -> None:
        self.name = sensor.metadata.name
        self.sensor = sensor
        self._bus = bus
        self._session = session
        self._resolver = resolver
        self._sleep = sleep
        self._grace = grace
        self._store = bus.store(f"sensor/{self.name}")
        self._deps: dict[str, _Dependency] = {}
        self._index: dict[tuple[str, str], list[_Dependency]] = {}
        self._triggers: list[_Trigger] = []
        self._by_dep: dict[str, list[_Trigger]] = {}
        self._pending: dict[str, _Pending] = {}
        self._consumed: dict[str, str] = {}  # event id -> trigger key of its open firing record
        self._tasks: set[asyncio.Task[None]] = set()
        self._subscription: bus_base.Subscription | None = None
        self._consumer_task: asyncio.Task[None] | None = None
        self.rejections: collections.deque[RejectedEvent] = collections.deque(maxlen=50)
        self.ready = asyncio.Event()

    # -- lifecycle ------------------------------------------------------------------------
    async def start(self, stack: contextlib.AsyncExitStack) -> None:
        spec = self.sensor.spec
        for dep in spec.dependencies:
            compiled = _Dependency(dep.name, filters.compile_filters(dep.filters))
            self._deps[dep.name] = compiled
            self._index.setdefault((dep.gateway_name, dep.event_name), []).append(compiled)
        names = [d.name for d in spec.dependencies]
        for trigger_spec in spec.triggers:
            template = trigger_spec.template
            kind, kind_spec = template.kind()
            context = triggers_base.TriggerContext(
                sensor=self.name,
                trigger=template.name,
                session=self._session,
                secrets=self._resolver,
                policy=trigger_spec.policy,
            )
            impl = triggers_base.load(kind)(spec=kind_spec, context=context)
            await impl.start(stack)
            condition = conditions.compile(template.conditions, names=names)
            trig = _Trigger(
                name=template.name,
                spec=trigger_spec,
                impl=impl,
                condition=condition,
                dependencies=frozenset(condition.names),
            )
            self._triggers.append(trig)
            for dep_name in trig.dependencies:
                self._by_dep.setdefault(dep_name, []).append(trig)
        await self._restore()
        prefix = self._bus.prefix
        subjects = [bus_base.subject(prefix=prefix, gateway=gw, event=ev) for gw, ev in self._index]
        self._subscription = await self._bus.subscribe(
            consumer=f"sensor-{self.name}", subjects=subjects
        )
        stack.push_async_callback(self._stop)
        self._consumer_task = asyncio.create_task(self._consume(), name=f"sensor-{self.name}")
        self.ready.set()

    async def _restore(self) -> None:
        """Reload partial condition state and re-run firings a crash interrupted."""
        by_name = {t.name: t for t in self._triggers}
        for key, raw in await self._store.scan("state/"):
            _, trigger_name, dep_name = key.split("/", 2)
            trig = by_name.get(trigger_name)
            if trig is None or dep_name not in trig.dependencies:
                # The manifest changed since; drop state nothing can use.
                await self._store.write({key: None})
                continue
            trig.state[dep_name] = events.from_bytes(raw)
            trig.persisted.add(dep_name)
        for key, raw in await self._store.scan("firing/"):
            record = orjson.loads(raw)
            trig = by_name.get(record["trigger"])
            if trig is None:
                await self._store.write({key: None})
                continue
            evs = {name: events.from_dict(doc) for name, doc in record["events"].items()}
            firing = triggers_base.Firing(
                key=record["key"], sensor=self.name, trigger=trig.name, events=evs
            )
            log.info(
                "resuming firing interrupted by a restart",
                extra={"sensor": self.name, "trigger": trig.name, "trigger_key": firing.key},
            )
            self._launch(trig, firing)

    async def _stop(self) -> None:
        """Stop intake, give in-flight firings `grace` seconds, then cancel what is left.

        A cancelled firing keeps its record and its message stays unacknowledged, so the next
        start resumes it with the same trigger key.
        """
        if self._subscription is not None:
            await self._subscription.close()
        if self._consumer_task is not None:
            await self._consumer_task
        if self._tasks:
            _, still = await asyncio.wait(set(self._tasks), timeout=self._grace)
            for task in still:
                task.cancel()
            if still:
                await asyncio.wait(still)

    # -- the decision path ------------------------------------------------------------------
    async def _consume(self) -> None:
        assert self._subscription is not None
        async for msg in self._subscription:
            try:
                self._handle(msg)
            except Exception:
                # A bug must not stop the sensor; the message is left for redelivery.
                log.exception("sensor %s failed on event %s", self.name, msg.event.id)

    def _handle(self, msg: bus_base.Message) -> None:
        event = msg.event
        open_key = self._consumed.get(event.id)
        if open_key is not None:
            # Redelivered after a crash: a firing record already consumed this event.
            self._spawn(self._ack_after(msg, [open_key]), f"sensor-{self.name}-redelivered")
            return
        accepted: list[_Dependency] = []
        for dep in self._index.get((event.source, event.subject), ()):
            rejection = dep.filters.check(event)
            if rejection is None:
                accepted.append(dep)
                dep.latest = event
            else:
                self._reject(dep.name, event, str(rejection))
        if not accepted:
            self._spawn(msg.ack(), f"sensor-{self.name}-ack")
            return
        changes: dict[str, bytes | None] = {}
        firings: list[tuple[_Trigger, triggers_base.Firing]] = []
        raw: bytes | None = None
        for dep in accepted:
            for trig in self._by_dep.get(dep.name, ()):
                trig.state[dep.name] = event
                if trig.condition.evaluate(trig.state.keys()):
                    firing = self._fire(trig, changes)
                    if firing is not None:
                        firings.append((trig, firing))
                else:
                    raw = raw if raw is not None else event.to_bytes()
                    changes[f"state/{trig.name}/{dep.name}"] = raw
                    trig.persisted.add(dep.name)
        self._spawn(self._settle(msg, changes, firings), f"sensor-{self.name}-settle")

    def _fire(
        self, trig: _Trigger, changes: dict[str, bytes | None]
    ) -> triggers_base.Firing | None:
        contributing = {n: trig.state[n] for n in trig.condition.contributing(trig.state.keys())}
        key = trigger_key(sensor=self.name, trigger=trig.name, contributing=contributing)
        for dep_name in trig.persisted:
            changes[f"state/{trig.name}/{dep_name}"] = None
        trig.state.clear()
        trig.persisted.clear()
        if key in self._pending:
            return None
        record = {
            "key": key,
            "trigger": trig.name,
            "events": {n: e.to_dict() for n, e in contributing.items()},
            "at": time.time(),
        }
        changes[f"firing/{key}"] = orjson.dumps(record)
        return triggers_base.Firing(
            key=key, sensor=self.name, trigger=trig.name, events=contributing
        )

    def _reject(self, dependency: str, event: events.Event, reason: str) -> None:
        metrics.EVENTS_FILTERED.labels(self.name, dependency).inc()
        self.rejections.append(RejectedEvent(time.time(), dependency, event.id, reason))
        log.debug(
            "event rejected",
            extra={
                "sensor": self.name,
                "dependency": dependency,
                "event_id": event.id,
                "reason": reason,
            },
        )

    # -- the await path ---------------------------------------------------------------------
    def _spawn(self, work: Awaitable[None], name: str) -> None:
        task = asyncio.ensure_future(work)
        task.set_name(name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _settle(
        self,
        msg: bus_base.Message,
        changes: dict[str, bytes | None],
        firings: list[tuple[_Trigger, triggers_base.Firing]],
    ) -> None:
        try:
            if changes:
                await self._store.write(changes)
        except errors.BusError as exc:
            # Not durable: leave the message for redelivery rather than act on lost state.
            log.error("sensor %s could not persist state: %s", self.name, exc)
            await msg.nak(delay=1.0)
            return
        for trig, firing in firings:
            self._launch(trig, firing)
        await self._ack_after(msg, [f.key for _, f in firings])

    def _launch(self, trig: _Trigger, firing: triggers_base.Firing) -> None:
        ids = tuple(e.id for e in firing.events.values())
        for event_id in ids:
            self._consumed[event_id] = firing.key
        task = asyncio.create_task(
            self._execute(trig, firing), name=f"trigger-{self.name}-{trig.name}"
        )
        self._pending[firing.key] = _Pending(task=task, event_ids=ids)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _ack_after(self, msg: bus_base.Message, keys: list[str]) -> None:
        """Ack once the firings this message took part in are finished, then drop their records."""
        waiting = [self._pending[k].task for k in keys if k in self._pending]
        if waiting:
            await asyncio.wait(waiting)
            if any(t.cancelled() for t in waiting):
                return  # shutting down: the record stays, the message is redelivered
        await msg.ack()
        done: dict[str, bytes | None] = {}
        for key in keys:
            pending = self._pending.pop(key, None)
            if pending is None:
                continue
            for event_id in pending.event_ids:
                self._consumed.pop(event_id, None)
            done[f"firing/{key}"] = None
        if done:
            with contextlib.suppress(errors.BusError):
                # Not awaited for durability on purpose: a lost delete means a resumed firing
                # with the same key, which the effect's idempotency absorbs.
                await self._store.write(done)

    async def _execute(self, trig: _Trigger, firing: triggers_base.Firing) -> None:
        retry = trig.spec.retry_strategy
        waits = backoff.delays(duration=retry.duration, factor=retry.factor, jitter=retry.jitter)
        labels = (self.name, trig.name)
        started = time.monotonic()
        log_extra: dict[str, Any] = {
            "sensor": self.name,
            "trigger": trig.name,
            "trigger_key": firing.key,
            "event_ids": [e.id for e in firing.events.values()],
        }
        for attempt in range(1, retry.steps + 1):
            try:
                await trig.impl.fire(firing)
            except errors.TemporaryTriggerError as exc:
                if attempt == retry.steps:
                    self._failed(trig, firing, exc, log_extra)
                    return
                delay = max(next(waits), exc.delay or 0.0)
                metrics.TRIGGERS_RETRIED.labels(*labels).inc()
                log.warning(
                    "trigger attempt %d/%d failed, retrying in %.2fs: %s",
                    attempt,
                    retry.steps,
                    delay,
                    exc,
                    extra=log_extra,
                )
                await self._sleep(delay)
                continue
            except errors.TriggerError as exc:
                self._failed(trig, firing, exc, log_extra)
                return
            except Exception as exc:
                log.exception("trigger raised unexpectedly", extra=log_extra)
                self._failed(trig, firing, exc, log_extra)
                return
            elapsed = time.monotonic() - started
            metrics.TRIGGERS_FIRED.labels(*labels).inc()
            metrics.TRIGGER_SECONDS.labels(*labels).observe(elapsed)
            newest = max(e.time for e in firing.events.values())
            metrics.EVENT_TO_FIRE_SECONDS.labels(*labels).observe(
                max(0.0, time.time() - newest.timestamp())
            )
            log.info("trigger fired", extra=log_extra)
            return

    def _failed(
        self,
        trig: _Trigger,
        firing: triggers_base.Firing,
        exc: BaseException,
        extra: dict[str, Any],
    ) -> None:
        metrics.TRIGGERS_FAILED.labels(self.name, trig.name).inc()
        log.error("trigger failed: %s", exc, extra=extra)

    # -- introspection ------------------------------------------------------------------------
    def explain(self) -> dict[str, Any]:
        """Latest accepted event per dependency, recent rejections, conditions and their truth."""
        now = time.time()
        return {
            "sensor": self.name,
            "dependencies": {
                name: None
                if dep.latest is None
                else {
                    "id": dep.latest.id,
                    "time": dep.latest.time.isoformat(),
                    "age_seconds": round(now - dep.latest.time.timestamp(), 3),
                }
                for name, dep in self._deps.items()
            },
            "rejected": [dataclasses.asdict(r) for r in self.rejections],
            "triggers": {
                t.name: {
                    "condition": t.condition.explain(t.state.keys()),
                    "waiting_for": sorted(t.dependencies - t.state.keys()),
                }
                for t in self._triggers
            },
        }
