"""The counting sink: the HTTP endpoint every benchmarked pipeline delivers to.

It runs as its own process so that its CPU is not charged to the system under test, and it is
the single judge of what arrived: it stamps each request with `time.time_ns()` on receipt,
dedupes on the `Idempotency-Key` header (what an idempotent server would do with Tripwire's
trigger key), and keeps one record per first receipt. The orchestrator reads `/stats` (cheap,
polled while draining) and `/report` (latency percentiles, throughput and, on request, every
record) and resets it with `/reset` between phases. Nothing here retries or sleeps.

    python bench/sink.py --port 18080
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import time
from typing import Any

import orjson
from aiohttp import web


def percentile(sorted_values: list[int], q: float) -> int:
    """Nearest-rank percentile of an already sorted list (0 for an empty one)."""
    if not sorted_values:
        return 0
    rank = max(0, min(len(sorted_values) - 1, round(q / 100 * len(sorted_values) + 0.5) - 1))
    return sorted_values[rank]


class Sink:
    def __init__(self) -> None:
        self.keys: set[str] = set()
        self.seqs: set[int] = set()
        # (seq, received ns, sent ns) of each first receipt, in arrival order.
        self.records: list[tuple[int, int, int]] = []
        self.duplicates = 0  # same Idempotency-Key again
        self.duplicate_seqs = 0  # new key, but a seq already delivered: a second effect
        self.bad = 0

    def reset(self) -> None:
        self.__init__()  # type: ignore[misc]

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        received = time.time_ns()
        path = request.path
        if path == "/deliver":
            return self._deliver(
                received, request.headers.get("Idempotency-Key"), await request.read()
            )
        if path == "/stats":
            return _json(self.stats())
        if path == "/report":
            return _json(self.report(with_records=request.query.get("records") == "1"))
        if path == "/reset":
            self.reset()
            return _json({"ok": True})
        if path == "/healthz":
            return web.Response(body=b"ok")
        return web.Response(status=404, body=b"unknown path")

    def _deliver(self, received: int, key: str | None, raw: bytes) -> web.Response:
        try:
            doc = orjson.loads(raw)
            seq, sent = int(doc["seq"]), int(doc["sent"])
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            self.bad += 1
            return web.Response(status=400, body=b"want {seq, sent}")
        key = key or f"seq-{seq}"
        if key in self.keys:
            self.duplicates += 1
            return web.Response(body=b"duplicate")
        self.keys.add(key)
        if seq in self.seqs:
            self.duplicate_seqs += 1
            return web.Response(body=b"duplicate seq")
        self.seqs.add(seq)
        self.records.append((seq, received, sent))
        return web.Response(body=b"ok")

    def stats(self) -> dict[str, int]:
        return {
            "delivered": len(self.records),
            "duplicates": self.duplicates,
            "duplicate_seqs": self.duplicate_seqs,
            "bad": self.bad,
        }

    def report(self, *, with_records: bool) -> dict[str, Any]:
        doc: dict[str, Any] = self.stats()
        recs = self.records
        if recs:
            first, last = recs[0][1], recs[-1][1]
            span = (last - first) / 1e9
            lat = sorted(r[1] - r[2] for r in recs)
            doc.update(
                first_ns=first,
                last_ns=last,
                span_s=span,
                throughput=(len(recs) - 1) / span if span > 0 else 0.0,
                p50_ms=percentile(lat, 50) / 1e6,
                p90_ms=percentile(lat, 90) / 1e6,
                p99_ms=percentile(lat, 99) / 1e6,
                max_ms=lat[-1] / 1e6,
                min_ms=lat[0] / 1e6,
            )
        if with_records:
            doc["records"] = recs
        times = os.times()
        doc["cpu_s"] = times.user + times.system
        return doc


def _json(doc: Any) -> web.Response:
    return web.Response(body=orjson.dumps(doc), content_type="application/json")


async def serve(host: str, port: int) -> None:
    sink = Sink()
    # Low-level server: no router or middleware, so the sink costs as little CPU as possible.
    runner = web.ServerRunner(web.Server(sink.handle, access_log=None))
    await runner.setup()
    await web.TCPSite(runner, host, port, backlog=1024).start()
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
