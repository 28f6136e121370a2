"""S3 poll mode over a large bucket: memory stays flat, existing objects stay quiet.

Issue 5: `poll` over 100,000 existing keys keeps RSS bounded and emits nothing for objects that
existed before the gateway was first started. This fills a fresh MinIO bucket (the harness's,
`scripts/services up minio`) with N tiny objects from a boto3 thread pool, then runs the s3
gateway in poll mode in-process (durable `EmbeddedBus`, pollInterval 1s) for several full
listings, and prints RSS before the gateway started, after each listing, and the peak; then
puts 20 new objects and checks that exactly those arrive. Exit code 0 when nothing old was
reported and the 20 new ones were, 3 otherwise.

    .venv/bin/python bench/s3_large_bucket.py --n 100000      # ~4 min on 2 cores (the puts)

The bucket is removed at the end (unless --keep-bucket NAME is given to reuse it).
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import os
import pathlib
import resource
import secrets
import sys
import tempfile
import time
import urllib.parse
from typing import Any

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import s3_notify  # bench/ is on sys.path: these scripts run as `python bench/x.py`

from gateways import base
from gateways.s3 import source as s3_gateway
from tests import servers
from tripwire import events
from tripwire import secrets as tripwire_secrets
from tripwire.bus import embedded


def rss_mb() -> float:
    for line in pathlib.Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def fill(client: Any, bucket: str, n: int, *, workers: int) -> None:
    def put(i: int) -> None:
        client.put_object(Bucket=bucket, Key=f"data/{i % 97:02d}/{i:07d}.csv", Body=b"x")

    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        for chunk in range(0, n, 5000):
            list(pool.map(put, range(chunk, min(n, chunk + 5000))))


async def run(n: int, scans: int, keep: str | None) -> int:
    env = servers.read_env(servers.env_file())
    client = s3_notify.client_of(env, pool=64)
    bucket = keep or "bench-" + secrets.token_hex(4)
    existing = 0
    if keep:
        with contextlib.suppress(Exception):
            existing = client.list_objects_v2(Bucket=bucket, MaxKeys=1).get("KeyCount", 0)
    if not existing:
        await asyncio.to_thread(client.create_bucket, Bucket=bucket)
        t0 = time.perf_counter()
        await asyncio.to_thread(fill, client, bucket, n, workers=64)
        print(f"created {n} objects in {time.perf_counter() - t0:.0f} s")
    os.environ.setdefault("AWS_ACCESS_KEY_ID", env["TRIPWIRE_S3_ACCESS_KEY"])
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", env["TRIPWIRE_S3_SECRET_KEY"])
    got: list[events.Event] = []
    status = 0
    try:
        with tempfile.TemporaryDirectory() as tmp:
            async with contextlib.AsyncExitStack() as stack:
                bus = embedded.EmbeddedBus(path=pathlib.Path(tmp))
                await bus.start(stack)

                async def dispatch(event: events.Event) -> None:
                    await bus.publish(event)
                    got.append(event)

                context = base.SourceContext(
                    gateway="bench",
                    name="large",
                    kind="s3",
                    dispatch=dispatch,
                    store=bus.store("gateway/bench/large"),
                    secrets=tripwire_secrets.LocalResolver(),
                )
                spec = s3_gateway.S3Spec.model_validate(
                    {
                        "bucket": {"name": bucket},
                        "endpoint": urllib.parse.urlsplit(env["TRIPWIRE_S3_ENDPOINT"]).netloc,
                        "insecure": True,
                        "mode": "poll",
                        "pollInterval": "1s",
                    }
                )
                await asyncio.sleep(1.1)  # the first start's floor has whole seconds
                before = rss_mb()
                print(f"RSS before the gateway:  {before:7.1f} MB")
                source = s3_gateway.S3Source(spec=spec, context=context)
                await source.start(stack)
                for i in range(scans):
                    target = source.scans + 1
                    t0 = time.perf_counter()
                    while source.scans < target:
                        source.scanned.clear()
                        await source.scanned.wait()
                    took = time.perf_counter() - t0
                    print(
                        f"listing {i + 1}: RSS {rss_mb():7.1f} MB, {took:5.1f} s, events {len(got)}"
                    )
                old = len(got)
                fresh = [f"new/{i:02d}.csv" for i in range(20)]
                for key in fresh:
                    await asyncio.to_thread(client.put_object, Bucket=bucket, Key=key, Body=b"y")
                for _ in range(2):
                    target = source.scans + 1
                    while source.scans < target:
                        source.scanned.clear()
                        await source.scanned.wait()
                keys = sorted(e.data["notification"][0]["s3"]["object"]["key"] for e in got)
                peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
                print(f"RSS after: {rss_mb():.1f} MB, peak {peak:.1f} MB, recent set"
                      f" {len(source.ledger.recent)} entries")  # fmt: skip
                print(f"events for pre-existing objects: {old}; new objects reported: {len(keys)}")
                if old or keys != fresh:
                    status = 3
    finally:
        if not keep:
            await asyncio.to_thread(s3_notify.empty_bucket, client, bucket)
        client.close()
    return status


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--scans", type=int, default=3)
    parser.add_argument("--keep-bucket", default=None)
    args = parser.parse_args()
    return asyncio.run(run(args.n, args.scans, args.keep_bucket))


if __name__ == "__main__":
    raise SystemExit(main())
