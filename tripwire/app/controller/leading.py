"""Active-passive leader election on a `coordination.k8s.io/v1` Lease, as client-go does it.

Two controllers running the same objects would fire every trigger twice and fight over the
webhook ports, so only the holder of one Lease runs anything. The rules are client-go's
`leaderelection` package:

- A candidate takes the Lease when nobody holds it (`holderIdentity` empty: released) or when
  the record has not changed for `leaseDurationSeconds` *as measured by the candidate's own
  clock* since it first saw that record. client-go deliberately does not compare the
  record's `renewTime` with its clock: the clocks of two nodes may disagree by more than a
  lease; "unchanged for a whole lease while I watched" needs no agreement.
- The holder renews every `retry_period`. If it cannot renew within `renew_deadline` of its
  last successful renewal (apiserver unreachable, or someone else holds the record) it has
  lost: the caller stops running objects and exits non-zero, like client-go's default
  `OnStoppedLeading`, so the supervisor (a Deployment) restarts it as a fresh candidate.
  `renew_deadline < lease_duration` leaves the old holder time to stop before anyone else
  may take over.
- Writes are optimistic: an update carries the `resourceVersion` it read; 409 Conflict means
  someone else wrote first, and the next round reads again.
- On a clean shutdown the holder releases the Lease (empty holder, 1 s duration) so a standby
  takes over at once instead of after a whole lease.

The decisions (`can_acquire`, `next_record`, `observe`) are pure and take the time as an
argument; `LeaderElector` is the loop around them with an injectable clock, sleep and API.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from tripwire.net.kube import client as kube_client

log = logging.getLogger(__name__)

LEASES = kube_client.Resource(
    group="coordination.k8s.io", version="v1", plural="leases", kind="Lease", namespaced=True
)


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class LeaseRecord:
    """The Lease's spec, the part leader election reads and writes."""

    holder: str = ""
    duration: float = 0.0
    acquire_time: str | None = None  # MicroTime strings, kept as the server sent them
    renew_time: str | None = None
    transitions: int = 0


@dataclasses.dataclass(frozen=True, slots=True)
class Observation:
    """A record and when (our monotonic clock) we first saw it unchanged."""

    record: LeaseRecord
    since: float


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Timing:
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0

    def __post_init__(self) -> None:
        if not 0 < self.retry_period < self.renew_deadline < self.lease_duration:
            raise ValueError("need 0 < retry-period < renew-deadline < lease-duration")


def observe(previous: Observation | None, record: LeaseRecord | None, now: float) -> Observation:
    """Keep the first-seen time while the record is unchanged; restart it when it changes."""
    record = record or LeaseRecord()
    if previous is not None and previous.record == record:
        return previous
    return Observation(record, now)


def can_acquire(observation: Observation | None, *, identity: str, now: float) -> bool:
    """Whether `identity` may write itself as holder now."""
    if observation is None:
        return True  # no Lease yet: create it
    record = observation.record
    if not record.holder or record.holder == identity:
        return True
    return now >= observation.since + record.duration


def next_record(
    current: LeaseRecord | None, *, identity: str, duration: float, wall: float
) -> LeaseRecord:
    """The record to write to acquire or renew: a new holder counts a transition."""
    stamp = micro_time(wall)
    if current is not None and current.holder == identity:
        return dataclasses.replace(
            current, duration=duration, renew_time=stamp, acquire_time=current.acquire_time or stamp
        )
    transitions = (
        current.transitions + 1
        if current is not None and current.holder
        else (current.transitions if current is not None else 0)
    )
    return LeaseRecord(
        holder=identity,
        duration=duration,
        acquire_time=stamp,
        renew_time=stamp,
        transitions=transitions,
    )


def released(current: LeaseRecord, *, wall: float) -> LeaseRecord:
    """client-go's release: no holder, a 1 s lease, so anyone may take it at once."""
    stamp = micro_time(wall)
    return dataclasses.replace(
        current, holder="", duration=1.0, renew_time=stamp, acquire_time=stamp
    )


def micro_time(wall: float) -> str:
    """metav1.MicroTime: RFC3339 with microseconds, UTC."""
    return datetime.datetime.fromtimestamp(wall, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# -- the API ---------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class Stored:
    record: LeaseRecord
    resource_version: str


class ConflictError(Exception):
    """Someone else wrote the Lease first (409): read again."""


class LeaseApi(Protocol):
    async def get(self) -> Stored | None: ...
    async def create(self, record: LeaseRecord) -> Stored: ...
    async def update(self, record: LeaseRecord, *, resource_version: str) -> Stored: ...


def _from_json(obj: kube_client.JSON) -> Stored:
    spec = obj.get("spec") or {}
    return Stored(
        LeaseRecord(
            holder=str(spec.get("holderIdentity") or ""),
            duration=float(spec.get("leaseDurationSeconds") or 0),
            acquire_time=spec.get("acquireTime"),
            renew_time=spec.get("renewTime"),
            transitions=int(spec.get("leaseTransitions") or 0),
        ),
        str(obj.get("metadata", {}).get("resourceVersion", "")),
    )


def _to_json(record: LeaseRecord) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "holderIdentity": record.holder,
        "leaseDurationSeconds": max(1, round(record.duration)),
        "leaseTransitions": record.transitions,
    }
    if record.acquire_time:
        spec["acquireTime"] = record.acquire_time
    if record.renew_time:
        spec["renewTime"] = record.renew_time
    return spec


class KubeLeaseApi:
    """One Lease through our client; every call is bounded by `timeout` (< renew deadline)."""

    def __init__(
        self, kube: kube_client.Client, *, namespace: str, name: str, timeout: float
    ) -> None:
        self._kube = kube
        self.namespace = namespace
        self.name = name
        self._timeout = timeout

    async def get(self) -> Stored | None:
        path = LEASES.path(namespace=self.namespace, name=self.name)
        try:
            obj = await self._kube.request("GET", path, timeout=self._timeout)
        except kube_client.ApiError as exc:
            if exc.not_found:
                return None
            raise
        return _from_json(obj)

    async def create(self, record: LeaseRecord) -> Stored:
        body = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": self.name, "namespace": self.namespace},
            "spec": _to_json(record),
        }
        path = LEASES.path(namespace=self.namespace)
        try:
            obj = await self._kube.request("POST", path, body=body, timeout=self._timeout)
        except kube_client.ApiError as exc:
            if exc.conflict:
                raise ConflictError(str(exc)) from None
            raise
        return _from_json(obj)

    async def update(self, record: LeaseRecord, *, resource_version: str) -> Stored:
        body = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {
                "name": self.name,
                "namespace": self.namespace,
                "resourceVersion": resource_version,
            },
            "spec": _to_json(record),
        }
        path = LEASES.path(namespace=self.namespace, name=self.name)
        try:
            obj = await self._kube.request("PUT", path, body=body, timeout=self._timeout)
        except kube_client.ApiError as exc:
            if exc.conflict:
                raise ConflictError(str(exc)) from None
            raise
        return _from_json(obj)


# -- the loop --------------------------------------------------------------------------------


class LeaderElector:
    """`acquire()` returns once we hold the Lease; `hold()` renews and returns when it is lost."""

    def __init__(
        self,
        *,
        api: LeaseApi,
        identity: str,
        timing: Timing,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.api = api
        self.identity = identity
        self.timing = timing
        self._clock = clock
        self._wall = wall
        self._sleep = sleep
        self._observed: Observation | None = None
        self._stored: Stored | None = None
        self.leading = False
        self.last_renewed: float | None = None  # monotonic

    async def try_acquire_or_renew(self) -> bool:
        """One round: read, decide, write. True when we hold the Lease after it."""
        try:
            stored = await self.api.get()
        except kube_client.KubeError as exc:
            log.warning("lease: cannot read: %s", exc)
            return False
        now = self._clock()
        self._stored = stored
        self._observed = observe(self._observed, stored.record if stored else None, now)
        if stored is not None and not can_acquire(self._observed, identity=self.identity, now=now):
            return False
        record = next_record(
            stored.record if stored else None,
            identity=self.identity,
            duration=self.timing.lease_duration,
            wall=self._wall(),
        )
        try:
            if stored is None:
                written = await self.api.create(record)
            else:
                written = await self.api.update(record, resource_version=stored.resource_version)
        except ConflictError:
            return False  # someone wrote first; the next round reads their record
        except kube_client.KubeError as exc:
            log.warning("lease: cannot write: %s", exc)
            return False
        self._stored = written
        self._observed = Observation(written.record, now)
        if not self.leading:
            log.info(
                "lease acquired by %s (transitions: %d)", self.identity, written.record.transitions
            )
        self.leading = True
        self.last_renewed = now
        return True

    async def acquire(self) -> None:
        """Try every retry period until we are the holder."""
        announced = None
        while not await self.try_acquire_or_renew():
            holder = self._observed.record.holder if self._observed else ""
            if holder != announced:
                log.info("lease held by %r; standing by as %s", holder, self.identity)
                announced = holder
            await self._sleep(self.timing.retry_period)

    async def hold(self) -> None:
        """Renew every retry period; return when not renewed within the renew deadline, or
        when the record names someone else."""
        while True:
            await self._sleep(self.timing.retry_period)
            if await self.try_acquire_or_renew():
                continue
            holder = self._observed.record.holder if self._observed else ""
            if holder and holder != self.identity:
                log.error("lease: taken over by %r", holder)
                break
            assert self.last_renewed is not None
            if self._clock() - self.last_renewed >= self.timing.renew_deadline:
                log.error(
                    "lease: not renewed within the renew deadline (%.1fs)",
                    self.timing.renew_deadline,
                )
                break
        self.leading = False

    async def release(self) -> None:
        """Give the Lease up so a standby takes it at once (best effort, bounded by the API)."""
        if not self.leading or self._stored is None:
            return
        self.leading = False
        try:
            current = await self.api.get()
            if current is None or current.record.holder != self.identity:
                return
            await self.api.update(
                released(current.record, wall=self._wall()),
                resource_version=current.resource_version,
            )
            log.info("lease released by %s", self.identity)
        except (ConflictError, kube_client.KubeError) as exc:
            log.warning("lease: cannot release (it expires on its own): %s", exc)
