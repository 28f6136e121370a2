"""Schedules: the instants of a cron expression or a fixed interval, minus exclusion dates.

The calendar gateway (`gateways.calendar`) fires at these instants and sensors reset their
condition state at them (`conditionsReset`); this module only computes them, with no clock,
no I/O and no state, so the hard part (cron fields, time zones, DST) is tested with plain
datetimes and the loops that use it stay about delivery. It is core so that both may use it.

Time zones and DST. APScheduler's triggers are used as next-fire-time calculators only (the gateway
fires, with an injectable `Clock` so tests never sleep). With a real zone, APScheduler
3.11's `CronTrigger` returns non-normalized times in the spring-forward gap and cycles in the
fall-back overlap (`*/30` alternates 01:30 EDT / 01:00 EST forever), so cron fields are matched
on *wall-clock* time (a trigger in UTC, which has no transitions) and wall times are mapped to
instants here, with ISC cron's rules:

- a wall time repeated by a fall-back (01:30 in New York on the first Sunday of November)
  fires once, at its first occurrence;
- a wall time skipped by a spring-forward (02:30 in New York) fires once, at the instant the gap
  ends (03:00 local); several schedule times inside one gap still fire once. Argo's cron
  library skips such a day instead; a nightly job should not silently miss a day.

Exclusion dates are compared with the local date (in `timezone`) of each instant; an RFC 3339
timestamp excludes the date written in it, as in Argo.
"""

from __future__ import annotations

import contextlib
import datetime
import re
from collections.abc import Iterator
from typing import Any, Protocol

from tripwire import errors

__all__ = [
    "Calendar",
    "CronSchedule",
    "IntervalSchedule",
    "Schedule",
    "apscheduler_triggers",
    "compile_cron",
    "exclusion_date",
]

UTC = datetime.UTC
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=UTC)
_TICK = datetime.timedelta(microseconds=1)
# A reference for the "does this schedule ever fire" check: a leap year, so `29 2` passes.
_REFERENCE = datetime.datetime(2000, 1, 1, tzinfo=UTC)
# Wall times one search may skip (a second-resolution schedule across a fall-back overlap
# skips 3600); far above any real case, it only turns a bug into an error instead of a hang.
_MAX_STEPS = 100_000

_DESCRIPTORS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_FIELDS = ("second", "minute", "hour", "day-of-month", "month", "day-of-week")
_APS_FIELDS = ("second", "minute", "hour", "day", "month", "day_of_week")
# Characters each cron field may use (names in month and day-of-week; `?` in the day fields);
# APScheduler's own extensions (`last`, `2nd mon`) stay out so expressions port to other crons.
_ALLOWED = {
    "second": re.compile(r"^[0-9*,/-]+$"),
    "minute": re.compile(r"^[0-9*,/-]+$"),
    "hour": re.compile(r"^[0-9*,/-]+$"),
    "day": re.compile(r"^(\?|[0-9*,/-]+)$"),
    "month": re.compile(r"^[0-9A-Za-z*,/-]+$"),
    "day_of_week": re.compile(r"^[0-9A-Za-z*?,/-]+$"),
}
_WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")  # cron numbering: 0 = Sunday


def apscheduler_triggers() -> Any:
    """`apscheduler.triggers`, imported on first use: an optional dependency (extra `calendar`)."""
    try:
        import apscheduler.triggers.cron
        import apscheduler.triggers.interval
    except ImportError:
        raise ValueError(
            "the calendar gateway needs APScheduler: pip install 'tripwire[calendar]'"
        ) from None
    return apscheduler.triggers


def _weekday(text: str) -> int:
    """A cron day-of-week number (0-7, 7 = Sunday) or name (`sun`...`sat`)."""
    lowered = text.lower()
    if lowered in _WEEKDAYS:
        return _WEEKDAYS.index(lowered)
    if text.isdigit() and int(text) <= 7:
        return int(text)
    raise ValueError(f"{text!r} is not a weekday (0-7 or sun-sat)")


def _weekdays(field: str) -> str:
    """A cron day-of-week field as APScheduler weekday names.

    APScheduler 3 numbers weekdays from Monday = 0 while cron uses Sunday = 0 (its
    `from_crontab` keeps the mismatch), so numbers, ranges and steps are expanded here.
    """
    days: set[int] = set()
    for item in field.split(","):
        spec, slash, step_text = item.partition("/")
        step = 1
        if slash:
            if not step_text.isdigit() or int(step_text) == 0:
                raise ValueError(f"step {step_text!r} in {item!r} must be a positive integer")
            step = int(step_text)
        if spec in ("*", "?"):
            low, high = 0, 6
        elif "-" in spec:
            first, _, last = spec.partition("-")
            low, high = _weekday(first), _weekday(last)
            if low > high:
                raise ValueError(f"range {spec!r} starts after it ends")
        elif spec:
            low = _weekday(spec)
            high = 6 if slash else low  # `N/S` is `N-6/S`, as in Argo's cron library
        else:
            raise ValueError(f"empty item in {field!r}")
        days.update(day % 7 for day in range(low, high + 1, step))
    order = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
    return ",".join(name for name in order if _WEEKDAYS.index(name) in days)


def compile_cron(expression: str) -> tuple[Any, ...]:
    """APScheduler CronTriggers in UTC that match `expression` on wall-clock time.

    Five fields (minute hour day-of-month month day-of-week), or six with leading seconds, or a
    descriptor (`@daily`...). As in cron, when both day-of-month and day-of-week are restricted
    a day matching either fires (two triggers); APScheduler alone would require both.
    Raises ValueError with a reason a YAML author can act on.
    """
    text = " ".join(expression.split())
    if not text:
        raise ValueError("must not be empty")
    if text.startswith("@"):
        if text.lower().startswith("@every"):
            raise ValueError("@every is not supported in schedule: use the interval field")
        found = _DESCRIPTORS.get(text.lower())
        if found is None:
            raise ValueError(f"unknown descriptor {text!r}; use one of {', '.join(_DESCRIPTORS)}")
        text = found
    parts = text.split(" ")
    if len(parts) == 5:
        parts.insert(0, "0")
    elif len(parts) != 6:
        raise ValueError(
            f"{text!r} has {len(parts)} fields; expected 5 (minute hour day-of-month month"
            " day-of-week) or 6 with leading seconds"
        )
    triggers = apscheduler_triggers()
    cron = triggers.cron.CronTrigger
    values: dict[str, str] = {}
    for label, name, raw in zip(_FIELDS, _APS_FIELDS, parts, strict=True):
        if not _ALLOWED[name].match(raw):
            raise ValueError(f"{label} field {raw!r} uses characters cron does not allow")
        try:
            value = _weekdays(raw) if name == "day_of_week" else raw.replace("?", "*")
            cron(**{name: value}, timezone=UTC)
        except ValueError as exc:
            raise ValueError(f"{label} field {raw!r}: {exc}") from None
        values[name] = value
    restricted_day = parts[3] not in ("*", "?")
    restricted_weekday = parts[5] not in ("*", "?")
    compiled: tuple[Any, ...]
    if restricted_day and restricted_weekday:
        compiled = (
            cron(**{**values, "day_of_week": "*"}, timezone=UTC),
            cron(**{**values, "day": "*"}, timezone=UTC),
        )
    else:
        compiled = (cron(**values, timezone=UTC),)
    if all(t.get_next_fire_time(None, _REFERENCE) is None for t in compiled):
        raise ValueError(f"{expression!r} never matches a date (such as 30 February)")
    return compiled


def _to_instant(wall: datetime.datetime, zone: datetime.tzinfo) -> datetime.datetime:
    """The UTC instant a local wall-clock time names (see the module docstring for DST)."""
    naive = wall.replace(tzinfo=None)
    first = naive.replace(tzinfo=zone, fold=0).astimezone(UTC)
    if first.astimezone(zone).replace(tzinfo=None) == naive:
        return first  # exists; fold=0 is the first occurrence when it is ambiguous
    # In a spring-forward gap, fold=0 reads the time with the offset from before the gap and
    # fold=1 with the one after: the transition lies between the two readings. Transitions
    # fall on whole seconds; find it by bisection.
    low = int(naive.replace(tzinfo=zone, fold=1).astimezone(UTC).timestamp())
    high = int(first.timestamp())
    later = first.astimezone(zone).utcoffset()
    while high - low > 1:
        middle = (low + high) // 2
        if datetime.datetime.fromtimestamp(middle, zone).utcoffset() == later:
            high = middle
        else:
            low = middle
    return datetime.datetime.fromtimestamp(high, UTC)


class Schedule(Protocol):
    def next_after(self, after: datetime.datetime) -> datetime.datetime | None:
        """The first instant strictly after `after` (aware), in UTC; None if there is none."""
        ...


class CronSchedule:
    """Cron fields matched on wall-clock time in `zone`, mapped to instants DST-correctly."""

    def __init__(self, *, expression: str, zone: datetime.tzinfo) -> None:
        self._triggers = compile_cron(expression)
        self._zone = zone

    def next_after(self, after: datetime.datetime) -> datetime.datetime | None:
        after = after.astimezone(UTC)
        # The wall-to-instant mapping is monotone (gaps collapse onto their end, overlaps read
        # as their first pass), so the first wall time past `after`'s maps to the answer, or,
        # inside a fall-back's second pass, to an instant not past `after` that we step over.
        wall = after.astimezone(self._zone).replace(tzinfo=UTC, fold=0)
        for _ in range(_MAX_STEPS):
            found = [t.get_next_fire_time(None, wall + _TICK) for t in self._triggers]
            candidates = [c for c in found if c is not None]
            if not candidates:
                return None
            wall = min(candidates)
            instant = _to_instant(wall, self._zone)
            if instant > after:
                return instant
        raise errors.SourceError(f"no instant after {after.isoformat()} in {_MAX_STEPS} steps")


class IntervalSchedule:
    """Every `seconds` of elapsed time, anchored at the Unix epoch (DST plays no part)."""

    def __init__(self, *, seconds: float) -> None:
        self._trigger = apscheduler_triggers().interval.IntervalTrigger(
            seconds=seconds, start_date=_EPOCH, timezone=UTC
        )

    def next_after(self, after: datetime.datetime) -> datetime.datetime | None:
        found: datetime.datetime | None = self._trigger.get_next_fire_time(None, after + _TICK)
        return None if found is None else found.astimezone(UTC)


class Calendar:
    """The instants of one calendar entry: a schedule minus exclusion dates. Pure, no clock."""

    def __init__(
        self, *, schedule: Schedule, zone: datetime.tzinfo, excluded: frozenset[datetime.date]
    ) -> None:
        self.schedule = schedule
        self.zone = zone
        self.excluded = excluded

    def next_after(self, after: datetime.datetime) -> datetime.datetime | None:
        instant = self.schedule.next_after(after)
        while instant is not None and instant.astimezone(self.zone).date() in self.excluded:
            instant = self.schedule.next_after(instant)
        return instant

    def between(
        self, start: datetime.datetime, end: datetime.datetime
    ) -> Iterator[datetime.datetime]:
        """Instants in (start, end], oldest first."""
        instant = self.next_after(start)
        while instant is not None and instant <= end:
            yield instant
            instant = self.next_after(instant)


def exclusion_date(value: object) -> datetime.date:
    """`YYYY-MM-DD`, or an RFC 3339 timestamp (Argo's form) whose written date is excluded."""
    if isinstance(value, datetime.datetime):  # YAML reads unquoted timestamps itself
        return value.date()
    if isinstance(value, datetime.date):
        return value
    if isinstance(value, str):
        text = value.strip()
        with contextlib.suppress(ValueError):
            if len(text) == 10:
                return datetime.date.fromisoformat(text)
            return datetime.datetime.fromisoformat(text).date()
    raise ValueError(f"expected a date YYYY-MM-DD or an RFC 3339 timestamp, got {value!r}")
