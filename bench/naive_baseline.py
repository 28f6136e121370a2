"""The naive baseline: what a hand-written webhook-to-HTTP relay costs on this machine.

aiohttp handler → `asyncio.Queue` → workers POSTing to the sink. No durability, no filtering, no
retries, no metrics, no logging: the floor that Tripwire's throughput is compared against.
It parses the body (it must, to forward `seq` and `sent`) and sends an `Idempotency-Key`.

    python bench/naive_baseline.py --port 18081 --sink http://127.0.0.1:18080/deliver
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from typing import Any

import aiohttp
import orjson
from aiohttp import web


async def serve(port: int, sink: str, workers: int) -> None:
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def handle(request: web.BaseRequest) -> web.Response:
        if request.path == "/healthz":
            return web.Response(body=b"ok")
        queue.put_nowait(orjson.loads(await request.read()))
        return web.Response(body=b"ok")

    async def worker(session: aiohttp.ClientSession) -> None:
        while True:
            body = await queue.get()
            payload = orjson.dumps({"seq": str(body["seq"]), "sent": str(body["sent"])})
            headers = {"Content-Type": "application/json", "Idempotency-Key": str(body["seq"])}
            async with session.post(sink, data=payload, headers=headers) as response:
                await response.read()

    connector = aiohttp.TCPConnector(limit=256, limit_per_host=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        tasks = [asyncio.create_task(worker(session), name=f"w{i}") for i in range(workers)]
        runner = web.ServerRunner(web.Server(handle, access_log=None))
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port, backlog=1024).start()
        try:
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()
            for task in tasks:
                task.cancel()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--sink", required=True, help="URL to POST each event to")
    parser.add_argument("--workers", type=int, default=64)
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.port, args.sink, args.workers))


if __name__ == "__main__":
    main()
