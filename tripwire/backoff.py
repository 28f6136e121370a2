"""Backoff delays, shared by trigger retries and reconnecting sources.

Argo Events' `Backoff` (duration, factor, jitter, steps): the n-th retry waits
`duration * factor**n`, stretched by up to `jitter` of itself. Pure, with an injectable random
source so tests see exact delays.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator


def delays(
    *,
    duration: float,
    factor: float = 1.0,
    jitter: float = 0.0,
    cap: float | None = None,
    rand: Callable[[], float] = random.random,
) -> Iterator[float]:
    """An endless sequence of waits; take as many as there are retries."""
    base = duration
    while True:
        wait = base + base * jitter * rand() if jitter else base
        yield min(wait, cap) if cap is not None else wait
        base = base * factor
        if cap is not None and base > cap:
            base = cap
