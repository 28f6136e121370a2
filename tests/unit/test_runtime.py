"""The runtime as the controller drives it: objects added, replaced and removed while running."""

from __future__ import annotations

import contextlib
import socket
from typing import Any

import aiohttp

from gateways import manifest as gateway_manifest
from sensors import manifest as sensor_manifest
from tripwire.app import runtime


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _gateway(port: int, endpoint: str = "/a") -> Any:
    return gateway_manifest.model().model_validate(
        {
            "apiVersion": "tripwire.dev/v1alpha1",
            "kind": "Gateway",
            "metadata": {"name": "gw"},
            "spec": {"webhook": {"a": {"port": port, "endpoint": endpoint, "host": "127.0.0.1"}}},
        }
    )


def _sensor(interval: int = 0) -> Any:
    return sensor_manifest.model().model_validate(
        {
            "apiVersion": "tripwire.dev/v1alpha1",
            "kind": "Sensor",
            "metadata": {"name": "sn"},
            "spec": {
                "dependencies": [{"name": "a", "gatewayName": "gw", "eventName": "a"}],
                "triggers": [{"template": {"name": "log", "log": {"intervalSeconds": interval}}}],
            },
        }
    )


async def _post(port: int, path: str) -> int:
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"http://127.0.0.1:{port}{path}", json={}) as resp,
    ):
        return resp.status


async def test_apply_adds_replaces_and_removes_objects() -> None:
    port = _port()
    options = runtime.Options(state_dir=None, metrics_port=None, grace=1)
    rt = runtime.Runtime(options=options)
    async with contextlib.AsyncExitStack() as stack:
        await rt.start(stack)
        assert rt.readiness() == {"ready": True, "not_ready": []}
        await rt.apply(gateways=[_gateway(port)], sensors=[_sensor()])
        assert await _post(port, "/a") == 200
        first = rt.runner("sn")
        # Same spec: nothing restarts.
        await rt.apply(gateways=[_gateway(port)], sensors=[_sensor()])
        assert rt.runner("sn") is first
        # Changed specs: both restart, the endpoint moves.
        await rt.apply(gateways=[_gateway(port, "/b")], sensors=[_sensor(interval=5)])
        assert rt.runner("sn") is not first
        assert await _post(port, "/a") == 404
        assert await _post(port, "/b") == 200
        # Removed: the port closes with its last route, the sensor is gone.
        await rt.apply(gateways=[], sensors=[])
        assert rt.runner("sn") is None and rt.servers.ports() == []
