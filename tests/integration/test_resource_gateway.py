"""The resource gateway against a real kube-apiserver: every change once, through relists and
restarts.

Most tests use the shared apiserver of `scripts/services up k8s` in a namespace of their own.
The two disruptive ones — a forced 410 (etcd compacted while the gateway is cut off) and an
apiserver restart mid-watch — run a private etcd + kube-apiserver from the same binaries: the
shared apiserver serves other sessions, `scripts/services up kube-apiserver` would mint a new
CA and token (a real restart keeps its certificates), and compacting the shared etcd would
disturb every other watcher. The private apiserver for the 410 test runs with
`--watch-cache=false`: with the watch cache on, a watch from a compacted revision is still
served from the cache, so only etcd answers 410 on cue (a restarted apiserver's cache, on the
other hand, answers 410 by itself — the restart test goes through that path).

The checks are the same everywhere (`check_exactly_once`): one ADD per object uid, one DELETE
per deleted uid, no event id twice, and each live object's last event at its final
resourceVersion. Intermediate versions may be coalesced by a relist (that is the watch
protocol), never lost at the end and never repeated.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from gateways import base, resource
from tests import servers
from tripwire import events, secrets
from tripwire.net.kube import client as kube_client

pytestmark = [pytest.mark.integration, pytest.mark.k8s]

DEADLINE = 30.0
CRD_GROUP = "resource-gateway.tripwire.dev"
CONFIGMAPS = kube_client.Resource("", "v1", "configmaps", "ConfigMap", namespaced=True)
NAMESPACES = kube_client.Resource("", "v1", "namespaces", "Namespace", namespaced=False)
CRDS = kube_client.Resource(
    "apiextensions.k8s.io", "v1", "customresourcedefinitions", "CustomResourceDefinition", False
)
WIDGETS = kube_client.Resource(CRD_GROUP, "v1", "widgets", "Widget", namespaced=True)


# --- helpers ----------------------------------------------------------------------------------


class MemoryStore:
    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}

    async def get(self, key: str) -> bytes | None:
        return self.data.get(key)

    async def scan(self, prefix: str = "") -> list[tuple[str, bytes]]:
        return sorted((k, v) for k, v in self.data.items() if k.startswith(prefix))

    async def write(self, changes: Any) -> None:
        for key, value in changes.items():
            if value is None:
                self.data.pop(key, None)
            else:
                self.data[key] = value


class Sink:
    """A list-appending `dispatch` with a bounded wait."""

    def __init__(self) -> None:
        self.events: list[events.Event] = []
        self._changed = asyncio.Event()

    async def __call__(self, event: events.Event) -> None:
        self.events.append(event)
        self._changed.set()

    async def wait_for(self, predicate: Any, *, timeout: float = DEADLINE) -> None:
        async with asyncio.timeout(timeout):
            while not predicate(self):
                self._changed.clear()
                await self._changed.wait()

    async def quiet(self, seconds: float = 0.3) -> None:
        """Let anything still in flight (a duplicate) arrive before asserting."""
        await asyncio.sleep(seconds)

    def seen(self) -> list[tuple[str, str]]:
        return [(e.data["type"], e.data["body"]["metadata"]["name"]) for e in self.events]

    def last_rv(self, name: str) -> str | None:
        for e in reversed(self.events):
            if e.data["body"]["metadata"]["name"] == name:
                rv: str = e.data["body"]["metadata"]["resourceVersion"]
                return rv
        return None

    def types_of(self, name: str) -> list[str]:
        return [t for t, n in self.seen() if n == name]


def check_exactly_once(
    sink: Sink, *, live: dict[str, kube_client.JSON], deleted_uids: set[str], created_uids: set[str]
) -> None:
    """No lost and no duplicated changes (see the module docstring)."""
    ids = [e.id for e in sink.events]
    assert len(ids) == len(set(ids)), f"an event id repeats: {sink.seen()}"
    adds: dict[str, int] = {}
    deletes: dict[str, int] = {}
    observed: set[tuple[str, str]] = set()
    for e in sink.events:
        meta = e.data["body"]["metadata"]
        pair = (meta["uid"], meta["resourceVersion"] + e.data["type"])
        assert pair not in observed, f"the same change twice: {pair}"
        observed.add(pair)
        if e.data["type"] == "ADD":
            adds[meta["uid"]] = adds.get(meta["uid"], 0) + 1
        elif e.data["type"] == "DELETE":
            deletes[meta["uid"]] = deletes.get(meta["uid"], 0) + 1
    assert set(adds) == created_uids, f"ADDs {adds} for objects {created_uids}: {sink.seen()}"
    assert all(n == 1 for n in adds.values()), f"duplicated ADD: {sink.seen()}"
    assert set(deletes) == deleted_uids, f"DELETEs {deletes}, expected {deleted_uids}"
    assert all(n == 1 for n in deletes.values()), f"duplicated DELETE: {sink.seen()}"
    for name, obj in live.items():
        assert sink.last_rv(name) == obj["metadata"]["resourceVersion"], (
            f"{name}: last event not at its final version: {sink.seen()}"
        )


def configmap(name: str, data: dict[str, str] | None = None, **labels: str) -> kube_client.JSON:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "labels": labels},
        "data": data or {},
    }


@contextlib.asynccontextmanager
async def gateway(
    client: kube_client.Client,
    fields: dict[str, Any],
    *,
    sink: Sink,
    store: MemoryStore | None = None,
) -> AsyncIterator[resource.ResourceSource]:
    context = base.SourceContext(
        gateway="cluster",
        name="watched",
        kind=resource.KIND,
        dispatch=sink,
        store=store or MemoryStore(),
        secrets=secrets.LocalResolver(),
    )
    spec = resource.ResourceSpec.model_validate(fields)
    source = resource.ResourceSource(spec=spec, context=context, client=client)
    async with contextlib.AsyncExitStack() as stack:
        await source.start(stack)
        yield source


@contextlib.asynccontextmanager
async def kube_client_of(kubeconfig: Path) -> AsyncIterator[kube_client.Client]:
    config = kube_client.load_config(kubeconfig=str(kubeconfig))
    async with contextlib.AsyncExitStack() as stack:
        client = kube_client.Client(config, qps=500, burst=500)
        await client.start(stack)
        yield client


@pytest.fixture
async def admin(kube: servers.KubeEndpoint) -> AsyncIterator[kube_client.Client]:
    async with kube_client_of(kube.kubeconfig) as client:
        yield client


async def install_widget_crd(client: kube_client.Client) -> None:
    """A small namespaced CRD; left installed (idempotent, shared by concurrent runs)."""
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"widgets.{CRD_GROUP}"},
        "spec": {
            "group": CRD_GROUP,
            "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "x-kubernetes-preserve-unknown-fields": True,
                        }
                    },
                }
            ],
        },
    }
    try:
        await client.create(CRDS, crd)
    except kube_client.ApiError as exc:
        if not exc.conflict:
            raise
    async with asyncio.timeout(DEADLINE):
        while True:
            got = await client.get(CRDS, f"widgets.{CRD_GROUP}")
            conditions = (got.get("status") or {}).get("conditions") or []
            if any(c["type"] == "Established" and c["status"] == "True" for c in conditions):
                break
            await asyncio.sleep(0.1)
        # Established is not yet servable: lists answer 429 while its storage initializes.
        while True:
            try:
                await client.list(WIDGETS)
                return
            except kube_client.ApiError as exc:
                if not exc.temporary:
                    raise
            await asyncio.sleep(0.1)


# --- against the shared apiserver ---------------------------------------------------------------


async def test_configmap_add_update_delete(admin: kube_client.Client, kube_namespace: str) -> None:
    ns = kube_namespace
    sink = Sink()
    before = await admin.create(CONFIGMAPS, configmap("before", {"k": "0"}), namespace=ns)
    fields = {"namespace": ns, "version": "v1", "resource": "configmaps", "metadata": {"x": "y"}}
    async with gateway(admin, fields, sink=sink):
        await sink.wait_for(lambda s: ("ADD", "before") in s.seen())
        created = await admin.create(CONFIGMAPS, configmap("cm", {"k": "1"}), namespace=ns)
        await admin.patch(CONFIGMAPS, "cm", {"data": {"k": "2"}}, namespace=ns)
        await admin.delete(CONFIGMAPS, "cm", namespace=ns)
        await sink.wait_for(lambda s: "DELETE" in s.types_of("cm"))
        await sink.quiet()
    assert sink.types_of("cm") == ["ADD", "UPDATE", "DELETE"]
    add, update, delete = [e for e in sink.events if e.data["body"]["metadata"]["name"] == "cm"]
    assert update.data["oldBody"]["data"] == {"k": "1"}
    assert update.data["body"]["data"] == {"k": "2"}
    assert add.data["oldBody"] is None and delete.data["oldBody"] is None
    assert add.data | {"body": None} == {
        "type": "ADD",
        "body": None,
        "oldBody": None,
        "group": "",
        "version": "v1",
        "resource": "configmaps",
        "metadata": {"x": "y"},
    }
    assert add.data["body"]["kind"] == "ConfigMap"
    assert add.type == "resource" and add.subject == "watched" and add.source == "cluster"
    check_exactly_once(
        sink,
        live={},
        deleted_uids={created["metadata"]["uid"]},
        created_uids={created["metadata"]["uid"], before["metadata"]["uid"]},
    )


async def test_custom_resource_cluster_wide_with_label_selector(
    admin: kube_client.Client, kube_namespace: str
) -> None:
    ns = kube_namespace
    await install_widget_crd(admin)
    sink = Sink()
    fields = {
        "group": CRD_GROUP,
        "version": "v1",
        "resource": "widgets",
        # cluster-wide; the run label keeps other tests' widgets out
        "filter": {
            "labels": [
                {"key": "run", "operation": "==", "value": ns},
                {"key": "tier", "operation": "in", "value": "web,api"},
            ]
        },
    }

    def widget(name: str, **labels: str) -> kube_client.JSON:
        body = {"apiVersion": f"{CRD_GROUP}/v1", "kind": "Widget", "spec": {"size": 1}}
        return body | {"metadata": {"name": name, "labels": {"run": ns, **labels}}}

    async with gateway(admin, fields, sink=sink):
        w1 = await admin.create(WIDGETS, widget("w1", tier="web"), namespace=ns)
        await admin.create(WIDGETS, widget("w2", tier="db"), namespace=ns)
        await admin.patch(WIDGETS, "w1", {"spec": {"size": 2}}, namespace=ns)
        # w2 starts matching: the apiserver's view, an ADD; w1 stops matching: a DELETE.
        w2 = await admin.patch(
            WIDGETS, "w2", {"metadata": {"labels": {"tier": "api"}}}, namespace=ns
        )
        await admin.patch(WIDGETS, "w1", {"metadata": {"labels": {"tier": "db"}}}, namespace=ns)
        await sink.wait_for(lambda s: len(s.events) >= 4)
        await sink.quiet()
    assert sink.seen() == [("ADD", "w1"), ("UPDATE", "w1"), ("ADD", "w2"), ("DELETE", "w1")]
    first = sink.events[0]
    assert first.data["group"] == CRD_GROUP and first.data["resource"] == "widgets"
    assert first.data["body"]["kind"] == "Widget"
    assert sink.events[1].data["body"]["spec"] == {"size": 2}
    check_exactly_once(
        sink,
        live={"w2": w2},
        deleted_uids={w1["metadata"]["uid"]},
        created_uids={w1["metadata"]["uid"], w2["metadata"]["uid"]},
    )


async def test_field_filter_prefix_and_event_types(
    admin: kube_client.Client, kube_namespace: str
) -> None:
    ns = kube_namespace
    sink = Sink()
    fields = {
        "namespace": ns,
        "version": "v1",
        "resource": "configmaps",
        "eventTypes": ["UPDATE"],
        "filter": {
            "prefix": "job-",
            "fields": [{"key": "data.state", "operation": "==", "value": "^done$"}],
        },
    }
    async with gateway(admin, fields, sink=sink):
        for name in ("job-a", "job-b", "other"):
            await admin.create(CONFIGMAPS, configmap(name, {"state": "new"}), namespace=ns)
        await admin.patch(CONFIGMAPS, "job-a", {"data": {"state": "done"}}, namespace=ns)
        await admin.patch(CONFIGMAPS, "job-b", {"data": {"state": "running"}}, namespace=ns)
        await admin.patch(CONFIGMAPS, "other", {"data": {"state": "done"}}, namespace=ns)
        await admin.delete(CONFIGMAPS, "job-a", namespace=ns)  # DELETE is not in eventTypes
        # A marker change that passes, proving the ones before it were seen and dropped.
        await admin.patch(CONFIGMAPS, "job-b", {"data": {"state": "done"}}, namespace=ns)
        await sink.wait_for(lambda s: ("UPDATE", "job-b") in s.seen())
        await sink.quiet()
    assert sink.seen() == [("UPDATE", "job-a"), ("UPDATE", "job-b")]


async def test_after_start_ignores_existing_objects(
    admin: kube_client.Client, kube_namespace: str
) -> None:
    ns = kube_namespace
    sink = Sink()
    await admin.create(CONFIGMAPS, configmap("old"), namespace=ns)
    fields = {
        "namespace": ns,
        "version": "v1",
        "resource": "configmaps",
        "filter": {"afterStart": True},
    }
    async with gateway(admin, fields, sink=sink):
        await admin.create(CONFIGMAPS, configmap("new"), namespace=ns)
        await admin.patch(CONFIGMAPS, "old", {"data": {"k": "v"}}, namespace=ns)
        await sink.wait_for(lambda s: len(s.events) >= 2)
        await sink.quiet()
    # Argo's afterStart passes events that happen after start: the update of `old` is one.
    assert sink.seen() == [("ADD", "new"), ("UPDATE", "old")]


# --- a private etcd + kube-apiserver, for the disruptive tests -----------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class PrivateKube:
    """etcd + kube-apiserver of this test module, from the harness's binaries and PKI."""

    PKI = ("ca.crt", "apiserver.crt", "apiserver.key", "sa.pub", "sa.key", "tokens.csv")

    def __init__(self, shared: servers.KubeEndpoint, workdir: Path) -> None:
        run_dir = shared.kubeconfig.parent  # /tmp/tripwire-services/kube-apiserver
        self.apiserver_bin = Path((run_dir / "binary").read_text().strip())
        self.etcd_bin = Path((run_dir.parent / "etcd" / "binary").read_text().strip())
        self.dir = workdir
        self.pki = workdir / "pki"
        self.pki.mkdir()
        for name in self.PKI:
            shutil.copy(run_dir / name, self.pki / name)
        self.token = shared.token
        self.etcd_port, self.etcd_peer, self.port = _free_port(), _free_port(), _free_port()
        self.etcd_url = f"http://127.0.0.1:{self.etcd_port}"
        self.server = f"https://127.0.0.1:{self.port}"
        self.kubeconfig = workdir / "kubeconfig"
        self.kubeconfig.write_text(
            json.dumps(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [
                        {
                            "name": "private",
                            "cluster": {
                                "server": self.server,
                                "certificate-authority": str(self.pki / "ca.crt"),
                            },
                        }
                    ],
                    "users": [{"name": "admin", "user": {"token": self.token}}],
                    "contexts": [
                        {"name": "private", "context": {"cluster": "private", "user": "admin"}}
                    ],
                    "current-context": "private",
                }
            )
        )
        self.etcd: subprocess.Popen[bytes] | None = None
        self.apiserver: subprocess.Popen[bytes] | None = None

    def _spawn(self, name: str, argv: list[str]) -> subprocess.Popen[bytes]:
        log = (self.dir / f"{name}.log").open("ab")
        try:
            return subprocess.Popen(
                argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        finally:
            log.close()

    def start_etcd(self) -> None:
        peer = f"http://127.0.0.1:{self.etcd_peer}"
        self.etcd = self._spawn(
            "etcd",
            [
                str(self.etcd_bin),
                "--name=private",
                f"--data-dir={self.dir / 'etcd-data'}",
                f"--listen-client-urls={self.etcd_url}",
                f"--advertise-client-urls={self.etcd_url}",
                f"--listen-peer-urls={peer}",
                f"--initial-advertise-peer-urls={peer}",
                f"--initial-cluster=private={peer}",
                "--unsafe-no-fsync",
                "--log-level=warn",
            ],
        )
        self._wait(lambda: b'"health":"true"' in self._get(f"{self.etcd_url}/health"), "etcd")

    def start_apiserver(self, *, watch_cache: bool = True) -> None:
        pki = self.pki
        self.apiserver = self._spawn(
            "kube-apiserver",
            [
                str(self.apiserver_bin),
                f"--etcd-servers={self.etcd_url}",
                "--etcd-prefix=/private",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={self.port}",
                f"--cert-dir={self.dir / 'certs'}",
                f"--tls-cert-file={pki / 'apiserver.crt'}",
                f"--tls-private-key-file={pki / 'apiserver.key'}",
                f"--client-ca-file={pki / 'ca.crt'}",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-account-key-file={pki / 'sa.pub'}",
                f"--service-account-signing-key-file={pki / 'sa.key'}",
                f"--token-auth-file={pki / 'tokens.csv'}",
                "--authorization-mode=RBAC",
                "--service-cluster-ip-range=10.0.0.0/24",
                "--endpoint-reconciler-type=none",
                "--disable-admission-plugins=ServiceAccount",
                "--allow-privileged=false",
                "--profiling=false",
                f"--watch-cache={'true' if watch_cache else 'false'}",
                "--v=0",
            ],
        )
        self._wait(
            lambda: b'"name":"default"' in self._get(f"{self.server}/api/v1/namespaces/default"),
            "kube-apiserver",
        )

    def kill_apiserver(self) -> None:
        """SIGKILL: no graceful close of the watches, as in a crash or an OOM kill."""
        if self.apiserver is not None:
            self.apiserver.send_signal(signal.SIGKILL)
            self.apiserver.wait(timeout=30)
            self.apiserver = None

    def stop(self) -> None:
        self.kill_apiserver()
        if self.etcd is not None:
            self.etcd.terminate()
            try:
                self.etcd.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.etcd.kill()
                self.etcd.wait()

    def compact(self) -> int:
        """Compact etcd at its current revision (its JSON gRPC gateway); returns it."""
        head = json.loads(self._post(f"{self.etcd_url}/v3/kv/range", {"key": "AA=="}))
        revision = int(head["header"]["revision"])
        self._post(f"{self.etcd_url}/v3/kv/compaction", {"revision": revision, "physical": True})
        return revision

    def _ssl(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.pki / "ca.crt"))

    def _get(self, url: str) -> bytes:
        headers = {"Authorization": f"Bearer {self.token}"}
        request = urllib.request.Request(url, headers=headers)  # noqa: S310 - our https URL
        try:
            with urllib.request.urlopen(request, timeout=2, context=self._ssl()) as resp:  # noqa: S310
                body: bytes = resp.read()
                return body.replace(b" ", b"")
        except OSError:
            return b""

    def _post(self, url: str, body: dict[str, Any]) -> bytes:
        data = json.dumps(body).encode()
        request = urllib.request.Request(url, data=data, method="POST")  # noqa: S310 - etcd URL
        with urllib.request.urlopen(request, timeout=10) as resp:  # noqa: S310
            out: bytes = resp.read()
            return out

    def _wait(self, ready: Any, what: str, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            proc = self.apiserver if what == "kube-apiserver" else self.etcd
            if proc is not None and proc.poll() is not None:
                raise RuntimeError(f"{what} exited: see {self.dir / (what + '.log')}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what} not ready in {timeout}s: see {self.dir}")
            time.sleep(0.2)


@pytest.fixture
def private_kube(kube: servers.KubeEndpoint, tmp_path: Path) -> Iterator[PrivateKube]:
    if os.environ.get("TRIPWIRE_SKIP_PRIVATE_APISERVER"):
        pytest.skip("TRIPWIRE_SKIP_PRIVATE_APISERVER is set")
    private = PrivateKube(kube, tmp_path)
    try:
        private.start_etcd()
        yield private
    finally:
        private.stop()


class Proxy:
    """A TCP proxy that can cut every connection and refuse new ones: a network partition."""

    def __init__(self, port: int) -> None:
        self._target = port
        self._open = True
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self._open:
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self._target)
        except OSError:
            writer.close()
            return
        self._writers |= {writer, up_writer}
        for src, dst in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pipe(src, dst), name="test-proxy-pipe")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pipe(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, ConnectionError):
            while chunk := await src.read(65536):
                dst.write(chunk)
                await dst.drain()
        dst.close()

    def cut(self) -> None:
        self._open = False
        for writer in self._writers:
            writer.transport.abort()
        self._writers.clear()

    def resume(self) -> None:
        self._open = True

    async def close(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks)


def _proxied_kubeconfig(private: PrivateKube, port: int) -> Path:
    doc = json.loads(private.kubeconfig.read_text())
    doc["clusters"][0]["cluster"]["server"] = f"https://127.0.0.1:{port}"
    path = private.dir / "kubeconfig-proxied"
    path.write_text(json.dumps(doc))
    return path


@pytest.mark.slow
@pytest.mark.timeout(180)
async def test_forced_410_relist_loses_and_repeats_nothing(private_kube: PrivateKube) -> None:
    await asyncio.to_thread(private_kube.start_apiserver, watch_cache=False)
    proxy = Proxy(private_kube.port)
    await proxy.start()
    sink = Sink()
    ns = "relist"
    try:
        async with (
            kube_client_of(private_kube.kubeconfig) as admin,
            kube_client_of(_proxied_kubeconfig(private_kube, proxy.port)) as through_proxy,
        ):
            await admin.create(NAMESPACES, {"metadata": {"name": ns}})
            live: dict[str, kube_client.JSON] = {}
            created: set[str] = set()
            deleted: set[str] = set()

            async def create(name: str) -> None:
                live[name] = await admin.create(CONFIGMAPS, configmap(name), namespace=ns)
                created.add(live[name]["metadata"]["uid"])

            async def update(name: str, value: str) -> None:
                body = {"data": {"v": value}}
                live[name] = await admin.patch(CONFIGMAPS, name, body, namespace=ns)

            async def delete(name: str) -> None:
                await admin.delete(CONFIGMAPS, name, namespace=ns)
                deleted.add(live.pop(name)["metadata"]["uid"])

            for name in ("a", "b", "c", "d"):
                await create(name)
            fields = {"namespace": ns, "version": "v1", "resource": "configmaps"}
            async with gateway(through_proxy, fields, sink=sink) as source:
                reflector = source.reflector
                assert reflector is not None
                await sink.wait_for(lambda s: len(s.events) == 4)
                await update("a", "live")
                await sink.wait_for(
                    lambda s: s.last_rv("a") == live["a"]["metadata"]["resourceVersion"]
                )

                # Partition: the gateway cannot see these changes as they happen...
                proxy.cut()
                await update("b", "while-cut")
                await delete("c")
                await delete("d")
                await create("d")  # same name, new uid
                await create("e")
                # ...and etcd forgets them, so resuming the watch must fail with 410.
                private_kube.compact()
                expired_before = reflector.expired
                proxy.resume()
                # Changes racing with the relist.
                await asyncio.gather(create("f"), update("a", "during-relist"), update("e", "x"))
                await sink.wait_for(
                    lambda s: (
                        all(
                            s.last_rv(n) == o["metadata"]["resourceVersion"]
                            for n, o in live.items()
                        )
                        and len([t for t, n in s.seen() if t == "DELETE"]) == 2
                    ),
                )
                await sink.quiet(1.0)
                assert reflector.expired > expired_before, "the watch never got a 410"
                assert reflector.relists >= 2
            check_exactly_once(sink, live=live, deleted_uids=deleted, created_uids=created)
            assert sink.types_of("c") == ["ADD", "DELETE"]
            assert sink.types_of("d") == ["ADD", "DELETE", "ADD"]
    finally:
        await proxy.close()


@pytest.mark.slow
@pytest.mark.timeout(180)
async def test_apiserver_restart_mid_watch_loses_and_repeats_nothing(
    private_kube: PrivateKube,
) -> None:
    await asyncio.to_thread(private_kube.start_apiserver)
    sink = Sink()
    ns = "restart"
    async with kube_client_of(private_kube.kubeconfig) as admin:
        await admin.create(NAMESPACES, {"metadata": {"name": ns}})
        live: dict[str, kube_client.JSON] = {}
        created: set[str] = set()
        deleted: set[str] = set()

        async def create(name: str) -> None:
            live[name] = await admin.create(CONFIGMAPS, configmap(name), namespace=ns)
            created.add(live[name]["metadata"]["uid"])

        async def update(name: str, value: str) -> None:
            body = {"data": {"v": value}}
            live[name] = await admin.patch(CONFIGMAPS, name, body, namespace=ns)

        async def delete(name: str) -> None:
            await admin.delete(CONFIGMAPS, name, namespace=ns)
            deleted.add(live.pop(name)["metadata"]["uid"])

        for name in ("a", "b", "c"):
            await create(name)
        fields = {"namespace": ns, "version": "v1", "resource": "configmaps"}
        async with (
            kube_client_of(private_kube.kubeconfig) as client,
            gateway(client, fields, sink=sink) as source,
        ):
            reflector = source.reflector
            assert reflector is not None
            await sink.wait_for(lambda s: len(s.events) == 3)
            watches_before = reflector.watches
            # Right before the crash: changes the watch may or may not deliver in time.
            await asyncio.gather(update("a", "1"), create("d"), delete("c"))
            await asyncio.to_thread(private_kube.kill_apiserver)
            await asyncio.sleep(0.5)  # the gateway notices and starts retrying
            await asyncio.to_thread(private_kube.start_apiserver)
            # Right after it is back: more changes.
            await asyncio.gather(update("b", "2"), create("e"), delete("a"))
            await sink.wait_for(
                lambda s: (
                    all(s.last_rv(n) == o["metadata"]["resourceVersion"] for n, o in live.items())
                    and len([t for t, n in s.seen() if t == "DELETE"]) == 2
                ),
            )
            await sink.quiet(1.0)
            assert reflector.watches > watches_before, "the watch never reconnected"
        check_exactly_once(sink, live=live, deleted_uids=deleted, created_uids=created)
