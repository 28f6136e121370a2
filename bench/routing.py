"""Routing cost: does an event cost more when 1,000 sensors are loaded than when one is?

DESIGN says a sensor consumes only the subjects its dependencies name, "an index, not a scan".
This measures it end to end in one process: publish → bus → the sensor(s) subscribed to that
subject → filters → condition → a `log` trigger (its logger silenced, so the trigger costs the
same in both runs) → ack. Events go either all to one sensor (the others only loaded: the cost
of routing past them) or spread over every loaded sensor's dependencies. Target: the per-event
cost with 1,000 sensors of 10 dependencies each is at most 1.2 times the cost with one.

Reading the spread figure: routing is one dict lookup either way, but each event then touches
a different sensor's objects (its filters, condition state, trigger, metric children), so the
CPU caches hit less often than when one sensor takes every event; that, not routing, is the gap.

    .venv/bin/python bench/routing.py                 # ephemeral and durable bus
    .venv/bin/python bench/routing.py --events 50000 --sensors 1000
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import pathlib
import random
import statistics
import sys
import tempfile
import time
from typing import Any

import aiohttp

from sensors import manifest as sensor_manifest
from sensors import running
from tripwire import events, secrets
from tripwire.bus import embedded

DEPS = 10


def _sensor(index: int) -> Any:
    deps = [
        {
            "name": f"d{j}",
            "gatewayName": "gw",
            "eventName": f"s{index}-e{j}",
            "filters": {"data": [{"path": "n", "type": "number", "value": ["0"],
                                  "comparator": ">="}]},
        }
        for j in range(DEPS)
    ]  # fmt: skip
    return sensor_manifest.model().model_validate(
        {
            "apiVersion": "tripwire.dev/v1alpha1",
            "kind": "Sensor",
            "metadata": {"name": f"s{index}"},
            "spec": {
                "dependencies": deps,
                "triggers": [
                    {
                        "template": {
                            "name": "log",
                            "conditions": " || ".join(f"d{j}" for j in range(DEPS)),
                            "log": {},
                        }
                    }
                ],
            },
        }
    )


async def measure(
    *, sensors: int, n: int, state: pathlib.Path | None, seed: int, spread: bool
) -> float:
    """Microseconds per event, publish to ack, with `sensors` sensors loaded.

    `spread`: events go to random dependencies of random sensors; else all to sensor 0's
    dependencies, so the other sensors are only loaded (the pure cost of their presence).
    """
    rng = random.Random(seed)
    bus = embedded.EmbeddedBus(path=state)
    async with contextlib.AsyncExitStack() as stack:
        await bus.start(stack)
        session = aiohttp.ClientSession()
        stack.push_async_callback(session.close)
        runners = []
        for i in range(sensors):
            runner = running.SensorRunner(
                sensor=_sensor(i), bus=bus, session=session, resolver=secrets.LocalResolver()
            )
            await runner.start(stack)
            runners.append(runner)
        targets = [(rng.randrange(sensors) if spread else 0, rng.randrange(DEPS)) for _ in range(n)]
        # As `tripwire run` does after start-up (tripwire/app/cli.py _tune_gc).
        gc.collect()
        gc.freeze()
        start = time.perf_counter()
        for k, (i, j) in enumerate(targets):
            await bus.publish(
                events.Event(id=f"e{k}", source="gw", subject=f"s{i}-e{j}", type="webhook",
                             data={"n": k})
            )  # fmt: skip
        # Polling, not an event: a completion hook in the sensor would be measured too.
        while sum(r.fired_total for r in runners) < n:  # noqa: ASYNC110
            await asyncio.sleep(0.005)
        elapsed = time.perf_counter() - start
        gc.unfreeze()
    return elapsed / n * 1e6


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--sensors", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    logging.getLogger("tripwire.trigger.log").setLevel(logging.WARNING)
    gc.set_threshold(10_000, 20, 20)
    print(f"routing: {args.events} events, 1 vs {args.sensors} sensors x {DEPS} dependencies")
    worst = 0.0
    for mode in ("ephemeral", "durable"):
        for spread in (False, True):
            label = f"{mode}, {'spread over all' if spread else 'to one sensor'}"
            results: dict[int, float] = {}
            for count in (1, args.sensors):
                runs = []
                for r in range(args.repeat):
                    with tempfile.TemporaryDirectory() as tmp:
                        state = pathlib.Path(tmp) if mode == "durable" else None
                        runs.append(
                            await measure(
                                sensors=count, n=args.events, state=state, seed=r, spread=spread
                            )
                        )
                results[count] = statistics.median(runs)
                print(f"  {label:<30} {count:>5} sensor(s): {results[count]:7.1f} us/event"
                      f" (median of {args.repeat})")  # fmt: skip
            ratio = results[args.sensors] / results[1]
            if not spread:
                worst = max(worst, ratio)
            print(f"  {label:<30} ratio {args.sensors}/1: {ratio:.2f} (target <= 1.2)")
    return 0 if worst <= 1.2 else 3


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
