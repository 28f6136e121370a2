"""The `k8s` trigger: create, update, patch or delete any Kubernetes object from a template.

Argo Events' `StandardK8STrigger` (`source`, `operation`, `parameters`, `patchStrategy`,
`liveObject`) with the trigger `policy.k8s` block, talking to the apiserver through our own
raw-JSON client (`tripwire.net.kube.client`): a firing is one or two HTTP requests on a pooled
connection, with no generated model objects to build — what keeps thousands of firings per
second possible.

Why the trigger key matters here: the sensor runtime delivers at least once, so the same firing
can run twice (a crash after `create` but before the ack). `create` therefore writes the key as
the label `tripwire.dev/trigger-key` and looks before it leaps:

- `metadata.generateName`: list the kind in the namespace by that label first; an object found
  is the effect of an earlier delivery and is returned instead of creating a second one. (Two
  deliveries of one firing racing in two processes could both miss; the runtime never runs one
  key twice at once, and active-passive HA keeps it to one process.)
- a fixed `metadata.name`: create, and on 409 read the existing object: same key label, it is
  ours (success); otherwise it is someone else's and the firing fails permanently.

`update` reads the live object and replaces it with its resourceVersion (a 409 conflict reads
again, a few times); like Argo, fields the template leaves out are kept from the live object,
and a missing object is created. With `liveObject: true` the parameters are applied to the live
object itself (re-applied after a conflict). `patch` sends the template as a merge or strategic
merge patch, or the template's `patch` list as a JSON patch. `delete` treats 404 as done.

`policy.k8s` (see `triggers.policies.K8sPolicy`) then re-reads the object with backoff until its
labels / status conditions say it succeeded. Shared pieces (`KubeAccess`, `create_once`,
`wait_for_policy`, `failure`) are used by the `argoWorkflow` kind too.

The client: the process shares one started `tripwire.net.kube.client.Client`, handed over as
`TriggerContext.kube` (the runtime starts it because these kinds declare `uses_kubernetes`).
Where there is none (a trigger built by hand, a tool, a test), `KubeAccess.start` builds the
trigger's own client from the kubeconfig (`$KUBECONFIG`, `~/.kube/config`, or the pod's
service account) and closes it on the trigger's stack. Objects without a namespace go to the
Sensor's namespace (`TriggerContext.namespace`, controller mode), else the client's default.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import dataclasses
import hashlib
import logging
import os
import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, ClassVar, Literal, TypedDict

import pydantic

from triggers import base, policies, sources
from triggers import parameters as params  # a spec field is called `parameters`
from tripwire import errors, manifests
from tripwire.net.kube import client as kube_client

log = logging.getLogger(__name__)

JSON = kube_client.JSON
Sleep = Callable[[float], Awaitable[None]]

TRIGGER_KEY_LABEL = "tripwire.dev/trigger-key"
SENSOR_ANNOTATION = "tripwire.dev/sensor"
CONFLICT_RETRIES = 5
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")

Operation = Literal["create", "update", "patch", "delete"]
PatchStrategy = Literal[
    "merge",
    "strategic",
    "json",
    # Argo spells the strategy as the patch content type; both forms are accepted.
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
    "application/json-patch+json",
]
_PATCH_TYPES: dict[str, str] = {
    "merge": "merge",
    "strategic": "strategic",
    "json": "json",
    "application/merge-patch+json": "merge",
    "application/strategic-merge-patch+json": "strategic",
    "application/json-patch+json": "json",
}


class ObjectMeta(TypedDict, total=False):
    """The `metadata` fields of a raw object that the triggers read or write."""

    name: str
    generateName: str
    namespace: str
    labels: dict[str, str]
    annotations: dict[str, str]
    resourceVersion: str
    uid: str
    creationTimestamp: str


class K8sTriggerSpec(manifests.Model):
    """Argo Events `StandardK8STrigger`."""

    source: sources.ArtifactLocation
    operation: Operation = "create"
    parameters: list[params.TriggerParameter] = pydantic.Field(default_factory=list)
    patch_strategy: PatchStrategy = "merge"
    live_object: bool = False

    @pydantic.model_validator(mode="after")
    def _live_object_updates(self) -> K8sTriggerSpec:
        # As in Argo: only `update` reads the live object; elsewhere it would mean nothing.
        if self.live_object and self.operation != "update":
            raise ValueError(
                f"liveObject works with operation update only (operation is {self.operation})"
            )
        return self

    @property
    def patch_type(self) -> str:
        """`merge`, `strategic` or `json`: the client's name for the patch content type."""
        return _PATCH_TYPES[self.patch_strategy]


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class Target:
    """Which object a firing acts on; `name` is empty until a generateName create names it."""

    resource: kube_client.Resource
    namespace: str | None
    name: str
    generate_name: str = ""

    def describe(self) -> str:
        name = self.name or f"{self.generate_name}*"
        where = f"{self.namespace}/{name}" if self.namespace else name
        return f"{self.resource.kind} {where}"

    def named(self, name: str) -> Target:
        return dataclasses.replace(self, name=name)


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class K8sOutcome:
    """The effect: the object as the apiserver returned it (None after a delete).

    `reused` is true when the effect already existed: a create found the object an earlier
    delivery of this firing made, or a delete found the object already gone.
    """

    operation: str
    target: Target
    object: JSON | None
    reused: bool = False

    def describe(self) -> str:
        return f"{self.operation} {self.target.describe()}"


class KubeAccess:
    """The Kubernetes client of one trigger: `TriggerContext.kube` when the runtime passes
    one (shared by the whole process), else a client of its own built at `start` from the
    kubeconfig or the pod's service account, and closed with the trigger's exit stack."""

    def __init__(self, context: base.TriggerContext) -> None:
        self._client: kube_client.Client | None = context.kube
        self._namespace = context.namespace
        self.own = False

    async def start(self, stack: contextlib.AsyncExitStack) -> None:
        if self._client is not None:
            return
        # $KUBECONFIG is read here, not left to the kubernetes package: it reads the variable
        # once, at import, so a later change (tests, a tool) would silently go unnoticed.
        kubeconfig = os.environ.get("KUBECONFIG") or None
        config = kube_client.load_config(kubeconfig=kubeconfig)  # KubeError: no config at all
        client = kube_client.Client(config)
        await client.start(stack)
        self._client, self.own = client, True

    @property
    def client(self) -> kube_client.Client:
        if self._client is None:
            raise errors.PermanentTriggerError(
                "the Kubernetes trigger was not started (no API client)"
            )
        return self._client

    @property
    def namespace(self) -> str:
        """Where objects without a namespace go: the Sensor's, else the client's default."""
        return self._namespace or self.client.config.namespace


# --------------------------------------------------------------------------------------------
# Shared by the Kubernetes trigger kinds.


def label_value(key: str) -> str:
    """The trigger key as a label value: itself when it is one (Tripwire's keys are 32 hex
    characters), else a stable 32-hex digest of it — labels allow 63 characters of
    `[A-Za-z0-9_.-]`."""
    if len(key) <= 63 and _LABEL_VALUE.match(key):
        return key
    return hashlib.sha256(key.encode()).hexdigest()[:32]


def metadata(obj: JSON) -> ObjectMeta:
    """`obj.metadata`, created if absent (the object is the firing's own copy)."""
    meta = obj.get("metadata")
    if not isinstance(meta, dict):
        meta = obj["metadata"] = {}
    out: ObjectMeta = meta  # type: ignore[assignment]  # raw JSON read through a TypedDict
    return out


def stamp(obj: JSON, firing: base.Firing, *, label: bool) -> None:
    """Mark `obj` as this firing's effect: the key (label when the object is created, so it
    can be listed by it; annotation otherwise) and the sensor/trigger that made it."""
    meta = metadata(obj)
    annotations = dict(meta.get("annotations") or {})
    annotations[SENSOR_ANNOTATION] = f"{firing.sensor}/{firing.trigger}"
    if label:
        labels = dict(meta.get("labels") or {})
        labels[TRIGGER_KEY_LABEL] = label_value(firing.key)
        meta["labels"] = labels
    else:
        annotations[TRIGGER_KEY_LABEL] = label_value(firing.key)
    meta["annotations"] = annotations


def failure(exc: kube_client.KubeError, *, action: str, target: Target) -> errors.TriggerError:
    """An API failure as the trigger error tree: 429/5xx and connection trouble are
    temporary; other statuses, and kinds the apiserver does not serve, are permanent. The
    message names the operation, kind, namespace/name and carries the apiserver's words."""
    where = f"{action} {target.describe()}"
    return _failure(exc, where=where)


def _failure(exc: kube_client.KubeError, *, where: str) -> errors.TriggerError:
    if isinstance(exc, kube_client.ApiError):
        status = " ".join(str(part) for part in (exc.status, exc.reason) if part)
        message = f"{where}: {status}: {exc.message}"
        if exc.temporary:
            return errors.TemporaryTriggerError(message)
        return errors.PermanentTriggerError(message)
    text = str(exc)
    # Discovery's own errors ("the apiserver has no kind ..."/"does not serve ...") begin
    # like this; everything else the client raises is a failed connection or a timeout.
    if text.startswith("the apiserver "):
        return errors.PermanentTriggerError(f"{where}: {text} (is its CRD installed?)")
    return errors.TemporaryTriggerError(f"{where}: {text}")


async def locate(access: KubeAccess, obj: Mapping[str, Any], *, action: str) -> Target:
    """The REST resource, namespace and name of a template object (after parameters).

    The namespace is the object's own, else `access.namespace`; cluster-scoped kinds have none.
    """
    kube = access.client
    api_version, kind = obj.get("apiVersion"), obj.get("kind")
    raw_meta = obj.get("metadata")
    meta: Mapping[str, Any] = raw_meta if isinstance(raw_meta, Mapping) else {}
    if not isinstance(api_version, str) or not isinstance(kind, str) or not kind:
        raise errors.PermanentTriggerError(
            f"{action}: the template needs apiVersion and kind (got apiVersion={api_version!r},"
            f" kind={kind!r})"
        )
    name = meta.get("name") or ""
    generate_name = meta.get("generateName") or ""
    try:
        resource = await kube.resource(api_version, kind)
    except kube_client.KubeError as exc:
        raise _failure(exc, where=f"{action} {kind} {name or generate_name}".rstrip()) from None
    namespace = None
    if resource.namespaced:
        namespace = meta.get("namespace") or access.namespace
    return Target(
        resource=resource,
        namespace=namespace,
        name=str(name),
        generate_name=str(generate_name),
    )


async def create_once(
    kube: kube_client.Client, target: Target, obj: JSON, *, firing: base.Firing
) -> K8sOutcome:
    """Create `obj` unless an earlier delivery of this firing did (module docstring)."""
    stamp(obj, firing, label=True)
    meta = metadata(obj)
    if target.namespace:
        meta["namespace"] = target.namespace
    key = label_value(firing.key)
    try:
        if not target.name:
            if not target.generate_name:
                raise errors.PermanentTriggerError(
                    f"create {target.describe()}: the template needs metadata.name or"
                    " metadata.generateName"
                )
            found = await kube.list(
                target.resource,
                namespace=target.namespace,
                label_selector=f"{TRIGGER_KEY_LABEL}={key}",
            )
            items = [i for i in found.get("items") or [] if isinstance(i, dict)]
            if items:
                earliest = min(items, key=_created_at)
                # List items come without apiVersion/kind; put them back for the outcome.
                earliest.setdefault("apiVersion", target.resource.api_version)
                earliest.setdefault("kind", target.resource.kind)
                named = target.named(str(metadata(earliest).get("name", "")))
                return K8sOutcome(operation="create", target=named, object=earliest, reused=True)
        created = await kube.create(target.resource, obj, namespace=target.namespace)
        named = target.named(str(metadata(created).get("name", "")))
        return K8sOutcome(operation="create", target=named, object=created)
    except kube_client.ApiError as exc:
        if not exc.conflict:
            raise failure(exc, action="create", target=target) from None
        if not target.name:
            # generateName ran into an existing name: the apiserver asks to try again.
            raise errors.TemporaryTriggerError(
                f"create {target.describe()}: generated name taken: {exc.message}"
            ) from None
    except kube_client.KubeError as exc:
        raise failure(exc, action="create", target=target) from None
    # A fixed name that exists already: ours from an earlier delivery, or someone else's.
    try:
        existing = await kube.get(target.resource, target.name, namespace=target.namespace)
    except kube_client.KubeError as exc:
        # 404: deleted since the 409; retrying will create it.
        if isinstance(exc, kube_client.ApiError) and exc.not_found:
            raise errors.TemporaryTriggerError(
                f"create {target.describe()}: existed a moment ago, then vanished"
            ) from None
        raise failure(exc, action="create", target=target) from None
    owner = (metadata(existing).get("labels") or {}).get(TRIGGER_KEY_LABEL)
    if owner == key:
        return K8sOutcome(operation="create", target=target, object=existing, reused=True)
    made_by = f" (its {TRIGGER_KEY_LABEL} is {owner})" if owner else ""
    raise errors.PermanentTriggerError(
        f"create {target.describe()}: object exists and was not created by this firing{made_by}"
    )


def _created_at(obj: JSON) -> tuple[str, str]:
    meta = metadata(obj)
    return str(meta.get("creationTimestamp", "")), str(meta.get("name", ""))


async def wait_for_policy(
    kube: kube_client.Client,
    policy: policies.K8sPolicy,
    outcome: K8sOutcome,
    *,
    sleep: Sleep = asyncio.sleep,
) -> None:
    """Re-read the outcome's object with the policy's backoff until the policy decides.

    The first of `backoff.steps` checks uses the object the write returned (no request).
    Reads that fail temporarily count as "not known yet". Success returns; a failure
    condition is a `PermanentTriggerError`; running out of steps is a `TemporaryTriggerError`
    with `errorOnBackoffTimeout` (a retry of the firing finds the same object — the effect is
    idempotent — and waits again) or success without it, as in Argo.
    """
    target = outcome.target
    current: JSON | None = outcome.object
    last = "no object read yet"
    waits = policy.backoff.waits()
    while True:
        if current is not None:
            evaluation = policy.evaluate(current)
            if evaluation.verdict is policies.Verdict.SUCCEEDED:
                return
            if evaluation.verdict is policies.Verdict.FAILED:
                raise errors.PermanentTriggerError(
                    f"{outcome.describe()}: policy failed: {evaluation.reason}"
                )
            last = evaluation.reason
        delay = next(waits, None)
        if delay is None:
            break
        await sleep(delay)
        try:
            current = await kube.get(target.resource, target.name, namespace=target.namespace)
        except kube_client.KubeError as exc:
            error = failure(exc, action="read", target=target)
            if isinstance(exc, kube_client.ApiError) and exc.not_found:
                raise errors.PermanentTriggerError(
                    f"{outcome.describe()}: the object was deleted while the policy waited"
                ) from None
            if isinstance(error, errors.PermanentTriggerError):
                raise error from None
            current, last = None, str(error)
    backoff = policy.backoff
    message = (
        f"{outcome.describe()}: policy not met after {backoff.steps} checks"
        f" (up to {backoff.max_total_wait():.3g} s): {last}"
    )
    if policy.error_on_backoff_timeout:
        raise errors.TemporaryTriggerError(message)
    log.warning("%s; counted as success because errorOnBackoffTimeout is false", message)


def k8s_policy(context: base.TriggerContext) -> policies.K8sPolicy | None:
    policy = policies.coerce(context.policy)
    return policy.k8s if policy is not None else None


def as_object(document: Any, *, where: str) -> JSON:
    """A resolved or parameterized template must be one Kubernetes object (a mapping)."""
    if not isinstance(document, dict):
        raise errors.PermanentTriggerError(
            f"{where}: the template is a {type(document).__name__}, not a Kubernetes object"
        )
    return document


def fill_missing(obj: JSON, live: Mapping[str, Any]) -> JSON:
    """`obj` with the keys it lacks taken from `live`, recursively through mappings (Argo's
    `mergo.Merge` for update): what the template does not mention is kept, not erased."""
    out = dict(obj)
    for key, value in live.items():
        mine = out.get(key)
        if key not in out:
            out[key] = copy.deepcopy(value)
        elif isinstance(mine, dict) and isinstance(value, Mapping):
            out[key] = fill_missing(mine, value)
    return out


# --------------------------------------------------------------------------------------------
# The kind.


class K8sTrigger(base.PipelineTrigger[JSON, K8sOutcome]):
    spec_model: ClassVar[type[pydantic.BaseModel]] = K8sTriggerSpec
    uses_kubernetes: ClassVar[bool] = True  # the runtime starts the shared client for us

    def __init__(
        self,
        *,
        spec: K8sTriggerSpec | dict[str, Any],
        context: base.TriggerContext,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._spec = K8sTriggerSpec.model_validate(spec)
        self._context = context
        self._policy = k8s_policy(context)
        self._kube = KubeAccess(context)
        self._sleep = sleep
        self._url_cache = sources.UrlCache()
        self._operations: dict[str, Callable[[JSON, base.Firing], Awaitable[K8sOutcome]]] = {
            "create": self._create,
            "update": self._update,
            "patch": self._patch,
            "delete": self._delete,
        }

    @property
    def kube(self) -> KubeAccess:
        return self._kube

    async def start(self, stack: contextlib.AsyncExitStack) -> None:
        await self._kube.start(stack)

    async def resolve(self, firing: base.Firing) -> JSON:
        document = await sources.resolve(
            self._spec.source,
            session=self._context.session,
            cache=self._url_cache,
            kube=self._kube.client,
            namespace=self._context.namespace,
        )
        return as_object(document, where=f"template {self._spec.source.describe()}")

    def apply_parameters(self, resource: JSON, firing: base.Firing) -> JSON:
        edited = params.apply(self._spec.parameters, firing.events, resource)
        return as_object(edited, where=f"k8s trigger {self._context.trigger}: parameters")

    async def execute(self, resource: JSON, firing: base.Firing) -> K8sOutcome:
        return await self._operations[self._spec.operation](resource, firing)

    async def apply_policy(self, outcome: K8sOutcome, firing: base.Firing) -> None:
        if self._policy is None or outcome.object is None:
            return  # nothing to wait for (no policy, or the object was deleted)
        await wait_for_policy(self._kube.client, self._policy, outcome, sleep=self._sleep)

    # -- operations -------------------------------------------------------------------------
    async def _create(self, obj: JSON, firing: base.Firing) -> K8sOutcome:
        kube = self._kube.client
        target = await locate(self._kube, obj, action="create")
        return await create_once(kube, target, obj, firing=firing)

    async def _update(self, obj: JSON, firing: base.Firing) -> K8sOutcome:
        kube = self._kube.client
        target = await self._named(obj, action="update")
        for _ in range(CONFLICT_RETRIES):
            try:
                live = await kube.get(target.resource, target.name, namespace=target.namespace)
            except kube_client.ApiError as exc:
                if not exc.not_found:
                    raise failure(exc, action="update", target=target) from None
                if self._spec.live_object:
                    raise errors.PermanentTriggerError(
                        f"update {target.describe()}: no such object (liveObject updates an"
                        " existing object)"
                    ) from None
                # As in Argo, an update of an object that does not exist creates it.
                return await create_once(kube, target, obj, firing=firing)
            except kube_client.KubeError as exc:
                raise failure(exc, action="update", target=target) from None
            if self._spec.live_object:
                body = as_object(
                    params.apply(self._spec.parameters, firing.events, live),
                    where=f"update {target.describe()}: parameters",
                )
            else:
                body = fill_missing(obj, live)
                metadata(body)["resourceVersion"] = str(metadata(live).get("resourceVersion", ""))
            stamp(body, firing, label=False)
            try:
                updated = await kube.replace(
                    target.resource, target.name, body, namespace=target.namespace
                )
            except kube_client.ApiError as exc:
                if exc.conflict:
                    continue  # changed between our read and write: read again
                raise failure(exc, action="update", target=target) from None
            except kube_client.KubeError as exc:
                raise failure(exc, action="update", target=target) from None
            return K8sOutcome(operation="update", target=target, object=updated)
        raise errors.TemporaryTriggerError(
            f"update {target.describe()}: still conflicting after {CONFLICT_RETRIES} attempts"
        )

    async def _patch(self, obj: JSON, firing: base.Firing) -> K8sOutcome:
        kube = self._kube.client
        target = await self._named(obj, action="patch")
        patch_type = self._spec.patch_type
        body: Any
        if patch_type == "json":
            body = obj.get("patch")
            if not isinstance(body, list):
                raise errors.PermanentTriggerError(
                    f"patch {target.describe()}: patchStrategy json needs the template's"
                    " `patch` field to be a list of JSON patch operations"
                )
        else:
            body = obj
            stamp(body, firing, label=False)
        try:
            patched = await kube.patch(
                target.resource,
                target.name,
                body,
                namespace=target.namespace,
                patch_type=patch_type,
            )
        except kube_client.KubeError as exc:
            raise failure(exc, action="patch", target=target) from None
        return K8sOutcome(operation="patch", target=target, object=patched)

    async def _delete(self, obj: JSON, firing: base.Firing) -> K8sOutcome:
        kube = self._kube.client
        target = await self._named(obj, action="delete")
        try:
            await kube.delete(target.resource, target.name, namespace=target.namespace)
        except kube_client.ApiError as exc:
            if exc.not_found:
                # Already gone: a redelivery of this firing, or someone else got there first.
                return K8sOutcome(operation="delete", target=target, object=None, reused=True)
            raise failure(exc, action="delete", target=target) from None
        except kube_client.KubeError as exc:
            raise failure(exc, action="delete", target=target) from None
        return K8sOutcome(operation="delete", target=target, object=None)

    async def _named(self, obj: JSON, *, action: str) -> Target:
        target = await locate(self._kube, obj, action=action)
        if not target.name:
            raise errors.PermanentTriggerError(
                f"{action} {target.describe()}: the template needs metadata.name"
                " (generateName only works with create)"
            )
        return target


__all__ = [
    "SENSOR_ANNOTATION",
    "TRIGGER_KEY_LABEL",
    "K8sOutcome",
    "K8sTrigger",
    "K8sTriggerSpec",
    "KubeAccess",
    "ObjectMeta",
    "Target",
    "as_object",
    "create_once",
    "failure",
    "fill_missing",
    "k8s_policy",
    "label_value",
    "locate",
    "metadata",
    "stamp",
    "wait_for_policy",
]
