"""The calendar gateway: events at the instants of a cron schedule or a fixed interval.

Argo Events' `calendar` source, made safe to run twice and to restart. Three choices follow
from "two replicas or a restart never produce two different events for one instant":

- **An instant is the identity.** The event id is a hash of (gateway, event name, scheduled
  instant in UTC), `eventTime` and the CloudEvents `time` are the *scheduled* instant (Argo
  puts the timer's actual firing time there, as Go's `time.String()`; here it is RFC 3339 in the
  spec's timezone, e.g. `2024-03-10T03:00:00-04:00`). Replicas build byte-identical events and
  the bus drops the second publish of an id (JetStream `Nats-Msg-Id` dedupe). Intervals are
  anchored at the Unix epoch, not at process start as in Argo, so replicas agree on them too.
- **The last fired instant is durable.** It is written to the gateway's state store (key
  `last`) only after `dispatch` returned, i.e. once the event is durable. When the bus is down
  the same instant is retried with backoff; it is never skipped and `last` never runs ahead.
  A crash between publish and that write re-emits the instant with the same id on restart.
- **Catch-up is explicit.** On start, instants missed since `last` are handled by `catchUp`:
  `none` skips them, `latest` emits only the most recent, `all` emits every one (oldest first),
  each bounded by `maxDuration` (how far back) and `maxCount` (the most recent N). Argo's
  `persistence.catchup: {enabled, maxDuration}` is accepted and means `catchUp: all`. A gateway
  without `last` starts from now.

Time zones, DST and exclusion dates are the schedule's business: see `tripwire.schedules`,
which computes the instants without a clock; this module fires them.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import datetime
import hashlib
import logging
import zoneinfo
from collections.abc import Callable, Iterator
from typing import Annotated, ClassVar, Literal, Protocol

import pydantic

from gateways import base
from tripwire import backoff, errors, events, manifests, metrics, schedules

log = logging.getLogger(__name__)

KIND = "calendar"
LAST_KEY = "last"
DEFAULT_MAX_DURATION = 24 * 3600.0
DEFAULT_MAX_COUNT = 100

UTC = datetime.UTC
# Catch-up walks every missed instant; let other tasks run every this many.
_YIELD_EVERY = 1000

CatchUpMode = Literal["none", "latest", "all"]

# --- the spec ------------------------------------------------------------------------------------

ExclusionDate = Annotated[
    datetime.date, pydantic.BeforeValidator(schedules.exclusion_date, json_schema_input_type=str)
]


class CatchupPersistence(manifests.Model):
    """Argo Events' `persistence.catchup`; `enabled: true` means `catchUp: all`."""

    enabled: bool = False
    max_duration: manifests.Duration | None = pydantic.Field(
        default=None, description="How far back to catch up; the entry's maxDuration if unset."
    )


class ConfigMapPersistence(manifests.Model):
    """Argo Events' `persistence.configMap`: accepted, not used (`last` is in the state store)."""

    name: str
    create_if_not_exist: bool = False


class CalendarPersistence(manifests.Model):
    """Argo Events' `persistence` block."""

    catchup: CatchupPersistence | None = None
    config_map: ConfigMapPersistence | None = None


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class CatchUpPolicy:
    mode: CatchUpMode
    max_duration: float
    max_count: int


class CalendarSpec(manifests.Model):
    """One calendar entry: Argo Events' `calendar` fields plus `catchUp` bounds."""

    schedule: str | None = pydantic.Field(
        default=None,
        description="Cron: 5 fields (minute hour day-of-month month day-of-week), 6 with leading"
        " seconds, or @yearly/@monthly/@weekly/@daily/@hourly; evaluated in `timezone`.",
    )
    interval: manifests.Duration | None = pydantic.Field(
        default=None,
        description="Fire every this long (e.g. 10m), aligned to the Unix epoch; at least 1s.",
    )
    timezone: str = pydantic.Field(default="UTC", description="IANA time zone of the schedule.")
    exclusion_dates: list[ExclusionDate] = pydantic.Field(
        default_factory=list,
        description="Local dates (YYYY-MM-DD, or RFC 3339 timestamps) on which nothing fires.",
    )
    metadata: dict[str, str] = pydantic.Field(
        default_factory=dict, description="Copied into every event's data.metadata."
    )
    catch_up: CatchUpMode = pydantic.Field(
        default="none",
        description="Instants missed while down, on start: none, latest (the most recent only)"
        " or all (oldest first).",
    )
    max_duration: manifests.Duration = pydantic.Field(
        default=DEFAULT_MAX_DURATION, description="Catch up at most this far back (default 24h)."
    )
    max_count: int = pydantic.Field(
        default=DEFAULT_MAX_COUNT, ge=1, description="Catch up at most this many instants."
    )
    persistence: CalendarPersistence | None = pydantic.Field(
        default=None, description="Argo Events' form of catch-up; catchup.enabled = catchUp all."
    )

    @pydantic.field_validator("schedule")
    @classmethod
    def _schedule(cls, value: str | None) -> str | None:
        if value is None:
            return None
        schedules.compile_cron(value)
        return " ".join(value.split())

    @pydantic.field_validator("interval")
    @classmethod
    def _interval(cls, value: float | None) -> float | None:
        if value is not None:
            if value < 1.0:
                raise ValueError("must be at least 1s")
            schedules.apscheduler_triggers()  # fail at load, not at start, without the extra
        return value

    @pydantic.field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {value!r}: use an IANA name such as Europe/Berlin or UTC"
            ) from None
        return value

    @pydantic.model_validator(mode="after")
    def _one_source_of_instants(self) -> CalendarSpec:
        if (self.schedule is None) == (self.interval is None):
            problem = "set exactly one of schedule and interval"
            where: manifests.Location = ("interval",) if self.interval is not None else ()
            raise manifests.FieldError([(where, problem)])
        catchup = self.persistence.catchup if self.persistence is not None else None
        if catchup is not None and self.model_fields_set & {"catch_up", "max_duration"}:
            raise manifests.FieldError(
                [
                    (
                        ("persistence", "catchup"),
                        "use either catchUp/maxDuration or Argo's persistence.catchup, not both",
                    )
                ]
            )
        return self

    def zone(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.timezone)

    def catch_up_policy(self) -> CatchUpPolicy:
        """`catchUp`/`maxDuration`/`maxCount`, or what Argo's `persistence.catchup` means."""
        catchup = self.persistence.catchup if self.persistence is not None else None
        if catchup is None:
            return CatchUpPolicy(
                mode=self.catch_up, max_duration=self.max_duration, max_count=self.max_count
            )
        return CatchUpPolicy(
            mode="all" if catchup.enabled else "none",
            max_duration=(
                catchup.max_duration if catchup.max_duration is not None else self.max_duration
            ),
            max_count=self.max_count,
        )

    def calendar(self) -> schedules.Calendar:
        zone = self.zone()
        schedule: schedules.Schedule
        if self.schedule is not None:
            schedule = schedules.CronSchedule(expression=self.schedule, zone=zone)
        else:
            assert self.interval is not None  # the model validator guarantees one of them
            schedule = schedules.IntervalSchedule(seconds=self.interval)
        return schedules.Calendar(
            schedule=schedule, zone=zone, excluded=frozenset(self.exclusion_dates)
        )


# --- clocks --------------------------------------------------------------------------------------


class Clock(Protocol):
    """Where the loop reads the time and waits; tests pass a fake that jumps."""

    def now(self) -> datetime.datetime:
        """The current time, aware, in UTC."""
        ...

    async def sleep_until(self, when: datetime.datetime) -> None:
        """Return at or after `when` (at once if it has passed)."""
        ...


class SystemClock:
    """The wall clock. Sleeps in naps of at most `max_nap` seconds: asyncio sleeps on the
    monotonic clock, so a wall-clock step (NTP, a suspended VM) is noticed within one nap."""

    def __init__(self, *, max_nap: float = 30.0) -> None:
        self._max_nap = max_nap

    def now(self) -> datetime.datetime:
        return datetime.datetime.now(UTC)

    async def sleep_until(self, when: datetime.datetime) -> None:
        # A deadline on the wall clock, not a wait for a flag: ASYNC110 does not apply.
        while (delay := (when - self.now()).total_seconds()) > 0:  # noqa: ASYNC110
            await asyncio.sleep(min(delay, self._max_nap))


# --- the source ----------------------------------------------------------------------------------


def event_id(*, gateway: str, name: str, instant: datetime.datetime) -> str:
    """The id of the event of one scheduled instant: equal on every replica and restart."""
    stamp = instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return hashlib.sha256(f"{gateway}\n{name}\n{stamp}".encode()).hexdigest()[:32]


def _encode(instant: datetime.datetime) -> bytes:
    return instant.astimezone(UTC).isoformat().encode()


def _decode(raw: bytes) -> datetime.datetime:
    instant = datetime.datetime.fromisoformat(raw.decode())
    if instant.tzinfo is None:
        instant = instant.replace(tzinfo=UTC)
    return instant.astimezone(UTC)


def _retry_delays() -> Iterator[float]:
    return backoff.delays(duration=0.5, factor=2.0, jitter=0.1, cap=30.0)


class CalendarSource:
    """One calendar entry: catch up on start, then fire each instant of the schedule."""

    spec_model: ClassVar[type[pydantic.BaseModel]] = CalendarSpec

    def __init__(
        self,
        *,
        spec: CalendarSpec,
        context: base.SourceContext,
        clock: Clock | None = None,
        retry_delays: Callable[[], Iterator[float]] = _retry_delays,
    ) -> None:
        self._spec = spec
        self._context = context
        self._calendar = spec.calendar()
        self._policy = spec.catch_up_policy()
        self._clock: Clock = clock if clock is not None else SystemClock()
        self._retry_delays = retry_delays
        self._where = f"calendar {context.gateway}/{context.name}"
        self._task: asyncio.Task[None] | None = None
        # Set once the catch-up instants are durable and the loop waits for the schedule.
        self.caught_up = asyncio.Event()
        labels = {"gateway": context.gateway, "event": context.name}
        self._received = metrics.EVENTS_RECEIVED.labels(**labels)
        self._published = metrics.EVENTS_PUBLISHED.labels(**labels)
        self._failed = metrics.EVENTS_FAILED.labels(reason="bus_unavailable", **labels)

    @property
    def spec(self) -> CalendarSpec:
        return self._spec

    async def start(self, stack: contextlib.AsyncExitStack) -> None:
        """Read `last`, plan the catch-up, then start the loop task; its cancel goes on `stack`."""
        try:
            raw = await self._context.store.get(LAST_KEY)
        except errors.BusError as exc:
            raise errors.SourceError(f"{self._where}: cannot read the last instant: {exc}") from exc
        last: datetime.datetime | None = None
        if raw is not None:
            try:
                last = _decode(raw)
            except ValueError:
                log.warning("%s: ignoring unreadable last instant %r", self._where, raw)
        now = self._clock.now()
        pending = await self._missed(last, now)
        cursor = now if last is None else max(now, last)
        self._task = base.start_loop(
            stack,
            self._run(pending, cursor),
            name=f"calendar-{self._context.gateway}-{self._context.name}",
            where=self._where,
        )

    async def _missed(
        self, last: datetime.datetime | None, now: datetime.datetime
    ) -> list[datetime.datetime]:
        """The instants to emit before following the schedule, oldest first."""
        policy = self._policy
        if last is None:
            log.info("%s: no last instant, starting from now", self._where)
            return []
        if policy.mode == "none":
            log.info("%s: last fired %s; catchUp none", self._where, last.isoformat())
            return []
        start = max(last, now - datetime.timedelta(seconds=policy.max_duration))
        keep = 1 if policy.mode == "latest" else policy.max_count
        chosen: collections.deque[datetime.datetime] = collections.deque(maxlen=keep)
        missed = 0
        for missed, instant in enumerate(self._calendar.between(start, now), start=1):
            chosen.append(instant)
            if missed % _YIELD_EVERY == 0:
                await asyncio.sleep(0)
        log.info(
            "%s: last fired %s; %d instant(s) missed within maxDuration, catchUp %s emits %d",
            self._where,
            last.isoformat(),
            missed,
            policy.mode,
            len(chosen),
        )
        return list(chosen)

    async def _run(self, pending: list[datetime.datetime], cursor: datetime.datetime) -> None:
        for missed in pending:
            await self._fire(missed)
        self.caught_up.set()
        while True:
            instant = self._calendar.next_after(cursor)
            if instant is None:
                log.warning("%s: the schedule has no further instant", self._where)
                return
            await self._clock.sleep_until(instant)
            await self._fire(instant)
            cursor = instant

    def event(self, instant: datetime.datetime) -> events.Event:
        """The event of one instant; identical wherever and whenever it is built."""
        local = instant.astimezone(self._calendar.zone)
        event = self._context.event(
            {"eventTime": local.isoformat(), "metadata": dict(self._spec.metadata)},
            id=event_id(gateway=self._context.gateway, name=self._context.name, instant=instant),
        )
        event.time = instant.astimezone(UTC)
        return event

    async def _fire(self, instant: datetime.datetime) -> None:
        """Dispatch the instant's event, then record it as `last`; retry both until durable."""
        event = self.event(instant)
        self._received.inc()
        for attempt, delay in enumerate(self._retry_delays(), start=1):
            try:
                await self._context.dispatch(event)
                await self._context.store.write({LAST_KEY: _encode(instant)})
            except errors.BusError as exc:
                self._failed.inc()
                log.warning(
                    "%s: instant %s (event %s) not durable, attempt %d, retrying in %.1fs: %s",
                    self._where,
                    instant.isoformat(),
                    event.id,
                    attempt,
                    delay,
                    exc,
                )
                await self._clock.sleep_until(self._clock.now() + datetime.timedelta(seconds=delay))
                continue
            self._published.inc()
            log.info("%s: fired %s as event %s", self._where, instant.isoformat(), event.id)
            return


__all__ = [
    "KIND",
    "LAST_KEY",
    "CalendarSource",
    "CalendarSpec",
    "Clock",
    "SystemClock",
    "event_id",
]
