"""The controller process: wiring, the order things start and stop, and its HTTP endpoint.

Start: Kubernetes client → health endpoint (probes answer while standing by) → the Lease
(blocks while another replica leads) → the state-dir lock → executor → reconciler. Only the
leader touches the state dir, so replicas may share one (a volume both can mount, or one
machine, as the tests do): after a takeover the new leader opens the same journal and
redelivers what the old one accepted but had not finished. With a state dir per replica,
events accepted but not yet fired by a leader that dies are lost with it; the distributed bus
(a later mode) removes that limit.

Stop (SIGTERM): stop intake and drain (the executor's runtimes), then release the Lease so a
standby takes over at once, exit 0. Lost Lease (not renewed within the renew deadline, or taken
over): stop the objects within what is left of the lease — the new leader may start once the
lease expires — and exit 1, client-go's `OnStoppedLeading` default: the supervisor restarts the
process as a fresh candidate instead of this one trying to run on with unknown state.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import fcntl
import logging
import os
import pathlib
import socket
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from tripwire import metrics
from tripwire.app.controller import executing, leading, reconciling
from tripwire.net.kube import client as kube_client

log = logging.getLogger(__name__)

EXIT_LOST_LEASE = 1


@dataclasses.dataclass(frozen=True, kw_only=True)
class Options:
    namespace: str | None  # None: all namespaces
    state_dir: pathlib.Path
    kubeconfig: str | None = None
    metrics_host: str = "127.0.0.1"
    metrics_port: int | None = 9300
    grace: float = 10.0
    leader_election: bool = True
    lease_namespace: str | None = None  # None: the kubeconfig's (in a pod: the pod's) namespace
    lease_name: str = "tripwire-controller"
    identity: str | None = None
    timing: leading.Timing = dataclasses.field(default_factory=leading.Timing)
    status_interval: float = 2.0


def default_identity() -> str:
    """hostname-pid: unique per process, readable in `kubectl get lease -o yaml`."""
    return f"{socket.gethostname()}-{os.getpid()}"


@dataclasses.dataclass
class State:
    """What the health endpoint reports."""

    identity: str
    leader: bool = False
    elector: leading.LeaderElector | None = None
    executor: executing.InProcessExecutor | None = None
    reconciler: reconciling.Reconciler | None = None

    def readiness(self) -> dict[str, Any]:
        """Ready = this process does its job: a leader whose watches are synced and applied,
        or a healthy standby (ready to take over). Objects that are not ready show in the
        body and in their status, not here: a user's broken Gateway must not make the
        Deployment restart or stall a rollout of the controller."""
        doc: dict[str, Any] = {"identity": self.identity, "leader": self.leader}
        if not self.leader:
            doc["ready"] = True
            doc["role"] = "standby"
            return doc
        synced = self.reconciler is not None and self.reconciler.synced.is_set()
        doc["ready"] = synced
        doc["role"] = "leader"
        doc["namespaces"] = self.executor.readiness() if self.executor is not None else {}
        return doc


STATE_KEY: web.AppKey[State] = web.AppKey("controller-state")


async def _healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok")


async def _readyz(request: web.Request) -> web.Response:
    doc = request.app[STATE_KEY].readiness()
    return web.json_response(doc, status=200 if doc["ready"] else 503)


async def _metrics(request: web.Request) -> web.Response:
    return web.Response(body=metrics.exposition(), content_type="text/plain", charset="utf-8")


async def _explain(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    namespace, sensor = request.match_info["namespace"], request.match_info["sensor"]
    rt = state.executor.runtime(namespace) if state.executor is not None else None
    runner = rt.runner(sensor) if rt is not None else None
    if runner is None:
        return web.json_response(
            {"error": f"no sensor {namespace}/{sensor} runs in this process"}, status=404
        )
    return web.json_response(runner.explain())


async def _serve(stack: contextlib.AsyncExitStack, state: State, *, host: str, port: int) -> None:
    app = web.Application()
    app[STATE_KEY] = state
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/readyz", _readyz)
    app.router.add_get("/metrics", _metrics)
    app.router.add_get("/explain/{namespace}/{sensor}", _explain)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    stack.push_async_callback(runner.cleanup)
    await web.TCPSite(runner, host, port).start()


@contextlib.asynccontextmanager
async def state_dir_lock(
    state_dir: pathlib.Path, *, stop: asyncio.Event, poll: float = 0.2
) -> AsyncIterator[bool]:
    """The state dir for this process alone, waiting while another process has it; yields
    False when `stop` was set before it was free.

    A leader that just lost the Lease may still be closing its journal; the new leader waits
    for its lock (the kernel drops it when that process exits, SIGKILL included).
    """
    await asyncio.to_thread(state_dir.mkdir, parents=True, exist_ok=True)
    fd = os.open(state_dir / "lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        announced = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if stop.is_set():
                    yield False
                    return
                if not announced:
                    log.info("state dir %s is in use by another process; waiting", state_dir)
                    announced = True
                await asyncio.sleep(poll)
        yield True
    finally:
        os.close(fd)


async def _first(*aws: Any) -> set[asyncio.Task[Any]]:
    """Wait for the first of these to finish; cancel and await the others."""
    tasks = [a if isinstance(a, asyncio.Task) else asyncio.ensure_future(a) for a in aws]
    done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    return done


async def run(options: Options, *, stop: asyncio.Event) -> int:
    """Run until `stop` is set (exit 0) or the Lease is lost (exit 1)."""
    identity = options.identity or default_identity()
    state = State(identity=identity)
    async with contextlib.AsyncExitStack() as stack:
        config = kube_client.load_config(kubeconfig=options.kubeconfig)
        kube = kube_client.Client(config)
        await kube.start(stack)
        if options.metrics_port is not None:
            await _serve(stack, state, host=options.metrics_host, port=options.metrics_port)
        holding: asyncio.Task[None] | None = None
        if options.leader_election:
            timing = options.timing
            api = leading.KubeLeaseApi(
                kube,
                namespace=options.lease_namespace or config.namespace,
                name=options.lease_name,
                timeout=max(1.0, timing.renew_deadline - timing.retry_period),
            )
            elector = leading.LeaderElector(api=api, identity=identity, timing=timing)
            state.elector = elector
            log.info("candidate %s for lease %s/%s", identity, api.namespace, api.name)
            acquiring = asyncio.create_task(elector.acquire(), name="lease-acquire")
            stopping = asyncio.create_task(stop.wait(), name="controller-stop-wait")
            if acquiring not in await _first(acquiring, stopping):
                return 0
            holding = asyncio.create_task(elector.hold(), name="lease-renew")
        state.leader = True
        lost = await _lead(options, state=state, kube=kube, stop=stop, holding=holding)
        if holding is not None and not holding.done():
            holding.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await holding
        if lost:
            return EXIT_LOST_LEASE
        if state.elector is not None:
            await state.elector.release()
    log.info("stopped")
    return 0


async def _lead(
    options: Options,
    *,
    state: State,
    kube: kube_client.Client,
    stop: asyncio.Event,
    holding: asyncio.Task[None] | None,
) -> bool:
    """Run the objects while leading; True when the Lease was lost."""
    objects = contextlib.AsyncExitStack()
    stopping = asyncio.create_task(stop.wait(), name="controller-stop-wait")
    waiters: list[asyncio.Task[Any]] = [stopping] + ([holding] if holding is not None else [])
    try:
        if not await objects.enter_async_context(state_dir_lock(options.state_dir, stop=stop)):
            await objects.aclose()
            return False
        executor = executing.InProcessExecutor(
            kube=kube, state_dir=options.state_dir, grace=options.grace
        )
        await executor.start(objects)
        state.executor = executor
        reconciler = reconciling.Reconciler(
            kube=kube,
            executor=executor,
            namespace=options.namespace,
            status_interval=options.status_interval,
        )
        await reconciler.start(objects)
        state.reconciler = reconciler
        log.info("leading: running objects of %s", options.namespace or "all namespaces")
        done, _ = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    except BaseException:
        await objects.aclose()
        raise
    finally:
        if not stopping.done():
            stopping.cancel()
    lost = holding is not None and holding in done
    if not lost:
        log.info("stopping: draining in-flight triggers")
        await objects.aclose()
        return False
    # Lost: the next leader may start once the lease has run out; be gone before that.
    bound = options.timing.lease_duration - options.timing.renew_deadline
    log.error("lease lost: stopping objects (within %.1fs) and exiting", bound)
    try:
        await asyncio.wait_for(objects.aclose(), timeout=bound)
    except TimeoutError:
        log.error("objects did not stop within %.1fs; exiting anyway", bound)
    return True
