"""`tripwire controller` against the real kube-apiserver, as users run it: kubectl and a process.

Each test has its own namespace (objects, Lease, Workflows), state dir and ports, and runs the
controller as a subprocess (`python -m tripwire.app.cli controller --namespace NS`) so SIGKILL,
restart and a second replica are real. What they show (issue 4):

- the CRDs apply cleanly, server-side validation names the bad field, and `kubectl get gw,sn`
  shows the printer columns filled in by the controller's status;
- end to end: a webhook POST creates an Argo Workflow with the body's parameter; the same event
  redelivered after a SIGKILL creates no second Workflow; deleting the Sensor stops it;
- two controllers on one Lease: one runs the objects, the other takes over within the lease
  duration after a SIGKILL, and no trigger fires twice;
- the RBAC of deploy/rbac.yaml is enough: a full cycle with a ServiceAccount token, no 403.

There is no Argo workflow-controller here: Workflows are created and counted, never run.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import pathlib
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
import yaml
from aiohttp import web

from tests.servers import KubeEndpoint
from tripwire import errors, secrets
from tripwire.app.controller import secrets as kube_secrets
from tripwire.net.kube import client as kube_client

REPO = pathlib.Path(__file__).resolve().parents[2]
ARGO_CRDS = REPO / "tests" / "integration" / "crds" / "argo-workflows.yaml"
TRIGGER_KEY_LABEL = "tripwire.dev/trigger-key"

pytestmark = [pytest.mark.integration, pytest.mark.k8s, pytest.mark.timeout(180)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def kubectl(
    kube: KubeEndpoint,
    *args: str,
    stdin: str | None = None,
    check: bool = True,
    kubeconfig: pathlib.Path | None = None,
) -> tuple[int, str, str]:
    argv = [str(kube.kubectl), "--kubeconfig", str(kubeconfig or kube.kubeconfig), *args]
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.PIPE if stdin is not None else None,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(
        proc.communicate(stdin.encode() if stdin is not None else None), timeout=60
    )
    rc = proc.returncode or 0
    if check and rc != 0:
        raise AssertionError(f"kubectl {' '.join(args)} failed ({rc}):\n{err.decode()}")
    return rc, out.decode(), err.decode()


async def get_json(kube: KubeEndpoint, *args: str) -> Any:
    _, out, _ = await kubectl(kube, "get", *args, "-o", "json")
    return json.loads(out)


async def eventually(
    what: str, check: Callable[[], Any], *, timeout: float = 30.0, interval: float = 0.2
) -> Any:
    """Poll `check` (sync or async) until it returns something truthy."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if asyncio.iscoroutine(last):
            last = await last
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


@pytest.fixture
async def crds(kube: KubeEndpoint) -> None:
    """Our CRDs and the minimal Argo Workflow CRDs, applied and established."""
    await kubectl(kube, "apply", "-f", str(REPO / "crds"))
    await kubectl(kube, "apply", "-f", str(ARGO_CRDS))
    for crd in ("gateways.tripwire.dev", "sensors.tripwire.dev", "workflows.argoproj.io"):
        await kubectl(kube, "wait", "--for", "condition=established", "--timeout=30s", f"crd/{crd}")


# -- the controller as a process -----------------------------------------------------------


@dataclasses.dataclass
class Controller:
    proc: asyncio.subprocess.Process
    metrics_port: int
    log: pathlib.Path
    identity: str

    async def readyz(self) -> dict[str, Any] | None:
        url = f"http://127.0.0.1:{self.metrics_port}/readyz"
        try:
            async with aiohttp.ClientSession() as session, session.get(url) as resp:
                doc: dict[str, Any] = await resp.json()
                return doc
        except (aiohttp.ClientError, ValueError):
            return None

    async def wait_role(self, role: str, *, timeout: float = 30.0) -> dict[str, Any]:
        async def check() -> dict[str, Any] | None:
            if self.proc.returncode is not None:
                raise AssertionError(f"controller exited early:\n{self.output()}")
            doc = await self.readyz()
            return doc if doc and doc.get("role") == role and doc.get("ready") else None

        found: dict[str, Any] = await eventually(f"{self.identity} {role}", check, timeout=timeout)
        return found

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)


@contextlib.asynccontextmanager
async def controller(
    kube: KubeEndpoint,
    *,
    namespace: str,
    state_dir: pathlib.Path,
    log: pathlib.Path,
    identity: str,
    leader_election: bool = False,
    kubeconfig: pathlib.Path | None = None,
) -> AsyncIterator[Controller]:
    metrics_port = free_port()
    args = [
        "controller", "--namespace", namespace,
        "--kubeconfig", str(kubeconfig or kube.kubeconfig),
        "--state-dir", str(state_dir), "--metrics-port", str(metrics_port),
        "--identity", identity, "--grace", "3", "--log-level", "debug",
    ]  # fmt: skip
    if leader_election:
        args += [
            "--lease-namespace", namespace,
            "--lease-duration", "4", "--renew-deadline", "3", "--retry-period", "0.5",
        ]  # fmt: skip
    else:
        args.append("--no-leader-election")
    with log.open("ab") as out:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tripwire.app.cli", *args, stdout=out, stderr=out, cwd=REPO
        )
    ctl = Controller(proc=proc, metrics_port=metrics_port, log=log, identity=identity)
    try:
        yield ctl
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), timeout=20)
            except TimeoutError:
                proc.kill()
                await proc.wait()


# -- an HTTP target that can hold a request until the controller is killed -------------------


@dataclasses.dataclass
class Holder:
    port: int
    requests: list[str] = dataclasses.field(default_factory=list)
    hold: bool = True
    closing: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append(request.headers.get("Idempotency-Key", ""))
        if self.hold:
            # No answer: the firing stays in flight, so the event stays unacknowledged.
            await self.closing.wait()
            return web.Response(status=503)
        return web.Response(text="ok")


@contextlib.asynccontextmanager
async def holder_server() -> AsyncIterator[Holder]:
    holder = Holder(port=free_port())
    app = web.Application()
    app.router.add_post("/slow", holder.handle)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", holder.port).start()
    try:
        yield holder
    finally:
        holder.closing.set()
        await runner.cleanup()


# -- manifests ----------------------------------------------------------------------------


def gateway(namespace: str, *, port: int, auth: dict[str, str] | None = None) -> dict[str, Any]:
    entry: dict[str, Any] = {"port": port, "endpoint": "/launch", "host": "127.0.0.1"}
    if auth is not None:
        entry["authSecret"] = auth
    return {
        "apiVersion": "tripwire.dev/v1alpha1",
        "kind": "Gateway",
        "metadata": {"name": "hooks", "namespace": namespace},
        "spec": {"webhook": {"launch": entry}},
    }


def sensor(namespace: str, *, slow_url: str | None = None) -> dict[str, Any]:
    workflow = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"generateName": "hello-"},
        "spec": {
            "entrypoint": "say",
            "arguments": {"parameters": [{"name": "message", "value": "default"}]},
            "templates": [{"name": "say", "container": {"image": "busybox"}}],
        },
    }
    triggers: list[dict[str, Any]] = [
        {
            "template": {
                "name": "submit",
                "argoWorkflow": {
                    "operation": "submit",
                    "source": {"resource": workflow},
                    "parameters": [
                        {
                            "src": {"dependencyName": "launch", "dataKey": "body.message"},
                            "dest": "spec.arguments.parameters.0.value",
                        }
                    ],
                },
            },
            # Right after a CRD is established the apiserver may answer 429 for a moment.
            "retryStrategy": {"steps": 20, "duration": "200ms", "factor": 1.5},
        }
    ]
    if slow_url is not None:
        triggers.append(
            {
                "template": {"name": "notify", "http": {"url": slow_url, "timeout": 60}},
                "retryStrategy": {"steps": 5, "duration": "200ms"},
            }
        )
    return {
        "apiVersion": "tripwire.dev/v1alpha1",
        "kind": "Sensor",
        "metadata": {"name": "launcher", "namespace": namespace},
        "spec": {
            "dependencies": [{"name": "launch", "gatewayName": "hooks", "eventName": "launch"}],
            "triggers": triggers,
        },
    }


async def apply(kube: KubeEndpoint, *objs: dict[str, Any]) -> None:
    await kubectl(kube, "apply", "-f", "-", stdin=yaml.safe_dump_all(objs))


async def workflows(kube: KubeEndpoint, namespace: str) -> list[dict[str, Any]]:
    doc = await get_json(kube, "workflows.argoproj.io", "-n", namespace)
    items: list[dict[str, Any]] = doc["items"]
    return items


async def post(port: int, body: dict[str, Any], *, token: str | None = None) -> int:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    url = f"http://127.0.0.1:{port}/launch"
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, json=body, headers=headers) as resp,
    ):
        return resp.status


async def post_when_served(port: int, body: dict[str, Any], *, timeout: float = 30.0) -> None:
    async def attempt() -> bool:
        try:
            return await post(port, body) == 200
        except aiohttp.ClientError:
            return False

    await eventually(f"webhook on {port} to accept", attempt, timeout=timeout)


def ready_condition(obj: dict[str, Any]) -> dict[str, Any]:
    conds = (obj.get("status") or {}).get("conditions") or []
    found: dict[str, Any] = next((c for c in conds if c.get("type") == "Ready"), {})
    return found


# -- tests --------------------------------------------------------------------------------


async def test_crds_apply_idempotently_and_the_apiserver_names_the_bad_field(
    kube: KubeEndpoint, kube_namespace: str
) -> None:
    for _ in range(2):
        rc, out, err = await kubectl(kube, "apply", "-f", str(REPO / "crds"))
        assert rc == 0 and "gateways.tripwire.dev" in out and "sensors.tripwire.dev" in out, err
    await kubectl(kube, "wait", "--for", "condition=established", "crd/sensors.tripwire.dev")
    bad = sensor(kube_namespace)
    bad["spec"]["dependencies"] = "x"
    rc, _, err = await kubectl(kube, "create", "-f", "-", stdin=yaml.safe_dump(bad), check=False)
    assert rc != 0
    assert "spec.dependencies" in err and "array" in err, err
    _, out, _ = await kubectl(kube, "get", "sn", "-n", kube_namespace, check=False)
    assert "launcher" not in out


async def test_webhook_to_workflow_end_to_end_with_redelivery_and_delete(
    kube: KubeEndpoint, kube_namespace: str, crds: None, tmp_path: pathlib.Path
) -> None:
    ns, port, state = kube_namespace, free_port(), tmp_path / "state"
    log = tmp_path / "controller.log"
    async with holder_server() as holder:
        await apply(
            kube,
            gateway(ns, port=port),
            sensor(ns, slow_url=f"http://127.0.0.1:{holder.port}/slow"),
        )
        async with controller(kube, namespace=ns, state_dir=state, log=log, identity="c1") as c1:
            doc = await c1.wait_role("leader")
            await post_when_served(port, {"message": "from-the-body"})
            # The Workflow is created; the slow trigger holds the event unacknowledged.
            made = await eventually("a Workflow", lambda: workflows(kube, ns))
            await eventually("the slow trigger's request", lambda: holder.requests)

            async def event_time() -> bool:
                obj = await get_json(kube, "gateway", "hooks", "-n", ns)
                return bool((obj.get("status") or {}).get("lastEventTime"))

            # The status check runs every 2 s; the held request keeps the event unacked.
            await eventually("the Gateway's lastEventTime", event_time)
            c1.kill()
            await c1.proc.wait()
        assert len(made) == 1
        wf = made[0]
        assert wf["metadata"]["name"].startswith("hello-")
        assert wf["spec"]["arguments"]["parameters"][0]["value"] == "from-the-body"
        key = wf["metadata"]["labels"][TRIGGER_KEY_LABEL]
        assert key, doc

        # Restart on the same state dir: the unacknowledged event is delivered again.
        holder.hold = False
        async with controller(kube, namespace=ns, state_dir=state, log=log, identity="c2") as c2:
            await c2.wait_role("leader")
            await eventually("the redelivered event's firing", lambda: len(holder.requests) >= 2)
            assert holder.requests[0] == holder.requests[1]  # same firing, same key
            await asyncio.sleep(1.0)
            again = await workflows(kube, ns)
            assert [w["metadata"]["name"] for w in again] == [wf["metadata"]["name"]]
            by_key = await get_json(
                kube, "workflows.argoproj.io", "-n", ns, "-l", f"{TRIGGER_KEY_LABEL}={key}"
            )
            assert len(by_key["items"]) == 1

            # Status and printer columns say what happened.
            async def fired_status() -> dict[str, Any] | None:
                obj: dict[str, Any] = await get_json(kube, "sensor", "launcher", "-n", ns)
                st = obj.get("status") or {}
                ok = ready_condition(obj).get("status") == "True" and st.get("lastFiredTime")
                return obj if ok else None

            obj = await eventually("the Sensor's status", fired_status)
            assert obj["status"]["observedGeneration"] == obj["metadata"]["generation"]
            assert ready_condition(obj)["reason"] == "Running"
            gw = await get_json(kube, "gateway", "hooks", "-n", ns)
            assert ready_condition(gw)["status"] == "True"
            assert gw["status"]["entries"]["launch"]["ready"] is True
            assert gw["status"]["lastEventTime"]
            _, table, _ = await kubectl(kube, "get", "gw,sn", "-n", ns)
            print(table)
            lines = table.splitlines()
            assert "LAST EVENT" in lines[0] and "READY" in lines[0]
            assert any(line.startswith("gateway.tripwire.dev/hooks") and " True " in line
                       for line in lines)  # fmt: skip
            assert any("LAST FIRED" in line for line in lines)
            assert any(line.startswith("sensor.tripwire.dev/launcher") and " True " in line
                       for line in lines)  # fmt: skip

            # Delete the Sensor: the controller stops it; a new POST creates nothing.
            await kubectl(kube, "delete", "sensor", "launcher", "-n", ns)

            async def sensor_gone() -> bool:
                doc = await c2.readyz()
                return doc is not None and "launcher" not in doc["namespaces"][ns]["sensors"]

            await eventually("the sensor to stop", sensor_gone)
            url = f"http://127.0.0.1:{c2.metrics_port}/explain/{ns}/launcher"
            async with aiohttp.ClientSession() as session, session.get(url) as resp:
                assert resp.status == 404
            assert await post(port, {"message": "after-delete"}) == 200
            await asyncio.sleep(1.5)
            assert len(await workflows(kube, ns)) == 1
            assert len(holder.requests) == 2
    out = log.read_text()
    assert "Traceback" not in out, out


async def test_two_controllers_one_lease_takeover_without_double_firing(
    kube: KubeEndpoint, kube_namespace: str, crds: None, tmp_path: pathlib.Path
) -> None:
    ns, port, state = kube_namespace, free_port(), tmp_path / "state"
    await apply(kube, gateway(ns, port=port), sensor(ns))
    common: dict[str, Any] = {"namespace": ns, "state_dir": state, "leader_election": True}
    async with contextlib.AsyncExitStack() as stack:
        a = await stack.enter_async_context(
            controller(kube, log=tmp_path / "a.log", identity="ctl-a", **common)
        )
        await a.wait_role("leader")
        b = await stack.enter_async_context(
            controller(kube, log=tmp_path / "b.log", identity="ctl-b", **common)
        )
        await b.wait_role("standby")
        lease = await get_json(kube, "lease", "tripwire-controller", "-n", ns)
        assert lease["spec"]["holderIdentity"] == "ctl-a"
        assert (await a.readyz() or {}).get("namespaces", {}).get(ns, {}).get("sensors") == [
            "launcher"
        ]
        assert "namespaces" not in (await b.readyz() or {})

        await post_when_served(port, {"message": "before"})
        first = await eventually("the first Workflow", lambda: workflows(kube, ns))
        await asyncio.sleep(0.5)  # let the leader acknowledge the event

        a.kill()
        killed_at = time.monotonic()
        await a.proc.wait()

        async def holder_is_b() -> bool:
            lease = await get_json(kube, "lease", "tripwire-controller", "-n", ns)
            return bool(lease["spec"]["holderIdentity"] == "ctl-b")

        await eventually("b to take the Lease", holder_is_b, timeout=10, interval=0.1)
        took_lease = time.monotonic() - killed_at
        await b.wait_role("leader", timeout=10)
        await post_when_served(port, {"message": "after"})
        serving = time.monotonic() - killed_at
        print(f"takeover: lease after {took_lease:.2f}s, serving after {serving:.2f}s")
        # Lease duration 4s; the standby polls every 0.5s; kubectl polling adds a little.
        assert took_lease <= 4.0 + 1.5, took_lease

        async def two() -> list[dict[str, Any]] | None:
            found = await workflows(kube, ns)
            return found if len(found) >= 2 else None

        made = await eventually("the second Workflow", two)
        await asyncio.sleep(1.5)  # a double firing would show up by now
        made = await workflows(kube, ns)
        values = sorted(w["spec"]["arguments"]["parameters"][0]["value"] for w in made)
        assert values == ["after", "before"], values
        keys = {w["metadata"]["labels"][TRIGGER_KEY_LABEL] for w in made}
        assert len(keys) == 2
        assert first[0]["metadata"]["name"] in {w["metadata"]["name"] for w in made}
        lease = await get_json(kube, "lease", "tripwire-controller", "-n", ns)
        assert lease["spec"]["leaseTransitions"] >= 1
    assert "lease released by ctl-b" in (tmp_path / "b.log").read_text()


def _rbac_for(namespace: str) -> list[dict[str, Any]]:
    """deploy/rbac.yaml moved into the test's namespace; cluster-scoped names made unique."""
    docs = [d for d in yaml.safe_load_all((REPO / "deploy" / "rbac.yaml").read_text()) if d]
    for doc in docs:
        meta = doc["metadata"]
        if "namespace" in meta:
            meta["namespace"] = namespace
        if doc["kind"] in ("ClusterRole", "ClusterRoleBinding"):
            meta["name"] = f"{meta['name']}-{namespace}"
        if doc.get("roleRef", {}).get("kind") == "ClusterRole":
            doc["roleRef"]["name"] = f"{doc['roleRef']['name']}-{namespace}"
        for subject in doc.get("subjects", []):
            subject["namespace"] = namespace
    return docs


async def test_rbac_is_enough_for_a_full_cycle(
    kube: KubeEndpoint, kube_namespace: str, crds: None, tmp_path: pathlib.Path
) -> None:
    ns, port = kube_namespace, free_port()
    docs = _rbac_for(ns)
    await apply(kube, *docs)
    try:
        # A token of the ServiceAccount from the TokenRequest API.
        _, token, _ = await kubectl(
            kube, "create", "token", "tripwire-controller", "-n", ns, "--duration", "1h"
        )
        kubeconfig = tmp_path / "sa.kubeconfig"
        kubeconfig.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [
                        {
                            "name": "test",
                            "cluster": {
                                "server": kube.server,
                                "certificate-authority": str(kube.ca_file),
                            },
                        }
                    ],
                    "users": [{"name": "sa", "user": {"token": token.strip()}}],
                    "contexts": [
                        {
                            "name": "sa",
                            "context": {"cluster": "test", "user": "sa", "namespace": ns},
                        }
                    ],
                    "current-context": "sa",
                }
            )
        )
        # The kubeconfig really is the ServiceAccount, and it is not an admin in disguise.
        _, who, _ = await kubectl(
            kube, "auth", "whoami", "-o", "jsonpath={.status.userInfo.username}",
            kubeconfig=kubeconfig,
        )  # fmt: skip
        assert who == f"system:serviceaccount:{ns}:tripwire-controller"
        _, can, _ = await kubectl(
            kube, "auth", "can-i", "list", "pods", "-n", ns, kubeconfig=kubeconfig, check=False
        )
        assert can.strip() == "no"
        secret = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "webhook-auth", "namespace": ns},
            "stringData": {"token": "s3cret-token"},
        }
        await apply(
            kube,
            secret,
            gateway(ns, port=port, auth={"name": "webhook-auth", "key": "token"}),
            sensor(ns),
        )
        log = tmp_path / "controller.log"
        async with controller(
            kube,
            namespace=ns,
            state_dir=tmp_path / "state",
            log=log,
            identity="rbac-ctl",
            leader_election=True,
            kubeconfig=kubeconfig,
        ) as ctl:
            await ctl.wait_role("leader")

            async def accepted() -> bool:
                try:
                    return await post(port, {"message": "rbac"}, token="s3cret-token") == 200
                except aiohttp.ClientError:
                    return False

            # 200 with the token from the Secret: the Secret was read through the API.
            await eventually("the authenticated webhook", accepted)
            assert await post(port, {"message": "x"}, token="wrong") == 401
            made = await eventually("a Workflow", lambda: workflows(kube, ns))
            assert made[0]["spec"]["arguments"]["parameters"][0]["value"] == "rbac"

            async def status_written() -> bool:
                obj = await get_json(kube, "sensor", "launcher", "-n", ns)
                return bool((obj.get("status") or {}).get("lastFiredTime"))

            await eventually("the Sensor's status", status_written)
            lease = await get_json(kube, "lease", "tripwire-controller", "-n", ns)
            assert lease["spec"]["holderIdentity"] == "rbac-ctl"
        out = log.read_text()
        assert " 403 " not in out and "Forbidden" not in out and "forbidden" not in out, out
        assert "lease released by rbac-ctl" in out
    finally:
        for doc in docs:
            if doc["kind"] in ("ClusterRole", "ClusterRoleBinding"):
                await kubectl(kube, "delete", doc["kind"], doc["metadata"]["name"], check=False)


async def test_invalid_spec_shows_in_status_and_a_fixed_spec_restarts_the_sensor(
    kube: KubeEndpoint, kube_namespace: str, crds: None, tmp_path: pathlib.Path
) -> None:
    ns = kube_namespace
    bad = sensor(ns)
    # Passes the CRD schema, fails the models: the condition names no dependency.
    bad["spec"]["triggers"][0]["template"]["conditions"] = "launch && nope"
    await apply(kube, gateway(ns, port=free_port()), bad)
    log = tmp_path / "controller.log"
    async with controller(
        kube, namespace=ns, state_dir=tmp_path / "state", log=log, identity="v"
    ) as ctl:
        await ctl.wait_role("leader")

        async def condition(reason: str) -> dict[str, Any] | None:
            obj: dict[str, Any] = await get_json(kube, "sensor", "launcher", "-n", ns)
            cond = ready_condition(obj)
            return obj if cond.get("reason") == reason else None

        obj = await eventually("InvalidSpec", lambda: condition("InvalidSpec"))
        cond = ready_condition(obj)
        assert cond["status"] == "False"
        assert "spec.triggers[0].template.conditions" in cond["message"], cond
        assert obj["status"]["observedGeneration"] == 1
        doc = await ctl.readyz()
        assert doc is not None and doc["namespaces"][ns]["sensors"] == []

        await apply(kube, sensor(ns))  # fixed: generation 2
        obj = await eventually("Running", lambda: condition("Running"))
        assert obj["status"]["observedGeneration"] == 2
        assert ready_condition(obj)["observedGeneration"] == 2
        doc = await ctl.readyz()
        assert doc is not None and doc["namespaces"][ns]["sensors"] == ["launcher"]


async def test_kube_resolver_reads_a_secret_and_names_what_is_missing(
    kube: KubeEndpoint, kube_namespace: str
) -> None:
    ns = kube_namespace
    await apply(
        kube,
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "creds", "namespace": ns},
            "stringData": {"token": "value-1"},
        },
    )
    client = kube_client.Client(kube_client.load_config(kubeconfig=str(kube.kubeconfig)))
    async with contextlib.AsyncExitStack() as stack:
        await client.start(stack)
        resolver = kube_secrets.KubeResolver(client, ns)
        ref = secrets.SecretRef(name="creds", key="token")
        assert await resolver.resolve(ref) == "value-1"
        with pytest.raises(errors.SecretError) as missing_key:
            await resolver.resolve(secrets.SecretRef(name="creds", key="other"))
        text = str(missing_key.value)
        assert f"Secret {ns}/creds key other" in text and "token" in text
        assert "value-1" not in text
        with pytest.raises(errors.SecretError, match=f"Secret {ns}/absent key k: no Secret"):
            await resolver.resolve(secrets.SecretRef(name="absent", key="k"))
        with pytest.raises(errors.SecretError, match="environment variable"):
            await resolver.resolve(secrets.SecretRef(env="TRIPWIRE_TEST_SURELY_UNSET"))
