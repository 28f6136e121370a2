"""Kubernetes creates per second: Tripwire's client against the official `kubernetes` client.

Kubernetes triggers create one object per firing, so the client's cost per create bounds how
fast a sensor can launch workflows. This measures, against the real apiserver of
`scripts/services up k8s` (KUBECONFIG, or the harness's env file), in the same run and on the
same custom resource:

- ours: `tripwire.net.kube.client.Client.create` on one aiohttp session, N creates with C in
  flight (asyncio workers), its rate limiter set out of the way (qps=burst=10000);
- official: `kubernetes.client.CustomObjectsApi.create_namespaced_custom_object`, the sync
  client in a `ThreadPoolExecutor` with C workers and a urllib3 pool of C connections
  (`kubernetes_asyncio` is not a dependency of the project);

then the ratio. Each side gets an unmeasured warm-up (connections, TLS, discovery), and the
measured rounds alternate ours/official so drift in the apiserver (etcd growth, GC) hits both.
A last line shows the rate limiter honoured: qps=50 burst=10 against the same apiserver.

    .venv/bin/python bench/k8s_creates.py --n 2000 --concurrency 32

Setup/cleanup: installs the CRD `benchobjects.bench.tripwire.dev` (left installed: idempotent),
creates a fresh namespace, and deletes its objects and the namespace at the end (clearing the
namespace finalizer: the harness runs no kube-controller-manager).
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import os
import secrets
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from tripwire.net.kube import client as kube_client

GROUP = "bench.tripwire.dev"
VERSION = "v1"
PLURAL = "benchobjects"
OBJECTS = kube_client.Resource(GROUP, VERSION, PLURAL, "BenchObject", namespaced=True)
CRDS = kube_client.Resource(
    "apiextensions.k8s.io", "v1", "customresourcedefinitions", "CustomResourceDefinition", False
)
NAMESPACES = kube_client.Resource("", "v1", "namespaces", "Namespace", namespaced=False)
SERVICES_ENV = Path(
    os.environ.get("TRIPWIRE_SERVICES_ENV", "/tmp/tripwire-services/env")  # noqa: S108 - harness
)


def kubeconfig_path(explicit: str | None) -> str:
    if explicit:
        return explicit
    if os.environ.get("KUBECONFIG"):
        return os.environ["KUBECONFIG"]
    if SERVICES_ENV.is_file():
        for line in SERVICES_ENV.read_text().splitlines():
            if line.startswith("KUBECONFIG="):
                return line.partition("=")[2].strip()
    sys.exit("no kubeconfig: set KUBECONFIG or run `scripts/services up k8s`")


def body(prefix: str, i: int) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "BenchObject",
        "metadata": {"name": f"{prefix}-{i}", "labels": {"bench": prefix}},
        "spec": {"seq": i, "pad": "x" * 64},
    }


async def setup(client: kube_client.Client, namespace: str) -> None:
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{PLURAL}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {"plural": PLURAL, "singular": "benchobject", "kind": "BenchObject"},
            "versions": [
                {
                    "name": VERSION,
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
    with contextlib.suppress(kube_client.ApiError):
        await client.create(CRDS, crd)
    await client.create(NAMESPACES, {"metadata": {"name": namespace}})
    async with asyncio.timeout(60):
        while True:  # established and its storage ready (429 while initializing)
            try:
                await client.list(OBJECTS, namespace=namespace)
                return
            except kube_client.KubeError:
                await asyncio.sleep(0.2)


async def cleanup(client: kube_client.Client, namespace: str) -> None:
    with contextlib.suppress(kube_client.KubeError):
        await client.request(
            "DELETE", OBJECTS.path(namespace=namespace), timeout=300
        )  # deletecollection
    with contextlib.suppress(kube_client.KubeError):
        await client.delete(NAMESPACES, namespace)
        finalize = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}
        finalize["spec"] = {"finalizers": []}
        await client.request("PUT", f"/api/v1/namespaces/{namespace}/finalize", body=finalize)


async def ours(
    client: kube_client.Client, *, namespace: str, prefix: str, n: int, concurrency: int
) -> float:
    """Seconds for `n` creates with `concurrency` in flight."""
    counter = iter(range(n))

    async def worker() -> None:
        for i in counter:
            await client.create(OBJECTS, body(prefix, i), namespace=namespace)

    start = time.perf_counter()
    async with asyncio.TaskGroup() as group:
        for w in range(concurrency):
            group.create_task(worker(), name=f"bench-ours-{w}")
    return time.perf_counter() - start


class Official:
    """The official client, sync, in a thread pool: the usual way to get concurrency with it."""

    def __init__(self, kubeconfig: str, concurrency: int) -> None:
        from kubernetes import client as k8s_client
        from kubernetes import config as k8s_config

        cfg = k8s_client.Configuration()
        k8s_config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=kubeconfig, client_configuration=cfg
        )
        cfg.connection_pool_maxsize = concurrency  # urllib3's default of 4 would serialize
        self.api_client = k8s_client.ApiClient(cfg)
        self.api = k8s_client.CustomObjectsApi(self.api_client)
        self.pool = concurrent.futures.ThreadPoolExecutor(concurrency, thread_name_prefix="k8s")
        self.concurrency = concurrency

    def run(self, *, namespace: str, prefix: str, n: int) -> float:
        counter = iter(range(n))

        def worker() -> None:
            for i in counter:  # next() on a shared iterator is atomic under the GIL
                self.api.create_namespaced_custom_object(
                    GROUP, VERSION, namespace, PLURAL, body(prefix, i)
                )

        start = time.perf_counter()
        futures = [self.pool.submit(worker) for _ in range(self.concurrency)]
        for future in futures:
            future.result()
        return time.perf_counter() - start

    def close(self) -> None:
        self.pool.shutdown()
        self.api_client.close()  # type: ignore[no-untyped-call]


async def limited(config: kube_client.Config, *, namespace: str, n: int, concurrency: int) -> str:
    async with contextlib.AsyncExitStack() as stack:
        client = kube_client.Client(config, qps=50, burst=10)
        await client.start(stack)
        seconds = await ours(client, namespace=namespace, prefix="limited", n=n, concurrency=32)
    sustained = (n - 10) / seconds
    return (
        f"rate limiter qps=50 burst=10: {n} creates, {concurrency} in flight, in {seconds:.2f}s"
        f" = {n / seconds:.1f}/s overall, {sustained:.1f}/s after the burst (expected ~50)"
    )


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=2000, help="creates per measured round")
    parser.add_argument("--concurrency", type=int, default=32, help="creates in flight")
    parser.add_argument("--rounds", type=int, default=2, help="measured rounds per client")
    parser.add_argument("--warmup", type=int, default=200, help="unmeasured creates per client")
    parser.add_argument("--limited-n", type=int, default=200, help="creates at qps=50 burst=10")
    parser.add_argument("--kubeconfig", help="default: $KUBECONFIG, else the services env file")
    args = parser.parse_args()

    kubeconfig = kubeconfig_path(args.kubeconfig)
    config = kube_client.load_config(kubeconfig=kubeconfig)
    namespace = "bench-" + secrets.token_hex(4)
    c = args.concurrency
    official = Official(kubeconfig, c)
    async with contextlib.AsyncExitStack() as stack:
        client = kube_client.Client(config, qps=10000, burst=10000)
        await client.start(stack)
        await setup(client, namespace)
        try:
            print(
                f"apiserver {config.host}, namespace {namespace}, {args.n} creates x {c} in flight"
            )
            await ours(
                client, namespace=namespace, prefix="warm-ours", n=args.warmup, concurrency=c
            )
            await asyncio.to_thread(
                official.run, namespace=namespace, prefix="warm-official", n=args.warmup
            )
            rates: dict[str, list[float]] = {"ours": [], "official": []}
            cpu: dict[str, list[float]] = {"ours": [], "official": []}

            async def run_ours(r: int) -> float:
                return await ours(
                    client, namespace=namespace, prefix=f"ours{r}", n=args.n, concurrency=c
                )

            async def run_official(r: int) -> float:
                return await asyncio.to_thread(
                    official.run, namespace=namespace, prefix=f"official{r}", n=args.n
                )

            for r in range(args.rounds):
                for name, run in (("ours", run_ours), ("official", run_official)):
                    cpu_start = time.process_time()  # every thread of this process
                    seconds = await run(r)
                    cpu_ms = (time.process_time() - cpu_start) * 1000 / args.n
                    rates[name].append(args.n / seconds)
                    cpu[name].append(cpu_ms)
                    print(
                        f"  round {r + 1} {name + ':':9} {args.n / seconds:8.1f} creates/s"
                        f" ({seconds:.2f}s), client CPU {cpu_ms:.2f} ms/create"
                    )
            mine, theirs = statistics.mean(rates["ours"]), statistics.mean(rates["official"])
            mine_cpu, theirs_cpu = statistics.mean(cpu["ours"]), statistics.mean(cpu["official"])
            print(
                f"ours     (tripwire.net.kube, asyncio, {c} in flight): {mine:8.1f} creates/s,"
                f" {mine_cpu:.2f} ms CPU/create"
            )
            print(
                f"official (kubernetes {_version()}, sync, {c} threads): "
                f"    {theirs:8.1f} creates/s,"
                f" {theirs_cpu:.2f} ms CPU/create"
            )
            print(
                f"ratio ours/official: {mine / theirs:.2f}x creates/s,"
                f" {theirs_cpu / mine_cpu:.2f}x less client CPU per create"
            )
            if args.limited_n:
                print(await limited(config, namespace=namespace, n=args.limited_n, concurrency=c))
        finally:
            official.close()
            await cleanup(client, namespace)
            print(f"cleaned up namespace {namespace}")
    return 0


def _version() -> str:
    import kubernetes

    return str(getattr(kubernetes, "__version__", "?"))


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
