"""The load generator: webhook POSTs from a process of its own, closed or open loop.

Separate from the system under test so its CPU shows up apart. It keeps connections alive
(one `ClientSession`, connector limit = concurrency), never retries, and counts every non-200
answer or exception as an error: a benchmark that retries hides the failures it should report.

Closed loop (`--n`): `--concurrency` workers send `--n` requests as fast as answers come back;
this measures throughput. Open loop (`--rate`, `--duration`): requests leave on a fixed
schedule whether or not earlier ones were answered, so a slow system cannot slow the offered
load down (no coordinated omission); this measures latency at a given rate.

Each body is `{"kind": "bench", "seq": N, "sent": time.time_ns(), "pad": "..."}`, stamped right
before the request is handed to aiohttp. The result is one JSON line on stdout, including the
sequence numbers answered 200, so the orchestrator can tell which accepted events were lost.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from typing import Any

import aiohttp
import orjson


class Load:
    def __init__(self, *, url: str, pad: str, first_seq: int) -> None:
        self.url = url
        self.pad = pad
        self.first_seq = first_seq
        self.ok_seqs: list[int] = []
        self.errors: dict[str, int] = {}
        self.ack_ns: list[int] = []  # client-side round trip of each 200

    async def one(self, session: aiohttp.ClientSession, seq: int) -> None:
        sent = time.time_ns()
        body = orjson.dumps({"kind": "bench", "seq": seq, "sent": sent, "pad": self.pad})
        try:
            async with session.post(
                self.url, data=body, headers={"Content-Type": "application/json"}
            ) as response:
                await response.read()
                status = response.status
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            name = type(exc).__name__
            self.errors[name] = self.errors.get(name, 0) + 1
            return
        if status == 200:
            self.ok_seqs.append(seq)
            self.ack_ns.append(time.time_ns() - sent)
        else:
            self.errors[f"http_{status}"] = self.errors.get(f"http_{status}", 0) + 1

    async def closed(self, session: aiohttp.ClientSession, n: int, concurrency: int) -> None:
        next_seq = iter(range(self.first_seq, self.first_seq + n))

        async def worker() -> None:
            for seq in next_seq:  # shared iterator: each seq is taken exactly once
                await self.one(session, seq)

        async with asyncio.TaskGroup() as group:
            for i in range(concurrency):
                group.create_task(worker(), name=f"worker-{i}")

    async def open(self, session: aiohttp.ClientSession, rate: float, n: int) -> float:
        """Send on schedule; return the worst lateness of a send against it (seconds)."""
        loop = asyncio.get_running_loop()
        start = loop.time() + 0.01
        worst = 0.0
        async with asyncio.TaskGroup() as group:
            for i in range(n):
                due = start + i / rate
                delay = due - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                worst = max(worst, loop.time() - due)
                group.create_task(self.one(session, self.first_seq + i))
        return worst


async def run(args: argparse.Namespace) -> dict[str, Any]:
    load = Load(url=args.url, pad="x" * args.pad_bytes, first_seq=args.first_seq)
    connector = aiohttp.TCPConnector(limit=args.concurrency, limit_per_host=0)
    timeout = aiohttp.ClientTimeout(total=args.timeout)
    began = time.perf_counter()
    worst_lag = 0.0
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        if args.rate:
            n = round(args.rate * args.duration)
            worst_lag = await load.open(session, args.rate, n)
        else:
            n = args.n
            await load.closed(session, n, args.concurrency)
    wall = time.perf_counter() - began
    acks = sorted(load.ack_ns)
    times = os.times()

    def pct(q: float) -> float:
        return acks[min(len(acks) - 1, int(q / 100 * len(acks)))] / 1e6 if acks else 0.0

    return {
        "sent": n,
        "ok": len(load.ok_seqs),
        "errors": load.errors,
        "wall_s": wall,
        "ok_per_s": len(load.ok_seqs) / wall if wall > 0 else 0.0,
        "ack_p50_ms": pct(50),
        "ack_p99_ms": pct(99),
        "worst_send_lag_ms": worst_lag * 1e3,
        "cpu_s": times.user + times.system,
        "ok_seqs": load.ok_seqs,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--n", type=int, default=20000, help="closed loop: requests in all")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rate", type=float, default=0.0, help="open loop: requests/s")
    parser.add_argument("--duration", type=float, default=20.0, help="open loop: seconds")
    parser.add_argument("--first-seq", type=int, default=0)
    parser.add_argument("--pad-bytes", type=int, default=64, help="extra body bytes")
    parser.add_argument("--timeout", type=float, default=30.0, help="per request, seconds")
    result = asyncio.run(run(parser.parse_args()))
    sys.stdout.buffer.write(orjson.dumps(result) + b"\n")


if __name__ == "__main__":
    main()
