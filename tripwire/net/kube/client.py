"""A small Kubernetes API client: raw JSON over one shared aiohttp session, rate limited.

Triggers create objects per event and gateways hold watch streams; neither should pay for the
official client's generated models, thread pool and per-call connection handling. This client
keeps the official `kubernetes` package for what it does well — reading kubeconfig and the
in-cluster service account (`load_config`) — and speaks plain JSON for everything else.

- One `aiohttp.ClientSession` per client, keep-alive, TLS from the kubeconfig.
- A token-bucket rate limiter (client-go's QPS/burst): never more than `burst` requests at once
  after an idle period, `qps` per second sustained.
- Discovery maps `apiVersion` + `kind` to the REST resource once and caches it.
- API errors are `ApiError` with the status and the apiserver's own message; 429 and 5xx are
  `temporary` so callers can retry.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import pathlib
import ssl
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

import aiohttp
import orjson

from tripwire import errors

JSON = dict[str, Any]
# 429 with a short Retry-After: retried in the client, this many times, waiting at most this.
_THROTTLE_RETRIES = 3
_MAX_THROTTLE_WAIT = 10.0
_SA_NAMESPACE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"


class KubeError(errors.TripwireError):
    """Talking to the Kubernetes API failed (configuration, connection, or an API status)."""


class ApiError(KubeError):
    """The apiserver answered with an error status."""

    def __init__(self, *, status: int, reason: str, message: str, method: str, path: str) -> None:
        self.status = status
        self.reason = reason
        self.message = message
        super().__init__(f"{method} {path}: {status} {reason}: {message}")

    @property
    def temporary(self) -> bool:
        return self.status == 429 or self.status >= 500

    @property
    def not_found(self) -> bool:
        return self.status == 404

    @property
    def conflict(self) -> bool:
        return self.status == 409

    @property
    def gone(self) -> bool:
        return self.status == 410


@dataclasses.dataclass(frozen=True)
class Config:
    """Where the apiserver is and how to authenticate, resolved from kubeconfig or in-cluster."""

    host: str
    headers: Mapping[str, str]
    ssl: ssl.SSLContext | bool
    namespace: str = "default"


def load_config(*, kubeconfig: str | None = None, context: str | None = None) -> Config:
    """Kubeconfig (explicit, $KUBECONFIG, ~/.kube/config) or, failing that, in-cluster."""
    from kubernetes import client as k8s_client  # the optional extra, imported on use
    from kubernetes import config as k8s_config

    cfg = k8s_client.Configuration()
    # The kubernetes package reads $KUBECONFIG once, at import; read it now instead.
    kubeconfig = kubeconfig or os.environ.get("KUBECONFIG") or None
    namespace = "default"
    try:
        k8s_config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=kubeconfig, context=context, client_configuration=cfg
        )
        with contextlib.suppress(Exception):
            _, active = k8s_config.list_kube_config_contexts(  # type: ignore[no-untyped-call]
                config_file=kubeconfig
            )
            namespace = active.get("context", {}).get("namespace") or "default"
    except (k8s_config.ConfigException, FileNotFoundError, TypeError) as exc:
        if kubeconfig is not None:
            raise KubeError(f"cannot load kubeconfig {kubeconfig}: {exc}") from None
        try:
            k8s_config.load_incluster_config(  # type: ignore[no-untyped-call]
                client_configuration=cfg
            )
        except k8s_config.ConfigException:
            raise KubeError("no Kubernetes configuration: set KUBECONFIG or run in a pod") from None
        with contextlib.suppress(OSError):
            namespace = pathlib.Path(_SA_NAMESPACE).read_text().strip() or "default"
    headers = {}
    token = cfg.get_api_key_with_prefix("authorization") or cfg.get_api_key_with_prefix(
        "BearerToken"
    )
    if token:
        headers["Authorization"] = token
    context_ssl: ssl.SSLContext | bool
    if cfg.host.startswith("https"):
        if cfg.verify_ssl:
            context_ssl = ssl.create_default_context(cafile=cfg.ssl_ca_cert)
        else:
            context_ssl = ssl.create_default_context()
            context_ssl.check_hostname = False
            context_ssl.verify_mode = ssl.CERT_NONE
        if cfg.cert_file:
            context_ssl.load_cert_chain(cfg.cert_file, cfg.key_file)
    else:
        context_ssl = False
    return Config(host=cfg.host.rstrip("/"), headers=headers, ssl=context_ssl, namespace=namespace)


class RateLimiter:
    """Token bucket: `burst` tokens at most, refilled at `qps` per second.

    Tokens never exceed `burst`, so an idle period cannot bank more than one burst; waiters are
    served in arrival order, so a steady stream cannot starve an early caller.
    """

    def __init__(
        self,
        *,
        qps: float,
        burst: int,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if qps <= 0 or burst < 1:
            raise ValueError("qps must be > 0 and burst >= 1")
        self.qps = qps
        self.burst = burst
        self._clock = clock
        self._sleep = sleep
        self._tokens = float(burst)
        self._stamp = clock()
        self._lock = asyncio.Lock()

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.qps)
        self._stamp = now

    async def acquire(self) -> None:
        async with self._lock:  # FIFO: asyncio.Lock wakes waiters in order
            self._refill()
            if self._tokens < 1:
                await self._sleep((1 - self._tokens) / self.qps)
                self._refill()
            self._tokens -= 1


@dataclasses.dataclass(frozen=True, slots=True)
class Resource:
    """A REST resource: where objects of one kind live."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(self, *, namespace: str | None = None, name: str | None = None) -> str:
        prefix = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace:
            prefix += f"/namespaces/{namespace}"
        prefix += f"/{self.plural}"
        return f"{prefix}/{name}" if name else prefix


def split_api_version(api_version: str) -> tuple[str, str]:
    group, _, version = api_version.rpartition("/")
    return group, version


class Client:
    """The API client; `start` opens its session on an exit stack."""

    def __init__(self, config: Config, *, qps: float = 50.0, burst: int = 100) -> None:
        self.config = config
        self.limiter = RateLimiter(qps=qps, burst=burst)
        self._session: aiohttp.ClientSession | None = None
        self._discovery: dict[tuple[str, str], Resource] = {}
        self._discovered: dict[str, list[Resource]] = {}
        self._discovery_lock = asyncio.Lock()

    async def start(self, stack: contextlib.AsyncExitStack) -> None:
        self._session = aiohttp.ClientSession(
            base_url=self.config.host,
            headers=dict(self.config.headers),
            connector=aiohttp.TCPConnector(ssl=self.config.ssl, limit=128),
            json_serialize=lambda obj: orjson.dumps(obj).decode(),
        )
        stack.push_async_callback(self._session.close)

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise KubeError("the Kubernetes client is not started")
        return self._session

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: Mapping[str, str] | None = None,
        content_type: str = "application/json",
        timeout: float = 30.0,
    ) -> Any:
        data = orjson.dumps(body) if body is not None else None
        headers = {"Content-Type": content_type, "Accept": "application/json"}
        for attempt in range(_THROTTLE_RETRIES + 1):
            await self.limiter.acquire()
            try:
                async with self.session.request(
                    method,
                    path,
                    data=data,
                    params=params,
                    headers=headers,
                    timeout=aiohttp.ClientTimeout(total=timeout),
                ) as resp:
                    raw = await resp.read()
                    if resp.status < 400:
                        return orjson.loads(raw) if raw else None
                    wait = _retry_after(resp) if resp.status == 429 else None
                    if wait is None or attempt == _THROTTLE_RETRIES:
                        raise _api_error(resp.status, raw, method=method, path=path)
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise KubeError(f"{method} {path}: {exc or type(exc).__name__}") from None
            # The apiserver asked us to come back (priority and fairness, a CRD's storage
            # still initializing): client-go waits Retry-After and tries again; so do we.
            await asyncio.sleep(wait)
        raise AssertionError("unreachable")

    # -- discovery ------------------------------------------------------------------------
    async def resource(self, api_version: str, kind: str) -> Resource:
        """The REST resource for `apiVersion` + `kind` (discovered once, then cached)."""
        found = self._discovery.get((api_version, kind))
        if found is not None:
            return found
        async with self._discovery_lock:
            if api_version not in self._discovered:
                await self._discover(api_version)
        found = self._discovery.get((api_version, kind))
        if found is None:
            # A CRD may have been installed since: look once more before giving up.
            async with self._discovery_lock:
                await self._discover(api_version)
            found = self._discovery.get((api_version, kind))
        if found is None:
            raise KubeError(f"the apiserver has no kind {kind!r} in {api_version}")
        return found

    async def resource_by_plural(self, *, group: str, version: str, plural: str) -> Resource:
        api_version = f"{group}/{version}" if group else version
        async with self._discovery_lock:
            if api_version not in self._discovered:
                await self._discover(api_version)
        for res in self._discovered.get(api_version, []):
            if res.plural == plural:
                return res
        raise KubeError(f"the apiserver has no resource {plural!r} in {api_version}")

    async def _discover(self, api_version: str) -> None:
        group, version = split_api_version(api_version)
        path = f"/apis/{group}/{version}" if group else f"/api/{version}"
        try:
            doc = await self.request("GET", path)
        except ApiError as exc:
            if exc.not_found:
                raise KubeError(f"the apiserver does not serve {api_version}") from None
            raise
        found = []
        for item in doc.get("resources", []):
            if "/" in item["name"]:
                continue  # subresources such as status
            res = Resource(
                group=group,
                version=version,
                plural=item["name"],
                kind=item["kind"],
                namespaced=bool(item.get("namespaced")),
            )
            found.append(res)
            self._discovery[(api_version, res.kind)] = res
        self._discovered[api_version] = found

    # -- objects --------------------------------------------------------------------------
    async def get(self, res: Resource, name: str, *, namespace: str | None = None) -> JSON:
        out: JSON = await self.request("GET", res.path(namespace=namespace, name=name))
        return out

    async def list(
        self,
        res: Resource,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> JSON:
        params = _selectors(label_selector, field_selector)
        out: JSON = await self.request("GET", res.path(namespace=namespace), params=params)
        return out

    async def create(self, res: Resource, body: JSON, *, namespace: str | None = None) -> JSON:
        out: JSON = await self.request("POST", res.path(namespace=namespace), body=body)
        return out

    async def replace(
        self, res: Resource, name: str, body: JSON, *, namespace: str | None = None
    ) -> JSON:
        path = res.path(namespace=namespace, name=name)
        out: JSON = await self.request("PUT", path, body=body)
        return out

    async def patch(
        self,
        res: Resource,
        name: str,
        body: Any,
        *,
        namespace: str | None = None,
        patch_type: str = "merge",
        subresource: str | None = None,
    ) -> JSON:
        content_type = {
            "merge": "application/merge-patch+json",
            "json": "application/json-patch+json",
            "strategic": "application/strategic-merge-patch+json",
        }[patch_type]
        path = res.path(namespace=namespace, name=name)
        if subresource:
            path += f"/{subresource}"
        out: JSON = await self.request("PATCH", path, body=body, content_type=content_type)
        return out

    async def delete(self, res: Resource, name: str, *, namespace: str | None = None) -> JSON:
        body = {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"}
        out: JSON = await self.request(
            "DELETE", res.path(namespace=namespace, name=name), body=body
        )
        return out

    # -- watch ----------------------------------------------------------------------------
    async def watch_stream(
        self,
        res: Resource,
        *,
        namespace: str | None = None,
        resource_version: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        timeout_seconds: int = 300,
    ) -> AsyncGenerator[JSON, None]:
        """One watch request: yields `{type, object}` until the server ends it.

        Raises `ApiError` (410 Gone when `resource_version` is too old) or `KubeError`.
        """
        params = _selectors(label_selector, field_selector)
        params["watch"] = "true"
        params["allowWatchBookmarks"] = "true"
        params["timeoutSeconds"] = str(timeout_seconds)
        if resource_version:
            params["resourceVersion"] = resource_version
        path = res.path(namespace=namespace)
        await self.limiter.acquire()
        try:
            async with self.session.get(
                path,
                params=params,
                timeout=aiohttp.ClientTimeout(total=None, sock_read=timeout_seconds + 30),
            ) as resp:
                if resp.status >= 400:
                    raise _api_error(resp.status, await resp.read(), method="WATCH", path=path)
                async for line in _lines(resp.content):
                    event = orjson.loads(line)
                    if event.get("type") == "ERROR":
                        status = event.get("object") or {}
                        raise ApiError(
                            status=int(status.get("code") or 500),
                            reason=str(status.get("reason", "")),
                            message=str(status.get("message", "")),
                            method="WATCH",
                            path=path,
                        )
                    yield event
        except orjson.JSONDecodeError as exc:
            raise KubeError(f"WATCH {path}: malformed watch event: {exc}") from None
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise KubeError(f"WATCH {path}: {exc or type(exc).__name__}") from None


async def _lines(stream: aiohttp.StreamReader) -> AsyncIterator[bytes]:
    """The non-empty lines of a watch stream, however long.

    aiohttp's own line iterator refuses lines above 128 KiB, and one watch event is one line
    holding a whole object (a ConfigMap may be 1 MiB). A partial last line means the
    connection was cut mid-event: it is dropped, the watch resumes before that event.
    """
    buffer = bytearray()
    async for chunk in stream.iter_any():
        buffer += chunk
        start = 0
        while (end := buffer.find(b"\n", start)) >= 0:
            line = bytes(buffer[start:end])
            if line.strip():
                yield line
            start = end + 1
        del buffer[:start]


def _retry_after(resp: aiohttp.ClientResponse) -> float | None:
    """Seconds from a 429's Retry-After when short enough to wait for in-line, else None."""
    value = resp.headers.get("Retry-After", "")
    if not value.isdigit():
        return None
    seconds = float(value)
    return seconds if seconds <= _MAX_THROTTLE_WAIT else None


def _selectors(label_selector: str | None, field_selector: str | None) -> dict[str, str]:
    params = {}
    if label_selector:
        params["labelSelector"] = label_selector
    if field_selector:
        params["fieldSelector"] = field_selector
    return params


def _api_error(status: int, raw: bytes, *, method: str, path: str) -> ApiError:
    reason, message = "", raw[:500].decode(errors="replace")
    with contextlib.suppress(ValueError):
        doc = orjson.loads(raw)
        if isinstance(doc, dict):
            reason = str(doc.get("reason", ""))
            message = str(doc.get("message", message))
    return ApiError(status=status, reason=reason, message=message, method=method, path=path)
