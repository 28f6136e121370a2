"""The trigger family interface: typed pipeline stages and how kinds are found.

A trigger fires with a `Firing`: the trigger key (hash of sensor, trigger and contributing event
ids, recorded before execution) and the latest event of each contributing dependency. Every kind
runs the same stages (argo-events `pkg/sensors/trigger.go`):

    resolve -> apply_parameters -> execute -> apply_policy

`resolve` fetches the template (inline, file, url, ...), `apply_parameters` is pure,
`execute` makes the effect idempotent with the trigger key (HTTP `Idempotency-Key`, a label on
Kubernetes objects), `apply_policy` decides whether the outcome counts as success. Stages raise
`PermanentTriggerError` or `TemporaryTriggerError`; retries, rate limits and the DLQ live around
`fire()` in the sensor runtime, the same for every kind.
"""

from __future__ import annotations

import abc
import contextlib
import dataclasses
import functools
import importlib
from collections.abc import Mapping
from typing import Any, ClassVar, Generic, Protocol, TypeVar

import aiohttp
import pydantic

from tripwire import events, secrets
from tripwire.net import httpclient

KINDS: dict[str, str] = {
    "log": "triggers.log:LogTrigger",
    "http": "triggers.http:HttpTrigger",
    "k8s": "triggers.k8s:K8sTrigger",
    "argoWorkflow": "triggers.argo_workflow:ArgoWorkflowTrigger",
}


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class Firing:
    """One decision to fire: what the stages see."""

    key: str
    sensor: str
    trigger: str
    events: Mapping[str, events.Event]


@dataclasses.dataclass(frozen=True, kw_only=True)
class TriggerContext:
    """Shared resources of the process that a trigger may use."""

    sensor: str
    trigger: str
    session: aiohttp.ClientSession
    secrets: secrets.Resolver
    # The process's pooled HTTP/1.1 client for the `http` trigger; None: the trigger makes its own.
    http: httpclient.Client | None = None
    # The trigger-level `policy` block of the manifest (kinds read their own part of it).
    policy: Any = None
    # A started `tripwire.net.kube.client.Client` when the process talks to Kubernetes, else None.
    kube: Any = None
    # The namespace of the Sensor object (controller mode); None for `tripwire run` files.
    namespace: str | None = None


class Trigger(Protocol):
    async def start(self, stack: contextlib.AsyncExitStack) -> None: ...

    async def fire(self, firing: Firing) -> Any:
        """Run all stages once; return the outcome (kind-specific), raise TriggerError."""
        ...


class TriggerKind(Protocol):
    spec_model: ClassVar[type[pydantic.BaseModel]]

    def __call__(self, *, spec: Any, context: TriggerContext) -> Trigger: ...


ResourceT = TypeVar("ResourceT")
OutcomeT = TypeVar("OutcomeT")


class PipelineTrigger(abc.ABC, Generic[ResourceT, OutcomeT]):
    """Base of trigger kinds: the four typed stages, run in order by `fire`.

    `ResourceT` is the resolved resource (an HTTP request, a Kubernetes object), `OutcomeT`
    the outcome.
    """

    async def start(self, stack: contextlib.AsyncExitStack) -> None:
        return None

    @abc.abstractmethod
    async def resolve(self, firing: Firing) -> ResourceT: ...

    @abc.abstractmethod
    def apply_parameters(self, resource: ResourceT, firing: Firing) -> ResourceT: ...

    @abc.abstractmethod
    async def execute(self, resource: ResourceT, firing: Firing) -> OutcomeT: ...

    async def apply_policy(self, outcome: OutcomeT, firing: Firing) -> None:
        return None

    async def fire(self, firing: Firing) -> OutcomeT:
        resource = await self.resolve(firing)
        resource = self.apply_parameters(resource, firing)
        outcome = await self.execute(resource, firing)
        await self.apply_policy(outcome, firing)
        return outcome


@functools.cache
def load(kind: str) -> TriggerKind:
    """The trigger class of `kind`; KeyError for an unknown kind."""
    module_name, _, attr = KINDS[kind].partition(":")
    module = importlib.import_module(module_name)
    cls: TriggerKind = getattr(module, attr)
    return cls


def spec_models() -> dict[str, type[pydantic.BaseModel]]:
    return {kind: load(kind).spec_model for kind in KINDS}


__all__ = ["KINDS", "Firing", "PipelineTrigger", "Trigger", "TriggerContext", "load"]
