"""The Kubernetes trigger kinds without a cluster: policy evaluation and backoff, spec
validation, parameters applied to a resource, error mapping, the client fallback, examples.

What needs an apiserver (create/update/patch/delete, idempotency, waiting on real objects) is
in tests/integration/test_k8s_triggers.py.
"""

from __future__ import annotations

import contextlib
import datetime
import pathlib
from collections.abc import AsyncIterator
from typing import Any, cast

import aiohttp
import pydantic
import pytest

from triggers import argo_workflow, base, k8s, policies, sources
from tripwire import errors, events, secrets
from tripwire.app import cli
from tripwire.net.kube import client as kube_client

REPO = pathlib.Path(__file__).resolve().parents[2]

EVENT = events.Event(
    id="ev-1",
    source="ml",
    subject="tf",
    type="webhook",
    data={"body": {"commit": "c0ffee", "workers": 4, "message": "hi"}},
    time=datetime.datetime(2024, 1, 2, tzinfo=datetime.UTC),
)
KEY = "0123456789abcdef0123456789abcdef"
FIRING = base.Firing(key=KEY, sensor="s", trigger="t", events={"tf": EVENT})

TFJOB: dict[str, Any] = {
    "apiVersion": "kubeflow.org/v1",
    "kind": "TFJob",
    "metadata": {"generateName": "mnist-", "labels": {"commit": "unknown"}},
    "spec": {"tfReplicaSpecs": {"Worker": {"replicas": 1}}},
}


def _obj(*, labels: dict[str, str] | None = None, conditions: Any = None) -> dict[str, Any]:
    obj: dict[str, Any] = {"metadata": {"name": "j", "labels": labels or {}}}
    if conditions is not None:
        obj["status"] = {"conditions": conditions}
    return obj


def _policy(**fields: Any) -> policies.K8sPolicy:
    return policies.K8sPolicy.model_validate(fields)


# --------------------------------------------------------------------------------------------
# Policy evaluation (pure).


def test_policy_without_requirements_succeeds_at_once() -> None:
    assert _policy().evaluate(_obj()).verdict is policies.Verdict.SUCCEEDED


def test_policy_labels() -> None:
    policy = _policy(labels={"workflows.argoproj.io/phase": "Succeeded"})
    pending = policy.evaluate(_obj(labels={"workflows.argoproj.io/phase": "Running"}))
    assert pending.verdict is policies.Verdict.PENDING
    assert pending.reason == (
        "waiting for label workflows.argoproj.io/phase=Succeeded (is Running)"
    )
    unset = policy.evaluate({"metadata": {}})
    assert "(is unset)" in unset.reason
    done = policy.evaluate(_obj(labels={"workflows.argoproj.io/phase": "Succeeded", "x": "y"}))
    assert done.verdict is policies.Verdict.SUCCEEDED


def test_policy_conditions_all_must_match() -> None:
    policy = _policy(
        labels={"team": "ml"},
        conditions=[{"type": "Succeeded"}, {"type": "Archived", "status": "False"}],
    )
    running = [{"type": "Running", "status": "True"}]
    assert policy.evaluate(_obj(labels={"team": "ml"}, conditions=running)).reason == (
        "waiting for condition Succeeded=True (is absent), condition Archived=False (is absent)"
    )
    half = [{"type": "Succeeded", "status": "True"}, {"type": "Archived", "status": "True"}]
    assert policy.evaluate(_obj(labels={"team": "ml"}, conditions=half)).verdict is (
        policies.Verdict.PENDING
    )
    both = [{"type": "Succeeded", "status": "True"}, {"type": "Archived", "status": "False"}]
    assert policy.evaluate(_obj(labels={"team": "ml"}, conditions=both)).verdict is (
        policies.Verdict.SUCCEEDED
    )
    # labels are required as well as conditions
    assert policy.evaluate(_obj(conditions=both)).verdict is policies.Verdict.PENDING


def test_policy_failure_condition_wins_and_carries_the_message() -> None:
    policy = _policy(conditions=[{"type": "Succeeded"}], failureConditions=[{"type": "Failed"}])
    conditions = [
        {"type": "Succeeded", "status": "True"},
        {"type": "Failed", "status": "True", "reason": "OOM", "message": "worker-0 OOMKilled"},
    ]
    result = policy.evaluate(_obj(conditions=conditions))
    assert result.verdict is policies.Verdict.FAILED
    assert result.reason == "condition Failed=True: worker-0 OOMKilled"
    only_reason = [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}]
    assert policy.evaluate(_obj(conditions=only_reason)).reason == (
        "condition Failed=True: BackoffLimitExceeded"
    )
    not_failed = [{"type": "Failed", "status": "False"}]
    assert policy.evaluate(_obj(conditions=not_failed)).verdict is policies.Verdict.PENDING


def test_policy_latest_condition_of_a_type_wins() -> None:
    policy = _policy(conditions=[{"type": "Succeeded"}])
    history = [{"type": "Succeeded", "status": "False"}, {"type": "Succeeded", "status": "True"}]
    assert policy.evaluate(_obj(conditions=history)).verdict is policies.Verdict.SUCCEEDED


@pytest.mark.parametrize(
    "status", [None, "done", {"conditions": "nope"}, {"conditions": [1, {"status": "True"}]}]
)
def test_policy_survives_malformed_status(status: Any) -> None:
    policy = _policy(conditions=[{"type": "Succeeded"}])
    assert policy.evaluate({"metadata": None, "status": status}).verdict is (
        policies.Verdict.PENDING
    )


def test_policy_camel_case_and_defaults() -> None:
    policy = policies.TriggerPolicy.model_validate(
        {
            "k8s": {
                "labels": {"a": "b"},
                "failureConditions": [{"type": "Failed"}],
                "backoff": {"duration": "250ms", "factor": 2, "steps": 4},
                "errorOnBackoffTimeout": True,
            }
        }
    )
    assert policy.k8s is not None
    assert policy.k8s.error_on_backoff_timeout is True
    assert policy.k8s.failure_conditions[0].status == "True"
    assert list(policy.k8s.backoff.waits()) == [0.25, 0.5, 1.0]
    assert policy.k8s.backoff.max_total_wait() == 1.75
    default = policies.K8sPolicy()
    assert default.error_on_backoff_timeout is False  # Argo's default
    assert len(list(default.backoff.waits())) == default.backoff.steps - 1


def test_backoff_jitter_and_bound() -> None:
    jittered = policies.Backoff(duration=1.0, factor=1.0, jitter=0.5, steps=3)
    assert jittered.max_total_wait() == 3.0
    assert all(1.0 <= w <= 1.5 for w in jittered.waits())
    one = policies.Backoff(steps=1)
    assert list(one.waits()) == [] and one.max_total_wait() == 0.0
    with pytest.raises(pydantic.ValidationError, match="at most 7 days is allowed"):
        policies.Backoff(duration=10.0, factor=2.0, steps=60)
    with pytest.raises(pydantic.ValidationError):
        policies.K8sPolicy.model_validate({"backoff": {"steps": 0}})
    with pytest.raises(pydantic.ValidationError):
        policies.K8sPolicy.model_validate({"labelz": {}})


# --------------------------------------------------------------------------------------------
# Spec validation.


def test_k8s_spec_defaults_and_patch_strategies() -> None:
    spec = k8s.K8sTriggerSpec.model_validate({"source": {"resource": TFJOB}})
    assert (spec.operation, spec.patch_strategy, spec.live_object) == ("create", "merge", False)
    for given, wanted in [
        ("strategic", "strategic"),
        ("json", "json"),
        ("application/merge-patch+json", "merge"),
        ("application/strategic-merge-patch+json", "strategic"),
        ("application/json-patch+json", "json"),
    ]:
        patched = k8s.K8sTriggerSpec.model_validate(
            {"source": {"resource": TFJOB}, "operation": "patch", "patchStrategy": given}
        )
        assert patched.patch_type == wanted


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"source": {"resource": TFJOB}, "operation": "apply"}, "operation"),
        ({"source": {"resource": TFJOB}, "patchStrategy": "apply"}, "patchStrategy"),
        ({"source": {"resource": TFJOB}, "liveObject": True}, "liveObject works with operation"),
        ({"source": {}}, "set exactly one of"),
        ({"operation": "create"}, "source"),
        ({"source": {"resource": TFJOB}, "namespace": "x"}, "namespace"),
        (
            {"source": {"resource": TFJOB}, "parameters": [{"src": {}, "dest": "a"}]},
            "dependencyName",
        ),
    ],
)
def test_k8s_invalid_specs(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(pydantic.ValidationError, match=message):
        k8s.K8sTriggerSpec.model_validate(spec)


def test_argo_spec() -> None:
    spec = argo_workflow.ArgoWorkflowTriggerSpec.model_validate({"source": {"resource": {}}})
    assert spec.operation == "submit"
    for operation in ["submit-from", "suspend", "resume", "terminate", "stop", "resubmit"]:
        argo_workflow.ArgoWorkflowTriggerSpec.model_validate(
            {"source": {"resource": {}}, "operation": operation}
        )
    with pytest.raises(pydantic.ValidationError, match="use resubmit"):
        argo_workflow.ArgoWorkflowTriggerSpec.model_validate(
            {"source": {"resource": {}}, "operation": "retry"}
        )
    with pytest.raises(pydantic.ValidationError, match="set values with parameters"):
        argo_workflow.ArgoWorkflowTriggerSpec.model_validate(
            {"source": {"resource": {}}, "args": ["--serviceaccount", "x"]}
        )
    # an empty `args` (as ported Argo manifests often have) is fine
    argo_workflow.ArgoWorkflowTriggerSpec.model_validate({"source": {"resource": {}}, "args": []})


def test_registered_kinds() -> None:
    assert base.load("k8s") is k8s.K8sTrigger
    assert base.load("argoWorkflow") is argo_workflow.ArgoWorkflowTrigger
    assert k8s.K8sTrigger.uses_kubernetes and argo_workflow.ArgoWorkflowTrigger.uses_kubernetes


@pytest.mark.parametrize("example", ["argo-workflow", "kubeflow"])
def test_examples_validate(example: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["validate", str(REPO / "examples" / example)]) == 0
    assert capsys.readouterr().out.startswith("ok: 1 gateway(s)")


# --------------------------------------------------------------------------------------------
# Stages that need no API: resolve (inline) and parameters.


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as shared:
        yield shared


class _NoApi:
    """Stands in for a started client where a stage must not talk to the API at all."""

    config = kube_client.Config(host="https://unused.invalid", headers={}, ssl=False)


def _context(session: aiohttp.ClientSession, **fields: Any) -> base.TriggerContext:
    return base.TriggerContext(
        sensor="s", trigger="t", session=session, secrets=secrets.LocalResolver(), **fields
    )


async def test_parameters_are_applied_to_the_resolved_resource(
    session: aiohttp.ClientSession,
) -> None:
    spec = {
        "source": {"resource": TFJOB},
        "parameters": [
            {
                "src": {"dependencyName": "tf", "dataKey": "body.commit"},
                "dest": "metadata.labels.commit",
            },
            {
                "src": {"dependencyName": "tf", "dataKey": "body.workers", "useRawData": True},
                "dest": "spec.tfReplicaSpecs.Worker.replicas",
            },
            {"src": {"dependencyName": "absent", "dataKey": "x"}, "dest": "metadata.labels.skip"},
        ],
    }
    trigger = k8s.K8sTrigger(spec=spec, context=_context(session, kube=_NoApi()))
    resolved = await trigger.resolve(FIRING)
    edited = trigger.apply_parameters(resolved, FIRING)
    assert edited["metadata"]["labels"] == {"commit": "c0ffee"}
    assert edited["spec"]["tfReplicaSpecs"]["Worker"]["replicas"] == 4
    # the manifest's template is untouched: the next firing starts from the original
    assert TFJOB["metadata"]["labels"] == {"commit": "unknown"}
    assert (await trigger.resolve(FIRING))["spec"]["tfReplicaSpecs"]["Worker"]["replicas"] == 1


async def test_a_template_must_be_an_object(session: aiohttp.ClientSession) -> None:
    trigger = k8s.K8sTrigger(
        spec={"source": {"inline": "- a\n- b\n"}}, context=_context(session, kube=_NoApi())
    )
    with pytest.raises(errors.PermanentTriggerError, match="is a list, not a Kubernetes object"):
        await trigger.resolve(FIRING)


async def test_argo_parameters_fill_workflow_arguments(session: aiohttp.ClientSession) -> None:
    text = (REPO / "examples" / "argo-workflow" / "sensor.yaml").read_text()
    assert "dest: spec.arguments.parameters.0.value" in text
    workflow = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"generateName": "hello-"},
        "spec": {"arguments": {"parameters": [{"name": "message", "value": "hello"}]}},
    }
    trigger = argo_workflow.ArgoWorkflowTrigger(
        spec={
            "source": {"resource": workflow},
            "parameters": [
                {
                    "src": {"dependencyName": "tf", "dataKey": "body.message"},
                    "dest": "spec.arguments.parameters.0.value",
                }
            ],
        },
        context=_context(session, kube=_NoApi()),
    )
    edited = trigger.apply_parameters(await trigger.resolve(FIRING), FIRING)
    assert edited["spec"]["arguments"]["parameters"] == [{"name": "message", "value": "hi"}]


# --------------------------------------------------------------------------------------------
# Pure helpers: labels, stamping, merging, error mapping.


def test_label_value() -> None:
    assert k8s.label_value(KEY) == KEY
    assert k8s.label_value("trigger-key-1") == "trigger-key-1"
    long = k8s.label_value("x" * 64)
    odd = k8s.label_value("sensor/trigger:1")
    for value in (long, odd):
        assert len(value) == 32 and int(value, 16) >= 0
    assert k8s.label_value("sensor/trigger:1") == odd  # stable


def test_stamp() -> None:
    created: dict[str, Any] = {"metadata": {"labels": {"a": "b"}}}
    k8s.stamp(created, FIRING, label=True)
    assert created["metadata"] == {
        "labels": {"a": "b", k8s.TRIGGER_KEY_LABEL: KEY},
        "annotations": {k8s.SENSOR_ANNOTATION: "s/t"},
    }
    updated: dict[str, Any] = {}
    k8s.stamp(updated, FIRING, label=False)
    assert updated["metadata"] == {
        "annotations": {k8s.SENSOR_ANNOTATION: "s/t", k8s.TRIGGER_KEY_LABEL: KEY}
    }


def test_fill_missing_keeps_what_the_template_omits() -> None:
    live = {
        "metadata": {"name": "n", "resourceVersion": "7", "labels": {"owner": "x"}},
        "spec": {"replicas": 1, "template": {"image": "old"}, "paused": True},
    }
    template = {"metadata": {"name": "n", "labels": {"team": "ml"}}, "spec": {"replicas": 3}}
    merged = k8s.fill_missing(template, live)
    assert merged == {
        "metadata": {"name": "n", "resourceVersion": "7", "labels": {"team": "ml", "owner": "x"}},
        "spec": {"replicas": 3, "template": {"image": "old"}, "paused": True},
    }
    assert template == {
        "metadata": {"name": "n", "labels": {"team": "ml"}},
        "spec": {"replicas": 3},
    }


RESOURCE = kube_client.Resource(
    group="kubeflow.org", version="v1", plural="tfjobs", kind="TFJob", namespaced=True
)
TARGET = k8s.Target(resource=RESOURCE, namespace="ml", name="mnist")


def _api_error(status: int, reason: str = "", message: str = "boom") -> kube_client.ApiError:
    return kube_client.ApiError(
        status=status, reason=reason, message=message, method="POST", path="/apis/x"
    )


@pytest.mark.parametrize(
    ("exc", "kind", "message"),
    [
        (
            _api_error(422, "Invalid", 'TFJob "mnist" is invalid: spec: Required value'),
            errors.PermanentTriggerError,
            'create TFJob ml/mnist: 422 Invalid: TFJob "mnist" is invalid: spec: Required value',
        ),
        (_api_error(403, "Forbidden"), errors.PermanentTriggerError, "403 Forbidden: boom"),
        (_api_error(404), errors.PermanentTriggerError, "create TFJob ml/mnist: 404: boom"),
        (_api_error(429, "TooManyRequests"), errors.TemporaryTriggerError, "429 TooManyRequests"),
        (_api_error(503), errors.TemporaryTriggerError, "503: boom"),
        (
            kube_client.KubeError("POST /apis/x: Cannot connect to host"),
            errors.TemporaryTriggerError,
            "create TFJob ml/mnist: POST /apis/x: Cannot connect",
        ),
        (
            kube_client.KubeError("the apiserver has no kind 'TFJob' in kubeflow.org/v1"),
            errors.PermanentTriggerError,
            "is its CRD installed",
        ),
    ],
)
def test_error_mapping(exc: kube_client.KubeError, kind: type[Exception], message: str) -> None:
    error = k8s.failure(exc, action="create", target=TARGET)
    assert type(error) is kind
    assert message in str(error)


def test_target_describe() -> None:
    assert TARGET.describe() == "TFJob ml/mnist"
    unnamed = k8s.Target(resource=RESOURCE, namespace="ml", name="", generate_name="mnist-")
    assert unnamed.describe() == "TFJob ml/mnist-*"
    cluster = k8s.Target(resource=RESOURCE, namespace=None, name="c")
    assert cluster.describe() == "TFJob c"


# --------------------------------------------------------------------------------------------
# The policy loop, with a scripted read and an injected sleep (no real waiting).


class _Reads:
    """A `get` that returns the scripted objects (or raises the scripted errors) in order."""

    def __init__(self, *results: Any) -> None:
        self.results = list(results)
        self.calls = 0

    async def get(self, res: Any, name: str, *, namespace: str | None = None) -> Any:
        self.calls += 1
        result = self.results.pop(0)
        if isinstance(result, Exception):
            raise result
        return result


async def _wait(policy: policies.K8sPolicy, first: Any, reads: _Reads) -> list[float]:
    slept: list[float] = []

    async def sleep(delay: float) -> None:
        slept.append(delay)

    outcome = k8s.K8sOutcome(operation="create", target=TARGET, object=first)
    await k8s.wait_for_policy(cast(kube_client.Client, reads), policy, outcome, sleep=sleep)
    return slept


SUCCEEDED = _obj(conditions=[{"type": "Succeeded", "status": "True"}])
RUNNING = _obj(conditions=[{"type": "Running", "status": "True"}])
FAILED = _obj(conditions=[{"type": "Failed", "status": "True", "message": "exit 1"}])
WAIT = {
    "conditions": [{"type": "Succeeded"}],
    "failureConditions": [{"type": "Failed"}],
    "backoff": {"duration": 0.01, "factor": 2, "steps": 4},
}


async def test_wait_checks_the_written_object_first() -> None:
    reads = _Reads()
    assert await _wait(_policy(**WAIT), SUCCEEDED, reads) == []
    assert reads.calls == 0


async def test_wait_polls_with_backoff_until_success() -> None:
    reads = _Reads(RUNNING, _api_error(503), SUCCEEDED)
    assert await _wait(_policy(**WAIT), RUNNING, reads) == [0.01, 0.02, 0.04]


async def test_wait_stops_at_a_failure_condition() -> None:
    reads = _Reads(FAILED)
    with pytest.raises(
        errors.PermanentTriggerError, match="policy failed: condition Failed=True: exit 1"
    ):
        await _wait(_policy(**WAIT), RUNNING, reads)


@pytest.mark.parametrize("error_on_timeout", [True, False])
async def test_wait_timeout(error_on_timeout: bool) -> None:
    policy = _policy(**WAIT, errorOnBackoffTimeout=error_on_timeout)
    reads = _Reads(RUNNING, RUNNING, RUNNING)
    if error_on_timeout:
        with pytest.raises(errors.TemporaryTriggerError, match="policy not met after 4 checks"):
            await _wait(policy, RUNNING, reads)
    else:
        assert await _wait(policy, RUNNING, reads) == [0.01, 0.02, 0.04]
    assert reads.calls == 3


async def test_wait_fails_when_the_object_is_deleted_or_forbidden() -> None:
    with pytest.raises(errors.PermanentTriggerError, match="deleted while the policy waited"):
        await _wait(_policy(**WAIT), RUNNING, _Reads(_api_error(404)))
    with pytest.raises(errors.PermanentTriggerError, match="403"):
        await _wait(_policy(**WAIT), RUNNING, _Reads(_api_error(403)))


# --------------------------------------------------------------------------------------------
# The client: the context's, else a client of the trigger's own from the kubeconfig.

KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters:
  - name: c
    cluster: {server: "http://127.0.0.1:1"}
users:
  - name: u
    user: {token: secret-token}
contexts:
  - name: ctx
    context: {cluster: c, user: u, namespace: team-a}
current-context: ctx
"""


async def test_context_client_is_used_as_is(session: aiohttp.ClientSession) -> None:
    shared = kube_client.Client(_NoApi.config)
    trigger = k8s.K8sTrigger(
        spec={"source": {"resource": TFJOB}}, context=_context(session, kube=shared)
    )
    async with contextlib.AsyncExitStack() as stack:
        await trigger.start(stack)
    assert trigger.kube.client is shared and not trigger.kube.own
    assert trigger.kube.namespace == "default"
    in_sensor_ns = k8s.K8sTrigger(
        spec={"source": {"resource": TFJOB}},
        context=_context(session, kube=shared, namespace="sensors"),
    )
    assert in_sensor_ns.kube.namespace == "sensors"


async def test_fallback_client_from_kubeconfig(
    session: aiohttp.ClientSession, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "kubeconfig"
    path.write_text(KUBECONFIG)
    monkeypatch.setenv("KUBECONFIG", str(path))
    trigger = argo_workflow.ArgoWorkflowTrigger(
        spec={"source": {"resource": {}}}, context=_context(session)
    )
    with pytest.raises(errors.PermanentTriggerError, match="not started"):
        _ = trigger.kube.client
    async with contextlib.AsyncExitStack() as stack:
        await trigger.start(stack)
        client = trigger.kube.client
        assert trigger.kube.own
        assert client.config.host == "http://127.0.0.1:1"
        assert client.config.namespace == "team-a"
        assert trigger.kube.namespace == "team-a"
        assert not client.session.closed
    assert client.session.closed  # closed with the trigger's stack


async def test_fallback_with_a_broken_kubeconfig_fails_at_start(
    session: aiohttp.ClientSession, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "absent"))
    trigger = k8s.K8sTrigger(spec={"source": {"resource": TFJOB}}, context=_context(session))
    async with contextlib.AsyncExitStack() as stack:
        with pytest.raises(kube_client.KubeError, match=r"cannot load kubeconfig .*absent"):
            await trigger.start(stack)


async def test_configmap_source_needs_a_client(session: aiohttp.ClientSession) -> None:
    location = sources.ArtifactLocation.model_validate(
        {"configmap": {"name": "tpl", "key": "job.yaml", "namespace": "ml"}}
    )
    assert location.describe() == "configmap ml/tpl key job.yaml"
    with pytest.raises(errors.PermanentTriggerError, match="need the Kubernetes API client"):
        await sources.resolve(location, session=session)
