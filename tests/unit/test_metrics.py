"""The lock-free metrics: children count exactly, and scrapes read like prometheus_client's.

Most tests use a fresh registry; those on the process-wide metrics use label values no other
test uses, since those children live for the whole test session.
"""

from __future__ import annotations

import re
import time

import prometheus_client
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tripwire import metrics

BOUNDS = (0.1, 0.5, 1.0)


def registry() -> prometheus_client.CollectorRegistry:
    return prometheus_client.CollectorRegistry(auto_describe=True)


def text(reg: prometheus_client.CollectorRegistry) -> str:
    """The exposition with `_created` timestamps masked: the only part that varies."""
    out = prometheus_client.generate_latest(reg).decode()
    return re.sub(r"(_created\{[^}]*\}) \S+", r"\1 T", out)


def test_counter_inc_and_inc_by_amount() -> None:
    reg = registry()
    counter = metrics.Counter("t_requests", "Requests.", ["a", "b"], registry=reg)
    child = counter.labels("x", "y")
    child.inc()
    child.inc(2.5)
    child.inc(0)
    assert child.value == 3.5
    assert reg.get_sample_value("t_requests_total", {"a": "x", "b": "y"}) == 3.5


def test_negative_inc_raises_and_leaves_the_value() -> None:
    child = metrics.Counter("t_requests", "Requests.", ["a"], registry=registry()).labels("x")
    child.inc(2)
    with pytest.raises(ValueError, match="non-negative"):
        child.inc(-1)
    assert child.value == 2.0


def test_labels_by_position_and_keyword_give_the_same_child() -> None:
    counter = metrics.Counter("t_requests", "Requests.", ["a", "b"], registry=registry())
    child = counter.labels("x", "y")
    assert counter.labels(a="x", b="y") is child
    assert counter.labels(b="y", a="x") is child
    assert counter.labels("x", "y") is child
    assert counter.labels("y", "x") is not child
    # Values are strings, as prometheus_client makes them.
    assert counter.labels(1, None) is counter.labels(a="1", b="None")


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        (("x",), {}, "Incorrect label count"),
        (("x", "y", "z"), {}, "Incorrect label count"),
        ((), {}, "Incorrect label count"),
        ((), {"a": "x"}, "Incorrect label names"),
        ((), {"a": "x", "c": "y"}, "Incorrect label names"),
        ((), {"a": "x", "b": "y", "c": "z"}, "Incorrect label names"),
        (("x",), {"b": "y"}, "both"),
    ],
)
def test_wrong_labels_raise_value_error(
    args: tuple[str, ...], kwargs: dict[str, str], message: str
) -> None:
    counter = metrics.Counter("t_requests", "Requests.", ["a", "b"], registry=None)
    hist = metrics.Histogram("t_seconds", "Time.", ["a", "b"], registry=None, buckets=BOUNDS)
    with pytest.raises(ValueError, match=message):
        counter.labels(*args, **kwargs)
    with pytest.raises(ValueError, match=message):
        hist.labels(*args, **kwargs)
    # prometheus_client agrees on every case, with the same message.
    theirs = prometheus_client.Counter("t_requests", "Requests.", ["a", "b"], registry=None)
    with pytest.raises(ValueError, match=message):
        theirs.labels(*args, **kwargs)


def test_histogram_bucket_placement_on_bounds_and_above_the_last() -> None:
    hist = metrics.Histogram("t_seconds", "Time.", ["a"], registry=registry(), buckets=BOUNDS)
    child = hist.labels("x")
    for value in (0.05, 0.1, 0.3, 1.0, 2.0, float("inf")):
        child.observe(value)
    # 0.1 and 1.0 sit exactly on bounds: `le` includes them. 2.0 and inf are only in +Inf.
    assert child.counts == [2, 1, 1, 2]
    assert child.count == 6
    assert child.sum == float("inf")

    other = hist.labels("y")
    other.observe(0.1)
    other.observe(0.5000001)
    other.observe(-1.0)
    assert other.counts == [2, 0, 1, 0]
    assert other.count == 3
    assert other.sum == pytest.approx(-0.3999999)


def test_histogram_exposition_is_cumulative_with_sum_count_and_created() -> None:
    reg = registry()
    hist = metrics.Histogram("t_seconds", "Time.", ["a"], registry=reg, buckets=BOUNDS)
    child = hist.labels("x")
    for value in (0.05, 0.1, 0.3, 1.0, 2.0):
        child.observe(value)
    assert text(reg) == (
        "# HELP t_seconds Time.\n"
        "# TYPE t_seconds histogram\n"
        't_seconds_bucket{a="x",le="0.1"} 2.0\n'
        't_seconds_bucket{a="x",le="0.5"} 3.0\n'
        't_seconds_bucket{a="x",le="1.0"} 4.0\n'
        't_seconds_bucket{a="x",le="+Inf"} 5.0\n'
        't_seconds_count{a="x"} 5.0\n'
        't_seconds_sum{a="x"} 3.45\n'
        "# HELP t_seconds_created Time.\n"
        "# TYPE t_seconds_created gauge\n"
        't_seconds_created{a="x"} T\n'
    )


def test_created_is_the_time_the_child_was_made() -> None:
    reg = registry()
    counter = metrics.Counter("t_requests", "Requests.", ["a"], registry=reg)
    hist = metrics.Histogram("t_seconds", "Time.", ["a"], registry=reg, buckets=BOUNDS)
    before = time.time()
    counter.labels("x").inc()
    hist.labels("x").observe(1)
    after = time.time()
    for name in ("t_requests_created", "t_seconds_created"):
        created = reg.get_sample_value(name, {"a": "x"})
        assert created is not None
        assert before <= created <= after


def test_get_sample_value_on_the_process_registry() -> None:
    labels = {"gateway": "test-metrics-gsv", "event": "push"}
    metrics.EVENTS_RECEIVED.labels(**labels).inc()
    metrics.EVENTS_RECEIVED.labels("test-metrics-gsv", "push").inc(2)
    assert metrics.REGISTRY.get_sample_value("tripwire_events_received_total", labels) == 3.0

    metrics.PUBLISH_SECONDS.labels("test-metrics-gsv").observe(0.0003)
    metrics.PUBLISH_SECONDS.labels(bus="test-metrics-gsv").observe(0.001)

    def sample(suffix: str, **extra: str) -> float | None:
        return metrics.REGISTRY.get_sample_value(
            f"tripwire_publish_seconds_{suffix}", {"bus": "test-metrics-gsv", **extra}
        )

    assert sample("bucket", le="0.00025") == 0.0
    assert sample("bucket", le="0.0005") == 1.0
    assert sample("bucket", le="0.001") == 2.0
    assert sample("bucket", le="+Inf") == 2.0
    assert sample("count") == 2.0
    assert sample("sum") == 0.0013


def test_exposition_parses_as_prometheus_expects() -> None:
    counters = [
        (metrics.EVENTS_RECEIVED, "tripwire_events_received"),
        (metrics.EVENTS_PUBLISHED, "tripwire_events_published"),
        (metrics.EVENTS_FAILED, "tripwire_events_failed"),
        (metrics.EVENTS_FILTERED, "tripwire_events_filtered"),
        (metrics.TRIGGERS_FIRED, "tripwire_triggers_fired"),
        (metrics.TRIGGERS_FAILED, "tripwire_triggers_failed"),
        (metrics.TRIGGERS_RETRIED, "tripwire_triggers_retried"),
    ]
    histograms = [
        (metrics.PUBLISH_SECONDS, "tripwire_publish_seconds"),
        (metrics.TRIGGER_SECONDS, "tripwire_trigger_seconds"),
        (metrics.EVENT_TO_FIRE_SECONDS, "tripwire_event_to_fire_seconds"),
    ]
    mark = "test-metrics-parse"
    for counter, _ in counters:
        counter.labels(*[mark] * len(counter.labelnames)).inc(4)
    for hist, _ in histograms:
        hist.labels(*[mark] * len(hist.labelnames)).observe(0.0003)

    families = list(text_string_to_metric_families(metrics.exposition().decode()))

    # Definition order; each family's `_created` gauges right after it.
    expected: list[tuple[str, str]] = []
    for _, name in counters:
        expected += [(name, "counter"), (f"{name}_created", "gauge")]
    for _, name in histograms:
        expected += [(name, "histogram"), (f"{name}_created", "gauge")]
    assert [(f.name, f.type) for f in families] == expected

    by_name = {f.name: f for f in families}
    for counter, name in counters:
        ours = [s for s in by_name[name].samples if set(s.labels.values()) == {mark}]
        assert [(s.name, s.labels, s.value) for s in ours] == [
            (f"{name}_total", dict.fromkeys(counter.labelnames, mark), 4.0)
        ]
    for hist, name in histograms:
        assert {s.name for s in by_name[name].samples} == {
            f"{name}_bucket",
            f"{name}_count",
            f"{name}_sum",
        }
        ours = [s for s in by_name[name].samples if s.labels.get(hist.labelnames[0]) == mark]
        buckets = [(s.labels["le"], s.value) for s in ours if s.name == f"{name}_bucket"]
        assert len(buckets) == 18
        assert buckets[:4] == [("0.0001", 0.0), ("0.00025", 0.0), ("0.0005", 1.0), ("0.001", 1.0)]
        assert buckets[-1] == ("+Inf", 1.0)
        assert [(s.name, s.value) for s in ours if s.name != f"{name}_bucket"] == [
            (f"{name}_count", 1.0),
            (f"{name}_sum", 0.0003),
        ]
    for _, name in counters + histograms:
        assert {s.name for s in by_name[f"{name}_created"].samples} == {f"{name}_created"}


def test_exposition_matches_prometheus_client_byte_for_byte() -> None:
    """The same updates through prometheus_client's own metrics give the same text."""
    ours, theirs = registry(), registry()
    counter = metrics.Counter("t_requests", "Requests.", ["a", "b"], registry=ours)
    hist = metrics.Histogram("t_seconds", "Time.", ["c"], registry=ours, buckets=BOUNDS)
    their_counter = prometheus_client.Counter(
        "t_requests", "Requests.", ["a", "b"], registry=theirs
    )
    their_hist = prometheus_client.Histogram(
        "t_seconds", "Time.", ["c"], registry=theirs, buckets=BOUNDS
    )
    assert text(ours) == text(theirs)  # no children yet: HELP and TYPE only

    weird = 'q"uo\\te\nline'
    for c in (counter, their_counter):
        c.labels("z", "1").inc(0.1)
        c.labels(a="a", b=weird).inc()
        c.labels("z", "1").inc(0.2)
        c.labels("never", "incremented")
    for h in (hist, their_hist):
        for value in (0.1, 0.3, 7.0, 0.0, 0.5):
            h.labels("b").observe(value)
        h.labels(c="a").observe(1.0)
        h.labels("empty")
    assert text(ours) == text(theirs)


def test_histogram_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="sorted"):
        metrics.Histogram("t_seconds", "Time.", ["a"], registry=None, buckets=(1.0, 0.5))
    with pytest.raises(ValueError, match="le"):
        metrics.Histogram("t_seconds", "Time.", ["le"], registry=None, buckets=BOUNDS)
    with pytest.raises(ValueError, match="two buckets"):
        metrics.Histogram("t_seconds", "Time.", ["a"], registry=None, buckets=(float("inf"),))
    # An explicit +Inf is the implicit one, not a second.
    hist = metrics.Histogram(
        "t_seconds", "Time.", ["a"], registry=None, buckets=(1.0, float("inf"))
    )
    hist.labels("x").observe(5)
    samples = hist.collect()[0].samples
    assert [s.labels["le"] for s in samples if s.name == "t_seconds_bucket"] == ["1.0", "+Inf"]


def test_a_clashing_name_is_rejected_at_register() -> None:
    reg = registry()
    metrics.Counter("t_requests", "Requests.", ["a"], registry=reg)
    with pytest.raises(ValueError, match="Duplicated"):
        metrics.Counter("t_requests", "Again.", ["a"], registry=reg)
    with pytest.raises(ValueError, match="Duplicated"):
        prometheus_client.Counter("t_requests", "Again.", ["a"], registry=reg)
