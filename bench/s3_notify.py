"""S3 notify mode: objects per second from PUT to event durable on the bus.

Issue 5 asks how fast new objects become events when MinIO's notification stream is followed.
This runs the s3 gateway in-process (notify mode) with a durable `EmbeddedBus` as its dispatch
target, against the real MinIO of `scripts/services up minio`, puts N objects from a thread pool
of C boto3 workers, and reports:

- put rate: how fast MinIO took the objects (the ceiling for this machine);
- end-to-end rate: N / (first PUT started -> last event durable on the bus);
- latency p50/p99 from each PUT's return to its event being durable.

    .venv/bin/python bench/s3_notify.py --n 5000 --concurrency 32

The bucket is created fresh and removed at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import os
import pathlib
import secrets
import statistics
import sys
import tempfile
import time
import urllib.parse
from typing import Any

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from gateways import base
from gateways.s3 import records as s3_records
from gateways.s3 import source as s3_gateway
from tests import servers
from tripwire import events
from tripwire import secrets as tripwire_secrets
from tripwire.bus import embedded


def client_of(env: dict[str, str], *, pool: int) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=env["TRIPWIRE_S3_ENDPOINT"],
        aws_access_key_id=env["TRIPWIRE_S3_ACCESS_KEY"],
        aws_secret_access_key=env["TRIPWIRE_S3_SECRET_KEY"],
        region_name=env.get("TRIPWIRE_S3_REGION", "us-east-1"),
        config=Config(max_pool_connections=pool, s3={"addressing_style": "path"}),
    )


def put_all(
    client: Any, bucket: str, keys: list[str], *, concurrency: int, done: dict[str, float]
) -> None:
    def put(key: str) -> None:
        client.put_object(Bucket=bucket, Key=key, Body=b"x")
        done[key] = time.perf_counter()

    with concurrent.futures.ThreadPoolExecutor(max_workers=concurrency) as pool:
        for future in [pool.submit(put, key) for key in keys]:
            future.result()


def empty_bucket(client: Any, bucket: str) -> None:
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
        if keys:
            client.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})
    client.delete_bucket(Bucket=bucket)


async def run(n: int, concurrency: int) -> int:
    env = servers.read_env(servers.env_file())
    client = client_of(env, pool=concurrency)
    bucket = "bench-" + secrets.token_hex(4)
    await asyncio.to_thread(client.create_bucket, Bucket=bucket)
    arrived: dict[str, float] = {}
    put_done: dict[str, float] = {}
    all_in = asyncio.Event()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            async with contextlib.AsyncExitStack() as stack:
                bus = embedded.EmbeddedBus(path=pathlib.Path(tmp))
                await bus.start(stack)

                async def dispatch(event: events.Event) -> None:
                    await bus.publish(event)
                    key = s3_records.decode_key(
                        event.data["notification"][0]["s3"]["object"]["key"]
                    )
                    arrived.setdefault(key, time.perf_counter())
                    if len(arrived) >= n:
                        all_in.set()

                context = base.SourceContext(
                    gateway="bench",
                    name="objects",
                    kind="s3",
                    dispatch=dispatch,
                    store=bus.store("gateway/bench/objects"),
                    secrets=tripwire_secrets.LocalResolver(),
                )
                spec = s3_gateway.S3Spec.model_validate(
                    {
                        "bucket": {"name": bucket},
                        "endpoint": urllib.parse.urlsplit(env["TRIPWIRE_S3_ENDPOINT"]).netloc,
                        "insecure": True,
                        "mode": "notify",
                    }
                )
                os.environ.setdefault("AWS_ACCESS_KEY_ID", env["TRIPWIRE_S3_ACCESS_KEY"])
                os.environ.setdefault("AWS_SECRET_ACCESS_KEY", env["TRIPWIRE_S3_SECRET_KEY"])
                source = s3_gateway.S3Source(spec=spec, context=context)
                await source.start(stack)
                keys = [f"in/{i:07d}.bin" for i in range(n)]
                start = time.perf_counter()
                await asyncio.to_thread(
                    put_all, client, bucket, keys, concurrency=concurrency, done=put_done
                )
                put_seconds = time.perf_counter() - start
                try:
                    await asyncio.wait_for(all_in.wait(), timeout=120)
                except TimeoutError:
                    print(f"only {len(arrived)} of {n} events arrived in time")
                    return 3
                total = max(arrived.values()) - start
    finally:
        await asyncio.to_thread(empty_bucket, client, bucket)
        client.close()
    lags = sorted(arrived[k] - put_done[k] for k in arrived if k in put_done)
    p99 = lags[int(len(lags) * 0.99) - 1]
    print(f"objects:            {n} (concurrency {concurrency})")
    print(f"put rate:           {n / put_seconds:8.0f} objects/s")
    print(f"put -> event on bus:{n / total:8.0f} objects/s end to end ({total:.2f} s)")
    print(f"latency p50/p99:    {statistics.median(lags) * 1000:.1f} / {p99 * 1000:.1f} ms")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    return asyncio.run(run(args.n, args.concurrency))


if __name__ == "__main__":
    raise SystemExit(main())
