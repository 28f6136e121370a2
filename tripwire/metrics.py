"""Prometheus metrics, defined once for the whole process so every component counts the same way.

Label sets stay small and bounded (gateway, event name, sensor, trigger): never an event id.
`/metrics` is served by the runtime (`tripwire run --metrics-port`).
"""

from __future__ import annotations

import prometheus_client

REGISTRY = prometheus_client.CollectorRegistry(auto_describe=True)

# Latency buckets from 100 µs to 30 s: the interesting range spans in-process hops to HTTP calls.
_BUCKETS = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 5.0, 10.0, 30.0,
)  # fmt: skip

EVENTS_RECEIVED = prometheus_client.Counter(
    "tripwire_events_received",
    "Events a gateway source produced, before publishing.",
    ["gateway", "event"],
    registry=REGISTRY,
)
EVENTS_PUBLISHED = prometheus_client.Counter(
    "tripwire_events_published",
    "Events made durable on the bus.",
    ["gateway", "event"],
    registry=REGISTRY,
)
EVENTS_FAILED = prometheus_client.Counter(
    "tripwire_events_failed",
    "Events a gateway could not publish, or a source rejected as malformed.",
    ["gateway", "event", "reason"],
    registry=REGISTRY,
)
EVENTS_FILTERED = prometheus_client.Counter(
    "tripwire_events_filtered",
    "Events a sensor dependency rejected with its filters.",
    ["sensor", "dependency"],
    registry=REGISTRY,
)
TRIGGERS_FIRED = prometheus_client.Counter(
    "tripwire_triggers_fired",
    "Trigger executions that succeeded.",
    ["sensor", "trigger"],
    registry=REGISTRY,
)
TRIGGERS_FAILED = prometheus_client.Counter(
    "tripwire_triggers_failed",
    "Trigger executions that failed after their retries.",
    ["sensor", "trigger"],
    registry=REGISTRY,
)
TRIGGERS_RETRIED = prometheus_client.Counter(
    "tripwire_triggers_retried",
    "Trigger attempts that failed and were retried.",
    ["sensor", "trigger"],
    registry=REGISTRY,
)
PUBLISH_SECONDS = prometheus_client.Histogram(
    "tripwire_publish_seconds",
    "Time for a publish to become durable.",
    ["bus"],
    buckets=_BUCKETS,
    registry=REGISTRY,
)
TRIGGER_SECONDS = prometheus_client.Histogram(
    "tripwire_trigger_seconds",
    "Time to execute a trigger, retries included.",
    ["sensor", "trigger"],
    buckets=_BUCKETS,
    registry=REGISTRY,
)
EVENT_TO_FIRE_SECONDS = prometheus_client.Histogram(
    "tripwire_event_to_fire_seconds",
    "From the event time of the newest contributing event to the trigger's success.",
    ["sensor", "trigger"],
    buckets=_BUCKETS,
    registry=REGISTRY,
)


def exposition() -> bytes:
    """The text format scraped at `/metrics`."""
    return prometheus_client.generate_latest(REGISTRY)
