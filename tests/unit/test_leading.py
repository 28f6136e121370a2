"""Lease decisions (client-go semantics) on a fake clock, and the elector loop on a fake API."""

from __future__ import annotations

import dataclasses

import pytest

from tripwire.app.controller import leading
from tripwire.net.kube import client as kube_client

DURATION = 15.0


def held(holder: str, *, renew: str = "2026-01-01T00:00:00.000000Z") -> leading.LeaseRecord:
    return leading.LeaseRecord(
        holder=holder, duration=DURATION, acquire_time=renew, renew_time=renew, transitions=2
    )


def test_no_lease_or_a_released_one_can_be_taken_at_once() -> None:
    assert leading.can_acquire(None, identity="b", now=0.0)
    released = leading.observe(None, leading.LeaseRecord(holder="", duration=1.0), 100.0)
    assert leading.can_acquire(released, identity="b", now=100.0)


def test_someone_elses_lease_is_taken_only_after_it_stayed_unchanged_for_a_whole_duration() -> None:
    seen = leading.observe(None, held("a"), 100.0)
    assert not leading.can_acquire(seen, identity="b", now=100.0)
    assert not leading.can_acquire(seen, identity="b", now=114.9)
    # The record is unchanged when looked at again: the first-seen time stays.
    seen = leading.observe(seen, held("a"), 110.0)
    assert seen.since == 100.0
    assert leading.can_acquire(seen, identity="b", now=115.0)


def test_a_renewal_restarts_the_wait_whatever_the_renew_time_says() -> None:
    # The holder's clock may be far behind ours: its renewTime is not compared to our clock.
    seen = leading.observe(None, held("a", renew="1999-01-01T00:00:00.000000Z"), 100.0)
    assert not leading.can_acquire(seen, identity="b", now=101.0)
    seen = leading.observe(seen, held("a", renew="1999-01-01T00:00:05.000000Z"), 112.0)
    assert seen.since == 112.0
    assert not leading.can_acquire(seen, identity="b", now=126.0)
    assert leading.can_acquire(seen, identity="b", now=127.0)


def test_the_holder_may_always_renew() -> None:
    seen = leading.observe(None, held("a"), 100.0)
    assert leading.can_acquire(seen, identity="a", now=100.0)


def test_next_record_renews_or_takes_over_counting_transitions() -> None:
    mine = held("a")
    renewed = leading.next_record(mine, identity="a", duration=DURATION, wall=1_800_000_000.5)
    assert renewed.holder == "a"
    assert renewed.acquire_time == mine.acquire_time
    assert renewed.renew_time == "2027-01-15T08:00:00.500000Z"
    assert renewed.transitions == 2
    taken = leading.next_record(mine, identity="b", duration=DURATION, wall=1_800_000_000.0)
    assert taken.holder == "b"
    assert taken.acquire_time == taken.renew_time
    assert taken.transitions == 3
    # Taking a released (holderless) lease is not a transition away from anyone.
    free = leading.released(mine, wall=1_800_000_000.0)
    assert free.holder == "" and free.duration == 1.0
    assert leading.next_record(free, identity="b", duration=DURATION, wall=0.0).transitions == 2
    assert leading.next_record(None, identity="b", duration=DURATION, wall=0.0).transitions == 0


def test_timing_must_leave_the_old_leader_time_to_stop() -> None:
    with pytest.raises(ValueError, match="renew-deadline < lease-duration"):
        leading.Timing(lease_duration=10, renew_deadline=10, retry_period=2)
    leading.Timing(lease_duration=4, renew_deadline=3, retry_period=0.5)


# -- the loop on a fake API and a fake clock -----------------------------------------------


@dataclasses.dataclass
class FakeApi:
    stored: leading.Stored | None = None
    version: int = 0
    down: bool = False
    conflict_next: bool = False

    def _check(self) -> None:
        if self.down:
            raise kube_client.KubeError("connection refused")

    async def get(self) -> leading.Stored | None:
        self._check()
        return self.stored

    def _write(self, record: leading.LeaseRecord) -> leading.Stored:
        self.version += 1
        self.stored = leading.Stored(record, str(self.version))
        return self.stored

    async def create(self, record: leading.LeaseRecord) -> leading.Stored:
        self._check()
        if self.stored is not None:
            raise leading.ConflictError("exists")
        return self._write(record)

    async def update(self, record: leading.LeaseRecord, *, resource_version: str) -> leading.Stored:
        self._check()
        if self.conflict_next:
            self.conflict_next = False
            raise leading.ConflictError("conflict")
        assert self.stored is not None
        if resource_version != self.stored.resource_version:
            raise leading.ConflictError("stale")
        return self._write(record)


@dataclasses.dataclass
class Clock:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds


TIMING = leading.Timing(lease_duration=15.0, renew_deadline=10.0, retry_period=2.0)


def elector(api: FakeApi, clock: Clock, identity: str) -> leading.LeaderElector:
    return leading.LeaderElector(
        api=api, identity=identity, timing=TIMING, clock=clock, wall=clock, sleep=clock.sleep
    )


async def test_standby_takes_over_within_a_lease_duration_of_the_last_renewal() -> None:
    api, clock = FakeApi(), Clock()
    a, b = elector(api, clock, "a"), elector(api, clock, "b")
    await a.acquire()
    assert api.stored is not None and api.stored.record.holder == "a"
    assert not await b.try_acquire_or_renew()  # b sees a's record now
    last_renewal = clock.now
    # a dies (no more renewals); b retries every retry period.
    await b.acquire()
    assert api.stored.record.holder == "b"
    assert api.stored.record.transitions == 1
    waited = clock.now - last_renewal
    assert TIMING.lease_duration <= waited <= TIMING.lease_duration + TIMING.retry_period


async def test_a_conflict_means_read_again_not_leadership() -> None:
    api, clock = FakeApi(), Clock()
    a = elector(api, clock, "a")
    await a.acquire()
    api.conflict_next = True
    assert not await a.try_acquire_or_renew()
    assert await a.try_acquire_or_renew()


async def test_holder_gives_up_when_it_cannot_renew_within_the_deadline() -> None:
    api, clock = FakeApi(), Clock()
    a = elector(api, clock, "a")
    await a.acquire()
    acquired_at = clock.now
    api.down = True
    await a.hold()
    assert not a.leading
    assert TIMING.renew_deadline <= clock.now - acquired_at < TIMING.lease_duration


async def test_holder_stops_at_once_when_someone_else_holds_the_record() -> None:
    api, clock = FakeApi(), Clock()
    a = elector(api, clock, "a")
    await a.acquire()
    assert api.stored is not None
    api._write(held("intruder"))
    started = clock.now
    await a.hold()
    assert clock.now - started == TIMING.retry_period


async def test_release_lets_a_standby_take_over_at_once() -> None:
    api, clock = FakeApi(), Clock()
    a, b = elector(api, clock, "a"), elector(api, clock, "b")
    await a.acquire()
    assert not await b.try_acquire_or_renew()
    await a.release()
    assert api.stored is not None and api.stored.record.holder == ""
    assert await b.try_acquire_or_renew()
