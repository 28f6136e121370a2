"""The `k8s` and `argoWorkflow` triggers against a real kube-apiserver.

There is no controller-manager and no Argo or Kubeflow controller: the CRDs in `crds/` are
minimal stand-ins (real groups, versions and kinds, a status subresource, an open schema), and
the tests play the controllers by writing `status` (or labels) while the trigger's policy waits.
Policies use millisecond backoffs, so nothing sleeps for seconds.

Each test works in its own namespace (`kube_namespace`); the CRDs are installed once per session
and left in place, so parallel runs do not fight over them.
"""

from __future__ import annotations

import asyncio
import contextlib
import pathlib
import secrets as token
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
import yaml

from sensors import manifest as sensor_manifest
from tests import servers
from triggers import base, k8s, policies
from tripwire import errors, events
from tripwire import secrets as tw_secrets
from tripwire.app import documents
from tripwire.net.kube import client as kube_client

pytestmark = [pytest.mark.integration, pytest.mark.k8s]

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parents[1]
DEADLINE = 20.0
FAST = policies.Backoff(duration=0.02, factor=1.0, steps=500)  # up to 10 s, checks every 20 ms
CRD_KINDS = [
    ("workflows", "argoproj.io"),
    ("workflowtemplates", "argoproj.io"),
    ("clusterworkflowtemplates", "argoproj.io"),
    ("cronworkflows", "argoproj.io"),
    ("tfjobs", "kubeflow.org"),
    ("pytorchjobs", "kubeflow.org"),
    ("experiments", "kubeflow.org"),
    ("trainjobs", "trainer.kubeflow.org"),
]
ARGO = "argoproj.io/v1alpha1"

EVENT = events.Event(
    id="ev-1",
    source="hooks",
    subject="push",
    type="webhook",
    data={
        "body": {
            "commit": "c0ffee",
            "workers": 3,
            "epochs": "2",
            "nodes": 4,
            "maxTrials": 6,
            "message": "hello from the webhook",
            "dataset": "s3://data/2024-06-01",
            "value": "v2",
        }
    },
)
DEPENDENCIES = ("tf", "pytorch", "train", "tune", "hello", "push")


def _firing(key: str | None = None) -> base.Firing:
    return base.Firing(
        key=key or token.token_hex(16),
        sensor="s",
        trigger="t",
        events=dict.fromkeys(DEPENDENCIES, EVENT),
    )


# --------------------------------------------------------------------------------------------
# Fixtures.


def _kubectl(kube: servers.KubeEndpoint, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        kube.kubectl_cmd(*args), capture_output=True, text=True, timeout=60, check=False
    )


@pytest.fixture(scope="session")
def crds(kube: servers.KubeEndpoint) -> None:
    """Install the stand-in CRDs (idempotent: `apply`) and wait until they serve objects."""
    applied = _kubectl(kube, "apply", "-f", str(HERE / "crds"))
    assert applied.returncode == 0, applied.stderr
    names = [f"crd/{plural}.{group}" for plural, group in CRD_KINDS]
    established = _kubectl(kube, "wait", "--for=condition=Established", "--timeout=60s", *names)
    assert established.returncode == 0, established.stderr
    # Right after Established the storage may still answer 429: wait until a list works.
    deadline = time.monotonic() + 60
    for plural, group in CRD_KINDS:
        while (listed := _kubectl(kube, "get", f"{plural}.{group}", "-A")).returncode != 0:
            assert time.monotonic() < deadline, listed.stderr
            time.sleep(0.2)


@pytest.fixture
async def client(kube: servers.KubeEndpoint, crds: None) -> AsyncIterator[kube_client.Client]:
    config = kube_client.load_config(kubeconfig=str(kube.kubeconfig))
    shared = kube_client.Client(config)
    async with contextlib.AsyncExitStack() as stack:
        await shared.start(stack)
        yield shared


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as shared:
        yield shared


Make = Callable[..., Awaitable[Any]]


@pytest.fixture
async def make(
    client: kube_client.Client, session: aiohttp.ClientSession, kube_namespace: str
) -> AsyncIterator[Make]:
    """Build and start a trigger of `kind` with the shared client, in the test's namespace."""
    async with contextlib.AsyncExitStack() as stack:

        async def build(kind: str, spec: Any, policy: Any = None) -> Any:
            context = base.TriggerContext(
                sensor="s",
                trigger="t",
                session=session,
                secrets=tw_secrets.LocalResolver(),
                policy=policy,
                kube=client,
                namespace=kube_namespace,
            )
            trigger = base.load(kind)(spec=spec, context=context)
            await trigger.start(stack)
            return trigger

        yield build


async def _resource(client: kube_client.Client, api_version: str, kind: str) -> Any:
    return await client.resource(api_version, kind)


async def _by_key(
    client: kube_client.Client, api_version: str, kind: str, *, namespace: str, key: str
) -> list[dict[str, Any]]:
    res = await _resource(client, api_version, kind)
    listed = await client.list(
        res, namespace=namespace, label_selector=f"{k8s.TRIGGER_KEY_LABEL}={key}"
    )
    items: list[dict[str, Any]] = listed["items"]
    return items


async def _appears(
    client: kube_client.Client, api_version: str, kind: str, *, namespace: str, key: str
) -> dict[str, Any]:
    """Wait (polling every 10 ms) for the object a firing with `key` creates."""
    async with asyncio.timeout(DEADLINE):
        while True:
            items = await _by_key(client, api_version, kind, namespace=namespace, key=key)
            if items:
                return items[0]
            await asyncio.sleep(0.01)


def _example(path: str, trigger_name: str) -> tuple[str, Any, policies.TriggerPolicy | None]:
    """The kind, spec and policy of one trigger of an example, exactly as loaded by `run`."""
    loaded = documents.load([REPO / "examples" / path])
    for sensor in loaded.sensors:
        for trigger in sensor.spec.triggers:
            if trigger.template.name == trigger_name:
                kind, spec = trigger.template.kind()
                return kind, spec, trigger.policy
    raise AssertionError(f"no trigger {trigger_name} in examples/{path}")


def _fast(policy: policies.TriggerPolicy | None, **k8s_fields: Any) -> policies.TriggerPolicy:
    """The example's policy with a millisecond backoff (and any other k8s field replaced)."""
    assert policy is not None and policy.k8s is not None
    k8s_policy = policy.k8s.model_copy(update={"backoff": FAST, **k8s_fields})
    return policy.model_copy(update={"k8s": k8s_policy})


def _configmap(name: str, **fields: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, **fields}


# --------------------------------------------------------------------------------------------
# k8s: create and idempotency.


async def test_generate_name_create_twice_with_one_key_makes_one_object(
    make: Make, client: kube_client.Client, kube_namespace: str
) -> None:
    template = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"generateName": "cfg-"},
        "data": {"a": "1"},
    }
    trigger = await make(
        "k8s",
        {
            "source": {"resource": template},
            "parameters": [
                {"src": {"dependencyName": "push", "dataKey": "body.commit"}, "dest": "data.commit"}
            ],
        },
    )
    firing = _firing()
    first = await trigger.fire(firing)
    again = await trigger.fire(firing)  # a redelivery of the same firing
    assert not first.reused and again.reused
    assert first.target.name == again.target.name and first.target.name.startswith("cfg-")
    assert first.object["data"] == {"a": "1", "commit": "c0ffee"}
    meta = first.object["metadata"]
    assert meta["namespace"] == kube_namespace
    assert meta["labels"][k8s.TRIGGER_KEY_LABEL] == firing.key
    assert meta["annotations"][k8s.SENSOR_ANNOTATION] == "s/t"
    items = await _by_key(client, "v1", "ConfigMap", namespace=kube_namespace, key=firing.key)
    assert len(items) == 1
    other = await trigger.fire(_firing())  # a new firing makes a new object
    assert other.target.name != first.target.name


async def test_fixed_name_conflict(make: Make, kube_namespace: str) -> None:
    trigger = await make("k8s", {"source": {"resource": _configmap("fixed", data={"a": "1"})}})
    firing = _firing()
    created = await trigger.fire(firing)
    assert created.target.describe() == f"ConfigMap {kube_namespace}/fixed"
    assert (await trigger.fire(firing)).reused  # same key: the earlier delivery's object
    with pytest.raises(errors.PermanentTriggerError) as failed:
        await trigger.fire(_firing())
    assert str(failed.value).startswith(
        f"create ConfigMap {kube_namespace}/fixed: object exists and was not created by this"
        f" firing (its {k8s.TRIGGER_KEY_LABEL} is {firing.key})"
    )


async def test_api_errors_name_the_object_and_carry_the_apiserver_message(
    make: Make, kube_namespace: str
) -> None:
    invalid = await make("k8s", {"source": {"resource": _configmap("Not_A_Name")}})
    with pytest.raises(errors.PermanentTriggerError) as failed:
        await invalid.fire(_firing())
    message = str(failed.value)
    assert message.startswith(f"create ConfigMap {kube_namespace}/Not_A_Name: 422 Invalid:")
    assert "RFC 1123" in message
    unknown = await make(
        "k8s",
        {
            "source": {
                "resource": {
                    "apiVersion": "example.org/v1",
                    "kind": "Gizmo",
                    "metadata": {"name": "g"},
                }
            }
        },
    )
    with pytest.raises(errors.PermanentTriggerError, match="is its CRD installed"):
        await unknown.fire(_firing())
    no_kind = await make("k8s", {"source": {"resource": {"metadata": {"name": "x"}}}})
    with pytest.raises(errors.PermanentTriggerError, match="needs apiVersion and kind"):
        await no_kind.fire(_firing())


# --------------------------------------------------------------------------------------------
# k8s: update, patch, delete.


async def test_update_replaces_keeps_omitted_fields_and_creates_when_missing(
    make: Make, client: kube_client.Client, kube_namespace: str
) -> None:
    res = await _resource(client, "v1", "ConfigMap")
    await client.create(
        res,
        _configmap(
            "cfg", data={"a": "1", "b": "2"}, metadata={"name": "cfg", "labels": {"keep": "me"}}
        ),
        namespace=kube_namespace,
    )
    update = await make(
        "k8s",
        {
            "operation": "update",
            "source": {"resource": _configmap("cfg", data={"a": "updated"})},
        },
    )
    firing = _firing()
    updated = (await update.fire(firing)).object
    assert updated["data"] == {"a": "updated", "b": "2"}
    assert updated["metadata"]["labels"] == {"keep": "me"}
    assert updated["metadata"]["annotations"][k8s.TRIGGER_KEY_LABEL] == firing.key
    # an update of an object that does not exist creates it (Argo's behaviour)
    create = await make(
        "k8s", {"operation": "update", "source": {"resource": _configmap("new", data={"x": "y"})}}
    )
    made = await create.fire(firing)
    assert made.operation == "create" and made.object["data"] == {"x": "y"}


async def test_live_object_update_applies_parameters_to_the_live_object(
    make: Make, client: kube_client.Client, kube_namespace: str
) -> None:
    res = await _resource(client, "v1", "ConfigMap")
    await client.create(res, _configmap("live", data={"a": "1"}), namespace=kube_namespace)
    trigger = await make(
        "k8s",
        {
            "operation": "update",
            "liveObject": True,
            "source": {"resource": _configmap("live")},
            "parameters": [
                {"src": {"dependencyName": "push", "dataKey": "body.value"}, "dest": "data.b"}
            ],
        },
    )
    assert (await trigger.fire(_firing())).object["data"] == {"a": "1", "b": "v2"}
    gone = await make(
        "k8s",
        {"operation": "update", "liveObject": True, "source": {"resource": _configmap("absent")}},
    )
    with pytest.raises(errors.PermanentTriggerError, match="no such object"):
        await gone.fire(_firing())


@pytest.mark.parametrize("strategy", ["merge", "strategic", "application/merge-patch+json"])
async def test_patch(
    make: Make, client: kube_client.Client, kube_namespace: str, strategy: str
) -> None:
    res = await _resource(client, "v1", "ConfigMap")
    await client.create(res, _configmap("p", data={"a": "1"}), namespace=kube_namespace)
    trigger = await make(
        "k8s",
        {
            "operation": "patch",
            "patchStrategy": strategy,
            "source": {"resource": _configmap("p", data={"b": "2"})},
        },
    )
    patched = (await trigger.fire(_firing())).object
    assert patched["data"] == {"a": "1", "b": "2"}
    assert patched["metadata"]["annotations"][k8s.SENSOR_ANNOTATION] == "s/t"


async def test_json_patch_and_missing_object(
    make: Make, client: kube_client.Client, kube_namespace: str
) -> None:
    res = await _resource(client, "v1", "ConfigMap")
    await client.create(res, _configmap("j", data={"a": "1"}), namespace=kube_namespace)
    ops = [{"op": "replace", "path": "/data/a", "value": "from-json-patch"}]
    trigger = await make(
        "k8s",
        {
            "operation": "patch",
            "patchStrategy": "json",
            "source": {"resource": {**_configmap("j"), "patch": ops}},
        },
    )
    assert (await trigger.fire(_firing())).object["data"] == {"a": "from-json-patch"}
    missing = await make(
        "k8s", {"operation": "patch", "source": {"resource": _configmap("nope", data={"b": "2"})}}
    )
    with pytest.raises(
        errors.PermanentTriggerError, match=f"patch ConfigMap {kube_namespace}/nope: 404"
    ):
        await missing.fire(_firing())


async def test_delete_is_idempotent(
    make: Make, client: kube_client.Client, kube_namespace: str
) -> None:
    res = await _resource(client, "v1", "ConfigMap")
    await client.create(res, _configmap("d"), namespace=kube_namespace)
    trigger = await make("k8s", {"operation": "delete", "source": {"resource": _configmap("d")}})
    first = await trigger.fire(_firing())
    assert first.object is None and not first.reused
    assert (await trigger.fire(_firing())).reused  # 404: already gone counts as done
    with pytest.raises(kube_client.ApiError):
        await client.get(res, "d", namespace=kube_namespace)


async def test_configmap_source(
    make: Make, client: kube_client.Client, kube_namespace: str
) -> None:
    res = await _resource(client, "v1", "ConfigMap")
    tfjob = (
        "apiVersion: kubeflow.org/v1\nkind: TFJob\nmetadata: {generateName: from-cm-}\n"
        "spec: {tfReplicaSpecs: {Worker: {replicas: 1}}}\n"
    )
    await client.create(
        res, _configmap("templates", data={"tfjob.yaml": tfjob}), namespace=kube_namespace
    )
    # No namespace in the selector: the sensor's namespace (the context's) is used.
    trigger = await make(
        "k8s",
        {
            "source": {"configmap": {"name": "templates", "key": "tfjob.yaml"}},
            "parameters": [
                {
                    "src": {"dependencyName": "tf", "dataKey": "body.workers", "useRawData": True},
                    "dest": "spec.tfReplicaSpecs.Worker.replicas",
                }
            ],
        },
    )
    outcome = await trigger.fire(_firing())
    assert outcome.target.describe().startswith(f"TFJob {kube_namespace}/from-cm-")
    assert outcome.object["spec"]["tfReplicaSpecs"]["Worker"]["replicas"] == 3
    no_key = await make(
        "k8s",
        {
            "source": {
                "configmap": {"name": "templates", "key": "nope", "namespace": kube_namespace}
            }
        },
    )
    with pytest.raises(errors.PermanentTriggerError, match=r"no such key.*its keys: tfjob\.yaml"):
        await no_key.fire(_firing())
    no_map = await make("k8s", {"source": {"configmap": {"name": "absent", "key": "k"}}})
    with pytest.raises(errors.PermanentTriggerError, match="no such ConfigMap"):
        await no_map.fire(_firing())


async def test_fallback_client_from_kubeconfig(
    kube: servers.KubeEndpoint,
    crds: None,
    session: aiohttp.ClientSession,
    kube_namespace: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without `TriggerContext.kube` the trigger builds (and closes) a client of its own."""
    monkeypatch.setenv("KUBECONFIG", str(kube.kubeconfig))
    context = base.TriggerContext(
        sensor="s",
        trigger="t",
        session=session,
        secrets=tw_secrets.LocalResolver(),
        namespace=kube_namespace,
    )
    trigger = k8s.K8sTrigger(spec={"source": {"resource": _configmap("own")}}, context=context)
    async with contextlib.AsyncExitStack() as stack:
        await trigger.start(stack)
        assert trigger.kube.own
        outcome = await trigger.fire(_firing())
    assert outcome.target.describe() == f"ConfigMap {kube_namespace}/own"


# --------------------------------------------------------------------------------------------
# Kubeflow jobs from the examples, with the test as their controller.

KUBEFLOW = [
    ("kubeflow", "mnist", "kubeflow.org/v1", "TFJob", "Succeeded"),
    ("kubeflow", "mnist-ddp", "kubeflow.org/v1", "PyTorchJob", "Succeeded"),
    ("kubeflow", "finetune", "trainer.kubeflow.org/v1alpha1", "TrainJob", "Complete"),
    (
        "kubeflow",
        "tune-lr",
        "kubeflow.org/v1beta1",
        "Experiment",
        "Succeeded",
    ),
]


async def _controller(
    client: kube_client.Client,
    api_version: str,
    kind: str,
    *,
    namespace: str,
    key: str,
    conditions: list[dict[str, str]],
) -> dict[str, Any]:
    """Play the job's controller: once the object exists, write its status a moment later."""
    obj = await _appears(client, api_version, kind, namespace=namespace, key=key)
    await asyncio.sleep(0.05)
    res = await _resource(client, api_version, kind)
    status = {"conditions": [{"type": "Created", "status": "True"}, *conditions]}
    patched: dict[str, Any] = await client.patch(
        res, obj["metadata"]["name"], {"status": status}, namespace=namespace, subresource="status"
    )
    return patched


@pytest.mark.parametrize(("example", "name", "api_version", "kind", "success"), KUBEFLOW)
async def test_kubeflow_job_policy_waits_for_success(
    make: Make,
    client: kube_client.Client,
    kube_namespace: str,
    example: str,
    name: str,
    api_version: str,
    kind: str,
    success: str,
) -> None:
    trigger_kind, spec, policy = _example(example, name)
    trigger = await make(trigger_kind, spec, _fast(policy))
    firing = _firing()
    async with asyncio.TaskGroup() as tasks:
        fired = tasks.create_task(trigger.fire(firing), name="fire")
        controller = tasks.create_task(
            _controller(
                client,
                api_version,
                kind,
                namespace=kube_namespace,
                key=firing.key,
                conditions=[{"type": success, "status": "True", "reason": "JobSucceeded"}],
            ),
            name="controller",
        )
    outcome, written = fired.result(), controller.result()
    assert outcome.target.name == written["metadata"]["name"]
    assert outcome.target.resource.kind == kind
    # the parameters of the example reached the object
    spec_written = written["spec"]
    if kind == "TFJob":
        assert spec_written["tfReplicaSpecs"]["Worker"]["replicas"] == 3
        assert written["metadata"]["labels"]["commit"] == "c0ffee"
    elif kind == "PyTorchJob":
        assert spec_written["pytorchReplicaSpecs"]["Worker"]["template"]["spec"]["containers"][0][
            "args"
        ] == ["--epochs", "2"]
    elif kind == "TrainJob":
        assert spec_written["trainer"]["numNodes"] == 4
    else:
        assert spec_written["maxTrialCount"] == 6
    # a redelivery finds the finished job and succeeds without creating another
    assert (await trigger.fire(firing)).reused
    items = await _by_key(client, api_version, kind, namespace=kube_namespace, key=firing.key)
    assert len(items) == 1


@pytest.mark.parametrize(("example", "name", "api_version", "kind", "success"), KUBEFLOW)
async def test_kubeflow_job_failure_is_permanent(
    make: Make,
    client: kube_client.Client,
    kube_namespace: str,
    example: str,
    name: str,
    api_version: str,
    kind: str,
    success: str,
) -> None:
    trigger_kind, spec, policy = _example(example, name)
    trigger = await make(trigger_kind, spec, _fast(policy))
    firing = _firing()
    failed = [{"type": "Failed", "status": "True", "message": f"{kind} worker-0 exited with 1"}]
    with pytest.raises(ExceptionGroup) as group:
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(trigger.fire(firing), name="fire")
            tasks.create_task(
                _controller(
                    client,
                    api_version,
                    kind,
                    namespace=kube_namespace,
                    key=firing.key,
                    conditions=failed,
                ),
                name="controller",
            )
    [error] = group.value.exceptions
    assert isinstance(error, errors.PermanentTriggerError)
    assert str(error).startswith(f"create {kind} {kube_namespace}/")
    assert str(error).endswith(
        f"policy failed: condition Failed=True: {kind} worker-0 exited with 1"
    )


@pytest.mark.parametrize("error_on_timeout", [True, False])
async def test_kubeflow_policy_timeout(
    make: Make, client: kube_client.Client, kube_namespace: str, error_on_timeout: bool
) -> None:
    trigger_kind, spec, policy = _example("kubeflow", "mnist")
    short = policies.Backoff(duration=0.01, factor=1.5, steps=4)
    trigger = await make(
        trigger_kind,
        spec,
        _fast(policy, backoff=short, error_on_backoff_timeout=error_on_timeout),
    )
    firing = _firing()
    if error_on_timeout:
        with pytest.raises(errors.TemporaryTriggerError, match="policy not met after 4 checks"):
            await trigger.fire(firing)
    else:
        outcome = await trigger.fire(firing)  # counted as success, as in Argo
        assert outcome.object["metadata"]["labels"][k8s.TRIGGER_KEY_LABEL] == firing.key
    items = await _by_key(
        client, "kubeflow.org/v1", "TFJob", namespace=kube_namespace, key=firing.key
    )
    assert len(items) == 1


# --------------------------------------------------------------------------------------------
# Argo Workflows.


async def test_argo_submit_from_example_with_label_policy(
    make: Make, client: kube_client.Client, kube_namespace: str
) -> None:
    kind, spec, policy = _example("argo-workflow", "hello-world")
    trigger = await make(kind, spec, _fast(policy))
    firing = _firing()

    async def workflow_controller() -> None:
        workflow = await _appears(
            client, ARGO, "Workflow", namespace=kube_namespace, key=firing.key
        )
        res = await _resource(client, ARGO, "Workflow")
        phase = {"metadata": {"labels": {"workflows.argoproj.io/phase": "Succeeded"}}}
        await client.patch(res, workflow["metadata"]["name"], phase, namespace=kube_namespace)

    async with asyncio.TaskGroup() as tasks:
        fired = tasks.create_task(trigger.fire(firing), name="fire")
        tasks.create_task(workflow_controller(), name="controller")
    outcome = fired.result()
    assert outcome.operation == "submit" and outcome.target.name.startswith("hello-world-")
    arguments = outcome.object["spec"]["arguments"]["parameters"]
    assert arguments == [{"name": "message", "value": "hello from the webhook"}]
    assert (await trigger.fire(firing)).reused
    assert (
        len(await _by_key(client, ARGO, "Workflow", namespace=kube_namespace, key=firing.key)) == 1
    )


async def test_argo_submit_refuses_other_kinds(make: Make) -> None:
    template = {"apiVersion": ARGO, "kind": "WorkflowTemplate", "metadata": {"name": "x"}}
    trigger = await make("argoWorkflow", {"source": {"resource": template}})
    with pytest.raises(errors.PermanentTriggerError, match="use operation submit-from"):
        await trigger.fire(_firing())


async def test_argo_submit_from_workflow_template(
    make: Make, client: kube_client.Client, kube_namespace: str
) -> None:
    res = await _resource(client, ARGO, "WorkflowTemplate")
    cluster_template = (REPO / "examples/argo-workflow/cluster/workflow-template.yaml").read_text()
    await client.create(res, yaml.safe_load(cluster_template), namespace=kube_namespace)
    kind, spec, _ = _example("argo-workflow", "train-pipeline")
    trigger = await make(kind, spec)
    firing = _firing()
    outcome = await trigger.fire(firing)
    workflow = outcome.object
    assert outcome.operation == "submit-from"
    assert workflow["kind"] == "Workflow" and workflow["metadata"]["name"].startswith(
        "train-pipeline-"
    )
    assert workflow["spec"] == {
        "workflowTemplateRef": {"name": "train-pipeline"},
        "arguments": {"parameters": [{"name": "dataset", "value": "s3://data/2024-06-01"}]},
    }
    labels = workflow["metadata"]["labels"]
    assert labels["workflows.argoproj.io/workflow-template"] == "train-pipeline"
    assert labels[k8s.TRIGGER_KEY_LABEL] == firing.key
    assert (await trigger.fire(firing)).target.name == outcome.target.name
    missing = await make(
        "argoWorkflow",
        {
            "operation": "submit-from",
            "source": {
                "resource": {
                    "apiVersion": ARGO,
                    "kind": "WorkflowTemplate",
                    "metadata": {"name": "nope"},
                }
            },
        },
    )
    with pytest.raises(
        errors.PermanentTriggerError,
        match=f"submit-from WorkflowTemplate {kube_namespace}/nope: 404",
    ):
        await missing.fire(_firing())


async def test_argo_submit_from_cron_workflow(
    make: Make, client: kube_client.Client, kube_namespace: str
) -> None:
    res = await _resource(client, ARGO, "CronWorkflow")
    workflow_spec = {
        "entrypoint": "main",
        "templates": [{"name": "main", "container": {"image": "busybox"}}],
    }
    cron = {
        "apiVersion": ARGO,
        "kind": "CronWorkflow",
        "metadata": {"name": "nightly"},
        "spec": {
            "schedule": "0 2 * * *",
            "workflowSpec": workflow_spec,
            "workflowMetadata": {"labels": {"team": "ml"}},
        },
    }
    await client.create(res, cron, namespace=kube_namespace)
    trigger = await make(
        "argoWorkflow",
        {
            "operation": "submit-from",
            "source": {
                "resource": {
                    "apiVersion": ARGO,
                    "kind": "CronWorkflow",
                    "metadata": {"name": "nightly"},
                }
            },
        },
    )
    workflow = (await trigger.fire(_firing())).object
    assert workflow["metadata"]["name"].startswith("nightly-")
    assert workflow["spec"] == workflow_spec
    assert workflow["metadata"]["labels"]["team"] == "ml"
    assert workflow["metadata"]["labels"]["workflows.argoproj.io/cron-workflow"] == "nightly"


async def test_argo_suspend_resume_terminate_stop_resubmit(
    make: Make, client: kube_client.Client, kube_namespace: str
) -> None:
    res = await _resource(client, ARGO, "Workflow")
    original = {
        "apiVersion": ARGO,
        "kind": "Workflow",
        "metadata": {
            "name": "run-1",
            "labels": {"team": "ml", "workflows.argoproj.io/phase": "Failed"},
        },
        "spec": {
            "entrypoint": "main",
            "templates": [{"name": "main", "container": {"image": "busybox"}}],
        },
    }
    await client.create(res, original, namespace=kube_namespace)
    # The target's name comes from the source after parameters (here: from the event).
    source = {"apiVersion": ARGO, "kind": "Workflow", "metadata": {"name": "placeholder"}}
    name_param = [
        {
            "src": {"dependencyName": "push", "dataKey": "body.name", "value": "run-1"},
            "dest": "metadata.name",
        }
    ]

    async def run(operation: str) -> Any:
        trigger = await make(
            "argoWorkflow",
            {"operation": operation, "source": {"resource": source}, "parameters": name_param},
        )
        return await trigger.fire(_firing())

    assert (await run("suspend")).object["spec"]["suspend"] is True
    assert "suspend" not in (await run("resume")).object["spec"]
    assert (await run("terminate")).object["spec"]["shutdown"] == "Terminate"
    assert (await run("stop")).object["spec"]["shutdown"] == "Stop"
    live = await client.get(res, "run-1", namespace=kube_namespace)
    assert live["metadata"]["annotations"][k8s.SENSOR_ANNOTATION] == "s/t"

    trigger = await make(
        "argoWorkflow",
        {"operation": "resubmit", "source": {"resource": source}, "parameters": name_param},
    )
    firing = _firing()
    resubmitted = await trigger.fire(firing)
    new = resubmitted.object
    assert resubmitted.operation == "resubmit"
    assert new["metadata"]["name"].startswith("run-1-")
    assert new["spec"] == original["spec"]  # without the shutdown order
    labels = new["metadata"]["labels"]
    assert labels["team"] == "ml" and "workflows.argoproj.io/phase" not in labels
    assert labels["workflows.argoproj.io/resubmitted-from-workflow"] == "run-1"
    assert (await trigger.fire(firing)).target.name == resubmitted.target.name  # idempotent

    missing = await make(
        "argoWorkflow",
        {"operation": "stop", "source": {"resource": {**source, "metadata": {"name": "nope"}}}},
    )
    with pytest.raises(
        errors.PermanentTriggerError, match=f"stop Workflow {kube_namespace}/nope: 404"
    ):
        await missing.fire(_firing())


def test_examples_parse_as_sensors() -> None:
    """Guard for `_example`: the examples keep the trigger names these tests use."""
    names = set()
    for path in ("argo-workflow", "kubeflow"):
        for sensor in documents.load([REPO / "examples" / path]).sensors:
            assert isinstance(sensor, sensor_manifest.SensorBase)
            names |= {t.template.name for t in sensor.spec.triggers}
    assert {"hello-world", "train-pipeline", "mnist", "mnist-ddp", "finetune", "tune-lr"} <= names
