"""Suite-wide fixtures: fail a test that leaks an asyncio task; real-server fixtures."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

pytest_plugins = ["tests.servers"]


@pytest.fixture(autouse=True)
async def _no_leaked_tasks() -> AsyncIterator[None]:
    """A test must not leave tasks running: leaked tasks hide shutdown bugs."""
    before = asyncio.all_tasks()
    yield
    pending = [
        t for t in asyncio.all_tasks() - before if not t.done() and t is not asyncio.current_task()
    ]
    # Tasks already ending (a server's connection handlers being cancelled at close) get a
    # moment; what still runs after it is a leak.
    leaked = []
    if pending:
        _, still = await asyncio.wait(pending, timeout=1.0)
        leaked = list(still)
    for task in leaked:
        task.cancel()
    assert not leaked, f"test leaked tasks: {sorted(t.get_name() for t in leaked)}"
