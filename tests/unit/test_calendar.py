"""The calendar gateway on a fake clock: no test waits for a real schedule.

`FakeClock.advance(to)` wakes every sleeper due on the way, in time order, and returns only
once the woken loops sleep again, so after it the events of every instant up to `to` are
dispatched. Instants are checked in local time of the spec's zone, which is what users write.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import itertools
import pathlib
import zoneinfo
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any

import pytest

from gateways import base, calendar
from gateways import manifest as gateway_manifest
from tripwire import errors, events, manifests, secrets
from tripwire.app import cli
from tripwire.bus import embedded

UTC = datetime.UTC
REPO = pathlib.Path(__file__).resolve().parents[2]
NEW_YORK = zoneinfo.ZoneInfo("America/New_York")
BERLIN = zoneinfo.ZoneInfo("Europe/Berlin")
TOKYO = zoneinfo.ZoneInfo("Asia/Tokyo")


def at(text: str, zone: datetime.tzinfo = UTC) -> datetime.datetime:
    """An aware datetime from `YYYY-MM-DD HH:MM[:SS]` read in `zone` (first occurrence)."""
    return datetime.datetime.fromisoformat(text).replace(tzinfo=zone)


# --- fakes -----------------------------------------------------------------------------------


class FakeClock:
    """`calendar.Clock` whose time only moves when a test says so."""

    def __init__(self, now: datetime.datetime) -> None:
        self._now = now.astimezone(UTC)
        self._sleepers: list[tuple[datetime.datetime, asyncio.Future[None]]] = []
        self._changed = asyncio.Event()

    def now(self) -> datetime.datetime:
        return self._now

    async def sleep_until(self, when: datetime.datetime) -> None:
        if when <= self._now:
            await asyncio.sleep(0)
            return
        entry = (when, asyncio.get_running_loop().create_future())
        self._sleepers.append(entry)
        self._changed.set()
        try:
            await entry[1]
        finally:
            self._sleepers.remove(entry)

    @property
    def sleeping(self) -> int:
        return sum(1 for _, fut in self._sleepers if not fut.done())

    def next_wakeup(self) -> datetime.datetime | None:
        return min((when for when, fut in self._sleepers if not fut.done()), default=None)

    async def wait_sleeping(self, count: int = 1) -> None:
        """Until `count` tasks sleep on this clock (bounded: a stuck loop fails the test)."""
        async with asyncio.timeout(5):
            while self.sleeping < count:
                self._changed.clear()
                await self._changed.wait()

    def jump(self, to: datetime.datetime) -> None:
        """Set the time to `to` and wake every sleeper due by then (they run on the next await)."""
        self._now = max(self._now, to.astimezone(UTC))
        for when, fut in self._sleepers:
            if when <= self._now and not fut.done():
                fut.set_result(None)

    async def advance(self, to: datetime.datetime, *, sleepers: int = 1) -> None:
        """Move to `to`, waking each sleeper at its time and letting it run until it sleeps."""
        while True:
            due = [when for when, fut in self._sleepers if not fut.done() and when <= to]
            if not due:
                break
            self.jump(min(due))
            await self.wait_sleeping(sleepers)
        self.jump(to)


class MemoryStore:
    """`Store` in a dict; `fail_writes` makes the next writes raise BusUnavailableError."""

    def __init__(self, data: Mapping[str, bytes] | None = None) -> None:
        self.data = dict(data or {})
        self.fail_writes = 0

    async def get(self, key: str) -> bytes | None:
        return self.data.get(key)

    async def scan(self, prefix: str = "") -> list[tuple[str, bytes]]:
        return sorted((k, v) for k, v in self.data.items() if k.startswith(prefix))

    async def write(self, changes: Mapping[str, bytes | None]) -> None:
        if self.fail_writes:
            self.fail_writes -= 1
            raise errors.BusUnavailableError("kv down")
        for key, value in changes.items():
            if value is None:
                self.data.pop(key, None)
            else:
                self.data[key] = value

    def last(self) -> datetime.datetime | None:
        raw = self.data.get(calendar.LAST_KEY)
        return None if raw is None else datetime.datetime.fromisoformat(raw.decode())


class Recorder:
    """`dispatch` fake: records accepted events and every attempt; `failures` raise first."""

    def __init__(self) -> None:
        self.events: list[events.Event] = []
        self.attempts: list[str] = []
        self.failures = 0

    async def __call__(self, event: events.Event) -> None:
        self.attempts.append(event.id)
        if self.failures:
            self.failures -= 1
            raise errors.BusUnavailableError("bus down")
        self.events.append(event)

    def times(self, zone: datetime.tzinfo = UTC) -> list[str]:
        """Event times in `zone`, as `YYYY-MM-DD HH:MM` (+ offset when not UTC)."""
        out = []
        for event in self.events:
            local = event.time.astimezone(zone)
            stamp = local.strftime("%Y-%m-%d %H:%M")
            out.append(stamp if zone is UTC else f"{stamp}{local.strftime('%z')}")
        return out


def spec(**fields: Any) -> calendar.CalendarSpec:
    return calendar.CalendarSpec.model_validate(fields)


def context(
    *, dispatch: base.Dispatch, store: Any, gateway: str = "clock", name: str = "nightly"
) -> base.SourceContext:
    return base.SourceContext(
        gateway=gateway,
        name=name,
        kind=calendar.KIND,
        dispatch=dispatch,
        store=store,
        secrets=secrets.LocalResolver(),
    )


def fixed_delays(seconds: float = 10.0) -> Iterator[float]:
    return itertools.repeat(seconds)


def source(
    fields: Mapping[str, Any],
    *,
    clock: FakeClock,
    dispatch: base.Dispatch,
    store: Any,
    name: str = "nightly",
) -> calendar.CalendarSource:
    return calendar.CalendarSource(
        spec=spec(**fields),
        context=context(dispatch=dispatch, store=store, name=name),
        clock=clock,
        retry_delays=fixed_delays,
    )


@contextlib.asynccontextmanager
async def running(*sources: calendar.CalendarSource) -> AsyncIterator[None]:
    async with contextlib.AsyncExitStack() as stack:
        for each in sources:
            await each.start(stack)
        yield


async def run_until(
    fields: Mapping[str, Any],
    *,
    start: datetime.datetime,
    end: datetime.datetime,
    store: MemoryStore | None = None,
) -> Recorder:
    """Every event a source with `fields` dispatches from `start` to `end` (fake time)."""
    clock = FakeClock(start)
    recorder = Recorder()
    src = source(fields, clock=clock, dispatch=recorder, store=store or MemoryStore())
    async with running(src):
        await clock.wait_sleeping()
        await clock.advance(end)
    return recorder


# --- validation ------------------------------------------------------------------------------

GATEWAY = """\
apiVersion: tripwire.dev/v1alpha1
kind: Gateway
metadata: {{name: clock}}
spec:
  calendar:
    nightly: {entry}
"""


def load_problems(entry: str) -> list[str]:
    """Problems `tripwire validate` reports for one calendar entry, as `path: message`."""
    (doc,) = manifests.parse(GATEWAY.format(entry=entry), file="g.yaml")
    try:
        manifests.validate(doc, gateway_manifest.model())
    except errors.ManifestError as exc:
        return [f"{p.path}: {p.message}" for p in exc.problems]
    return []


FIELD = "spec.calendar.nightly"


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ("{schedule: '* * *'}", f"{FIELD}.schedule: '* * *' has 3 fields; expected 5"),
        ("{schedule: '0 0 0 * * * *'}", f"{FIELD}.schedule: '0 0 0 * * * *' has 7 fields"),
        ("{schedule: '70 * * * *'}", f"{FIELD}.schedule: minute field '70'"),
        ("{schedule: '0 25 * * *'}", f"{FIELD}.schedule: hour field '25'"),
        ("{schedule: '0 0 * * 8'}", f"{FIELD}.schedule: day-of-week field '8'"),
        ("{schedule: '0 0 * * fri-mon'}", "range 'fri-mon' starts after it ends"),
        ("{schedule: '0 0 L * *'}", "day-of-month field 'L' uses characters cron does not"),
        ("{schedule: '*/0 * * * *'}", f"{FIELD}.schedule: minute field '*/0'"),
        ("{schedule: '0 0 30 2 *'}", "never matches a date"),
        ("{schedule: '@every 5m'}", "use the interval field"),
        ("{schedule: '@often'}", "unknown descriptor '@often'"),
        ("{schedule: ''}", f"{FIELD}.schedule: must not be empty"),
        ("{schedule: '0 2 * * *', timezone: Mars/Olympus}", f"{FIELD}.timezone: unknown time"),
        ("{schedule: '0 2 * * *', timezone: ''}", f"{FIELD}.timezone: unknown time zone"),
        ("{}", f"{FIELD}: set exactly one of schedule and interval"),
        ("{schedule: '0 2 * * *', interval: 1h}", f"{FIELD}.interval: set exactly one"),
        ("{interval: 500ms}", f"{FIELD}.interval: must be at least 1s"),
        ("{interval: soon}", f"{FIELD}.interval: 'soon' is not a duration"),
        ("{interval: 1h, exclusionDates: [tomorrow]}", f"{FIELD}.exclusionDates[0]: expected"),
        ("{interval: 1h, catchUp: some}", f"{FIELD}.catchUp: expected one of"),
        ("{interval: 1h, maxCount: 0}", f"{FIELD}.maxCount: expected a number >= 1"),
        ("{interval: 1h, every: 2}", f"{FIELD}.every: unknown field"),
        (
            "{interval: 1h, catchUp: all, persistence: {catchup: {enabled: true}}}",
            f"{FIELD}.persistence.catchup: use either catchUp/maxDuration or Argo's",
        ),
    ],
)
def test_invalid_entries_are_reported_at_their_field(entry: str, expected: str) -> None:
    problems = load_problems(entry)
    assert any(expected in problem for problem in problems), problems


@pytest.mark.parametrize(
    "entry",
    [
        "{schedule: '0 2 * * *', timezone: Asia/Tokyo}",
        "{schedule: '*/20 * * * * *'}",  # six fields: leading seconds
        "{schedule: '@hourly'}",
        "{schedule: '@daily'}",
        "{schedule: '@weekly'}",
        "{schedule: '@monthly'}",
        "{schedule: '@yearly'}",
        "{schedule: '0 0 ? * MON-FRI'}",
        "{schedule: '0 0 29 2 *'}",  # leap days exist
        "{interval: 10s}",
        "{interval: 90}",
        "{interval: 1h, metadata: {team: ml}, catchUp: latest, maxDuration: 72h, maxCount: 3}",
        "{interval: 1h, persistence: {catchup: {enabled: true, maxDuration: 5m},"
        " configMap: {name: cm, createIfNotExist: true}}}",
    ],
)
def test_valid_entries_load(entry: str) -> None:
    assert load_problems(entry) == []


def test_exclusion_dates_take_the_date_as_written() -> None:
    loaded = spec(
        interval="1h",
        exclusionDates=[
            "2024-12-25",
            "2024-12-31T23:30:00-05:00",  # Argo's RFC 3339 form: 31 December, not 1 January
            datetime.date(2025, 1, 6),  # YAML reads unquoted dates itself
            datetime.datetime(
                2025, 2, 1, 23, 0, tzinfo=datetime.timezone(-datetime.timedelta(hours=5))
            ),
        ],
    )
    assert loaded.exclusion_dates == [
        datetime.date(2024, 12, 25),
        datetime.date(2024, 12, 31),
        datetime.date(2025, 1, 6),
        datetime.date(2025, 2, 1),
    ]


def test_argo_persistence_catchup_means_catch_up_all() -> None:
    argo = spec(interval="1m", persistence={"catchup": {"enabled": True, "maxDuration": "5m"}})
    assert argo.catch_up_policy() == calendar.CatchUpPolicy(
        mode="all", max_duration=300.0, max_count=calendar.DEFAULT_MAX_COUNT
    )
    disabled = spec(interval="1m", persistence={"catchup": {"enabled": False}})
    assert disabled.catch_up_policy().mode == "none"
    default = spec(interval="1m")
    assert default.catch_up_policy() == calendar.CatchUpPolicy(
        mode="none",
        max_duration=calendar.DEFAULT_MAX_DURATION,
        max_count=calendar.DEFAULT_MAX_COUNT,
    )


def test_registered_and_example_validates(capsys: pytest.CaptureFixture[str]) -> None:
    assert base.load("calendar") is calendar.CalendarSource
    assert cli.main(["validate", str(REPO / "examples" / "calendar")]) == 0
    assert "1 gateway(s)" in capsys.readouterr().out


# --- sequences -------------------------------------------------------------------------------


def instants(
    fields: Mapping[str, Any], *, after: datetime.datetime, count: int, zone: datetime.tzinfo
) -> list[str]:
    """The next `count` instants of a spec, as local ISO times in `zone`."""
    cal = spec(**fields).calendar()
    out = []
    current = after
    for _ in range(count):
        found = cal.next_after(current)
        assert found is not None
        assert found > current
        out.append(found.astimezone(zone).isoformat())
        current = found
    return out


def test_cron_weekdays_use_cron_numbering() -> None:
    # 1-5 is Monday to Friday in cron (APScheduler alone would read Tuesday to Saturday).
    got = instants(
        {"schedule": "0 9 * * 1-5"}, after=at("2024-01-05 12:00"), count=3, zone=UTC
    )  # a Friday
    assert got == [
        "2024-01-08T09:00:00+00:00",
        "2024-01-09T09:00:00+00:00",
        "2024-01-10T09:00:00+00:00",
    ]
    sundays = instants({"schedule": "0 0 * * 0"}, after=at("2024-01-01"), count=2, zone=UTC)
    assert sundays == instants({"schedule": "0 0 * * 7"}, after=at("2024-01-01"), count=2, zone=UTC)
    assert sundays == ["2024-01-07T00:00:00+00:00", "2024-01-14T00:00:00+00:00"]
    stepped = instants({"schedule": "0 0 * * */3"}, after=at("2024-01-06"), count=3, zone=UTC)
    assert stepped == [  # Sunday, Wednesday, Saturday
        "2024-01-07T00:00:00+00:00",
        "2024-01-10T00:00:00+00:00",
        "2024-01-13T00:00:00+00:00",
    ]


def test_cron_day_of_month_or_day_of_week() -> None:
    # Both restricted: a day matching either fires, as in cron. 2024-01-13 is a Saturday.
    got = instants({"schedule": "0 0 13 * fri"}, after=at("2024-01-01"), count=4, zone=UTC)
    assert got == [
        "2024-01-05T00:00:00+00:00",
        "2024-01-12T00:00:00+00:00",
        "2024-01-13T00:00:00+00:00",
        "2024-01-19T00:00:00+00:00",
    ]


def test_cron_seconds_and_descriptors() -> None:
    got = instants(
        {"schedule": "*/20 * * * * *"}, after=at("2024-01-01 00:00:05"), count=4, zone=UTC
    )
    assert got == [
        "2024-01-01T00:00:20+00:00",
        "2024-01-01T00:00:40+00:00",
        "2024-01-01T00:01:00+00:00",
        "2024-01-01T00:01:20+00:00",
    ]
    hourly = instants({"schedule": "@hourly"}, after=at("2024-01-01 00:00"), count=2, zone=UTC)
    assert hourly == ["2024-01-01T01:00:00+00:00", "2024-01-01T02:00:00+00:00"]
    weekly = instants({"schedule": "@weekly"}, after=at("2024-01-01"), count=1, zone=UTC)
    assert weekly == ["2024-01-07T00:00:00+00:00"]  # Sunday midnight


def test_interval_is_aligned_to_the_epoch_and_ignores_dst() -> None:
    # Any replica, started at any time, computes the same instants: multiples of 6h since 1970.
    cases = {
        at("2024-03-10 05:50"): "2024-03-10T06:00:00+00:00",
        at("2024-03-10 06:00"): "2024-03-10T12:00:00+00:00",  # strictly after
        at("2024-03-10 00:00:01"): "2024-03-10T06:00:00+00:00",
    }
    for after, first in cases.items():
        got = instants(
            {"interval": "6h", "timezone": "America/New_York"}, after=after, count=3, zone=UTC
        )
        assert got[0] == first
        assert all(
            t[11:] in ("00:00:00+00:00", "06:00:00+00:00", "12:00:00+00:00", "18:00:00+00:00")
            for t in got
        )
    # Elapsed time: across spring-forward the local hour jumps, the spacing does not.
    got = instants(
        {"interval": "1h", "timezone": "America/New_York"},
        after=at("2024-03-10 05:30"),
        count=3,
        zone=NEW_YORK,
    )
    assert got == [
        "2024-03-10T01:00:00-05:00",
        "2024-03-10T03:00:00-04:00",
        "2024-03-10T04:00:00-04:00",
    ]


# --- DST -------------------------------------------------------------------------------------

SPRING = {NEW_YORK: "2024-03-10", BERLIN: "2024-03-31"}  # 02:00 -> 03:00 local
FALL = {NEW_YORK: ("2024-11-03", "01"), BERLIN: ("2024-10-27", "02")}  # this hour repeats


@pytest.mark.parametrize("zone", [NEW_YORK, BERLIN], ids=str)
async def test_spring_forward_fires_a_skipped_time_once_when_the_gap_ends(
    zone: zoneinfo.ZoneInfo,
) -> None:
    day = SPRING[zone]
    prev = (datetime.date.fromisoformat(day) - datetime.timedelta(days=1)).isoformat()
    nxt = (datetime.date.fromisoformat(day) + datetime.timedelta(days=1)).isoformat()
    recorder = await run_until(
        {"schedule": "30 2 * * *", "timezone": zone.key},
        start=at(f"{prev} 00:00", zone),
        end=at(f"{nxt} 12:00", zone),
    )
    times = [e.data["eventTime"] for e in recorder.events]
    after_gap = at(f"{day} 03:00", zone).isoformat()
    assert times[0].startswith(f"{prev}T02:30:00")
    assert times[1] == after_gap  # 02:30 does not exist: fired once, at 03:00 local
    assert times[2].startswith(f"{nxt}T02:30:00")
    assert len(times) == 3


@pytest.mark.parametrize("zone", [NEW_YORK, BERLIN], ids=str)
def test_spring_forward_gap_collapses_several_times_onto_one(zone: zoneinfo.ZoneInfo) -> None:
    day = SPRING[zone]
    got = instants(
        {"schedule": "*/30 * * * *", "timezone": zone.key},
        after=at(f"{day} 01:15", zone),
        count=4,
        zone=zone,
    )
    # 02:00 and 02:30 do not exist; together they fire once at 03:00, which fires once too.
    assert [t[11:16] for t in got] == ["01:30", "03:00", "03:30", "04:00"]


@pytest.mark.parametrize("zone", [NEW_YORK, BERLIN], ids=str)
async def test_fall_back_fires_an_ambiguous_time_once_at_its_first_occurrence(
    zone: zoneinfo.ZoneInfo,
) -> None:
    day, hour = FALL[zone]
    recorder = await run_until(
        {"schedule": f"30 {int(hour)} * * *", "timezone": zone.key},
        start=at(f"{day} 00:00", zone),
        end=at(f"{day} 23:00", zone),
    )
    assert len(recorder.events) == 1
    first = at(f"{day} {hour}:30", zone)  # fold=0: the first occurrence, summer time
    assert recorder.events[0].data["eventTime"] == first.isoformat()
    assert recorder.events[0].time == first.astimezone(UTC)


@pytest.mark.parametrize("zone", [NEW_YORK, BERLIN], ids=str)
def test_fall_back_repeated_hour_does_not_fire_twice(zone: zoneinfo.ZoneInfo) -> None:
    day, hour = FALL[zone]
    h = int(hour)
    expected = [f"{h:02d}:00", f"{h:02d}:30", f"{h + 1:02d}:00", f"{h + 1:02d}:30"]
    got = instants(
        {"schedule": "*/30 * * * *", "timezone": zone.key},
        after=at(f"{day} {h - 1:02d}:45", zone),
        count=4,
        zone=zone,
    )
    assert [t[11:16] for t in got] == expected
    # The first two are summer time, the rest winter time: strictly increasing, no repeat.
    offsets = [t[19:] for t in got]
    assert offsets[0] == offsets[1] != offsets[2] == offsets[3]
    # Started from inside the repeated hour (second pass), the next is after the overlap.
    inside = at(f"{day} {hour}:10", zone).replace(fold=1)
    resumed = instants(
        {"schedule": "*/30 * * * *", "timezone": zone.key}, after=inside, count=1, zone=zone
    )
    assert resumed[0][11:16] == f"{h + 1:02d}:00"


# --- events ----------------------------------------------------------------------------------


async def test_event_shape_and_id() -> None:
    start = at("2024-06-01 00:00", TOKYO)
    recorder = await run_until(
        {"schedule": "0 2 * * *", "timezone": "Asia/Tokyo", "metadata": {"purpose": "retrain"}},
        start=start,
        end=at("2024-06-01 03:00", TOKYO),
    )
    (event,) = recorder.events
    instant = at("2024-06-01 02:00", TOKYO)
    assert event.data == {
        "eventTime": "2024-06-01T02:00:00+09:00",
        "metadata": {"purpose": "retrain"},
    }
    assert event.time == instant.astimezone(UTC)
    assert (event.source, event.subject, event.type) == ("clock", "nightly", "calendar")
    assert event.id == calendar.event_id(gateway="clock", name="nightly", instant=instant)
    # The same instant from anywhere, in any zone, is the same id; another instant or entry is not.
    assert event.id == calendar.event_id(
        gateway="clock", name="nightly", instant=instant.astimezone(UTC)
    )
    assert event.id != calendar.event_id(
        gateway="clock", name="nightly", instant=instant + datetime.timedelta(seconds=1)
    )
    assert event.id != calendar.event_id(gateway="clock", name="other", instant=instant)


async def test_exclusion_dates_skip_local_dates() -> None:
    # 02:00 Tokyo is 17:00 UTC the day before: the *Tokyo* date is what is excluded.
    recorder = await run_until(
        {
            "schedule": "0 2 * * *",
            "timezone": "Asia/Tokyo",
            "exclusionDates": ["2024-06-02", "2024-06-04T10:00:00-07:00"],
        },
        start=at("2024-06-01 00:00", TOKYO),
        end=at("2024-06-05 12:00", TOKYO),
    )
    assert recorder.times(TOKYO) == [
        "2024-06-01 02:00+0900",
        "2024-06-03 02:00+0900",
        "2024-06-05 02:00+0900",
    ]


# --- catch-up after a 3-day outage ---------------------------------------------------------

LAST = at("2024-05-07 10:00")  # the last hourly instant fired before the outage
NOW = at("2024-05-10 10:30")  # three days later


async def catch_up(fields: Mapping[str, Any]) -> tuple[Recorder, MemoryStore, FakeClock]:
    """Start an hourly source at NOW whose store says it last fired at LAST."""
    store = MemoryStore({calendar.LAST_KEY: LAST.isoformat().encode()})
    clock = FakeClock(NOW)
    recorder = Recorder()
    src = source({"schedule": "0 * * * *", **fields}, clock=clock, dispatch=recorder, store=store)
    async with running(src):
        await clock.wait_sleeping()
        assert src.caught_up.is_set()
        # The loop waits for the next instant of the schedule, not for a missed one.
        assert clock.next_wakeup() == at("2024-05-10 11:00")
        caught = list(recorder.times())
        await clock.advance(at("2024-05-10 11:00"))
        assert recorder.times()[len(caught) :] == ["2024-05-10 11:00"]
        recorder.events[len(caught) :] = []
    return recorder, store, clock


async def test_catch_up_none_skips_the_outage() -> None:
    recorder, store, _ = await catch_up({"catchUp": "none"})
    assert recorder.times() == []
    assert store.last() == at("2024-05-10 11:00")


async def test_catch_up_latest_emits_the_most_recent_missed_instant() -> None:
    recorder, store, _ = await catch_up({"catchUp": "latest"})
    assert recorder.times() == ["2024-05-10 10:00"]
    assert store.last() == at("2024-05-10 11:00")


async def test_catch_up_latest_respects_max_duration() -> None:
    recorder, _, _ = await catch_up({"catchUp": "latest", "maxDuration": "20m"})
    assert recorder.times() == []  # 10:00 is 30 minutes old


async def test_catch_up_all_is_bounded_by_max_duration() -> None:
    recorder, _, _ = await catch_up({"catchUp": "all"})  # default maxDuration 24h
    times = recorder.times()
    assert len(times) == 24
    assert times[0] == "2024-05-09 11:00"
    assert times[-1] == "2024-05-10 10:00"
    assert times == sorted(times)


async def test_catch_up_all_whole_outage_oldest_first() -> None:
    recorder, _, _ = await catch_up({"catchUp": "all", "maxDuration": "96h"})
    times = recorder.times()
    assert len(times) == 72 == len(set(times))  # every hour after LAST up to now, once
    assert times[0] == "2024-05-07 11:00"
    assert times[-1] == "2024-05-10 10:00"
    assert times == sorted(times)


async def test_catch_up_all_is_bounded_by_max_count_keeping_the_most_recent() -> None:
    recorder, _, _ = await catch_up({"catchUp": "all", "maxDuration": "96h", "maxCount": 5})
    assert recorder.times() == [
        "2024-05-10 06:00",
        "2024-05-10 07:00",
        "2024-05-10 08:00",
        "2024-05-10 09:00",
        "2024-05-10 10:00",
    ]


async def test_catch_up_argo_persistence_form() -> None:
    recorder, _, _ = await catch_up(
        {"persistence": {"catchup": {"enabled": True, "maxDuration": "150m"}}}
    )
    assert recorder.times() == ["2024-05-10 09:00", "2024-05-10 10:00"]


async def test_catch_up_skips_excluded_dates() -> None:
    recorder, _, _ = await catch_up(
        {"catchUp": "all", "maxDuration": "96h", "exclusionDates": ["2024-05-08", "2024-05-09"]}
    )
    times = recorder.times()
    assert len(times) == 13 + 11  # 7 May 11:00-23:00, 10 May 00:00-10:00
    assert not [t for t in times if t.startswith(("2024-05-08", "2024-05-09"))]


async def test_fresh_gateway_starts_from_now_without_catch_up() -> None:
    clock = FakeClock(NOW)
    recorder = Recorder()
    store = MemoryStore()
    src = source(
        {"schedule": "0 * * * *", "catchUp": "all"}, clock=clock, dispatch=recorder, store=store
    )
    async with running(src):
        await clock.wait_sleeping()
        assert recorder.events == []
        await clock.advance(at("2024-05-10 12:00"))
    assert recorder.times() == ["2024-05-10 11:00", "2024-05-10 12:00"]
    assert store.last() == at("2024-05-10 12:00")


async def test_restart_continues_from_last_without_repeating() -> None:
    store = MemoryStore()
    fields = {"schedule": "*/10 * * * *", "catchUp": "all"}
    first = await run_until(
        fields, start=at("2024-05-10 10:00"), end=at("2024-05-10 10:30"), store=store
    )
    assert first.times() == ["2024-05-10 10:10", "2024-05-10 10:20", "2024-05-10 10:30"]
    # Down from 10:35 to 11:05: the restart catches up 10:40-11:00, then follows the schedule.
    second = await run_until(
        fields, start=at("2024-05-10 11:05"), end=at("2024-05-10 11:10"), store=store
    )
    assert second.times() == [
        "2024-05-10 10:40",
        "2024-05-10 10:50",
        "2024-05-10 11:00",
        "2024-05-10 11:10",
    ]


async def test_unreadable_last_is_treated_as_a_fresh_start() -> None:
    store = MemoryStore({calendar.LAST_KEY: b"yesterday"})
    recorder = await run_until(
        {"schedule": "0 * * * *", "catchUp": "all"},
        start=NOW,
        end=at("2024-05-10 11:00"),
        store=store,
    )
    assert recorder.times() == ["2024-05-10 11:00"]


# --- two replicas on one bus -------------------------------------------------------------------


async def test_two_replicas_produce_one_event_per_instant(tmp_path: pathlib.Path) -> None:
    async with contextlib.AsyncExitStack() as stack:
        bus = embedded.EmbeddedBus(path=tmp_path)
        await bus.start(stack)
        subscription = await bus.subscribe(
            consumer="counter", subjects=[f"{bus.prefix}.clock.nightly"]
        )
        # Both replicas share the gateway's state (JetStream KV in a cluster).
        store = bus.store("gateway/clock/nightly")
        await store.write({calendar.LAST_KEY: at("2024-05-10 09:00").isoformat().encode()})
        clock = FakeClock(at("2024-05-10 10:05"))
        fields = {"schedule": "*/15 * * * *", "catchUp": "all"}
        replicas = [
            source(fields, clock=clock, dispatch=bus.publish, store=store) for _ in range(2)
        ]
        async with running(*replicas):
            await clock.wait_sleeping(2)  # both caught up 09:15 .. 10:00
            await clock.advance(at("2024-05-10 11:00"), sleepers=2)
        seen: dict[str, int] = {}
        iterator = aiter(subscription)
        for _ in range(8):
            message = await asyncio.wait_for(anext(iterator), timeout=5)
            seen[message.event.data["eventTime"]] = seen.get(message.event.data["eventTime"], 0) + 1
            await message.ack()
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(anext(iterator), timeout=0.05)
        await subscription.close()
    # 09:15 .. 10:00 caught up by both, 10:15 .. 11:00 fired by both: each once on the bus.
    quarter = datetime.timedelta(minutes=15)
    expected = [(at("2024-05-10 09:00") + k * quarter).isoformat() for k in range(1, 9)]
    assert seen == dict.fromkeys(expected, 1)


# --- bus failures ----------------------------------------------------------------------------


async def test_bus_unavailable_retries_the_same_instant_and_keeps_last() -> None:
    clock = FakeClock(at("2024-05-10 09:55"))
    recorder = Recorder()
    store = MemoryStore({calendar.LAST_KEY: at("2024-05-10 09:00").isoformat().encode()})
    src = source({"schedule": "0 * * * *"}, clock=clock, dispatch=recorder, store=store)
    async with running(src):
        await clock.wait_sleeping()
        recorder.failures = 3
        await clock.advance(at("2024-05-10 10:00"))
        # First attempt failed; it sleeps 10s before the next (fixed_delays), last unchanged.
        assert recorder.attempts and recorder.events == []
        assert store.last() == at("2024-05-10 09:00")
        assert clock.next_wakeup() == at("2024-05-10 10:00:10")
        await clock.advance(at("2024-05-10 10:00:25"))
        assert recorder.events == [] and len(recorder.attempts) == 3
        assert store.last() == at("2024-05-10 09:00")
        await clock.advance(at("2024-05-10 10:00:30"))
        assert recorder.times() == ["2024-05-10 10:00"]
        assert store.last() == at("2024-05-10 10:00")
    expected = calendar.event_id(gateway="clock", name="nightly", instant=at("2024-05-10 10:00"))
    assert recorder.attempts == [expected] * 4


async def test_outage_longer_than_an_interval_skips_nothing() -> None:
    clock = FakeClock(at("2024-05-10 09:59"))
    recorder = Recorder()
    store = MemoryStore()
    src = source({"interval": "1m"}, clock=clock, dispatch=recorder, store=store)
    async with running(src):
        await clock.wait_sleeping()
        recorder.failures = 20  # 20 attempts x 10s: down for about three minutes
        await clock.advance(at("2024-05-10 10:05"))
    assert recorder.times() == [f"2024-05-10 10:0{m}" for m in range(6)]
    assert store.last() == at("2024-05-10 10:05")


async def test_state_write_failure_retries_without_advancing_last() -> None:
    clock = FakeClock(at("2024-05-10 09:55"))
    recorder = Recorder()
    store = MemoryStore()
    store.fail_writes = 1
    src = source({"schedule": "0 * * * *"}, clock=clock, dispatch=recorder, store=store)
    async with running(src):
        await clock.wait_sleeping()
        await clock.advance(at("2024-05-10 10:00"))
        assert store.last() is None
        await clock.advance(at("2024-05-10 10:00:10"))
        assert store.last() == at("2024-05-10 10:00")
    # Dispatched twice with one id: the bus keeps one (dedupe), the sensor sees one event.
    assert len({e.id for e in recorder.events}) == 1


async def test_unreadable_store_is_a_source_error() -> None:
    class DownStore(MemoryStore):
        async def get(self, key: str) -> bytes | None:
            raise errors.BusUnavailableError("kv down")

    src = source({"interval": "1m"}, clock=FakeClock(NOW), dispatch=Recorder(), store=DownStore())
    async with contextlib.AsyncExitStack() as stack:
        with pytest.raises(errors.SourceError, match="cannot read the last instant"):
            await src.start(stack)


# --- lifecycle -------------------------------------------------------------------------------


async def test_teardown_cancels_the_loop_while_sleeping() -> None:
    clock = FakeClock(NOW)
    src = source({"interval": "1h"}, clock=clock, dispatch=Recorder(), store=MemoryStore())
    async with running(src):
        await clock.wait_sleeping()
        tasks = [t for t in asyncio.all_tasks() if t.get_name() == "calendar-clock-nightly"]
        assert len(tasks) == 1
    assert tasks[0].cancelled()
    assert clock.sleeping == 0


async def test_teardown_cancels_the_loop_while_retrying_and_while_dispatching() -> None:
    clock = FakeClock(at("2024-05-10 09:59"))
    recorder = Recorder()
    recorder.failures = 1000
    src = source({"interval": "1m"}, clock=clock, dispatch=recorder, store=MemoryStore())
    async with running(src):
        await clock.wait_sleeping()
        await clock.advance(at("2024-05-10 10:00:30"))
        assert len(recorder.attempts) == 4  # 10:00:00, :10, :20, :30

    blocked = asyncio.Event()

    async def hang(event: events.Event) -> None:
        blocked.set()
        await asyncio.Event().wait()

    clock = FakeClock(at("2024-05-10 09:59"))
    src = source({"interval": "1m"}, clock=clock, dispatch=hang, store=MemoryStore())
    async with running(src):
        await clock.wait_sleeping()
        clock.jump(at("2024-05-10 10:00"))
        await asyncio.wait_for(blocked.wait(), timeout=5)
    # The autouse fixture fails the test if a task survived the stack.


async def test_system_clock() -> None:
    clock = calendar.SystemClock()
    now = clock.now()
    assert now.tzinfo is UTC
    await clock.sleep_until(now - datetime.timedelta(seconds=1))  # past: returns at once
