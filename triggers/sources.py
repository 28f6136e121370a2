"""Where a trigger's template comes from, and how it is fetched and parsed.

Argo Events lets a trigger read its template (a Workflow, a TFJob, any Kubernetes object) from
an `ArtifactLocation`: written inline, a file on the sensor's disk, a URL, a ConfigMap or an S3
object. This module is that resolver, kept apart from any one trigger kind so that the
Kubernetes triggers can reuse it: `resolve(location, session=..., limits=...)` returns the one
parsed YAML/JSON document.

Kinds of location are dispatched through `_RESOLVERS` (field name -> coroutine), not an
if-chain. `configmap` reads one key of a ConfigMap through the process's Kubernetes client
(`resolve(..., kube=client)`; without a client it fails with a clear "needs ..." error). It is
read on every firing, not cached: one GET is cheap next to the create that follows, and an
edited template applies at once. `s3` (Argo's `S3Artifact`: `bucket {name, key}`, `endpoint`,
`region`, `insecure`, `accessKey`/`secretKey`) GETs the object path-style, signed with
botocore's SigV4 (the `s3` extra), through the same size and time limits as `url`; it is read on
every firing too. Its credentials are env or file references, or a Kubernetes Secret read with
the process's client (then `kube` is needed).

Failures follow the trigger error tree: what retrying can fix (5xx, timeouts, refused
connections) is a `TemporaryTriggerError`; everything else (4xx, bad YAML, too large, missing
file, unverifiable certificate) is a `PermanentTriggerError`. Every message starts with
`template <where>:` so the user can tell which template of which trigger broke.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import dataclasses
import functools
import pathlib
import time
import urllib.parse
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import aiohttp
import pydantic
import yaml
import yarl

from tripwire import errors, manifests, secrets
from tripwire.net.kube import client as kube_client

DEFAULT_MAX_BYTES = 1 << 20
DEFAULT_TIMEOUT = 10.0
_CHUNK = 64 * 1024
_EXCERPT = 200


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class Limits:
    """Bounds on fetching one template; a template past them is an error, not a truncation."""

    max_bytes: int = DEFAULT_MAX_BYTES
    timeout: float = DEFAULT_TIMEOUT


class FileArtifact(manifests.Model):
    path: str = pydantic.Field(min_length=1)


class URLArtifact(manifests.Model):
    path: str = pydantic.Field(min_length=1)
    verify_cert: bool = True

    @pydantic.field_validator("path")
    @classmethod
    def _http_only(cls, path: str) -> str:
        # Only http(s): `file://` and friends would bypass the `file` kind and its rules.
        scheme = path.partition("://")[0].lower() if "://" in path else ""
        if scheme not in ("http", "https"):
            raise ValueError(f"url must start with http:// or https://, got {path!r}")
        return path


class ConfigMapKeySelector(manifests.Model):
    """A key of a ConfigMap (core `ConfigMapKeySelector`). `namespace` is our addition; it
    defaults to the sensor's namespace, else the client's (the kubeconfig context's).
    `optional` is accepted for Argo compatibility, but a template cannot be optional: a
    missing one is an error."""

    name: str = pydantic.Field(min_length=1)
    key: str = pydantic.Field(min_length=1)
    namespace: str | None = None
    optional: bool | None = None


class S3ObjectRef(manifests.Model):
    """Argo Events' `S3Bucket` as a template location: the bucket and the object's key."""

    name: str = pydantic.Field(min_length=3, max_length=63)
    key: str = pydantic.Field(min_length=1, max_length=1024)


class S3Artifact(manifests.Model):
    """An object in an S3-compatible store (Argo Events' `S3Artifact`, fields for templates)."""

    bucket: S3ObjectRef
    endpoint: str | None = pydantic.Field(
        default=None,
        description="host:port (https, or http with insecure), or a URL whose scheme wins."
        " Default: AWS, s3.<region>.amazonaws.com.",
    )
    region: str = pydantic.Field(default="us-east-1", min_length=1)
    insecure: bool = False
    access_key: secrets.SecretRef | None = None
    secret_key: secrets.SecretRef | None = None

    @pydantic.model_validator(mode="after")
    def _both_keys(self) -> S3Artifact:
        if (self.access_key is None) != (self.secret_key is None):
            raise ValueError("set both accessKey and secretKey, or neither")
        return self

    def url(self) -> str:
        """The object's path-style URL, encoded as it is signed and sent."""
        if self.endpoint is None:
            base = f"https://s3.{self.region}.amazonaws.com"
        elif "://" in self.endpoint:
            base = self.endpoint.rstrip("/")
        else:
            base = f"{'http' if self.insecure else 'https'}://{self.endpoint.rstrip('/')}"
        bucket = urllib.parse.quote(self.bucket.name, safe="")
        return f"{base}/{bucket}/{urllib.parse.quote(self.bucket.key, safe='/')}"


class ArtifactLocation(manifests.Model):
    """Exactly one of the locations (Argo Events `ArtifactLocation`).

    `resource` is an object written in the manifest, or YAML/JSON text; `inline` is Argo's
    name for the text form and is accepted so ported manifests keep working.
    """

    resource: dict[str, Any] | str | None = None
    inline: str | None = None
    file: FileArtifact | None = None
    url: URLArtifact | None = None
    configmap: ConfigMapKeySelector | None = None
    s3: S3Artifact | None = None

    @pydantic.model_validator(mode="after")
    def _exactly_one(self) -> ArtifactLocation:
        chosen = [name for name in _RESOLVERS if getattr(self, name) is not None]
        if len(chosen) != 1:
            raise ValueError(f"set exactly one of {', '.join(_RESOLVERS)}")
        return self

    @property
    def kind(self) -> str:
        return next(name for name in _RESOLVERS if getattr(self, name) is not None)

    def describe(self) -> str:
        """How messages name this location: the URL, the file path, `configmap ns/key`, ..."""
        if self.url is not None:
            return self.url.path
        if self.file is not None:
            return f"file {self.file.path}"
        if self.configmap is not None:
            cm = self.configmap
            where = f"{cm.namespace}/{cm.name}" if cm.namespace else cm.name
            return f"configmap {where} key {cm.key}"
        if self.s3 is not None:
            return f"s3 {self.s3.bucket.name}/{self.s3.bucket.key}"
        return "inline resource"


class UrlCache:
    """A small TTL cache of parsed URL templates, shared by the triggers of one process.

    Busy sensors fire many times a second; re-fetching the same template each time would make
    the template server a bottleneck. Entries are deep-copied on the way out so callers may
    mutate what they get. Failures are not cached: the next firing retries the fetch.
    """

    def __init__(
        self,
        *,
        ttl: float = 60.0,
        max_entries: int = 256,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ttl = ttl
        self._max = max_entries
        self._clock = clock
        self._entries: dict[tuple[str, bool], tuple[float, Any]] = {}

    def get(self, key: tuple[str, bool]) -> Any:
        entry = self._entries.get(key)
        if entry is None or entry[0] <= self._clock():
            self._entries.pop(key, None)
            return None
        return copy.deepcopy(entry[1])

    def put(self, key: tuple[str, bool], value: Any) -> None:
        if len(self._entries) >= self._max:
            # Dicts keep insertion order: dropping the first entry evicts the oldest fetch.
            self._entries.pop(next(iter(self._entries)))
        self._entries[key] = (self._clock() + self._ttl, copy.deepcopy(value))


class _Resolver(Protocol):
    async def __call__(
        self,
        location: ArtifactLocation,
        *,
        session: aiohttp.ClientSession,
        limits: Limits,
        cache: UrlCache | None,
        kube: kube_client.Client | None,
        namespace: str | None,
    ) -> Any: ...


async def resolve(
    location: ArtifactLocation,
    *,
    session: aiohttp.ClientSession,
    limits: Limits | None = None,
    cache: UrlCache | None = None,
    kube: kube_client.Client | None = None,
    namespace: str | None = None,
) -> Any:
    """The one document at `location`, parsed; raises PermanentTriggerError or
    TemporaryTriggerError with a message naming the location. `kube` (a started client) is
    needed only by `configmap` locations; `namespace` is where a ConfigMap without one is
    looked up (the sensor's namespace; default: the client's)."""
    resolver = _RESOLVERS[location.kind]
    return await resolver(
        location,
        session=session,
        limits=limits or Limits(),
        cache=cache,
        kube=kube,
        namespace=namespace,
    )


# --------------------------------------------------------------------------------------------
# Parsing.


def _without_timestamps(base: type[yaml.SafeLoader]) -> type[yaml.SafeLoader]:
    """A loader that keeps `2024-01-01` a string, as Kubernetes' YAML-to-JSON reading does;
    datetime objects would not survive the JSON round trip to the API server."""
    resolvers = {
        first: [r for r in items if r[0] != "tag:yaml.org,2002:timestamp"]
        for first, items in base.yaml_implicit_resolvers.items()
    }
    return type("_TemplateLoader", (base,), {"yaml_implicit_resolvers": resolvers})


# The C loader when libyaml is present (templates are parsed per fetch); same semantics.
_LOADER = _without_timestamps(getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def parse(text: str, *, where: str) -> Any:
    """Exactly one YAML (or JSON) document of `text`; empty documents are not counted."""
    try:
        docs = [doc for doc in yaml.load_all(text, Loader=_LOADER) if doc is not None]
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f"line {mark.line + 1}: " if mark is not None else ""
        reason = exc.problem or exc.context or "invalid YAML"
        raise errors.PermanentTriggerError(f"template {where}: {line}{reason}") from None
    except yaml.YAMLError as exc:
        raise errors.PermanentTriggerError(f"template {where}: invalid YAML: {exc}") from None
    if len(docs) != 1:
        found = "no document" if not docs else f"{len(docs)} documents"
        raise errors.PermanentTriggerError(
            f"template {where}: expected exactly one YAML document, found {found}"
        )
    return docs[0]


def _decode(raw: bytes, *, where: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise errors.PermanentTriggerError(
            f"template {where}: not UTF-8 text (byte {exc.start})"
        ) from None


# --------------------------------------------------------------------------------------------
# One resolver per kind of location.


async def _resource(
    location: ArtifactLocation,
    *,
    session: aiohttp.ClientSession,
    limits: Limits,
    cache: UrlCache | None,
    kube: kube_client.Client | None,
    namespace: str | None,
) -> Any:
    value = location.resource if location.resource is not None else location.inline
    if isinstance(value, str):
        value = _parse_inline(value)
    # The manifest model (and the parse cache) is shared by every firing: hand out a copy.
    return copy.deepcopy(value)


@functools.lru_cache(maxsize=256)
def _parse_inline(text: str) -> Any:
    # Inline text never changes for the life of a manifest: parse it once, not per firing.
    return parse(text, where="inline resource")


def _read_capped(path: pathlib.Path, max_bytes: int) -> bytes:
    with path.open("rb") as handle:
        return handle.read(max_bytes + 1)


async def _file(
    location: ArtifactLocation,
    *,
    session: aiohttp.ClientSession,
    limits: Limits,
    cache: UrlCache | None,
    kube: kube_client.Client | None,
    namespace: str | None,
) -> Any:
    assert location.file is not None
    where = f"file {location.file.path}"
    path = pathlib.Path(location.file.path)
    try:
        # Disk reads block; a slow volume must not stall every other trigger in the process.
        raw = await asyncio.to_thread(_read_capped, path, limits.max_bytes)
    except FileNotFoundError:
        raise errors.PermanentTriggerError(f"template {where}: no such file") from None
    except OSError as exc:
        raise errors.PermanentTriggerError(
            f"template {where}: cannot read: {exc.strerror or exc}"
        ) from None
    if len(raw) > limits.max_bytes:
        raise errors.PermanentTriggerError(
            f"template {where}: larger than the limit of {limits.max_bytes} bytes"
        )
    return parse(_decode(raw, where=where), where=where)


async def _url(
    location: ArtifactLocation,
    *,
    session: aiohttp.ClientSession,
    limits: Limits,
    cache: UrlCache | None,
    kube: kube_client.Client | None,
    namespace: str | None,
) -> Any:
    assert location.url is not None
    url, verify = location.url.path, location.url.verify_cert
    if cache is not None:
        cached = cache.get((url, verify))
        if cached is not None:
            return cached
    raw = await _fetch(url, verify=verify, session=session, limits=limits)
    parsed = parse(_decode(raw, where=url), where=url)
    if cache is not None:
        cache.put((url, verify), parsed)
    return parsed


async def _fetch(
    url: str,
    *,
    verify: bool,
    session: aiohttp.ClientSession,
    limits: Limits,
    headers: Mapping[str, str] | None = None,
    encoded: bool = False,
) -> bytes:
    """GET `url` within `limits`; `encoded`: send the URL exactly as written (signed URLs)."""
    timeout = aiohttp.ClientTimeout(total=limits.timeout)
    target = yarl.URL(url, encoded=True) if encoded else url
    try:
        async with session.get(target, timeout=timeout, ssl=verify, headers=headers) as response:
            if response.status >= 300:
                excerpt = (await response.content.read(_EXCERPT)).decode("utf-8", "replace")
                message = f"template {url}: HTTP {response.status} {response.reason or ''}"
                message = f"{message.rstrip()}: {excerpt}" if excerpt else message.rstrip()
                if response.status >= 500:
                    raise errors.TemporaryTriggerError(message)
                raise errors.PermanentTriggerError(message)
            too_large = f"template {url}: larger than the limit of {limits.max_bytes} bytes"
            if response.content_length is not None and response.content_length > limits.max_bytes:
                raise errors.PermanentTriggerError(too_large)
            body = bytearray()
            # Stop reading as soon as the limit is passed: a wrong URL pointing at a huge
            # file must not fill the sensor's memory.
            async for chunk in response.content.iter_chunked(_CHUNK):
                body += chunk
                if len(body) > limits.max_bytes:
                    raise errors.PermanentTriggerError(too_large)
            return bytes(body)
    except errors.TriggerError:
        raise
    except aiohttp.ClientConnectorCertificateError as exc:
        # Retrying cannot make an untrusted certificate trusted; the manifest must change.
        raise errors.PermanentTriggerError(
            f"template {url}: certificate not trusted ({exc.certificate_error});"
            " fix the server certificate or set verifyCert: false"
        ) from None
    except TimeoutError:
        raise errors.TemporaryTriggerError(
            f"template {url}: no complete response within {limits.timeout:g} s"
        ) from None
    except aiohttp.InvalidURL:
        raise errors.PermanentTriggerError(f"template {url}: invalid URL") from None
    except aiohttp.ClientError as exc:
        raise errors.TemporaryTriggerError(f"template {url}: {exc or type(exc).__name__}") from None


async def _configmap(
    location: ArtifactLocation,
    *,
    session: aiohttp.ClientSession,
    limits: Limits,
    cache: UrlCache | None,
    kube: kube_client.Client | None,
    namespace: str | None,
) -> Any:
    assert location.configmap is not None
    selector = location.configmap
    if kube is None:
        raise errors.PermanentTriggerError(
            f"template {location.describe()}: configmap sources need the Kubernetes API client;"
            " this trigger kind has none (use them from k8s or argoWorkflow triggers)"
        )
    namespace = selector.namespace or namespace or kube.config.namespace
    where = f"configmap {namespace}/{selector.name} key {selector.key}"
    try:
        resource = await kube.resource("v1", "ConfigMap")
        configmap = await kube.get(resource, selector.name, namespace=namespace)
    except kube_client.ApiError as exc:
        status = " ".join(str(part) for part in (exc.status, exc.reason) if part)
        message = f"template {where}: {status}: {exc.message}"
        if exc.temporary:
            raise errors.TemporaryTriggerError(message) from None
        if exc.not_found:
            raise errors.PermanentTriggerError(f"template {where}: no such ConfigMap") from None
        raise errors.PermanentTriggerError(message) from None
    except kube_client.KubeError as exc:
        # Connection refused, timeouts: the apiserver may be back on the next attempt.
        raise errors.TemporaryTriggerError(f"template {where}: {exc}") from None
    data = configmap.get("data") or {}
    text = data.get(selector.key)
    if not isinstance(text, str):
        keys = ", ".join(sorted(data)) or "none"
        in_binary = selector.key in (configmap.get("binaryData") or {})
        binary = " (it is in binaryData; templates must be text)" if in_binary else ""
        raise errors.PermanentTriggerError(
            f"template {where}: the ConfigMap has no such key{binary}; its keys: {keys}"
        )
    if len(text.encode()) > limits.max_bytes:
        raise errors.PermanentTriggerError(
            f"template {where}: larger than the limit of {limits.max_bytes} bytes"
        )
    return parse(text, where=where)


async def _s3(
    location: ArtifactLocation,
    *,
    session: aiohttp.ClientSession,
    limits: Limits,
    cache: UrlCache | None,
    kube: kube_client.Client | None,
    namespace: str | None,
) -> Any:
    assert location.s3 is not None
    artifact, where = location.s3, location.describe()
    try:
        from botocore.auth import S3SigV4Auth
        from botocore.awsrequest import AWSRequest
        from botocore.credentials import Credentials
    except ImportError:
        raise errors.PermanentTriggerError(
            f"template {where}: s3 sources need botocore: pip install tripwire[s3]"
        ) from None
    url = artifact.url()
    request = AWSRequest(method="GET", url=url)
    if artifact.access_key is not None and artifact.secret_key is not None:
        access = await _secret(artifact.access_key, where=where, kube=kube, namespace=namespace)
        secret = await _secret(artifact.secret_key, where=where, kube=kube, namespace=namespace)
        S3SigV4Auth(Credentials(access, secret), "s3", artifact.region).add_auth(request)
    raw = await _fetch(
        url,
        verify=True,
        session=session,
        limits=limits,
        headers=dict(request.headers.items()),
        encoded=True,
    )
    return parse(_decode(raw, where=where), where=where)


async def _secret(
    ref: secrets.SecretRef, *, where: str, kube: kube_client.Client | None, namespace: str | None
) -> str:
    """A credential: env and file here, a Secret's key through the Kubernetes client."""
    try:
        if ref.name is None:
            return await secrets.LocalResolver().resolve(ref)
        if kube is None:
            raise errors.SecretError(f"{ref.describe()} needs the Kubernetes API client")
        ns = namespace or kube.config.namespace
        resource = await kube.resource("v1", "Secret")
        found = await kube.get(resource, ref.name, namespace=ns)
        value = (found.get("data") or {}).get(ref.key)
        if not isinstance(value, str):
            raise errors.SecretError(f"{ref.describe()} has no such key")
        return base64.b64decode(value).decode()
    except errors.SecretError as exc:
        raise errors.PermanentTriggerError(f"template {where}: {exc}") from None
    except kube_client.KubeError as exc:
        raise errors.TemporaryTriggerError(
            f"template {where}: cannot read {ref.describe()}: {exc}"
        ) from None


# Field name -> resolver; also the order in which `ArtifactLocation` lists the choices.
_RESOLVERS: dict[str, _Resolver] = {
    "resource": _resource,
    "inline": _resource,
    "file": _file,
    "url": _url,
    "configmap": _configmap,
    "s3": _s3,
}


__all__ = [
    "ArtifactLocation",
    "ConfigMapKeySelector",
    "FileArtifact",
    "Limits",
    "S3Artifact",
    "S3ObjectRef",
    "URLArtifact",
    "UrlCache",
    "parse",
    "resolve",
]
