"""The resource gateway: changes to Kubernetes objects become events (Argo Events `resource`).

Any group/version/resource, core or custom, in one namespace or cluster-wide, with Argo's
fields: `namespace`, `group`, `version`, `resource`, `eventTypes` (ADD, UPDATE, DELETE; all
three when omitted, where Argo rejects the entry), `filter` {`prefix`, `labels`, `fields`,
`createdBy`, `afterStart`} and `metadata`. Event data keeps Argo's shape,
`{type, body, oldBody, group, version, resource, metadata}`; `oldBody` is set for UPDATE only.

Watching is `tripwire.net.kube.watching.Reflector`: list, then watch from the list's
resourceVersion, resume after a dropped stream, and on 410 Gone relist and report only the
difference, so neither a reconnect nor a relist repeats or loses a change.

Filters, as Argo applies them:
- `labels` go to the apiserver as a label selector (`key`, `operation` one of `= == != in notin
  exists ! gt lt`, `value`; `in`/`notin` take comma-separated values). An object whose labels
  stop matching arrives as DELETE, one that starts matching as ADD — the apiserver's view.
- `fields` are checked here, on the object: `key` is a gjson path (`status.phase`), `value` a
  regular expression searched in the value's text, `operation` `=`/`==` (matches) or `!=`
  (does not); a missing path fails. Argo compares only string values and rejects an empty
  operation at run time; here numbers and booleans compare as their JSON text and an empty
  operation means `=`.
- `prefix`: the object name starts with it. `createdBy`: created at or before that time.
- `afterStart`: objects that existed when the gateway first started produce no ADD. Argo
  compares timestamps; here the first list *is* the set of objects that existed, which avoids
  the one-second resolution of creationTimestamp and clock skew. Later changes to those
  objects (UPDATE, DELETE) are changes after start and pass, as they do in Argo.

Restarts. Argo's informer lists on every start and emits ADD for every existing object
again. Tripwire promises at-least-once delivery without replays, so each entry persists what
it has reported (the objects, in `context.store`, written after their event is durable) and a
restart diffs its first list against that: only what changed while it was down is emitted,
as ADD/UPDATE/DELETE. The state is keyed by the watch (group, version, resource, namespace,
labels); changing those starts afresh. With an ephemeral store the behaviour is Argo's. Event
ids are derived from (gateway, entry, uid, resourceVersion, type), so the same change
observed twice — a crash between dispatch and the state write — is dropped by the bus's
dedupe window.

The Kubernetes client: `SourceContext.kube` (a started, shared `tripwire.net.kube.client.Client`)
when the process provides one; otherwise this entry builds its own from `load_config()`
($KUBECONFIG, ~/.kube/config, or in-cluster) and closes it on the stack.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import hashlib
import logging
import re
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Any, ClassVar, Literal

import orjson
import pydantic

from gateways import base
from tripwire import backoff, errors, events, manifests
from tripwire.lang import paths
from tripwire.net.kube import client as kube_client
from tripwire.net.kube import watching

log = logging.getLogger(__name__)

KIND = "resource"
EventType = Literal["ADD", "UPDATE", "DELETE"]
EVENT_TYPES: tuple[EventType, ...] = ("ADD", "UPDATE", "DELETE")
STATE_PREFIX = "resource/"

# Kubernetes name syntax (apimachinery validation), for selectors checked before any I/O.
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_RESOURCE = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
_VERSION = re.compile(r"^v[0-9]+((alpha|beta)[0-9]+)?$")

LABEL_OPERATIONS = ("", "=", "==", "!=", "in", "notin", "exists", "!", "gt", "lt")
FIELD_OPERATIONS = ("", "=", "==", "!=")


# --- the spec ------------------------------------------------------------------------------------


def _label_key(key: str) -> None:
    prefix, slash, name = key.rpartition("/")
    if slash and (not prefix or len(prefix) > 253 or not _DNS_SUBDOMAIN.match(prefix)):
        raise ValueError(f"label key {key!r}: the prefix must be a DNS subdomain")
    if len(name) > 63 or not _LABEL_NAME.match(name):
        raise ValueError(
            f"label key {key!r}: the name must be at most 63 characters, alphanumeric, '-', '_'"
            " or '.', starting and ending alphanumeric"
        )


def _label_value(value: str) -> None:
    if value and (len(value) > 63 or not _LABEL_NAME.match(value)):
        raise ValueError(
            f"label value {value!r} must be at most 63 characters, alphanumeric, '-', '_' or '.',"
            " starting and ending alphanumeric"
        )


class Selector(manifests.Model):
    """Argo Events' `Selector`: one label requirement or one field check."""

    key: str = pydantic.Field(min_length=1)
    operation: str = pydantic.Field(
        default="",
        description="Labels: = == != in notin exists ! gt lt (empty means =). Fields: = == !=.",
    )
    value: str = pydantic.Field(
        default="",
        description="Labels: a value, or comma-separated values for in/notin."
        " Fields: a regular expression.",
    )

    def label_requirement(self) -> str:
        """This selector in the apiserver's label selector syntax (`app in (a,b)`)."""
        op, key, value = self.operation or "=", self.key, self.value
        _label_key(key)
        if op not in LABEL_OPERATIONS:
            raise ValueError(
                f"unknown label operation {op!r}, use one of {', '.join(LABEL_OPERATIONS[1:])}"
            )
        if op in ("exists", "!"):
            if value:
                raise ValueError(f"operation {op!r} takes no value")
            return key if op == "exists" else f"!{key}"
        if op in ("in", "notin"):
            values = [v.strip() for v in value.split(",")]
            if not all(values):
                raise ValueError(f"operation {op!r} needs comma-separated values, got {value!r}")
            for v in values:
                _label_value(v)
            return f"{key} {op} ({','.join(values)})"
        if op in ("gt", "lt"):
            if not re.fullmatch(r"-?[0-9]+", value):
                raise ValueError(f"operation {op!r} needs an integer value, got {value!r}")
            return f"{key}{'>' if op == 'gt' else '<'}{value}"
        _label_value(value)
        return f"{key}{op}{value}"


class FieldCheck:
    """A compiled `fields` selector: a gjson path, a regular expression, match or not."""

    __slots__ = ("_negate", "_path", "_pattern")

    def __init__(self, selector: Selector) -> None:
        if selector.operation not in FIELD_OPERATIONS:
            raise ValueError(f"unknown field operation {selector.operation!r}, use =, == or !=")
        self._path = paths.compile(selector.key)
        try:
            self._pattern = re.compile(selector.value)
        except re.error as exc:
            raise ValueError(
                f"value {selector.value!r} is not a regular expression: {exc}"
            ) from None
        self._negate = selector.operation == "!="

    def passes(self, obj: Any) -> bool:
        found = self._path.get(obj)
        if found is paths.MISSING:
            return False
        return (self._pattern.search(_text(found)) is not None) != self._negate


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    return orjson.dumps(value).decode()


class ResourceFilter(manifests.Model):
    """Argo Events' `ResourceFilter`."""

    prefix: str = pydantic.Field(default="", description="The object name starts with this.")
    labels: list[Selector] = pydantic.Field(
        default_factory=list, description="Label requirements, sent to the apiserver."
    )
    fields: list[Selector] = pydantic.Field(
        default_factory=list, description="Checks on the object: gjson path key, regex value."
    )
    created_by: datetime.datetime | None = pydantic.Field(
        default=None, description="Only objects created at or before this time (RFC 3339)."
    )
    after_start: bool = pydantic.Field(
        default=False, description="No ADD for objects that existed when the gateway started."
    )

    @pydantic.field_validator("labels")
    @classmethod
    def _labels(cls, value: list[Selector]) -> list[Selector]:
        problems: list[tuple[manifests.Location, str]] = []
        for i, selector in enumerate(value):
            try:
                selector.label_requirement()
            except ValueError as exc:
                problems.append(((i,), str(exc)))
        if problems:
            raise manifests.FieldError(problems)
        return value

    @pydantic.field_validator("fields")
    @classmethod
    def _fields(cls, value: list[Selector]) -> list[Selector]:
        problems: list[tuple[manifests.Location, str]] = []
        for i, selector in enumerate(value):
            try:
                FieldCheck(selector)
            except ValueError as exc:
                problems.append(((i,), str(exc)))
        if problems:
            raise manifests.FieldError(problems)
        return value

    @pydantic.field_validator("created_by")
    @classmethod
    def _aware(cls, value: datetime.datetime | None) -> datetime.datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=datetime.UTC)  # Kubernetes times are UTC
        return value


class ResourceSpec(manifests.Model):
    """One resource entry: Argo Events' `resource` fields."""

    namespace: str = pydantic.Field(
        default="", description="Watch this namespace only; empty: all namespaces."
    )
    group: str = pydantic.Field(default="", description="API group; empty for the core group.")
    version: str = pydantic.Field(description="API version, e.g. v1.")
    resource: str = pydantic.Field(description="Plural resource name, e.g. configmaps.")
    event_types: list[EventType] = pydantic.Field(
        default_factory=lambda: list(EVENT_TYPES),
        min_length=1,
        description="Which changes to emit: ADD, UPDATE, DELETE (default: all).",
    )
    filter: ResourceFilter | None = None
    metadata: dict[str, str] = pydantic.Field(
        default_factory=dict, description="Copied into every event's data.metadata."
    )

    @pydantic.field_validator("namespace")
    @classmethod
    def _namespace(cls, value: str) -> str:
        if value and (len(value) > 63 or not _DNS_LABEL.match(value)):
            raise ValueError(f"{value!r} is not a namespace name")
        return value

    @pydantic.field_validator("group")
    @classmethod
    def _group(cls, value: str) -> str:
        if value and not _DNS_SUBDOMAIN.match(value):
            raise ValueError(f"{value!r} is not an API group (a DNS subdomain, or empty)")
        return value

    @pydantic.field_validator("version")
    @classmethod
    def _version(cls, value: str) -> str:
        if not _VERSION.match(value):
            raise ValueError(f"{value!r} is not an API version such as v1 or v1beta2")
        return value

    @pydantic.field_validator("resource")
    @classmethod
    def _resource(cls, value: str) -> str:
        if not _RESOURCE.match(value):
            raise ValueError(
                f"{value!r} is not a resource: use the lowercase plural (configmaps, not ConfigMap)"
            )
        return value

    @pydantic.field_validator("event_types")
    @classmethod
    def _unique(cls, value: list[EventType]) -> list[EventType]:
        return list(dict.fromkeys(value))

    def label_selector(self) -> str | None:
        """The apiserver label selector of `filter.labels`, or None."""
        if self.filter is None or not self.filter.labels:
            return None
        return ",".join(s.label_requirement() for s in self.filter.labels)

    def watch_key(self) -> str:
        """Identifies what is watched; persisted state of another watch is not reused."""
        text = "\n".join(
            (self.group, self.version, self.resource, self.namespace, self.label_selector() or "")
        )
        return hashlib.sha256(text.encode()).hexdigest()[:16]


# --- filtering and events -------------------------------------------------------------------------


def _parse_time(value: Any) -> datetime.datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=datetime.UTC)


class Filter:
    """The client-side part of `filter`, compiled once (labels are applied by the apiserver)."""

    def __init__(self, spec: ResourceFilter | None) -> None:
        self._prefix = spec.prefix if spec is not None else ""
        self._created_by = spec.created_by if spec is not None else None
        self._fields: Sequence[FieldCheck] = (
            [FieldCheck(s) for s in spec.fields] if spec is not None else []
        )

    def passes(self, obj: watching.JSON) -> bool:
        meta = obj.get("metadata") or {}
        if self._prefix and not str(meta.get("name") or "").startswith(self._prefix):
            return False
        if self._created_by is not None:
            created = _parse_time(meta.get("creationTimestamp"))
            if created is None or created > self._created_by:
                return False
        return all(check.passes(obj) for check in self._fields)


def event_id(*, gateway: str, name: str, change: watching.Change) -> str:
    """The id of one observed change: equal whenever the same change is observed again."""
    uid = watching.uid_of(change.obj)
    rv = watching.resource_version(change.obj)
    text = f"{gateway}\n{name}\n{uid}\n{rv}\n{change.type}"
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _retry_delays() -> Iterator[float]:
    return backoff.delays(duration=0.5, factor=2.0, jitter=0.1, cap=30.0)


# --- the source -----------------------------------------------------------------------------------


class ResourceSource:
    """One resource entry: list, then watch, and dispatch each change that passes the filters."""

    spec_model: ClassVar[type[pydantic.BaseModel]] = ResourceSpec

    def __init__(
        self,
        *,
        spec: ResourceSpec,
        context: base.SourceContext,
        client: kube_client.Client | None = None,
        retry_delays: Callable[[], Iterator[float]] = _retry_delays,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._spec = spec
        self._context = context
        self._client = client
        self._retry_delays = retry_delays
        self._sleep = sleep
        self._filter = Filter(spec.filter)
        self._types = frozenset(spec.event_types)
        self._after_start = spec.filter is not None and spec.filter.after_start
        self._prefix = f"{STATE_PREFIX}{spec.watch_key()}/"
        self._where = f"resource {context.gateway}/{context.name}"
        self._task: asyncio.Task[None] | None = None
        self.reflector: watching.Reflector | None = None
        self._dispatch = base.DurableDispatch(
            context, delays=self._retry_delays, sleep=self._sleep, where=self._where
        )

    @property
    def spec(self) -> ResourceSpec:
        return self._spec

    async def start(self, stack: contextlib.AsyncExitStack) -> None:
        """Resolve the resource, load the state, list once; then watch in a task on `stack`.

        Returns once the first list is in (so "after start" is well defined); its changes are
        dispatched by the task. Any failure before that is a `SourceError` (retried).
        """
        client = await self._kube(stack)
        spec = self._spec
        try:
            resource = await client.resource_by_plural(
                group=spec.group, version=spec.version, plural=spec.resource
            )
        except kube_client.KubeError as exc:
            raise errors.SourceError(f"{self._where}: {exc}") from exc
        reflector = watching.Reflector(
            client=client,
            resource=resource,
            namespace=spec.namespace or None,
            label_selector=spec.label_selector(),
            sleep=self._sleep,
        )
        known, resumed = await self._load()
        reflector.known = known
        try:
            initial = await reflector.relist()
        except kube_client.KubeError as exc:
            raise errors.SourceError(f"{self._where}: cannot list: {exc}") from exc
        log.info(
            "%s: watching %s (%d object(s)%s)",
            self._where,
            reflector.description,
            len(reflector.known),
            f", {len(initial)} change(s) since the last run" if resumed else "",
        )
        self.reflector = reflector
        self._task = base.start_loop(
            stack,
            self._run(reflector, initial, resumed=resumed),
            name=f"resource-{self._context.gateway}-{self._context.name}",
            where=self._where,
        )

    async def _kube(self, stack: contextlib.AsyncExitStack) -> kube_client.Client:
        if self._client is not None:
            return self._client
        shared = getattr(self._context, "kube", None)
        if isinstance(shared, kube_client.Client):
            return shared
        # No shared client in this process: one of our own, closed with this entry.
        try:
            config = await asyncio.to_thread(kube_client.load_config)
        except ImportError:
            raise errors.SourceError(
                f"{self._where}: the kubernetes package is missing:"
                " pip install tripwire[kubernetes]"
            ) from None
        except kube_client.KubeError as exc:
            raise errors.SourceError(f"{self._where}: {exc}") from exc
        client = kube_client.Client(config)
        await client.start(stack)
        self._client = client
        return client

    # -- state ----------------------------------------------------------------------------

    def _object_key(self, key: watching.Key) -> str:
        return f"{self._prefix}o/{key[0]}/{key[1]}"

    async def _load(self) -> tuple[dict[watching.Key, watching.JSON], bool]:
        """The objects reported by the last run of this watch, and whether there was one."""
        try:
            entries = await self._context.store.scan(STATE_PREFIX)
        except errors.BusError as exc:
            raise errors.SourceError(f"{self._where}: cannot read state: {exc}") from exc
        known: dict[watching.Key, watching.JSON] = {}
        resumed = False
        stale: dict[str, bytes | None] = {}
        for key, raw in entries:
            if not key.startswith(self._prefix):
                stale[key] = None  # state of a previous spec of this entry
            elif key == f"{self._prefix}synced":
                resumed = True
            else:
                try:
                    obj = orjson.loads(raw)
                except orjson.JSONDecodeError:
                    log.warning("%s: ignoring unreadable state %s", self._where, key)
                    continue
                known[watching.key_of(obj)] = obj
        if stale:
            log.info(
                "%s: the watch changed, dropping %d old state entries", self._where, len(stale)
            )
            await self._write(stale)
        return known, resumed

    async def _write(self, changes: dict[str, bytes | None]) -> None:
        for attempt, delay in enumerate(self._retry_delays(), start=1):
            try:
                await self._context.store.write(changes)
                return
            except errors.BusError as exc:
                log.warning(
                    "%s: state not written, attempt %d, again in %.1fs: %s",
                    self._where,
                    attempt,
                    delay,
                    exc,
                )
                await self._sleep(delay)

    # -- the loop -------------------------------------------------------------------------

    async def _run(
        self, reflector: watching.Reflector, initial: list[watching.Change], *, resumed: bool
    ) -> None:
        # afterStart: the first list of a fresh entry is what existed before it started.
        quiet_adds = self._after_start and not resumed
        for change in initial:
            await self._handle(change, emit=not (quiet_adds and change.type == "ADD"))
        if not resumed:
            await self._write({f"{self._prefix}synced": b"1"})
        async for change in reflector.changes():
            await self._handle(change, emit=True)

    async def _handle(self, change: watching.Change, *, emit: bool) -> None:
        if emit and change.type in self._types and self._filter.passes(change.obj):
            await self._dispatch(self.event(change))
        key = self._object_key(watching.key_of(change.obj))
        await self._write({key: None if change.type == "DELETE" else orjson.dumps(change.obj)})

    def event(self, change: watching.Change) -> events.Event:
        """The event of one change, in Argo's data shape."""
        spec = self._spec
        data = {
            "type": change.type,
            "body": change.obj,
            "oldBody": change.old if change.type == "UPDATE" else None,
            "group": spec.group,
            "version": spec.version,
            "resource": spec.resource,
            "metadata": dict(spec.metadata),
        }
        ident = event_id(gateway=self._context.gateway, name=self._context.name, change=change)
        return self._context.event(data, id=ident)


__all__ = [
    "KIND",
    "Filter",
    "ResourceFilter",
    "ResourceSource",
    "ResourceSpec",
    "Selector",
    "event_id",
]
