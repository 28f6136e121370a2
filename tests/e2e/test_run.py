"""`tripwire run` as users run it: a real subprocess, real HTTP in and out, SIGKILL in between.

These tests hold the promises of DESIGN.md that only a whole process can show: the quickstart
fires end to end, a 200 from the webhook means the event survives a crash, and a crash between
"trigger sent" and "target answered" produces exactly one effect after restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import pathlib
import signal
import socket
import sys
from collections.abc import AsyncIterator

import aiohttp
import orjson
import pytest
from aiohttp import web

REPO = pathlib.Path(__file__).resolve().parents[2]
QUICKSTART = REPO / "examples" / "quickstart"

pytestmark = pytest.mark.timeout(180)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclasses.dataclass
class Tripwire:
    """A `tripwire run` subprocess and the ports it serves."""

    proc: asyncio.subprocess.Process
    metrics_port: int
    log: pathlib.Path

    async def wait_ready(self, timeout: float = 30.0) -> None:
        url = f"http://127.0.0.1:{self.metrics_port}/readyz"
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        async with aiohttp.ClientSession() as session:
            while loop.time() < deadline:
                if self.proc.returncode is not None:
                    raise AssertionError(f"tripwire exited early:\n{self.log.read_text()}")
                with contextlib.suppress(aiohttp.ClientError):
                    async with session.get(url) as resp:
                        if resp.status == 200:
                            return
                await asyncio.sleep(0.05)
        raise AssertionError(f"tripwire not ready in {timeout}s:\n{self.log.read_text()}")

    def output(self) -> str:
        return self.log.read_text()


@contextlib.asynccontextmanager
async def tripwire_run(
    *paths: pathlib.Path, state_dir: pathlib.Path, log: pathlib.Path
) -> AsyncIterator[Tripwire]:
    metrics_port = free_port()
    with log.open("ab") as out:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tripwire.app.cli", "run", *map(str, paths),
            "--state-dir", str(state_dir), "--metrics-port", str(metrics_port),
            "--grace", "5",
            stdout=out, stderr=out, cwd=REPO,
        )  # fmt: skip
    tw = Tripwire(proc=proc, metrics_port=metrics_port, log=log)
    try:
        yield tw
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), timeout=15)
            except TimeoutError:
                proc.kill()
                await proc.wait()


@dataclasses.dataclass
class Sink:
    """A trigger target that dedupes on Idempotency-Key, as the DESIGN asks targets to."""

    port: int
    deliveries: list[tuple[str, dict[str, object]]] = dataclasses.field(default_factory=list)
    effects: dict[str, dict[str, object]] = dataclasses.field(default_factory=dict)
    hold_first: bool = False
    first_arrived: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)
    arrived: asyncio.Condition = dataclasses.field(default_factory=asyncio.Condition)
    closing: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.Response:
        key = request.headers.get("Idempotency-Key", "")
        body = orjson.loads(await request.read())
        self.deliveries.append((key, body))
        first = not self.first_arrived.is_set()
        self.first_arrived.set()
        if first and self.hold_first:
            # No answer until the sink closes: tripwire is killed while this is in flight.
            await self.closing.wait()
            return web.Response(status=503)
        self.effects.setdefault(key, body)
        async with self.arrived:
            self.arrived.notify_all()
        return web.Response(text="done")

    async def wait_for(self, predicate: object, timeout: float) -> None:
        async with self.arrived:
            await asyncio.wait_for(self.arrived.wait_for(predicate), timeout)  # type: ignore[arg-type]


@contextlib.asynccontextmanager
async def sink_server(*, hold_first: bool = False) -> AsyncIterator[Sink]:
    sink = Sink(port=free_port(), hold_first=hold_first)
    app = web.Application()
    app.router.add_post("/effect", sink.handle)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", sink.port).start()
    try:
        yield sink
    finally:
        sink.closing.set()
        await runner.cleanup()


def write_manifests(path: pathlib.Path, *, webhook_port: int, sink_port: int) -> pathlib.Path:
    path.write_text(
        f"""
apiVersion: tripwire.dev/v1alpha1
kind: Gateway
metadata: {{name: ingest}}
spec:
  webhook:
    job: {{port: {webhook_port}, endpoint: /job, host: 127.0.0.1}}
---
apiVersion: tripwire.dev/v1alpha1
kind: Sensor
metadata: {{name: launcher}}
spec:
  dependencies:
    - {{name: job, gatewayName: ingest, eventName: job}}
  triggers:
    - template:
        name: launch
        http:
          url: http://127.0.0.1:{sink_port}/effect
          timeout: 30
          payload:
            - {{src: {{dependencyName: job, dataKey: body.seq, useRawData: true}}, dest: seq}}
      retryStrategy: {{steps: 20, duration: 50ms, factor: 1.5}}
"""
    )
    return path


async def test_quickstart_fires_the_http_trigger_with_its_parameterized_payload(
    tmp_path: pathlib.Path,
) -> None:
    log = tmp_path / "tripwire.log"
    async with tripwire_run(QUICKSTART, state_dir=tmp_path / "state", log=log) as tw:
        await tw.wait_ready()
        push = {"ref": "refs/heads/main", "after": "c0ffee", "repository": {"name": "demo"}}
        async with aiohttp.ClientSession() as session:
            async with session.post("http://127.0.0.1:12000/push", json=push) as resp:
                assert resp.status == 200, await resp.text()
            # A push to another branch is filtered out and never reaches /deployed.
            other = {**push, "ref": "refs/heads/dev", "after": "bad"}
            async with session.post("http://127.0.0.1:12000/push", json=other) as resp:
                assert resp.status == 200
        # The http trigger POSTs to the gateway's /deployed endpoint; the audit sensor's log
        # trigger prints what arrived there, headers included.
        for _ in range(200):
            if '"body":{"commit":"c0ffee","repository":"demo"}' in tw.output():
                break
            await asyncio.sleep(0.05)
        out = tw.output()
        assert '"body":{"commit":"c0ffee","repository":"demo"}' in out, out
        assert '"Idempotency-Key":["' in out
        assert '"commit":"bad"' not in out
        assert "Traceback" not in out
        # "Why didn't the dev push fire?" — answered by `tripwire explain`.
        explain = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tripwire.app.cli", "explain", "deploy",
            "--url", f"http://127.0.0.1:{tw.metrics_port}",
            stdout=asyncio.subprocess.PIPE, cwd=REPO,
        )  # fmt: skip
        stdout, _ = await explain.communicate()
        assert explain.returncode == 0
        text = stdout.decode()
        assert "trigger notify: not fired: condition is false" in text, text
        assert "pushed <- ci/push: 1 accepted, 1 rejected" in text, text
        assert (
            "data[0] body.ref: got 'refs/heads/dev', want matching one of ['^refs/heads/main$']"
            in text
        ), text


async def test_sigkill_while_the_target_is_answering_gives_exactly_one_effect(
    tmp_path: pathlib.Path,
) -> None:
    webhook_port = free_port()
    state = tmp_path / "state"
    log = tmp_path / "tripwire.log"
    async with sink_server(hold_first=True) as sink:
        files = write_manifests(tmp_path / "m.yaml", webhook_port=webhook_port, sink_port=sink.port)
        async with tripwire_run(files, state_dir=state, log=log) as tw:
            await tw.wait_ready()
            async with aiohttp.ClientSession() as session:
                url = f"http://127.0.0.1:{webhook_port}/job"
                async with session.post(url, json={"seq": 1}) as resp:
                    assert resp.status == 200
            await asyncio.wait_for(sink.first_arrived.wait(), 15)
            tw.proc.kill()  # SIGKILL: the target has the request, tripwire has no answer
            await tw.proc.wait()
        sink.hold_first = False
        async with tripwire_run(files, state_dir=state, log=log) as tw:
            await tw.wait_ready()
            await sink.wait_for(lambda: len(sink.deliveries) >= 2, timeout=30)
            await asyncio.sleep(0.5)  # nothing more may arrive
    keys = [key for key, _ in sink.deliveries]
    assert len(keys) == 2 and keys[0] == keys[1] and keys[0], sink.deliveries
    assert list(sink.effects.values()) == [{"seq": 1}]


async def _send(
    session: aiohttp.ClientSession, url: str, seq: int, ok: set[int], failed: set[int]
) -> None:
    try:
        async with session.post(url, json={"seq": seq}) as resp:
            (ok if resp.status == 200 else failed).add(seq)
    except (aiohttp.ClientError, ConnectionError):
        failed.add(seq)


async def test_no_event_with_a_200_is_lost_over_1000_events_with_a_sigkill_midway(
    tmp_path: pathlib.Path,
) -> None:
    webhook_port = free_port()
    state = tmp_path / "state"
    log = tmp_path / "tripwire.log"
    url = f"http://127.0.0.1:{webhook_port}/job"
    ok: set[int] = set()
    failed: set[int] = set()
    async with sink_server() as sink:
        files = write_manifests(tmp_path / "m.yaml", webhook_port=webhook_port, sink_port=sink.port)
        async with tripwire_run(files, state_dir=state, log=log) as tw:
            await tw.wait_ready()
            async with aiohttp.ClientSession() as session:
                pending: set[asyncio.Task[None]] = set()
                for seq in range(1000):
                    if seq == 500:
                        tw.proc.kill()  # in the middle of the run, with requests in flight
                    task = asyncio.create_task(_send(session, url, seq, ok, failed))
                    pending.add(task)
                    if len(pending) >= 16:
                        _, pending = await asyncio.wait(pending, return_when="FIRST_COMPLETED")
                await asyncio.gather(*pending)
            await tw.proc.wait()
        assert 0 < len(ok) < 1000 and len(ok) + len(failed) == 1000
        async with tripwire_run(files, state_dir=state, log=log) as tw:
            await tw.wait_ready()
            # A client retries what got no 200; webhook event ids are per emission, so a retry
            # of a request that was journaled before the kill may legitimately fire twice.
            async with aiohttp.ClientSession() as session:
                retry_ok: set[int] = set()
                still: set[int] = set()
                await asyncio.gather(*(_send(session, url, s, retry_ok, still) for s in failed))
            assert not still

            def all_delivered() -> bool:
                return {int(str(b["seq"])) for b in sink.effects.values()} == set(range(1000))

            await sink.wait_for(all_delivered, timeout=60)
    seqs = [int(str(body["seq"])) for body in sink.effects.values()]
    twice = {s for s in seqs if seqs.count(s) > 1}
    assert twice <= failed, f"events acknowledged with 200 fired twice: {sorted(twice - failed)}"


async def test_sigterm_drains_the_trigger_in_flight_then_exits_zero(
    tmp_path: pathlib.Path,
) -> None:
    webhook_port = free_port()
    state = tmp_path / "state"
    log = tmp_path / "tripwire.log"
    async with sink_server(hold_first=True) as sink:
        files = write_manifests(tmp_path / "m.yaml", webhook_port=webhook_port, sink_port=sink.port)
        async with tripwire_run(files, state_dir=state, log=log) as tw:
            await tw.wait_ready()
            async with aiohttp.ClientSession() as session:
                url = f"http://127.0.0.1:{webhook_port}/job"
                async with session.post(url, json={"seq": 1}) as resp:
                    assert resp.status == 200
            await asyncio.wait_for(sink.first_arrived.wait(), 15)
            tw.proc.send_signal(signal.SIGTERM)
            await asyncio.sleep(0.3)
            assert tw.proc.returncode is None, "exited without waiting for the trigger"
            sink.hold_first = False
            sink.closing.set()  # the target answers (503, then the retry gets 200)
            assert await asyncio.wait_for(tw.proc.wait(), 10) == 0
        assert "stopped" in tw.output()
        before = len(sink.deliveries)
        async with tripwire_run(files, state_dir=state, log=log) as tw:
            await tw.wait_ready()
            await asyncio.sleep(0.5)
        # Drained and acknowledged: the restart resumes nothing.
        assert len(sink.deliveries) == before
    assert list(sink.effects.values()) == [{"seq": 1}]


async def test_a_source_that_cannot_start_is_not_ready_and_the_rest_runs(
    tmp_path: pathlib.Path,
) -> None:
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    busy_port = busy.getsockname()[1]
    good_port = free_port()
    files = tmp_path / "m.yaml"
    files.write_text(
        f"""
apiVersion: tripwire.dev/v1alpha1
kind: Gateway
metadata: {{name: gw}}
spec:
  webhook:
    taken: {{port: {busy_port}, endpoint: /a, host: 127.0.0.1}}
    fine: {{port: {good_port}, endpoint: /b, host: 127.0.0.1}}
---
apiVersion: tripwire.dev/v1alpha1
kind: Sensor
metadata: {{name: s}}
spec:
  dependencies: [{{name: b, gatewayName: gw, eventName: fine}}]
  triggers: [{{template: {{name: log, log: {{}}}}}}]
"""
    )
    try:
        async with tripwire_run(files, state_dir=tmp_path / "st", log=tmp_path / "log") as tw:
            base = f"http://127.0.0.1:{tw.metrics_port}"
            async with aiohttp.ClientSession() as session:
                for _ in range(200):
                    with contextlib.suppress(aiohttp.ClientError):
                        async with session.get(f"{base}/readyz") as resp:
                            if resp.status == 503:
                                not_ready = (await resp.json())["not_ready"]
                                break
                    await asyncio.sleep(0.05)
                else:
                    raise AssertionError(tw.output())
                assert [n["name"] for n in not_ready] == ["taken"]
                assert str(busy_port) in not_ready[0]["error"]
                async with session.post(f"http://127.0.0.1:{good_port}/b", json={}) as resp:
                    assert resp.status == 200
                for _ in range(100):
                    async with session.get(f"{base}/metrics") as resp:
                        text = await resp.text()
                    if 'tripwire_triggers_fired_total{sensor="s",trigger="log"} 1.0' in text:
                        break
                    await asyncio.sleep(0.05)
                assert 'tripwire_triggers_fired_total{sensor="s",trigger="log"} 1.0' in text
                assert 'tripwire_events_published_total{event="fine",gateway="gw"} 1.0' in text
    finally:
        busy.close()


async def test_sigkill_during_an_and_firing_resumes_it_from_its_record(
    tmp_path: pathlib.Path,
) -> None:
    """The first event of an AND is acknowledged long before the firing: only the firing
    record, written before the trigger ran, can bring it back after a crash."""
    webhook_port = free_port()
    state = tmp_path / "state"
    log = tmp_path / "tripwire.log"
    async with sink_server(hold_first=True) as sink:
        files = tmp_path / "and.yaml"
        files.write_text(
            f"""
apiVersion: tripwire.dev/v1alpha1
kind: Gateway
metadata: {{name: ingest}}
spec:
  webhook:
    data: {{port: {webhook_port}, endpoint: /data, host: 127.0.0.1}}
    code: {{port: {webhook_port}, endpoint: /code, host: 127.0.0.1}}
---
apiVersion: tripwire.dev/v1alpha1
kind: Sensor
metadata: {{name: train}}
spec:
  dependencies:
    - {{name: data, gatewayName: ingest, eventName: data}}
    - {{name: code, gatewayName: ingest, eventName: code}}
  triggers:
    - template:
        name: launch
        conditions: "data && code"
        http:
          url: http://127.0.0.1:{sink.port}/effect
          payload:
            - {{src: {{dependencyName: data, dataKey: body.v}}, dest: data}}
            - {{src: {{dependencyName: code, dataKey: body.v}}, dest: code}}
      retryStrategy: {{steps: 20, duration: 50ms}}
"""
        )
        base = f"http://127.0.0.1:{webhook_port}"
        async with tripwire_run(files, state_dir=state, log=log) as tw:
            await tw.wait_ready()
            async with aiohttp.ClientSession() as session:
                for path, v in (("/data", "d1"), ("/code", "c1")):
                    async with session.post(base + path, json={"v": v}) as resp:
                        assert resp.status == 200
            await asyncio.wait_for(sink.first_arrived.wait(), 15)
            tw.proc.kill()
            await tw.proc.wait()
        sink.hold_first = False
        async with tripwire_run(files, state_dir=state, log=log) as tw:
            await tw.wait_ready()
            await sink.wait_for(lambda: len(sink.deliveries) >= 2, timeout=30)
            # The consumed events are gone from the condition: code alone does not fire.
            async with (
                aiohttp.ClientSession() as session,
                session.post(base + "/code", json={"v": "c2"}) as resp,
            ):
                assert resp.status == 200
            await asyncio.sleep(0.5)
        assert "resuming firing interrupted by a restart" in tw.output()
    keys = [key for key, _ in sink.deliveries]
    assert len(keys) == 2 and keys[0] == keys[1], sink.deliveries
    assert list(sink.effects.values()) == [{"data": "d1", "code": "c1"}]
