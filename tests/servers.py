"""Pytest plugin: endpoints of the real servers started by `scripts/services up`.

Integration tests talk to real servers on loopback (DESIGN.md, "Real services in tests"). The
servers are started outside pytest, once, by `scripts/services up [NAMES...]`, which writes
their endpoints and credentials to one env file (/tmp/tripwire-services/env, overridable with
TRIPWIRE_SERVICES_ENV). This module only reads that file, so a test session starts in
milliseconds and a debugger can be attached to a test without restarting any server.

Each session-scoped fixture yields a small frozen value for one server. When the server is not
listed (or not listening), the fixture skips the test with the command that starts it; with
CI set or TRIPWIRE_REQUIRE_SERVICES=1 it fails instead, so CI cannot go green by skipping.
Tests isolate themselves with `unique_name` (their own topic, stream, queue, bucket, ...).
"""

from __future__ import annotations

import dataclasses
import json
import os
import secrets
import socket
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import NoReturn
from urllib.parse import urlsplit

import pytest

DEFAULT_ENV_FILE = Path("/tmp/tripwire-services/env")


@dataclasses.dataclass(frozen=True)
class MqttEndpoint:
    host: str
    port: int


@dataclasses.dataclass(frozen=True)
class S3Endpoint:
    endpoint: str  # http://127.0.0.1:PORT
    access_key: str
    secret_key: str
    region: str


@dataclasses.dataclass(frozen=True)
class KubeEndpoint:
    kubeconfig: Path  # admin (system:masters) kubeconfig
    kubectl: Path  # wrapper: uses `kubeconfig` unless KUBECONFIG is set, caches in the run dir
    server: str  # https://127.0.0.1:PORT
    token: str  # bearer token of the admin user
    ca_file: Path  # CA of the apiserver's serving certificate

    def kubectl_cmd(self, *args: str) -> list[str]:
        """Argument vector for running kubectl as the admin against this apiserver."""
        return [str(self.kubectl), "--kubeconfig", str(self.kubeconfig), *args]


def env_file() -> Path:
    return Path(os.environ.get("TRIPWIRE_SERVICES_ENV", str(DEFAULT_ENV_FILE)))


def read_env(path: Path) -> dict[str, str]:
    """KEY=VALUE lines; blank lines and # comments ignored."""
    values: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        values[key.strip()] = value.strip()
    return values


def services_required() -> bool:
    return bool(os.environ.get("CI")) or os.environ.get("TRIPWIRE_REQUIRE_SERVICES") == "1"


def unavailable(message: str) -> NoReturn:
    """Skip locally, fail in CI (or with TRIPWIRE_REQUIRE_SERVICES=1)."""
    if services_required():
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def _listening(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2.0):
            return True
    except OSError:
        return False


def service_env(server: str, *keys: str, env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The env-file values `keys` of `server`, or skip/fail with the command that starts it."""
    hint = f"`scripts/services up {server}`"
    if env is None:
        path = env_file()
        if not path.is_file():
            unavailable(f"{server}: no services env file at {path}; start it with {hint}")
        env = read_env(path)
    missing = [k for k in keys if not env.get(k)]
    if missing:
        unavailable(f"{server}: {', '.join(missing)} not in {env_file()}; start it with {hint}")
    return {k: env[k] for k in keys}


def _require_listening(server: str, host: str, port: int) -> None:
    if not _listening(host, port):
        unavailable(
            f"{server}: nothing listening on {host}:{port} (stale env file?); "
            f"restart it with `scripts/services up {server}`"
        )


def _host_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url if "://" in url else f"tcp://{url}")
    if parts.hostname is None or parts.port is None:
        raise ValueError(f"no host:port in {url!r}")
    return parts.hostname, parts.port


def _url_fixture(server: str, key: str) -> str:
    url = service_env(server, key)[key]
    _require_listening(server, *_host_port(url))
    return url


@pytest.fixture(scope="session")
def redis_url() -> str:
    """redis://127.0.0.1:PORT/0"""
    return _url_fixture("redis", "TRIPWIRE_REDIS_URL")


@pytest.fixture(scope="session")
def nats_url() -> str:
    """nats://127.0.0.1:PORT, JetStream enabled."""
    return _url_fixture("nats", "TRIPWIRE_NATS_URL")


@pytest.fixture(scope="session")
def kafka_bootstrap() -> str:
    """127.0.0.1:PORT of a single-node KRaft broker (auto topic creation on)."""
    return _url_fixture("kafka", "TRIPWIRE_KAFKA_BOOTSTRAP")


@pytest.fixture(scope="session")
def amqp_url() -> str:
    """amqp://guest:guest@127.0.0.1:PORT/"""
    return _url_fixture("rabbitmq", "TRIPWIRE_AMQP_URL")


@pytest.fixture(scope="session")
def mqtt() -> MqttEndpoint:
    values = service_env("mosquitto", "TRIPWIRE_MQTT_HOST", "TRIPWIRE_MQTT_PORT")
    endpoint = MqttEndpoint(values["TRIPWIRE_MQTT_HOST"], int(values["TRIPWIRE_MQTT_PORT"]))
    _require_listening("mosquitto", endpoint.host, endpoint.port)
    return endpoint


@pytest.fixture(scope="session")
def s3() -> S3Endpoint:
    keys = ("TRIPWIRE_S3_ENDPOINT", "TRIPWIRE_S3_ACCESS_KEY", "TRIPWIRE_S3_SECRET_KEY")
    values = service_env("minio", *keys)
    endpoint = S3Endpoint(
        endpoint=values["TRIPWIRE_S3_ENDPOINT"],
        access_key=values["TRIPWIRE_S3_ACCESS_KEY"],
        secret_key=values["TRIPWIRE_S3_SECRET_KEY"],
        region=read_env(env_file()).get("TRIPWIRE_S3_REGION", "us-east-1"),
    )
    _require_listening("minio", *_host_port(endpoint.endpoint))
    return endpoint


@pytest.fixture(scope="session")
def sqs_url() -> str:
    """http://127.0.0.1:PORT of ElasticMQ (SQS query and JSON protocols; any credentials)."""
    return _url_fixture("elasticmq", "TRIPWIRE_SQS_URL")


@pytest.fixture(scope="session")
def kube() -> KubeEndpoint:
    keys = ("KUBECONFIG", "TRIPWIRE_KUBECTL", "TRIPWIRE_KUBE_SERVER", "TRIPWIRE_KUBE_TOKEN")
    values = service_env("k8s", *keys, "TRIPWIRE_KUBE_CA")
    endpoint = KubeEndpoint(
        kubeconfig=Path(values["KUBECONFIG"]),
        kubectl=Path(values["TRIPWIRE_KUBECTL"]),
        server=values["TRIPWIRE_KUBE_SERVER"],
        token=values["TRIPWIRE_KUBE_TOKEN"],
        ca_file=Path(values["TRIPWIRE_KUBE_CA"]),
    )
    _require_listening("k8s", *_host_port(endpoint.server))
    return endpoint


@pytest.fixture
def unique_name() -> str:
    """A fresh DNS-1123-safe name ("t-" + 10 hex) for this test's namespace/bucket/topic/..."""
    return "t-" + secrets.token_hex(5)


@pytest.fixture
def kube_namespace(kube: KubeEndpoint, unique_name: str) -> Iterator[str]:
    """A namespace of this test's own, removed afterwards.

    There is no kube-controller-manager, so a deleted namespace would stay Terminating forever:
    teardown deletes it and then clears its `kubernetes` finalizer through the `finalize`
    subresource (objects still inside are orphaned in etcd, which is scratch anyway).
    """
    subprocess.run(
        kube.kubectl_cmd("create", "namespace", unique_name),
        check=True,
        timeout=30,
        capture_output=True,
    )
    yield unique_name
    subprocess.run(
        kube.kubectl_cmd("delete", "namespace", unique_name, "--wait=false"),
        check=True,
        timeout=30,
        capture_output=True,
    )
    finalize = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": unique_name},
        "spec": {"finalizers": []},
    }
    subprocess.run(
        kube.kubectl_cmd("replace", "--raw", f"/api/v1/namespaces/{unique_name}/finalize", "-f-"),
        input=json.dumps(finalize).encode(),
        check=True,
        timeout=30,
        capture_output=True,
    )
