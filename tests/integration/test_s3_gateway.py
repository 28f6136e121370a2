"""The s3 gateway against real MinIO (and ElasticMQ for sqs): each matching object once.

Every test runs the gateway in-process with a real, durable `EmbeddedBus` as the dispatch
target and its store as the gateway's state, and checks two things: what a sensor consuming the
bus receives (each matching object exactly once, nothing else), and what the gateway dispatched
(each object once too — the bus's dedupe window is not needed to get there, except where a test
says so: a redelivered SQS message is dispatched again and dropped by the bus).

Objects are written with boto3 from a thread pool, as fast as MinIO takes them.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import dataclasses
import json
import pathlib
import urllib.parse
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import pytest

from gateways import base
from gateways.s3 import records as s3_records
from gateways.s3 import source as s3_gateway
from tests import servers
from triggers import sources
from tripwire import errors, events, secrets
from tripwire.bus import embedded

pytestmark = [pytest.mark.integration, pytest.mark.minio, pytest.mark.timeout(150)]

DEADLINE = 60.0
GATEWAY = "store"
ENTRY = "uploads"


# --- helpers ---------------------------------------------------------------------------------


def s3_client(endpoint: servers.S3Endpoint) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=endpoint.endpoint,
        aws_access_key_id=endpoint.access_key,
        aws_secret_access_key=endpoint.secret_key,
        region_name=endpoint.region,
        config=Config(max_pool_connections=64, s3={"addressing_style": "path"}),
    )


def put_many(client: Any, bucket: str, keys: list[str], *, workers: int = 32) -> None:
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        for future in [
            pool.submit(client.put_object, Bucket=bucket, Key=key, Body=key.encode())
            for key in keys
        ]:
            future.result()


def empty_bucket(client: Any, bucket: str) -> None:
    paginator = client.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket):
        keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
        if keys:
            client.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})
    client.delete_bucket(Bucket=bucket)


@pytest.fixture
def minio(s3: servers.S3Endpoint) -> Iterator[Any]:
    client = s3_client(s3)
    yield client
    client.close()


@pytest.fixture
async def bucket(minio: Any, unique_name: str) -> AsyncIterator[str]:
    await asyncio.to_thread(minio.create_bucket, Bucket=unique_name)
    yield unique_name
    await asyncio.to_thread(empty_bucket, minio, unique_name)


def spec_fields(endpoint: servers.S3Endpoint, bucket: str, **extra: Any) -> dict[str, Any]:
    """An entry as a user writes it: host:port + insecure, credentials from env variables."""
    return {
        "bucket": {"name": bucket},
        "endpoint": urllib.parse.urlsplit(endpoint.endpoint).netloc,
        "insecure": True,
        "region": endpoint.region,
        "accessKey": {"env": "TRIPWIRE_TEST_S3_ACCESS_KEY"},
        "secretKey": {"env": "TRIPWIRE_TEST_S3_SECRET_KEY"},
        **extra,
    }


@pytest.fixture(autouse=True)
def credentials_in_env(s3: servers.S3Endpoint, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRIPWIRE_TEST_S3_ACCESS_KEY", s3.access_key)
    monkeypatch.setenv("TRIPWIRE_TEST_S3_SECRET_KEY", s3.secret_key)


def key_of(event: events.Event) -> str:
    return s3_records.decode_key(event.data["notification"][0]["s3"]["object"]["key"])


@dataclasses.dataclass
class Harness:
    """A durable bus, a sensor-like consumer on it, and the gateway's dispatch log."""

    bus: embedded.EmbeddedBus
    dispatched: list[events.Event] = dataclasses.field(default_factory=list)
    received: list[events.Event] = dataclasses.field(default_factory=list)
    changed: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)

    async def dispatch(self, event: events.Event) -> None:
        await self.bus.publish(event)
        self.dispatched.append(event)

    def context(self, kind: str = "s3") -> base.SourceContext:
        return base.SourceContext(
            gateway=GATEWAY,
            name=ENTRY,
            kind=kind,
            dispatch=self.dispatch,
            store=self.bus.store(f"gateway/{GATEWAY}/{ENTRY}"),
            secrets=secrets.LocalResolver(),
        )

    async def consume(self) -> None:
        subject = f"{self.bus.prefix}.{GATEWAY}.{ENTRY}"
        subscription = await self.bus.subscribe(consumer="sensor", subjects=[subject])
        try:
            async for message in subscription:
                self.received.append(message.event)
                await message.ack()
                self.changed.set()
        finally:
            await subscription.close()

    async def wait_for(self, keys: set[str], *, timeout: float = DEADLINE) -> None:
        """Until every key in `keys` was received (or fail listing what is missing)."""
        try:
            async with asyncio.timeout(timeout):
                while not keys <= {key_of(e) for e in self.received}:
                    self.changed.clear()
                    await self.changed.wait()
        except TimeoutError:
            missing = keys - {key_of(e) for e in self.received}
            pytest.fail(f"{len(missing)} object(s) never arrived, e.g. {sorted(missing)[:5]}")

    def check_exactly(self, keys: set[str]) -> None:
        got = collections.Counter(key_of(e) for e in self.received)
        assert set(got) == keys, f"unexpected: {sorted(set(got) - keys)[:5]}"
        twice = [k for k, n in got.items() if n > 1]
        assert not twice, f"{len(twice)} key(s) received more than once, e.g. {twice[:5]}"
        sent = collections.Counter(key_of(e) for e in self.dispatched)
        again = [k for k, n in sent.items() if n > 1]
        assert not again, f"{len(again)} key(s) dispatched more than once, e.g. {again[:5]}"


@pytest.fixture
async def harness(tmp_path: pathlib.Path) -> AsyncIterator[Harness]:
    async with contextlib.AsyncExitStack() as stack:
        bus = embedded.EmbeddedBus(path=tmp_path / "bus")
        await bus.start(stack)
        h = Harness(bus=bus)
        consumer = asyncio.create_task(h.consume(), name="test-sensor")
        await asyncio.sleep(0)
        yield h
        consumer.cancel()
        await asyncio.wait([consumer])


@contextlib.asynccontextmanager
async def running(
    harness: Harness, fields: dict[str, Any], *, kind: str = "s3"
) -> AsyncIterator[s3_gateway.S3Source]:
    spec = s3_gateway.S3Spec.model_validate(fields)
    source = s3_gateway.S3Source(spec=spec, context=harness.context(kind))
    async with contextlib.AsyncExitStack() as stack:
        await source.start(stack)
        yield source


async def settle(source: s3_gateway.S3Source) -> None:
    """Let anything late (a repeat) arrive: two more listings in poll mode; in notify mode
    the reconcile of the connect must be done, then a moment for the stream."""
    if source.spec.mode == "poll":
        await next_scan(source, count=2)
    else:
        async with asyncio.timeout(DEADLINE):
            while source.scans < 1:
                source.scanned.clear()
                await source.scanned.wait()
    await asyncio.sleep(0.5)


async def next_scan(source: s3_gateway.S3Source, *, count: int = 1) -> None:
    """Wait until `count` more listings completed."""
    target = source.scans + count
    async with asyncio.timeout(DEADLINE):
        while source.scans < target:
            source.scanned.clear()
            await source.scanned.wait()


PREFIXES = ("raw/", "raw/deep/", "other/", "rawx/", "")
SUFFIXES = (".csv", ".json", ".csv.tmp", ".CSV")


def mixed_keys(count: int, *, tag: str) -> list[str]:
    """`count` keys over prefixes and suffixes, some with characters S3 URL-encodes."""
    keys = []
    for i in range(count):
        prefix = PREFIXES[i % len(PREFIXES)]
        suffix = SUFFIXES[(i // len(PREFIXES)) % len(SUFFIXES)]
        name = f"{tag} {i:04d}+ü" if i % 7 == 0 else f"{tag}-{i:04d}"
        keys.append(f"{prefix}{name}{suffix}")
    return keys


def matching(keys: list[str]) -> set[str]:
    return {k for k in keys if k.startswith("raw/") and k.endswith(".csv")}


FILTER = {"prefix": "raw/", "suffix": ".csv"}
MODES = {
    "notify": {"mode": "notify"},
    # Poll fast; the overlap stays long so re-listed objects must be deduped by the ledger.
    "poll": {"mode": "poll", "pollInterval": "1s"},
}


# --- must-show 1: 500 objects while the gateway runs -------------------------------------------


@pytest.mark.parametrize("mode", sorted(MODES))
async def test_500_objects_exactly_the_matching_ones_once(
    mode: str, s3: servers.S3Endpoint, minio: Any, bucket: str, harness: Harness
) -> None:
    fields = spec_fields(s3, bucket, filter=FILTER, **MODES[mode])
    await asyncio.to_thread(put_many, minio, bucket, ["raw/before.csv"])  # existed before
    await asyncio.sleep(1.1)  # the first start's floor is the server's Date: whole seconds
    async with running(harness, fields) as source:
        keys = mixed_keys(500, tag=mode)
        await asyncio.to_thread(put_many, minio, bucket, keys)
        expected = matching(keys)
        assert len(expected) == 50  # 2 of 5 prefixes x 1 of 4 suffixes
        await harness.wait_for(expected)
        await settle(source)  # listings after the last put repeat nothing
    harness.check_exactly(expected)
    record = next(e for e in harness.received if " " in key_of(e)).data["notification"][0]
    assert record["eventName"] == "s3:ObjectCreated:Put"
    assert record["s3"]["bucket"]["name"] == bucket
    assert "+" in record["s3"]["object"]["key"]  # AWS's encoding of a space
    assert record["s3"]["object"]["eTag"]


# --- must-show 2: stop, put 50, start -----------------------------------------------------------


@pytest.mark.parametrize("mode", sorted(MODES))
async def test_objects_put_while_stopped_arrive_once_after_restart(
    mode: str, s3: servers.S3Endpoint, minio: Any, bucket: str, harness: Harness
) -> None:
    fields = spec_fields(s3, bucket, filter=FILTER, **MODES[mode])
    before = [f"raw/live-{i:02d}.csv" for i in range(20)]
    async with running(harness, fields) as source:
        await asyncio.to_thread(put_many, minio, bucket, before)
        await harness.wait_for(set(before))
        if mode == "poll":
            await next_scan(source)
    while_down = [f"raw/down-{i:02d}.csv" for i in range(50)]
    await asyncio.to_thread(put_many, minio, bucket, [*while_down, "raw/down.txt", "x/y.csv"])
    async with running(harness, fields) as source:
        await harness.wait_for(set(while_down))
        after = [f"raw/after-{i:02d}.csv" for i in range(10)]
        await asyncio.to_thread(put_many, minio, bucket, after)
        await harness.wait_for(set(after))
        await settle(source)
    harness.check_exactly({*before, *while_down, *after})


async def test_notify_streams_removals_and_minio_alias(
    s3: servers.S3Endpoint, minio: Any, bucket: str, harness: Harness
) -> None:
    fields = spec_fields(
        s3, bucket, events=["ObjectCreated:*", "s3:ObjectRemoved:*"], metadata={"team": "ml"}
    )
    async with running(harness, fields, kind="minio"):
        await asyncio.to_thread(minio.put_object, Bucket=bucket, Key="a/b c.txt", Body=b"1")
        await harness.wait_for({"a/b c.txt"})
        await asyncio.to_thread(minio.delete_object, Bucket=bucket, Key="a/b c.txt")
        async with asyncio.timeout(DEADLINE):
            while len(harness.received) < 2:
                harness.changed.clear()
                await harness.changed.wait()
    created, removed = (e.data["notification"][0] for e in harness.received)
    assert created["eventName"].startswith("s3:ObjectCreated:")
    assert created["eventSource"] == "minio:s3"
    assert created["s3"]["object"]["key"] == "a/b+c.txt"
    assert removed["eventName"] == "s3:ObjectRemoved:Delete"
    assert harness.received[0].data["metadata"] == {"team": "ml"}
    assert harness.received[0].type == "minio"


async def test_emit_existing_reports_what_was_there_on_first_start(
    s3: servers.S3Endpoint, minio: Any, bucket: str, harness: Harness
) -> None:
    existing = [f"raw/old-{i}.csv" for i in range(30)]
    await asyncio.to_thread(put_many, minio, bucket, existing)
    fields = spec_fields(s3, bucket, mode="poll", pollInterval="1s", emitExisting=True)
    async with running(harness, fields) as source:
        await harness.wait_for(set(existing))
        await next_scan(source, count=2)
    harness.check_exactly(set(existing))


async def test_unknown_bucket_is_a_source_error(
    s3: servers.S3Endpoint, harness: Harness, unique_name: str
) -> None:
    spec = s3_gateway.S3Spec.model_validate(spec_fields(s3, unique_name + "-missing"))
    source = s3_gateway.S3Source(spec=spec, context=harness.context())
    async with contextlib.AsyncExitStack() as stack:
        with pytest.raises(errors.SourceError, match=r"404|Not Found|NoSuchBucket"):
            await source.start(stack)


# --- must-show 4: sqs ---------------------------------------------------------------------------


def aws_record(bucket: str, key: str, etag: str, size: int, name: str) -> dict[str, Any]:
    """A record as AWS S3 delivers it to SQS (eventName without the s3: prefix)."""
    return {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": "us-east-1",
        "eventTime": "2024-05-01T12:00:00.000Z",
        "eventName": name,
        "s3": {
            "s3SchemaVersion": "1.0",
            "bucket": {"name": bucket, "arn": f"arn:aws:s3:::{bucket}"},
            "object": {
                "key": urllib.parse.quote_plus(key, safe="/"),
                "size": size,
                "eTag": etag,
                "sequencer": "0055AED6DCD90281E5",
            },
        },
    }


@pytest.mark.sqs
async def test_sqs_mode_dispatches_then_deletes(
    s3: servers.S3Endpoint,
    sqs_url: str,
    minio: Any,
    bucket: str,
    harness: Harness,
    unique_name: str,
) -> None:
    import boto3

    sqs = boto3.client(
        "sqs",
        endpoint_url=sqs_url,
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="x",
    )
    queue = (await asyncio.to_thread(sqs.create_queue, QueueName=unique_name))["QueueUrl"]
    try:
        keys = [f"raw/q-{i:02d} x.csv" for i in range(40)]
        await asyncio.to_thread(put_many, minio, bucket, [*keys, "raw/skip.json"])

        def notify(key: str, name: str = "ObjectCreated:Put") -> None:
            head = minio.head_object(Bucket=bucket, Key=key)
            record = aws_record(bucket, key, head["ETag"], head["ContentLength"], name)
            sqs.send_message(QueueUrl=queue, MessageBody=json.dumps({"Records": [record]}))

        test_event = {"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": bucket}
        await asyncio.to_thread(
            sqs.send_message, QueueUrl=queue, MessageBody=json.dumps(test_event)
        )
        for key in keys:
            await asyncio.to_thread(notify, key)
        await asyncio.to_thread(notify, keys[0])  # S3 delivers at least once: a duplicate
        await asyncio.to_thread(notify, "raw/skip.json")  # filtered out by the suffix
        await asyncio.to_thread(sqs.send_message, QueueUrl=queue, MessageBody="not json")

        fields = spec_fields(s3, bucket, mode="sqs", queueUrl=queue, filter=FILTER)
        fields["accessKey"] = fields["secretKey"] = {"env": "TRIPWIRE_TEST_S3_ACCESS_KEY"}
        async with running(harness, fields):
            await harness.wait_for(set(keys))
            async with asyncio.timeout(DEADLINE):
                while True:
                    attrs = await asyncio.to_thread(
                        sqs.get_queue_attributes,
                        QueueUrl=queue,
                        AttributeNames=["ApproximateNumberOfMessages", "All"],
                    )
                    counts = attrs["Attributes"]
                    if (
                        counts["ApproximateNumberOfMessages"] == "0"
                        and counts["ApproximateNumberOfMessagesNotVisible"] == "0"
                    ):
                        break
                    await asyncio.sleep(0.2)
        got = collections.Counter(key_of(e) for e in harness.received)
        assert got == collections.Counter(keys)  # the duplicate was dropped by the bus
        assert len(harness.dispatched) == len(keys) + 1
        assert harness.received[0].data["notification"][0]["eventName"] == ("s3:ObjectCreated:Put")
    finally:
        await asyncio.to_thread(sqs.delete_queue, QueueUrl=queue)
        sqs.close()


@pytest.mark.sqs
async def test_sqs_message_stays_until_the_bus_has_the_event(
    s3: servers.S3Endpoint, sqs_url: str, minio: Any, bucket: str, unique_name: str
) -> None:
    import boto3

    sqs = boto3.client(
        "sqs",
        endpoint_url=sqs_url,
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="x",
    )
    queue = (await asyncio.to_thread(sqs.create_queue, QueueName=unique_name))["QueueUrl"]
    bus_up = asyncio.Event()
    got: list[events.Event] = []

    async def dispatch(event: events.Event) -> None:
        if not bus_up.is_set():
            raise errors.BusUnavailableError("down for the test")
        got.append(event)

    try:
        record = aws_record(bucket, "raw/a.csv", "abc", 1, "ObjectCreated:Put")
        await asyncio.to_thread(
            sqs.send_message, QueueUrl=queue, MessageBody=json.dumps({"Records": [record]})
        )
        spec = s3_gateway.S3Spec.model_validate(
            {"bucket": {"name": bucket}, "mode": "sqs", "queueUrl": queue, "region": "us-east-1"}
        )
        context = dataclasses.replace(
            Harness(bus=embedded.EmbeddedBus(path=None)).context(), dispatch=dispatch
        )
        source = s3_gateway.S3Source(
            spec=spec, context=context, retry_delays=lambda: iter([0.05] * 10_000)
        )
        async with contextlib.AsyncExitStack() as stack:
            await source.start(stack)
            await asyncio.sleep(1.0)
            attrs = await asyncio.to_thread(
                sqs.get_queue_attributes, QueueUrl=queue, AttributeNames=["All"]
            )
            assert attrs["Attributes"]["ApproximateNumberOfMessagesNotVisible"] == "1"
            assert not got
            bus_up.set()
            async with asyncio.timeout(DEADLINE):
                while not got:  # noqa: ASYNC110 - the dispatch retries on its own clock
                    await asyncio.sleep(0.05)
                while True:
                    attrs = await asyncio.to_thread(
                        sqs.get_queue_attributes, QueueUrl=queue, AttributeNames=["All"]
                    )
                    if attrs["Attributes"]["ApproximateNumberOfMessagesNotVisible"] == "0":
                        break
                    await asyncio.sleep(0.1)
        assert attrs["Attributes"]["ApproximateNumberOfMessages"] == "0"
        assert [key_of(e) for e in got] == ["raw/a.csv"]
    finally:
        await asyncio.to_thread(sqs.delete_queue, QueueUrl=queue)
        sqs.close()


# --- the s3 trigger source ----------------------------------------------------------------------


async def test_trigger_template_from_an_s3_object(
    s3: servers.S3Endpoint, minio: Any, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    template = "apiVersion: argoproj.io/v1alpha1\nkind: Workflow\nmetadata: {generateName: a-}\n"
    await asyncio.to_thread(
        minio.put_object, Bucket=bucket, Key="templates/wf 1.yaml", Body=template.encode()
    )
    location = sources.ArtifactLocation.model_validate(
        {
            "s3": {
                "bucket": {"name": bucket, "key": "templates/wf 1.yaml"},
                "endpoint": urllib.parse.urlsplit(s3.endpoint).netloc,
                "insecure": True,
                "region": s3.region,
                "accessKey": {"env": "TRIPWIRE_TEST_S3_ACCESS_KEY"},
                "secretKey": {"env": "TRIPWIRE_TEST_S3_SECRET_KEY"},
            }
        }
    )
    async with aiohttp.ClientSession() as session:
        parsed = await sources.resolve(location, session=session)
        assert parsed["kind"] == "Workflow"
        assert location.s3 is not None
        absent = location.s3.bucket.model_copy(update={"key": "templates/nope.yaml"})
        missing = location.model_copy(
            update={"s3": location.s3.model_copy(update={"bucket": absent})}
        )
        with pytest.raises(errors.PermanentTriggerError, match="HTTP 404"):
            await sources.resolve(missing, session=session)
        with pytest.raises(errors.PermanentTriggerError, match="larger than"):
            await sources.resolve(location, session=session, limits=sources.Limits(max_bytes=10))
        monkeypatch.setenv("TRIPWIRE_TEST_S3_SECRET_KEY", "wrong")
        with pytest.raises(errors.PermanentTriggerError, match="HTTP 403"):
            await sources.resolve(location, session=session)
