"""The load generator: webhook POSTs from a process of its own, closed or open loop.

Separate from the system under test so its CPU shows up apart. It keeps connections alive
(one `ClientSession`, connector limit = concurrency), never retries, and counts every non-200
answer or exception as an error: a benchmark that retries hides the failures it should report.

Closed loop (`--n`): `--concurrency` workers send `--n` requests as fast as answers come back;
this measures throughput. Open loop (`--rate`, `--duration`): requests leave on a fixed
schedule whether or not earlier ones were answered, so a slow system cannot slow the offered
load down (no coordinated omission); this measures latency at a given rate.

Each body is `{"kind": "bench", "seq": N, "sent": time.time_ns(), "pad": "..."}`. The result is
one JSON line on stdout, including the sequence numbers answered 200, so the orchestrator can
tell which accepted events were lost.

Two clients (`--client`). `raw` (default): kept-alive connections of its own on asyncio
protocols, the request encoded by hand and written right after the stamp, so the latency
measured starts when the request leaves, not while an HTTP library is still building it.
`aiohttp`: a `ClientSession`, stamped before the request is handed to it; aiohttp then takes
~0.15 ms of this machine's CPU before the bytes leave, which that latency figure includes (for
every target alike). Both count every non-200 answer or exception as an error.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
import urllib.parse
from typing import Any

import aiohttp
import orjson


class RawConnection(asyncio.Protocol):
    """One kept-alive HTTP/1.1 connection with one request in flight at a time.

    Parses only what the targets here send: a status line, headers with `Content-Length`, a
    body of that length.
    """

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.waiter: asyncio.Future[int] | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buf += data
        end = self.buf.find(b"\r\n\r\n")
        if end < 0 or self.waiter is None:
            return
        head = bytes(self.buf[:end]).lower()
        length = 0
        at = head.find(b"\r\ncontent-length:")
        if at >= 0:
            stop = head.find(b"\r\n", at + 2)
            length = int(head[at + 17 : stop if stop >= 0 else None])
        if len(self.buf) < end + 4 + length:
            return
        del self.buf[: end + 4 + length]
        waiter, self.waiter = self.waiter, None
        if not waiter.done():
            waiter.set_result(int(head[9:12]))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionResetError("connection closed by the target"))

    def send(self, data: bytes) -> asyncio.Future[int]:
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(data)
        return self.waiter


class RawClient:
    """Up to `limit` connections, reused most-recently-released first."""

    def __init__(self, url: str, limit: int, timeout: float) -> None:
        parts = urllib.parse.urlsplit(url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.head = (
            f"POST {parts.path or '/'} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
            "Content-Type: application/json\r\nContent-Length: "
        ).encode()
        self.idle: list[RawConnection] = []
        self.slots = asyncio.Semaphore(limit)
        self.timeout = timeout

    async def post(self, body: bytes) -> int:
        async with self.slots:
            conn = None
            while self.idle and conn is None:
                conn = self.idle.pop()
                if conn.closed:
                    conn = None
            if conn is None:
                loop = asyncio.get_running_loop()
                _, conn = await loop.create_connection(RawConnection, self.host, self.port)
            try:
                status = await asyncio.wait_for(
                    conn.send(self.head + b"%d\r\n\r\n" % len(body) + body), self.timeout
                )
            except BaseException:
                if conn.transport is not None:
                    conn.transport.close()
                raise
            self.idle.append(conn)
            return status

    def close(self) -> None:
        for conn in self.idle:
            if conn.transport is not None:
                conn.transport.close()


class Load:
    def __init__(self, *, url: str, pad: str, first_seq: int) -> None:
        self.url = url
        self.pad = pad
        self.first_seq = first_seq
        self.ok_seqs: list[int] = []
        self.errors: dict[str, int] = {}
        self.ack_ns: list[int] = []  # client-side round trip of each 200
        self.post: Any = None  # (seq) -> awaitable status, set by `run`

    async def one(self, seq: int) -> None:
        sent = time.time_ns()
        try:
            status = await self.post(seq, sent)
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            name = type(exc).__name__
            self.errors[name] = self.errors.get(name, 0) + 1
            return
        if status == 200:
            self.ok_seqs.append(seq)
            self.ack_ns.append(time.time_ns() - sent)
        else:
            self.errors[f"http_{status}"] = self.errors.get(f"http_{status}", 0) + 1

    def body(self, seq: int, sent: int) -> bytes:
        return orjson.dumps({"kind": "bench", "seq": seq, "sent": sent, "pad": self.pad})

    async def closed(self, n: int, concurrency: int) -> None:
        next_seq = iter(range(self.first_seq, self.first_seq + n))

        async def worker() -> None:
            for seq in next_seq:  # shared iterator: each seq is taken exactly once
                await self.one(seq)

        async with asyncio.TaskGroup() as group:
            for i in range(concurrency):
                group.create_task(worker(), name=f"worker-{i}")

    async def open(self, rate: float, n: int) -> float:
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
                group.create_task(self.one(self.first_seq + i))
        return worst


async def run(args: argparse.Namespace) -> dict[str, Any]:
    load = Load(url=args.url, pad="x" * args.pad_bytes, first_seq=args.first_seq)
    began = time.perf_counter()
    worst_lag = 0.0
    n = round(args.rate * args.duration) if args.rate else args.n
    if args.client == "raw":
        raw = RawClient(args.url, args.concurrency, args.timeout)

        async def post_raw(seq: int, sent: int) -> int:
            # Stamped, encoded and written in one go: nothing between the stamp and the send.
            return await raw.post(load.body(seq, sent))

        load.post = post_raw
        try:
            if args.rate:
                worst_lag = await load.open(args.rate, n)
            else:
                await load.closed(n, args.concurrency)
        finally:
            raw.close()
    else:
        connector = aiohttp.TCPConnector(limit=args.concurrency, limit_per_host=0)
        timeout = aiohttp.ClientTimeout(total=args.timeout)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

            async def post_aiohttp(seq: int, sent: int) -> int:
                async with session.post(
                    args.url,
                    data=load.body(seq, sent),
                    headers={"Content-Type": "application/json"},
                ) as response:
                    await response.read()
                    return response.status

            load.post = post_aiohttp
            if args.rate:
                worst_lag = await load.open(args.rate, n)
            else:
                await load.closed(n, args.concurrency)
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
    parser.add_argument("--client", choices=("raw", "aiohttp"), default="raw", help="see above")
    result = asyncio.run(run(parser.parse_args()))
    sys.stdout.buffer.write(orjson.dumps(result) + b"\n")


if __name__ == "__main__":
    main()
