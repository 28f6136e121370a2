"""Prometheus metrics, defined once for the whole process so every component counts the same way.

Label sets stay small and bounded (gateway, event name, sensor, trigger): never an event id.
`/metrics` is served by the runtime (`tripwire run --metrics-port`).

Components look a child up once with `.labels(...)` and update it per event, several times an
event, so an update is one attribute `+=` (a histogram: a `bisect` and three) on a plain
object. prometheus_client's own children take a lock on every update, and its `observe` adds a
check and a linear bucket scan: several µs an event at our rates. There is no lock here, so
updates must come from one thread, the event loop's, which is where every component runs;
two threads incrementing one child could lose increments. Scrapes read the children from any
thread, through a collector that builds the metric families at scrape time, so the text
format is prometheus_client's own. A scrape cannot see a torn float (the GIL makes an
attribute read atomic); at worst it sees a histogram one observation into an update (count
ahead of its bucket, sum behind), which Prometheus tolerates and the next scrape corrects.
"""

from __future__ import annotations

import bisect
import math
import time
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

import prometheus_client
import prometheus_client.utils
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric, Sample

# Untyped upstream; the format of `le` values must be exactly prometheus_client's.
_go_float: Callable[[float], str] = prometheus_client.utils.floatToGoString


class CounterChild:
    """One labelled counter series."""

    __slots__ = ("created", "value")

    def __init__(self) -> None:
        self.value = 0.0
        self.created = time.time()

    def inc(self, amount: float = 1) -> None:
        if amount < 0:
            raise ValueError("Counters can only be incremented by non-negative amounts.")
        self.value += amount


class HistogramChild:
    """One labelled histogram series: per-bucket (not cumulative) counts, a sum and a count."""

    __slots__ = ("bounds", "count", "counts", "created", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        # One slot per finite bound, then one for values above the last (the +Inf bucket).
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0
        self.count = 0
        self.created = time.time()

    def observe(self, value: float) -> None:
        # bisect_left: a value equal to a bound belongs to that bound's bucket (`le`). Count
        # first, so a scrape between these lines never sees +Inf below a finite bucket.
        self.count += 1
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.sum += value


_ChildT = TypeVar("_ChildT", CounterChild, HistogramChild)


class _Family(Generic[_ChildT]):
    """A metric and its children by label values; registered in `registry` as its collector."""

    __slots__ = ("_children", "_sorted_names", "documentation", "labelnames", "name")

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str],
        registry: prometheus_client.CollectorRegistry | None,
    ) -> None:
        if not labelnames:
            raise ValueError(f"{name}: every metric here is labelled")
        self.name = name
        self.documentation = documentation
        self.labelnames = tuple(labelnames)
        self._sorted_names = sorted(self.labelnames)
        # Insertion-ordered: scrapes list children in creation order, as prometheus_client does.
        self._children: dict[tuple[str, ...], _ChildT] = {}
        if registry is not None:
            registry.register(self)

    def labels(self, *values: object, **kwargs: object) -> _ChildT:
        """The child for these label values, made on first use; checks as prometheus_client."""
        if values and kwargs:
            raise ValueError("Can't pass both *args and **kwargs")
        if kwargs:
            if sorted(kwargs) != self._sorted_names:
                raise ValueError("Incorrect label names")
            key = tuple(str(kwargs[name]) for name in self.labelnames)
        else:
            if len(values) != len(self.labelnames):
                raise ValueError("Incorrect label count")
            key = tuple(str(value) for value in values)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self._new_child()
        return child

    def _snapshot(self) -> list[tuple[tuple[str, ...], _ChildT]]:
        # list(): one C-level copy, safe against a `labels()` on the loop while a thread scrapes.
        return list(self._children.items())

    def _new_child(self) -> _ChildT:
        raise NotImplementedError

    def collect(self) -> list[Metric]:
        raise NotImplementedError


class Counter(_Family[CounterChild]):
    """A labelled counter, exposed as `<name>_total` and `<name>_created`."""

    __slots__ = ()

    def _new_child(self) -> CounterChild:
        return CounterChild()

    def describe(self) -> list[Metric]:
        """The family without samples: lets the registry reject clashing names at register."""
        return [CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)]

    def collect(self) -> list[Metric]:
        family = CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for key, child in self._snapshot():
            family.add_metric(key, child.value, created=child.created)
        return [family]


class Histogram(_Family[HistogramChild]):
    """A labelled histogram with fixed buckets; +Inf is added, as prometheus_client does."""

    __slots__ = ("_bounds", "_les")

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str],
        registry: prometheus_client.CollectorRegistry | None,
        *,
        buckets: Sequence[float],
    ) -> None:
        bounds = [float(b) for b in buckets]
        if bounds != sorted(bounds):
            raise ValueError("Buckets not in sorted order")
        if bounds and bounds[-1] == math.inf:
            bounds.pop()
        if not bounds:
            raise ValueError("Must have at least two buckets")
        if "le" in labelnames:
            raise ValueError("Reserved label metric name: le")
        self._bounds = tuple(bounds)
        self._les = [_go_float(b) for b in bounds]
        super().__init__(name, documentation, labelnames, registry)

    def _new_child(self) -> HistogramChild:
        return HistogramChild(self._bounds)

    def describe(self) -> list[Metric]:
        """The family without samples: lets the registry reject clashing names at register."""
        return [HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)]

    def collect(self) -> list[Metric]:
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for key, child in self._snapshot():
            buckets: list[tuple[str, float]] = []
            seen = 0
            # strict=False: the last count (above the last bound) is in +Inf, which is the count.
            for le, n in zip(self._les, child.counts, strict=False):
                seen += n
                buckets.append((le, float(seen)))
            buckets.append(("+Inf", float(child.count)))
            family.add_metric(key, buckets, child.sum)
            # HistogramMetricFamily takes no `created`; prometheus_client emits it last, so here.
            labels = dict(zip(self.labelnames, key, strict=True))
            family.samples.append(Sample(self.name + "_created", labels, child.created))
        return [family]


REGISTRY = prometheus_client.CollectorRegistry(auto_describe=True)

# Latency buckets from 100 µs to 30 s: the interesting range spans in-process hops to HTTP calls.
_BUCKETS = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 5.0, 10.0, 30.0,
)  # fmt: skip

EVENTS_RECEIVED = Counter(
    "tripwire_events_received",
    "Events a gateway source produced, before publishing.",
    ["gateway", "event"],
    registry=REGISTRY,
)
EVENTS_PUBLISHED = Counter(
    "tripwire_events_published",
    "Events made durable on the bus.",
    ["gateway", "event"],
    registry=REGISTRY,
)
EVENTS_FAILED = Counter(
    "tripwire_events_failed",
    "Events a gateway could not publish, or a source rejected as malformed.",
    ["gateway", "event", "reason"],
    registry=REGISTRY,
)
EVENTS_FILTERED = Counter(
    "tripwire_events_filtered",
    "Events a sensor dependency rejected with its filters.",
    ["sensor", "dependency"],
    registry=REGISTRY,
)
TRIGGERS_FIRED = Counter(
    "tripwire_triggers_fired",
    "Trigger executions that succeeded.",
    ["sensor", "trigger"],
    registry=REGISTRY,
)
TRIGGERS_FAILED = Counter(
    "tripwire_triggers_failed",
    "Trigger executions that failed after their retries.",
    ["sensor", "trigger"],
    registry=REGISTRY,
)
TRIGGERS_RETRIED = Counter(
    "tripwire_triggers_retried",
    "Trigger attempts that failed and were retried.",
    ["sensor", "trigger"],
    registry=REGISTRY,
)
PUBLISH_SECONDS = Histogram(
    "tripwire_publish_seconds",
    "Time for a publish to become durable.",
    ["bus"],
    buckets=_BUCKETS,
    registry=REGISTRY,
)
TRIGGER_SECONDS = Histogram(
    "tripwire_trigger_seconds",
    "Time to execute a trigger, retries included.",
    ["sensor", "trigger"],
    buckets=_BUCKETS,
    registry=REGISTRY,
)
EVENT_TO_FIRE_SECONDS = Histogram(
    "tripwire_event_to_fire_seconds",
    "From the event time of the newest contributing event to the trigger's success.",
    ["sensor", "trigger"],
    buckets=_BUCKETS,
    registry=REGISTRY,
)


def exposition() -> bytes:
    """The text format scraped at `/metrics`."""
    return prometheus_client.generate_latest(REGISTRY)
