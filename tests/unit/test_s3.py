"""The s3 gateway's pure parts: spec validation, records, ids and the watermark ledger."""

from __future__ import annotations

import pathlib
from typing import Any

import pydantic
import pytest

from gateways import base
from gateways.s3 import listing as s3_listing
from gateways.s3 import records as s3_records
from gateways.s3 import source as s3_gateway
from triggers import parameters, sources
from tripwire import events
from tripwire.app import documents

REPO = pathlib.Path(__file__).resolve().parents[2]


def spec(**fields: Any) -> s3_gateway.S3Spec:
    return s3_gateway.S3Spec.model_validate({"bucket": {"name": "data"}, **fields})


# --- spec --------------------------------------------------------------------------------------


def test_defaults_follow_argo() -> None:
    s = spec(endpoint="minio.argo-events:9000", insecure=True)
    assert s.events == ["s3:ObjectCreated:*"]
    assert s.mode == "notify"
    assert s.region == "us-east-1"
    assert s.endpoint_url() == "http://minio.argo-events:9000"
    assert spec(endpoint="minio:9000").endpoint_url() == "https://minio:9000"
    assert spec(endpoint="http://minio:9000/").endpoint_url() == "http://minio:9000"
    assert spec(region="eu-west-1").endpoint_url() == "https://s3.eu-west-1.amazonaws.com"
    assert s.interval() == s3_gateway.DEFAULT_RESYNC_INTERVAL
    assert spec(mode="poll").interval() == s3_gateway.DEFAULT_POLL_INTERVAL
    assert spec(mode="poll", pollInterval="2m").interval() == 120.0


def test_both_kinds_are_registered() -> None:
    assert base.load("s3") is s3_gateway.S3Source
    assert base.load("minio") is s3_gateway.S3Source


def test_event_names_take_or_leave_the_prefix() -> None:
    s = spec(events=["ObjectCreated:Put", "s3:ObjectRemoved:*", "s3:ObjectCreated:Put"])
    assert s.events == ["s3:ObjectCreated:Put", "s3:ObjectRemoved:*"]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"events": ["ObjectCreated:Putt"]}, "unknown S3 event"),
        ({"bucket": {"name": "Data_Bucket"}}, "not a bucket name"),
        ({"bucket": {"name": "data", "key": "a.csv"}}, "use filter.prefix"),
        ({"endpoint": "ftp://x:1"}, "scheme must be http or https"),
        ({"endpoint": "minio:9000/path"}, "expected host"),
        ({"accessKey": {"env": "A"}}, "set both accessKey and secretKey"),
        ({"mode": "sqs"}, "needs the queue's URL"),
        ({"queueUrl": "http://q/1"}, "only used with mode sqs"),
        ({"mode": "poll", "events": ["s3:ObjectRemoved:*"]}, "poll mode reports creations only"),
        ({"mode": "poll", "pollInterval": "100ms"}, "at least 1s"),
        ({"mode": "notify", "filter": {"prefix": "a", "regex": "b"}}, "Extra inputs"),
    ],
)
def test_invalid_specs(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(pydantic.ValidationError, match=message):
        s3_gateway.S3Spec.model_validate({"bucket": {"name": "data"}, **fields})


def test_name_matching() -> None:
    wanted = frozenset({"s3:ObjectCreated:*", "s3:ObjectRemoved:Delete"})
    assert s3_records.name_matches("s3:ObjectCreated:CompleteMultipartUpload", wanted)
    assert s3_records.name_matches("s3:ObjectRemoved:Delete", wanted)
    assert not s3_records.name_matches("s3:ObjectRemoved:DeleteMarkerCreated", wanted)


def test_reconciling_needs_all_creations() -> None:
    assert spec().reconciles()
    assert not spec(events=["s3:ObjectCreated:Put"]).reconciles()
    assert spec(mode="poll").reconciles()
    assert not spec(mode="sqs", queueUrl="http://q/1").reconciles()


def test_watch_key_changes_with_what_is_watched() -> None:
    assert spec().watch_key() == spec(metadata={"a": "b"}).watch_key()
    assert spec().watch_key() != spec(filter={"prefix": "raw/"}).watch_key()


def test_example_passes_the_object_key_to_the_workflow() -> None:
    loaded = documents.load([REPO / "examples" / "s3-to-workflow"])
    [gateway], [sensor] = loaded.gateways, loaded.sensors
    [(kind, name, entry)] = gateway.spec.entries()
    assert (kind, name, type(entry)) == ("minio", "raw-csv", s3_gateway.S3Spec)
    record = s3_records.created_record(
        bucket="incoming", key="raw/day-1.csv", size=1, etag="e", modified_ms=0, region="x"
    )
    event = events.Event(
        id="1", source="uploads", subject="raw-csv", type="minio",
        data={"notification": [record], "metadata": {}},
    )  # fmt: skip
    kind, trigger = sensor.spec.triggers[0].template.kind()
    assert kind == "argoWorkflow"
    workflow = parameters.apply(trigger.parameters, {"upload": event}, trigger.source.resource)
    assert workflow["spec"]["arguments"]["parameters"] == [
        {"name": "key", "value": "raw/day-1.csv"},
        {"name": "bucket", "value": "incoming"},
    ]


# --- records and ids ---------------------------------------------------------------------------


def test_created_record_has_the_s3_shape() -> None:
    record = s3_records.created_record(
        bucket="data",
        key="raw/a b+c.csv",
        size=3,
        etag="abc",
        modified_ms=1_700_000_000_123,
        region="us-east-1",
    )
    assert record["eventName"] == "s3:ObjectCreated:Put"
    assert record["eventTime"] == "2023-11-14T22:13:20.123Z"
    assert record["s3"]["object"] == {
        "key": "raw/a+b%2Bc.csv",
        "size": 3,
        "eTag": "abc",
        "sequencer": f"{1_700_000_000_123 * 1_000_000:016X}",
    }
    assert record["s3"]["bucket"]["arn"] == "arn:aws:s3:::data"
    observed = s3_records.observe(record, encoded=True)
    assert observed is not None
    assert observed.key == "raw/a b+c.csv"


def test_observe_normalizes_keys_and_names() -> None:
    aws = {
        "eventName": "ObjectCreated:Put",
        "eventTime": "2024-05-01T12:00:00.000Z",
        "s3": {"bucket": {"name": "data"}, "object": {"key": "raw/a+b.csv", "eTag": '"e1"'}},
    }
    observed = s3_records.observe(aws, encoded=True)
    assert observed is not None
    assert (observed.name, observed.key, observed.etag) == (
        "s3:ObjectCreated:Put",
        "raw/a b.csv",
        "e1",
    )
    minio_stream = {
        "eventName": "s3:ObjectRemoved:Delete",
        "s3": {"bucket": {"name": "data"}, "object": {"key": "raw/a+b.csv", "sequencer": "17"}},
    }
    removed = s3_records.observe(minio_stream, encoded=False)
    assert removed is not None
    assert removed.key == "raw/a+b.csv"
    assert removed.record["s3"]["object"]["key"] == "raw/a%2Bb.csv"
    assert (removed.created, removed.tag) == (False, "17")
    assert s3_records.observe({"Event": "s3:TestEvent"}, encoded=True) is None


def test_event_ids_are_stable_and_distinct() -> None:
    def ident(**overrides: str) -> str:
        fields = {
            "gateway": "g",
            "name": "n",
            "bucket": "b",
            "key": "k",
            "tag": "e",
            "family": "created",
        }
        return s3_records.event_id(**{**fields, **overrides})

    assert ident() == ident()
    assert (
        len({ident(), ident(key="k2"), ident(tag="e2"), ident(family="removed"), ident(name="m")})
        == 5
    )


# --- the ledger --------------------------------------------------------------------------------


def test_first_start_floor_hides_existing_objects() -> None:
    ledger = s3_listing.Ledger(overlap_ms=60_000)
    assert ledger.threshold() is None
    ledger.start_at(1_000_000)
    threshold = ledger.threshold()
    assert threshold == 1_000_000  # the floor, not watermark - overlap
    assert not ledger.is_new("a", 999_999, threshold)
    assert ledger.is_new("a", 1_000_001, threshold)


def test_overlap_and_recent_set_give_exactly_once() -> None:
    ledger = s3_listing.Ledger(overlap_ms=60_000)
    ledger.start_at(0)
    ledger.advance(1_000_000)
    threshold = ledger.threshold()
    assert threshold == 940_000
    # An object listed late (visible after newer ones) is still inside the overlap ...
    assert ledger.is_new("late", 950_000, threshold)
    ledger.remember("late", 950_000)
    # ... and reported once: the next scan sees it in the recent set.
    assert not ledger.is_new("late", 950_000, threshold)
    ledger.advance(1_005_000)
    assert "late" in ledger.recent
    ledger.advance(1_020_000)  # 950_000 <= 1_020_000 - 60_000: expired, and below threshold
    assert "late" not in ledger.recent
    assert not ledger.is_new("late", 950_000, ledger.threshold())


def test_watermark_never_moves_back_and_persists() -> None:
    ledger = s3_listing.Ledger(overlap_ms=1000)
    ledger.start_at(5000)
    ledger.remember("x", 5500)
    ledger.advance(4000)
    assert ledger.watermark == 5000
    changes = ledger.take()
    assert changes["r/x"] == b"5500"
    assert ledger.take() == {}
    restored = s3_listing.Ledger(overlap_ms=1000)
    restored.load([(k, v) for k, v in changes.items() if v is not None])
    assert (restored.watermark, restored.floor, restored.recent) == (5000, 5000, {"x": 5500})


def test_load_drops_expired_entries() -> None:
    ledger = s3_listing.Ledger(overlap_ms=1000)
    ledger.load(
        [("mark", b'{"watermark": 10000, "floor": null}'), ("r/old", b"100"), ("r/new", b"9500")]
    )
    assert ledger.recent == {"new": 9500}
    assert ledger.take() == {"r/old": None}


# --- the trigger source ------------------------------------------------------------------------


def test_s3_template_location() -> None:
    location = sources.ArtifactLocation.model_validate(
        {
            "s3": {
                "bucket": {"name": "templates", "key": "wf/a b.yaml"},
                "endpoint": "minio:9000",
                "insecure": True,
            }
        }
    )
    assert location.kind == "s3"
    assert location.describe() == "s3 templates/wf/a b.yaml"
    assert location.s3 is not None
    assert location.s3.url() == "http://minio:9000/templates/wf/a%20b.yaml"
    with pytest.raises(pydantic.ValidationError, match="set both accessKey and secretKey"):
        sources.ArtifactLocation.model_validate(
            {"s3": {"bucket": {"name": "t12", "key": "k"}, "accessKey": {"env": "A"}}}
        )
