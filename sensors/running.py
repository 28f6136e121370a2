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
import datetime
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import aiohttp
import orjson

from sensors import conditions, executing, filters, limiting, transforms
from sensors import manifest as sensor_manifest
from triggers import base as triggers_base
from tripwire import errors, events, metrics, schedules, secrets
from tripwire.bus import base as bus_base
from tripwire.net import httpclient

log = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]


def trigger_key(*, sensor: str, trigger: str, contributing: dict[str, events.Event]) -> str:
    """Stable id of one firing: the same events for the same trigger give the same key.

    sha256 of `sensor \0 trigger` then `\0 name=event-id` per contributing dependency, in
    name order. Records persist these keys: the bytes hashed must never change.
    """
    parts = "".join(f"\0{name}={contributing[name].id}" for name in sorted(contributing))
    return hashlib.sha256(f"{sensor}\0{trigger}{parts}".encode()).hexdigest()[:32]


@dataclasses.dataclass(frozen=True, slots=True)
class RejectedEvent:
    at: float
    dependency: str
    event_id: str
    reason: str


@dataclasses.dataclass(slots=True)
class _Dependency:
    sensor: str
    name: str
    gateway: str
    event: str
    filters: filters.CompiledFilters
    transform: transforms.Transformer | None = None
    latest: events.Event | None = None
    accepted: int = 0
    rejected: int = 0
    filtered: Any = None  # its EVENTS_FILTERED child, looked up once

    def __post_init__(self) -> None:
        self.filtered = metrics.EVENTS_FILTERED.labels(self.sensor, self.name)


@dataclasses.dataclass(slots=True)
class _Trigger:
    sensor: str
    name: str
    spec: sensor_manifest.TriggerBase
    main: executing.Target
    condition: conditions.Condition
    dependencies: frozenset[str]
    dlq: executing.Target | None = None
    limiter: limiting.SlidingWindowLimiter | None = None
    # Dependencies with a maxAge, in seconds; and the conditionsReset schedules.
    max_ages: dict[str, float] = dataclasses.field(default_factory=dict)
    resets: list[schedules.CronSchedule] = dataclasses.field(default_factory=list)
    # Latest accepted event per dependency since the last firing (Argo semantics).
    state: dict[str, events.Event] = dataclasses.field(default_factory=dict)
    # Dependencies whose state is persisted in the store (so clearing knows what to delete).
    persisted: set[str] = dataclasses.field(default_factory=set)
    # Metric children, looked up once: `.labels()` per firing is measurable at 1000s/s.
    fired: Any = None
    failed: Any = None
    retried: Any = None
    seconds: Any = None
    event_to_fire: Any = None

    def __post_init__(self) -> None:
        labels = (self.sensor, self.name)
        self.fired = metrics.TRIGGERS_FIRED.labels(*labels)
        self.failed = metrics.TRIGGERS_FAILED.labels(*labels)
        self.retried = metrics.TRIGGERS_RETRIED.labels(*labels)
        self.seconds = metrics.TRIGGER_SECONDS.labels(*labels)
        self.event_to_fire = metrics.EVENT_TO_FIRE_SECONDS.labels(*labels)


@dataclasses.dataclass(slots=True)
class _Plan:
    """A firing decided on the decision path, to run on the await path.

    `recorded`: a firing record was written with it. Needed only when the firing uses events
    other than the message being handled (an AND whose earlier events were already
    acknowledged): a firing made of the handled message alone is fully described by that
    message, which stays unacknowledged until the firing ends — after a crash, its
    redelivery fires again with the same trigger key, which is what the record would do.

    `done` is made only for someone who waits for the firing to end (a redelivered event
    that this firing consumed); most firings are never waited for.
    """

    trigger: _Trigger
    firing: triggers_base.Firing
    recorded: bool
    done: asyncio.Future[None] | None = None


class SensorRunner:
    """One sensor on one bus. `start` subscribes and returns; teardown drains in-flight work."""

    def __init__(
        self,
        *,
        sensor: sensor_manifest.SensorBase,
        bus: bus_base.Bus,
        session: aiohttp.ClientSession,
        resolver: secrets.Resolver,
        http: httpclient.Client | None = None,
        sleep: Sleep = asyncio.sleep,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        grace: float = 10.0,
        kube: Any = None,
        namespace: str | None = None,
    ) -> None:
        self.name = sensor.metadata.name
        self.sensor = sensor
        self._bus = bus
        self._session = session
        self._http = http
        self._resolver = resolver
        self._sleep = sleep
        self._clock = clock
        self._monotonic = monotonic
        self._grace = grace
        self._kube = kube
        self._namespace = namespace
        self.last_fired: float | None = None  # wall time of the last successful firing
        self.fired_total = 0  # successful firings since start (status, benchmarks)
        self.failed_total = 0
        self._store = bus.store(f"sensor/{self.name}")
        self._deps: dict[str, _Dependency] = {}
        self._index: dict[tuple[str, str], list[_Dependency]] = {}
        self._triggers: list[_Trigger] = []
        self._by_dep: dict[str, list[_Trigger]] = {}
        # Firings in flight by trigger key.
        self._pending: dict[str, _Plan] = {}
        self._consumed: dict[str, str] = {}  # event id -> trigger key of its open firing record
        self._tasks: set[asyncio.Task[None]] = set()
        self._subscription: bus_base.Subscription | None = None
        self.rejections: collections.deque[RejectedEvent] = collections.deque(maxlen=50)
        self._settle_name = f"sensor-{self.name}-settle"  # task names, made once
        self._ack_name = f"sensor-{self.name}-ack"
        self.ready = asyncio.Event()

    # -- lifecycle ------------------------------------------------------------------------
    async def start(self, stack: contextlib.AsyncExitStack) -> None:
        spec = self.sensor.spec
        for dep in spec.dependencies:
            compiled = _Dependency(
                sensor=self.name,
                name=dep.name,
                gateway=dep.gateway_name,
                event=dep.event_name,
                filters=filters.compile_filters(dep.filters, operator=dep.filters_logical_operator),
                transform=transforms.compile_transform(dep.transform),
            )
            self._deps[dep.name] = compiled
            self._index.setdefault((dep.gateway_name, dep.event_name), []).append(compiled)
        names = [d.name for d in spec.dependencies]
        max_ages = {d.name: d.max_age for d in spec.dependencies if d.max_age is not None}
        for trigger_spec in spec.triggers:
            template = trigger_spec.template
            context = triggers_base.TriggerContext(
                sensor=self.name,
                trigger=template.name,
                session=self._session,
                http=self._http,
                secrets=self._resolver,
                policy=trigger_spec.policy,
                kube=self._kube,
                namespace=self._namespace,
            )
            main = await executing.build(stack, trigger_spec, context=context)
            dlq = None
            if trigger_spec.dlq_trigger is not None:
                dlq_context = dataclasses.replace(context, policy=trigger_spec.dlq_trigger.policy)
                dlq = await executing.build(stack, trigger_spec.dlq_trigger, context=dlq_context)
            condition = conditions.compile(template.conditions, names=names)
            limit = trigger_spec.rate_limit
            trig = _Trigger(
                sensor=self.name,
                name=template.name,
                spec=trigger_spec,
                main=main,
                dlq=dlq,
                condition=condition,
                dependencies=frozenset(condition.names),
                limiter=None
                if limit is None
                else limiting.SlidingWindowLimiter(
                    limit=limit.requests_per_unit,
                    period=limit.period,
                    clock=self._monotonic,
                    sleep=self._sleep,
                ),
                max_ages={d: a for d, a in max_ages.items() if d in condition.names},
                resets=[r.by_time.schedule() for r in template.conditions_reset],
            )
            self._triggers.append(trig)
            for dep_name in trig.dependencies:
                self._by_dep.setdefault(dep_name, []).append(trig)
        await self._restore()
        prefix = self._bus.prefix
        subjects = [bus_base.subject(prefix=prefix, gateway=gw, event=ev) for gw, ev in self._index]
        # Pushed, not pulled: the decision path is synchronous, so the bus calls it directly
        # (a bug in it is logged by the bus and leaves the message for redelivery).
        self._subscription = await self._bus.subscribe(
            consumer=f"sensor-{self.name}", subjects=subjects, handler=self._handle
        )
        stack.push_async_callback(self._stop)
        for trig in self._triggers:
            if trig.resets:
                self._spawn(self._reset_loop(trig), f"sensor-{self.name}-{trig.name}-reset")
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
            plan = self._plan(trig, firing, recorded=True)
            self._spawn(self._resume(plan), f"trigger-{self.name}-{trig.name}-resume")

    async def _stop(self) -> None:
        """Stop intake, give in-flight firings `grace` seconds, then cancel what is left.

        A cancelled firing keeps its record and its message stays unacknowledged, so the next
        start resumes it with the same trigger key.
        """
        if self._subscription is not None:
            await self._subscription.close()
        if self._tasks:
            _, still = await asyncio.wait(set(self._tasks), timeout=self._grace)
            for task in still:
                task.cancel()
            if still:
                await asyncio.wait(still)

    # -- the decision path ------------------------------------------------------------------
    def _handle(self, msg: bus_base.Message) -> None:
        event = msg.event
        open_key = self._consumed.get(event.id)
        if open_key is not None:
            # Redelivered after a crash: a resumed firing record already consumed this event.
            self._spawn(self._ack_when_done(msg, open_key), f"sensor-{self.name}-redelivered")
            return
        accepted: list[tuple[_Dependency, events.Event]] = []
        for dep in self._index.get((event.source, event.subject), ()):
            seen = event
            if dep.transform is not None:
                # Argo: the transformed event is what filters, state and triggers see.
                transformed = dep.transform(event)
                if isinstance(transformed, filters.Rejection):
                    self._reject(dep, event, str(transformed))
                    continue
                seen = transformed
            rejection = dep.filters.check(seen)
            if rejection is None:
                accepted.append((dep, seen))
                dep.latest = seen
                dep.accepted += 1
            else:
                self._reject(dep, event, str(rejection))
        if not accepted:
            self._spawn(msg.ack(), self._ack_name)
            return
        changes: dict[str, bytes | None] = {}
        plans: list[_Plan] = []
        raw: dict[int, bytes] = {}  # serialized once per distinct (transformed) event
        for dep, seen in accepted:
            for trig in self._by_dep.get(dep.name, ()):
                trig.state[dep.name] = seen
                if trig.max_ages:
                    self._expire(trig, changes)
                if trig.condition.evaluate(trig.state.keys()):
                    plan = self._fire(trig, changes, seen)
                    if plan is not None:
                        plans.append(plan)
                else:
                    data = raw.get(id(seen))
                    if data is None:
                        data = raw[id(seen)] = seen.to_bytes()
                    changes[f"state/{trig.name}/{dep.name}"] = data
                    trig.persisted.add(dep.name)
        self._spawn(self._settle(msg, changes, plans), self._settle_name)

    def _fire(
        self, trig: _Trigger, changes: dict[str, bytes | None], event: events.Event
    ) -> _Plan | None:
        """Decide one firing: key it, consume the condition state, record it if needed."""
        contributing = {n: trig.state[n] for n in trig.condition.contributing(trig.state.keys())}
        key = trigger_key(sensor=self.name, trigger=trig.name, contributing=contributing)
        for dep_name in trig.persisted:
            changes[f"state/{trig.name}/{dep_name}"] = None
        trig.state.clear()
        trig.persisted.clear()
        if key in self._pending:
            return None  # the same events are already firing this trigger
        recorded = any(e is not event for e in contributing.values())
        if recorded:
            record = {
                "key": key,
                "trigger": trig.name,
                "events": {n: e.to_dict() for n, e in contributing.items()},
                "at": time.time(),
            }
            changes[f"firing/{key}"] = orjson.dumps(record)
        firing = triggers_base.Firing(
            key=key, sensor=self.name, trigger=trig.name, events=contributing
        )
        return self._plan(trig, firing, recorded=recorded)

    def _plan(self, trig: _Trigger, firing: triggers_base.Firing, *, recorded: bool) -> _Plan:
        plan = self._pending[firing.key] = _Plan(trig, firing, recorded)
        if recorded:
            for e in firing.events.values():
                self._consumed[e.id] = firing.key
        return plan

    def _reject(self, dep: _Dependency, event: events.Event, reason: str) -> None:
        dependency = dep.name
        dep.rejected += 1
        dep.filtered.inc()
        self.rejections.append(RejectedEvent(time.time(), dependency, event.id, reason))
        if log.isEnabledFor(logging.DEBUG):
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
    def _spawn(self, work: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.create_task(work, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _settle(
        self, msg: bus_base.Message, changes: dict[str, bytes | None], plans: list[_Plan]
    ) -> None:
        """Persist, fire, ack, forget: one task per message, in that order."""
        try:
            if changes:
                await self._store.write(changes)
        except errors.BusError as exc:
            # Not durable: leave the message for redelivery rather than act on lost state.
            log.error("sensor %s could not persist state: %s", self.name, exc)
            for plan in plans:
                self._finish(plan, cancelled=True)
            await msg.nak(delay=1.0)
            return
        if len(plans) == 1:
            await self._run(plans[0])
        elif plans:
            await asyncio.gather(*(self._run(p) for p in plans))
        await msg.ack()
        recorded = [p for p in plans if p.recorded]
        if recorded:
            await self._forget(recorded)

    async def _resume(self, plan: _Plan) -> None:
        await self._run(plan)
        await self._forget([plan])

    async def _run(self, plan: _Plan) -> None:
        try:
            await self._execute(plan.trigger, plan.firing)
        except asyncio.CancelledError:
            # Shutting down: the record (or the unacknowledged message) brings it back.
            self._finish(plan, cancelled=True)
            raise
        self._finish(plan, cancelled=False)

    def _finish(self, plan: _Plan, *, cancelled: bool) -> None:
        self._pending.pop(plan.firing.key, None)
        fut = plan.done
        if fut is not None and not fut.done():
            if cancelled:
                fut.cancel()
            else:
                fut.set_result(None)

    async def _forget(self, plans: list[_Plan]) -> None:
        """Drop the records of finished firings, after their message's ack.

        In the embedded bus the ack and these deletes share a commit batch; elsewhere a lost
        delete only means a resumed firing with the same key, which its effect absorbs.
        """
        if not plans:
            return
        for plan in plans:
            for e in plan.firing.events.values():
                if self._consumed.get(e.id) == plan.firing.key:
                    del self._consumed[e.id]
        with contextlib.suppress(errors.BusError):
            await self._store.write({f"firing/{p.firing.key}": None for p in plans})

    async def _ack_when_done(self, msg: bus_base.Message, key: str) -> None:
        plan = self._pending.get(key)
        if plan is not None:
            fut = plan.done
            if fut is None:
                fut = plan.done = asyncio.get_running_loop().create_future()
            await asyncio.wait([fut])
            if fut.cancelled():
                return  # shutting down: the message is redelivered with the record
        await msg.ack()

    async def _execute(self, trig: _Trigger, firing: triggers_base.Firing) -> None:
        """Fire within the rate limit and retryStrategy; when it fails for good, the DLQ."""
        started = time.monotonic()
        if trig.limiter is not None:
            await trig.limiter.acquire()
        failure = await executing.attempts(
            trig.main, firing, sleep=self._sleep, retried=trig.retried
        )
        if failure is None:
            trig.seconds.observe(time.monotonic() - started)
            trig.fired.inc()
            self.fired_total += 1
            self.last_fired = now = time.time()
            newest = max(e.time for e in firing.events.values())
            trig.event_to_fire.observe(max(0.0, now - newest.timestamp()))
            if log.isEnabledFor(logging.DEBUG):
                log.debug("trigger fired", extra=executing.log_fields(firing))
            return
        trig.failed.inc()
        self.failed_total += 1
        log.error("trigger failed: %s", failure, extra=executing.log_fields(firing))
        if trig.dlq is None:
            return
        # Its own key: the DLQ target may dedupe too, and must not confuse the two effects.
        dlq_firing = dataclasses.replace(
            firing, key=hashlib.sha256(f"{firing.key}/dlq".encode()).hexdigest()[:32]
        )
        dlq_failure = await executing.attempts(
            trig.dlq, dlq_firing, sleep=self._sleep, retried=trig.retried
        )
        if dlq_failure is None:
            log.warning(
                "trigger failed; sent to its dlqTrigger", extra=executing.log_fields(dlq_firing)
            )
        else:
            log.error(
                "dlqTrigger failed too: %s", dlq_failure, extra=executing.log_fields(dlq_firing)
            )

    # -- condition state over time ----------------------------------------------------------
    def _expire(self, trig: _Trigger, changes: dict[str, bytes | None]) -> None:
        """Drop accepted events older than their dependency's maxAge (by event time)."""
        now = self._clock()
        for dep_name, max_age in trig.max_ages.items():
            event = trig.state.get(dep_name)
            if event is not None and now - event.time.timestamp() > max_age:
                del trig.state[dep_name]
                if dep_name in trig.persisted:
                    trig.persisted.discard(dep_name)
                    changes[f"state/{trig.name}/{dep_name}"] = None

    async def _reset_loop(self, trig: _Trigger) -> None:
        """`conditionsReset.byTime`: clear the trigger's partial state at each cron instant."""
        while True:
            now = datetime.datetime.fromtimestamp(self._clock(), datetime.UTC)
            upcoming = [s.next_after(now) for s in trig.resets]
            instants = [i for i in upcoming if i is not None]
            if not instants:
                return
            await self._sleep(max(0.0, min(instants).timestamp() - self._clock()))
            if trig.state:
                log.info(
                    "conditions reset: dropping partial state of %s",
                    sorted(trig.state), extra={"sensor": self.name, "trigger": trig.name},
                )  # fmt: skip
            changes: dict[str, bytes | None] = {
                f"state/{trig.name}/{d}": None for d in trig.persisted
            }
            trig.state.clear()
            trig.persisted.clear()
            if changes:
                with contextlib.suppress(errors.BusError):
                    await self._store.write(changes)

    # -- introspection ------------------------------------------------------------------------
    def explain(self) -> dict[str, Any]:
        """Latest accepted event per dependency, recent rejections, conditions and their truth."""
        now = time.time()
        return {
            "sensor": self.name,
            "dependencies": {
                name: {
                    "gateway": dep.gateway,
                    "event": dep.event,
                    "accepted": dep.accepted,
                    "rejected": dep.rejected,
                    "latest": None
                    if dep.latest is None
                    else {
                        "id": dep.latest.id,
                        "time": dep.latest.time.isoformat(),
                        "age_seconds": round(now - dep.latest.time.timestamp(), 3),
                    },
                }
                for name, dep in self._deps.items()
            },
            "rejected": [dataclasses.asdict(r) for r in self.rejections],
            "triggers": {
                t.name: {
                    "condition": t.condition.explain(t.state.keys()),
                    "satisfied": t.condition.evaluate(t.state.keys()),
                    "waiting_for": sorted(t.dependencies - t.state.keys()),
                }
                for t in self._triggers
            },
        }
