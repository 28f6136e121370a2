"""The Kubernetes client's handling of apiserver throttling (429 + Retry-After)."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from tripwire.net.kube import client as kube_client


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextlib.asynccontextmanager
async def _apiserver(
    answers: list[tuple[int, dict[str, str]]],
) -> AsyncIterator[tuple[kube_client.Client, list[str]]]:
    seen: list[str] = []

    async def handle(request: web.Request) -> web.Response:
        seen.append(request.path)
        status, headers = answers.pop(0) if answers else (200, {})
        body = '{"kind":"Status","reason":"TooManyRequests","message":"slow down"}'
        return web.Response(status=status, headers=headers,
                            text=body if status >= 400 else '{"ok":true}')  # fmt: skip

    app = web.Application()
    app.router.add_get("/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = _port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    config = kube_client.Config(host=f"http://127.0.0.1:{port}", headers={}, ssl=False)
    client = kube_client.Client(config, qps=1000, burst=1000)
    try:
        async with contextlib.AsyncExitStack() as stack:
            await client.start(stack)
            yield client, seen
    finally:
        await runner.cleanup()


async def test_429_with_retry_after_is_retried_then_succeeds() -> None:
    async with _apiserver([(429, {"Retry-After": "0"}), (429, {"Retry-After": "0"})]) as (
        client,
        seen,
    ):
        assert await client.request("GET", "/api/v1/x") == {"ok": True}
        assert len(seen) == 3


async def test_429_without_retry_after_is_an_api_error_at_once() -> None:
    async with _apiserver([(429, {})]) as (client, seen):
        with pytest.raises(kube_client.ApiError) as caught:
            await client.request("GET", "/api/v1/x")
        assert caught.value.status == 429 and caught.value.temporary
        assert "slow down" in str(caught.value) and len(seen) == 1


async def test_429_retries_are_bounded() -> None:
    async with _apiserver([(429, {"Retry-After": "0"})] * 10) as (client, seen):
        with pytest.raises(kube_client.ApiError):
            await client.request("GET", "/api/v1/x")
        assert len(seen) == 4
