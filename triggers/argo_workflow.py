"""The `argoWorkflow` trigger: submit and steer Argo Workflows through the Kubernetes API.

Argo Events runs the `argo` CLI for these operations; Tripwire does not shell out (DESIGN.md:
"Kubernetes triggers talk to the API directly"), so each operation is what the CLI would have
asked of the apiserver, on `argoproj.io/v1alpha1`:

- `submit`: create the Workflow of `source` (idempotent with the trigger-key label).
- `submit-from`: `source` names a WorkflowTemplate, ClusterWorkflowTemplate or CronWorkflow;
  create a Workflow `<name>-xxxxx` that references the template (`spec.workflowTemplateRef`)
  or copies the CronWorkflow's `spec.workflowSpec` (what `argo submit --from` does).
- `suspend` / `resume`: merge-patch `spec.suspend: true` / `spec.suspend: null`.
- `terminate` / `stop`: merge-patch `spec.shutdown: Terminate` / `Stop` (exit handlers run
  on stop); the workflow controller then ends the run.
- `resubmit`: create a new Workflow `<old>-xxxxx` with the old one's spec and labels.

The target of suspend/resume/terminate/stop/resubmit is `source`'s `metadata.name` (and
namespace) after `parameters`. Notes on what the API alone cannot do:

- `resume` clears `spec.suspend`, which resumes a workflow suspended as a whole. A workflow
  waiting in a `suspend` *template* node is resumed by the Argo server (it edits node status);
  use `spec.suspend` or the Argo server for that.
- `retry` is not offered: it resets failed nodes in the workflow's status and deletes their
  pods, logic that lives in the Argo server. `resubmit` starts the workflow again instead.
- `args` (extra CLI arguments in Argo) are refused at validation: set values with `parameters`
  (e.g. `dest: spec.arguments.parameters.0.value`).

`submit-from` copies `spec.arguments` from `source` when given, so parameters can fill in a
template's arguments; labels and annotations in `source`'s metadata go onto the Workflow too.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import dataclasses
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar, Literal

import pydantic

from triggers import base, k8s, sources
from triggers import parameters as params  # a spec field is called `parameters`
from tripwire import errors, manifests
from tripwire.net.kube import client as kube_client

JSON = kube_client.JSON
API_VERSION = "argoproj.io/v1alpha1"
_TEMPLATE_KINDS = ("WorkflowTemplate", "ClusterWorkflowTemplate", "CronWorkflow")
# Labels the workflow controller sets on a run; a resubmitted workflow starts without them.
_CONTROLLER_LABELS = frozenset(
    {
        "workflows.argoproj.io/completed",
        "workflows.argoproj.io/phase",
        "workflows.argoproj.io/workflow-archiving-status",
        "workflows.argoproj.io/resubmitted-from-workflow",
        k8s.TRIGGER_KEY_LABEL,
    }
)
_PATCHES: dict[str, JSON] = {
    "suspend": {"spec": {"suspend": True}},
    "resume": {"spec": {"suspend": None}},
    "terminate": {"spec": {"shutdown": "Terminate"}},
    "stop": {"spec": {"shutdown": "Stop"}},
}

Operation = Literal["submit", "submit-from", "suspend", "resume", "terminate", "stop", "resubmit"]


class ArgoWorkflowTriggerSpec(manifests.Model):
    """Argo Events `ArgoWorkflowTrigger`."""

    source: sources.ArtifactLocation
    operation: Operation = "submit"
    parameters: list[params.TriggerParameter] = pydantic.Field(default_factory=list)
    args: list[str] = pydantic.Field(default_factory=list)

    @pydantic.field_validator("operation", mode="before")
    @classmethod
    def _no_retry(cls, operation: Any) -> Any:
        if operation == "retry":
            raise ValueError(
                "retry needs the Argo server (it resets failed nodes in the workflow status);"
                " Tripwire talks to the Kubernetes API only: use resubmit to run it again"
            )
        return operation

    @pydantic.field_validator("args")
    @classmethod
    def _no_args(cls, args: list[str]) -> list[str]:
        if args:
            raise ValueError(
                "args are extra `argo` CLI arguments and Tripwire runs no CLI; set values with"
                " parameters instead (e.g. dest: spec.arguments.parameters.0.value)"
            )
        return args


class ArgoWorkflowTrigger(base.PipelineTrigger[JSON, k8s.K8sOutcome]):
    spec_model: ClassVar[type[pydantic.BaseModel]] = ArgoWorkflowTriggerSpec
    uses_kubernetes: ClassVar[bool] = True  # the runtime starts the shared client for us

    def __init__(
        self,
        *,
        spec: ArgoWorkflowTriggerSpec | dict[str, Any],
        context: base.TriggerContext,
        sleep: k8s.Sleep = asyncio.sleep,
    ) -> None:
        self._spec = ArgoWorkflowTriggerSpec.model_validate(spec)
        self._context = context
        self._policy = k8s.k8s_policy(context)
        self._kube = k8s.KubeAccess(context)
        self._sleep = sleep
        self._url_cache = sources.UrlCache()
        self._operations: dict[str, Callable[[JSON, base.Firing], Awaitable[k8s.K8sOutcome]]] = {
            "submit": self._submit,
            "submit-from": self._submit_from,
            "resubmit": self._resubmit,
            **{name: self._patcher(name) for name in _PATCHES},
        }

    @property
    def kube(self) -> k8s.KubeAccess:
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
        return k8s.as_object(document, where=f"template {self._spec.source.describe()}")

    def apply_parameters(self, resource: JSON, firing: base.Firing) -> JSON:
        edited = params.apply(self._spec.parameters, firing.events, resource)
        where = f"argoWorkflow trigger {self._context.trigger}: parameters"
        return k8s.as_object(edited, where=where)

    async def execute(self, resource: JSON, firing: base.Firing) -> k8s.K8sOutcome:
        return await self._operations[self._spec.operation](resource, firing)

    async def apply_policy(self, outcome: k8s.K8sOutcome, firing: base.Firing) -> None:
        if self._policy is None or outcome.object is None:
            return
        await k8s.wait_for_policy(self._kube.client, self._policy, outcome, sleep=self._sleep)

    # -- operations -------------------------------------------------------------------------
    async def _submit(self, obj: JSON, firing: base.Firing) -> k8s.K8sOutcome:
        _require_kind(obj, ("Workflow",), operation="submit")
        kube = self._kube.client
        target = await k8s.locate(self._kube, obj, action="submit")
        outcome = await k8s.create_once(kube, target, obj, firing=firing)
        return _renamed(outcome, "submit")

    async def _submit_from(self, source: JSON, firing: base.Firing) -> k8s.K8sOutcome:
        kind = _require_kind(source, _TEMPLATE_KINDS, operation="submit-from")
        kube = self._kube.client
        template = await self._named(source, action="submit-from")
        try:
            found = await kube.get(template.resource, template.name, namespace=template.namespace)
        except kube_client.KubeError as exc:
            raise k8s.failure(exc, action="submit-from", target=template) from None
        meta = k8s.metadata(source)
        # The Workflow runs in the source's namespace (for a ClusterWorkflowTemplate too).
        workflow_target = await self._workflows(
            namespace=meta.get("namespace") or template.namespace
        )
        labels = dict(meta.get("labels") or {})
        annotations = dict(meta.get("annotations") or {})
        spec: JSON
        if kind == "CronWorkflow":
            cron_spec = found.get("spec") or {}
            spec = copy.deepcopy(cron_spec.get("workflowSpec") or {})
            cron_meta = cron_spec.get("workflowMetadata") or {}
            labels = {**(cron_meta.get("labels") or {}), **labels}
            annotations = {**(cron_meta.get("annotations") or {}), **annotations}
            labels["workflows.argoproj.io/cron-workflow"] = template.name
        elif kind == "ClusterWorkflowTemplate":
            spec = {"workflowTemplateRef": {"name": template.name, "clusterScope": True}}
            labels["workflows.argoproj.io/cluster-workflow-template"] = template.name
        else:
            spec = {"workflowTemplateRef": {"name": template.name}}
            labels["workflows.argoproj.io/workflow-template"] = template.name
        arguments = (source.get("spec") or {}).get("arguments")
        if arguments is not None:
            spec["arguments"] = arguments
        workflow: JSON = {
            "apiVersion": API_VERSION,
            "kind": "Workflow",
            "metadata": {
                "generateName": f"{template.name}-",
                "labels": labels,
                "annotations": annotations,
            },
            "spec": spec,
        }
        target = k8s.Target(
            resource=workflow_target.resource,
            namespace=workflow_target.namespace,
            name="",
            generate_name=f"{template.name}-",
        )
        outcome = await k8s.create_once(kube, target, workflow, firing=firing)
        return _renamed(outcome, "submit-from")

    async def _resubmit(self, obj: JSON, firing: base.Firing) -> k8s.K8sOutcome:
        _require_kind(obj, ("Workflow",), operation="resubmit")
        kube = self._kube.client
        old = await self._named(obj, action="resubmit")
        try:
            found = await kube.get(old.resource, old.name, namespace=old.namespace)
        except kube_client.KubeError as exc:
            raise k8s.failure(exc, action="resubmit", target=old) from None
        old_meta = k8s.metadata(found)
        labels = {
            k: v for k, v in (old_meta.get("labels") or {}).items() if k not in _CONTROLLER_LABELS
        }
        labels["workflows.argoproj.io/resubmitted-from-workflow"] = old.name
        annotations = {
            k: v
            for k, v in (old_meta.get("annotations") or {}).items()
            if not k.startswith("tripwire.dev/")
            and k != "kubectl.kubernetes.io/last-applied-configuration"
        }
        spec = copy.deepcopy(found.get("spec") or {})
        # A terminated or stopped workflow is resubmitted to run: drop the stop order.
        spec.pop("shutdown", None)
        workflow: JSON = {
            "apiVersion": API_VERSION,
            "kind": "Workflow",
            "metadata": {
                "generateName": f"{old.name}-",
                "labels": labels,
                "annotations": annotations,
            },
            "spec": spec,
        }
        target = k8s.Target(
            resource=old.resource,
            namespace=old.namespace,
            name="",
            generate_name=f"{old.name}-",
        )
        outcome = await k8s.create_once(kube, target, workflow, firing=firing)
        return _renamed(outcome, "resubmit")

    def _patcher(self, operation: str) -> Callable[[JSON, base.Firing], Awaitable[k8s.K8sOutcome]]:
        async def patch(obj: JSON, firing: base.Firing) -> k8s.K8sOutcome:
            _require_kind(obj, ("Workflow",), operation=operation)
            kube = self._kube.client
            target = await self._named(obj, action=operation)
            body = copy.deepcopy(_PATCHES[operation])
            k8s.stamp(body, firing, label=False)
            try:
                patched = await kube.patch(
                    target.resource, target.name, body, namespace=target.namespace
                )
            except kube_client.KubeError as exc:
                raise k8s.failure(exc, action=operation, target=target) from None
            return k8s.K8sOutcome(operation=operation, target=target, object=patched)

        return patch

    async def _named(self, obj: JSON, *, action: str) -> k8s.Target:
        target = await k8s.locate(self._kube, obj, action=action)
        if not target.name:
            raise errors.PermanentTriggerError(
                f"{action} {target.describe()}: the source needs metadata.name"
            )
        return target

    async def _workflows(self, *, namespace: str | None) -> k8s.Target:
        stub: JSON = {"apiVersion": API_VERSION, "kind": "Workflow", "metadata": {}}
        if namespace:
            stub["metadata"]["namespace"] = namespace
        return await k8s.locate(self._kube, stub, action="submit-from")


def _require_kind(obj: JSON, kinds: tuple[str, ...], *, operation: str) -> str:
    kind = obj.get("kind")
    api_version = obj.get("apiVersion")
    if kind not in kinds or api_version != API_VERSION:
        wanted = " or ".join(kinds)
        hint = ""
        if operation == "submit" and kind in _TEMPLATE_KINDS:
            hint = "; to run a template use operation submit-from"
        raise errors.PermanentTriggerError(
            f"{operation}: the source must be an {API_VERSION} {wanted}, got {api_version}"
            f" {kind}{hint}"
        )
    assert isinstance(kind, str)
    return kind


def _renamed(outcome: k8s.K8sOutcome, operation: str) -> k8s.K8sOutcome:
    return dataclasses.replace(outcome, operation=operation)


__all__ = ["API_VERSION", "ArgoWorkflowTrigger", "ArgoWorkflowTriggerSpec"]
