"""Smoke tests of the real-server harness: one per server, proving it is the real thing.

Each test exercises the feature Tripwire depends on (a Kubernetes watch on a custom resource,
MinIO bucket notifications, JetStream acks, Kafka consumer groups, Redis consumer groups, AMQP
and MQTT QoS 1 delivery, SQS receive and delete) with the same client library the gateways use,
and removes what it created. If one fails, the harness is broken, not Tripwire.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import urllib.parse
from typing import Any

import pytest

from tests import servers

pytestmark = pytest.mark.integration

DEADLINE = 20.0  # seconds for any single delivery; the servers answer in milliseconds


@pytest.mark.redis
async def test_redis_stream_consumer_group(redis_url: str, unique_name: str) -> None:
    import redis.asyncio as aioredis

    client = aioredis.from_url(redis_url)
    try:
        await client.xgroup_create(unique_name, "g", id="0", mkstream=True)
        entry_id = await client.xadd(unique_name, {"body": "hello"})
        reply: Any = await client.xreadgroup("g", "c1", {unique_name: ">"}, count=1, block=5000)
        [[stream, [(got_id, fields)]]] = reply
        assert stream == unique_name.encode()
        assert got_id == entry_id
        assert fields == {b"body": b"hello"}
        assert await client.xack(unique_name, "g", got_id) == 1
        pending = await client.xpending(unique_name, "g")
        assert pending["pending"] == 0
    finally:
        await client.delete(unique_name)
        await client.aclose()


@pytest.mark.nats
async def test_nats_jetstream_publish_fetch_ack(nats_url: str, unique_name: str) -> None:
    import nats

    nc = await nats.connect(nats_url, connect_timeout=5, max_reconnect_attempts=0)
    js = nc.jetstream()
    subject = f"{unique_name}.events"
    try:
        await js.add_stream(name=unique_name, subjects=[f"{unique_name}.>"])
        ack = await js.publish(subject, b"hello", headers={"Nats-Msg-Id": "m1"})
        assert ack.stream == unique_name
        assert ack.seq == 1
        dup = await js.publish(subject, b"hello", headers={"Nats-Msg-Id": "m1"})
        assert dup.duplicate  # dedupe window: the bus relies on it
        sub = await js.pull_subscribe(subject, durable="sensor")
        [msg] = await sub.fetch(1, timeout=DEADLINE)
        assert msg.data == b"hello"
        await msg.ack_sync()
        info = await js.consumer_info(unique_name, "sensor")
        assert info.ack_floor is not None
        assert info.ack_floor.stream_seq == 1
        assert info.num_ack_pending == 0
        await sub.unsubscribe()
    finally:
        await js.delete_stream(unique_name)
        await nc.close()


@pytest.mark.kafka
async def test_kafka_round_trip_with_consumer_group(kafka_bootstrap: str, unique_name: str) -> None:
    from aiokafka import (
        AIOKafkaConsumer,
        AIOKafkaProducer,
        TopicPartition,
    )
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(unique_name, num_partitions=1, replication_factor=1)])
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
        await producer.start()
        try:
            sent = await producer.send_and_wait(unique_name, b"hello", key=b"k")
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(
            unique_name,
            bootstrap_servers=kafka_bootstrap,
            group_id=unique_name,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )
        await consumer.start()
        try:
            record = await asyncio.wait_for(consumer.getone(), DEADLINE)
            assert (record.key, record.value, record.offset) == (b"k", b"hello", sent.offset)
            await consumer.commit()
            committed = await consumer.committed(TopicPartition(unique_name, 0))
            assert committed == sent.offset + 1
        finally:
            await consumer.stop()
    finally:
        await admin.delete_topics([unique_name])
        await admin.close()


@pytest.mark.rabbitmq
async def test_amqp_publish_consume_ack(amqp_url: str, unique_name: str) -> None:
    import aio_pika

    connection = await aio_pika.connect(amqp_url, timeout=10)
    try:
        channel = await connection.channel(publisher_confirms=True)
        queue = await channel.declare_queue(unique_name, durable=True)
        await channel.default_exchange.publish(
            aio_pika.Message(b"hello", delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
            routing_key=unique_name,
        )
        async with asyncio.timeout(DEADLINE):
            async with queue.iterator() as messages:
                async for message in messages:
                    assert message.body == b"hello"
                    await message.ack()
                    break
        await queue.delete(if_unused=False, if_empty=False)
    finally:
        await connection.close()


@pytest.mark.mosquitto
async def test_mqtt_qos1_publish_subscribe(mqtt: servers.MqttEndpoint, unique_name: str) -> None:
    import aiomqtt

    topic = f"tripwire/{unique_name}/events"
    async with aiomqtt.Client(mqtt.host, mqtt.port, identifier=unique_name) as client:
        await client.subscribe(topic, qos=1)
        await client.publish(topic, b"hello", qos=1)
        async with asyncio.timeout(DEADLINE):
            async for message in client.messages:
                assert message.topic.matches(topic)
                assert message.payload == b"hello"
                assert message.qos == 1
                break
        await client.unsubscribe(topic)


@pytest.mark.minio
async def test_minio_put_arrives_through_listen_bucket_notification(
    s3: servers.S3Endpoint, unique_name: str
) -> None:
    import aiohttp
    import boto3
    import yarl
    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    client: Any = boto3.client(
        "s3",
        endpoint_url=s3.endpoint,
        aws_access_key_id=s3.access_key,
        aws_secret_access_key=s3.secret_key,
        region_name=s3.region,
    )
    await asyncio.to_thread(client.create_bucket, Bucket=unique_name)
    try:
        # MinIO's ListenBucketNotification: a SigV4-signed, long-lived GET streaming JSON lines.
        # SigV4 signs the query exactly as sent: encode it the AWS way, and keep aiohttp from
        # re-encoding it.
        query = urllib.parse.urlencode(
            {"events": "s3:ObjectCreated:*", "prefix": "raw/"}, quote_via=urllib.parse.quote
        )
        url = f"{s3.endpoint}/{unique_name}?{query}"
        request = AWSRequest(method="GET", url=url)
        S3SigV4Auth(Credentials(s3.access_key, s3.secret_key), "s3", s3.region).add_auth(request)
        async with (
            asyncio.timeout(DEADLINE),
            aiohttp.ClientSession() as session,
            session.get(
                yarl.URL(url, encoded=True), headers=dict(request.headers.items())
            ) as response,
        ):
            assert response.status == 200, await response.text()
            record: dict[str, Any] | None = None
            attempt = 0
            while record is None:
                # The subscription registers asynchronously after the response headers: put
                # until an event shows up. Between events MinIO sends keep-alive spaces, which
                # end up in front of the next JSON line.
                attempt += 1
                await asyncio.to_thread(
                    client.put_object, Bucket=unique_name, Key=f"raw/{attempt}.csv", Body=b"a,b\n"
                )
                try:
                    line = await asyncio.wait_for(response.content.readline(), 2.0)
                except TimeoutError:
                    continue
                if line.strip():
                    record = json.loads(line)["Records"][0]
        assert record["eventName"] == "s3:ObjectCreated:Put"
        assert record["s3"]["bucket"]["name"] == unique_name
        assert record["s3"]["object"]["key"].startswith("raw/")
    finally:
        listing = await asyncio.to_thread(client.list_objects_v2, Bucket=unique_name)
        for obj in listing.get("Contents", []):
            await asyncio.to_thread(client.delete_object, Bucket=unique_name, Key=obj["Key"])
        await asyncio.to_thread(client.delete_bucket, Bucket=unique_name)
        client.close()


@pytest.mark.sqs
async def test_sqs_send_receive_delete(sqs_url: str, unique_name: str) -> None:
    import boto3

    client: Any = boto3.client(
        "sqs",
        endpoint_url=sqs_url,
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="x",
    )
    queue = (await asyncio.to_thread(client.create_queue, QueueName=unique_name))["QueueUrl"]
    try:
        await asyncio.to_thread(client.send_message, QueueUrl=queue, MessageBody="hello")
        reply = await asyncio.to_thread(
            client.receive_message, QueueUrl=queue, MaxNumberOfMessages=1, WaitTimeSeconds=5
        )
        [message] = reply["Messages"]
        assert message["Body"] == "hello"
        # Received, not deleted: invisible, not gone (the sqs gateway deletes after publish).
        attrs = await asyncio.to_thread(
            client.get_queue_attributes, QueueUrl=queue, AttributeNames=["All"]
        )
        assert attrs["Attributes"]["ApproximateNumberOfMessagesNotVisible"] == "1"
        await asyncio.to_thread(
            client.delete_message, QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"]
        )
        attrs = await asyncio.to_thread(
            client.get_queue_attributes, QueueUrl=queue, AttributeNames=["All"]
        )
        assert attrs["Attributes"]["ApproximateNumberOfMessagesNotVisible"] == "0"
        assert attrs["Attributes"]["ApproximateNumberOfMessages"] == "0"
    finally:
        await asyncio.to_thread(client.delete_queue, QueueUrl=queue)
        client.close()


CRD = """\
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.%(group)s}
spec:
  group: %(group)s
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget}
  versions:
    - name: v1
      served: true
      storage: true
      subresources: {status: {}}
      schema:
        openAPIV3Schema:
          type: object
          properties:
            spec:
              type: object
              properties: {size: {type: integer}}
            status:
              type: object
              properties: {phase: {type: string}}
"""

WIDGET = """\
apiVersion: %(group)s/v1
kind: Widget
metadata: {name: w1, namespace: %(namespace)s}
spec: {size: 3}
"""


async def _kubectl(kube: servers.KubeEndpoint, *args: str, stdin: str = "") -> str:
    proc = await asyncio.create_subprocess_exec(
        *kube.kubectl_cmd(*args),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(stdin.encode()), DEADLINE)
    assert proc.returncode == 0, f"kubectl {' '.join(args)}: {err.decode()}"
    return out.decode()


@pytest.mark.k8s
async def test_kube_crd_apply_and_watch(kube: servers.KubeEndpoint, kube_namespace: str) -> None:
    import aiohttp

    group = f"{kube_namespace}.smoke.tripwire.dev"
    crd_name = f"widgets.{group}"
    await _kubectl(kube, "apply", "-f", "-", stdin=CRD % {"group": group})
    try:
        await _kubectl(kube, "wait", "--for=condition=Established", f"crd/{crd_name}")
        ctx = ssl.create_default_context(cafile=str(kube.ca_file))
        headers = {"Authorization": f"Bearer {kube.token}"}
        url = f"{kube.server}/apis/{group}/v1/namespaces/{kube_namespace}/widgets"
        async with aiohttp.ClientSession(headers=headers) as session:
            # Right after a CRD is Established its storage may still be initializing: the
            # apiserver answers 429 + Retry-After, which every client must honour.
            async with asyncio.timeout(DEADLINE):
                while True:
                    async with session.get(url, ssl=ctx) as listed:
                        if listed.status != 429:
                            assert listed.status == 200, await listed.text()
                            version = (await listed.json())["metadata"]["resourceVersion"]
                            break
                    await asyncio.sleep(float(listed.headers.get("Retry-After", "1")))
            params = {"watch": "1", "resourceVersion": version}
            async with session.get(url, params=params, ssl=ctx) as watch:
                assert watch.status == 200, await watch.text()
                widget = WIDGET % {"group": group, "namespace": kube_namespace}
                await _kubectl(kube, "apply", "-f", "-", stdin=widget)
                async with asyncio.timeout(DEADLINE):
                    event = json.loads(await watch.content.readline())
            assert event["type"] == "ADDED"
            assert event["object"]["metadata"]["name"] == "w1"
            assert event["object"]["spec"] == {"size": 3}
            # the status subresource is served (the controller writes status through it)
            status_url = f"{url}/w1/status"
            patch = {"status": {"phase": "Ready"}}
            async with session.patch(
                status_url,
                data=json.dumps(patch),
                headers={"Content-Type": "application/merge-patch+json"},
                ssl=ctx,
            ) as patched:
                assert patched.status == 200, await patched.text()
                assert (await patched.json())["status"] == {"phase": "Ready"}
        await _kubectl(kube, "delete", "-n", kube_namespace, f"widget.{group}", "w1")
    finally:
        await _kubectl(kube, "delete", "crd", crd_name, "--wait=true")
