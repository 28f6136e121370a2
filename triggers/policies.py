"""The trigger-level `policy` block: when does an executed trigger count as a success?

Argo Events puts one optional `policy` on a trigger with a part per effect family: `status`
(an allow-list of HTTP status codes for HTTP-like triggers) and `k8s` (wait until the object a
Kubernetes trigger created reaches a state). Both parts live here, as pure models, so that
every trigger kind reads the same shape from `TriggerContext.policy` and the CRD schema has one
definition.

`k8s` is Argo's `K8SResourcePolicy` (`labels`, `backoff`, `errorOnBackoffTimeout`) plus one
extension: most controllers (Kubeflow training jobs, Katib, Jobs, JobSets) report their outcome
as `status.conditions`, not as labels, so `conditions` waits for those and `failureConditions`
ends the wait early with a permanent error when the job failed — without it a failed TFJob
would be waited on until the backoff ran out. Evaluating a policy against an object
(`K8sPolicy.evaluate`) is pure; the polling loop lives with the Kubernetes triggers.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterator, Mapping
from typing import Any, TypedDict

import pydantic

from tripwire import backoff, manifests

# A policy that would wait longer than this is a mistake (`factor: 2, steps: 60` waits for
# longer than the universe exists); a trigger that waits holds its event unacknowledged.
MAX_TOTAL_WAIT = 7 * 24 * 3600.0


class StatusPolicy(manifests.Model):
    """HTTP status codes that count as success; anything else fails the firing."""

    allow: list[int] = pydantic.Field(min_length=1)

    @pydantic.field_validator("allow")
    @classmethod
    def _codes(cls, codes: list[int]) -> list[int]:
        bad = [c for c in codes if not 100 <= c <= 599]
        if bad:
            raise ValueError(f"not HTTP status codes: {bad}")
        return codes

    def allows(self, status: int) -> bool:
        return status in self.allow


class Backoff(manifests.Model):
    """Argo's `Backoff` as the k8s policy uses it (apimachinery `wait.ExponentialBackoff`).

    The object is checked `steps` times: at once, then after `duration`, `duration * factor`,
    ... (each stretched by up to `jitter` of itself). The default checks 10 times over about
    75 seconds.
    """

    duration: manifests.Duration = 1.0
    factor: float = pydantic.Field(default=1.5, ge=1.0, le=10.0)
    jitter: float = pydantic.Field(default=0.0, ge=0.0, le=1.0)
    steps: int = pydantic.Field(default=10, ge=1, le=10_000)

    @pydantic.model_validator(mode="after")
    def _bounded(self) -> Backoff:
        total = self.max_total_wait()
        if total > MAX_TOTAL_WAIT:
            raise ValueError(
                f"waits up to {_human(total)} in all; at most {_human(MAX_TOTAL_WAIT)} is"
                " allowed (lower steps, factor or duration)"
            )
        return self

    def waits(self) -> Iterator[float]:
        """The `steps - 1` sleeps between the `steps` checks."""
        sleeps = backoff.delays(duration=self.duration, factor=self.factor, jitter=self.jitter)
        for _ in range(self.steps - 1):
            yield next(sleeps)

    def max_total_wait(self) -> float:
        """The longest the checks can take in all (every jitter at its maximum)."""
        total, wait = 0.0, self.duration
        for _ in range(self.steps - 1):
            total += wait * (1.0 + self.jitter)
            if total > MAX_TOTAL_WAIT:
                return total  # stop early: factor**steps may not even fit in a float
            wait *= self.factor
        return total


class ConditionMatch(manifests.Model):
    """A `status.conditions[]` entry to look for: its `type` with this `status`."""

    type: str = pydantic.Field(min_length=1)
    status: str = "True"

    def describe(self) -> str:
        return f"{self.type}={self.status}"


class Condition(TypedDict, total=False):
    """One entry of `status.conditions` as the apiserver returns it (metav1.Condition and the
    older Kubeflow/Katib `JobCondition` share these fields)."""

    type: str
    status: str
    reason: str
    message: str


class Verdict(enum.Enum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class Evaluation:
    """What one look at the object says; `reason` explains a failure or what is missing."""

    verdict: Verdict
    reason: str = ""


class K8sPolicy(manifests.Model):
    """Argo's `K8SResourcePolicy` plus status conditions (see the module docstring).

    Success is all `labels` and all `conditions` matching at once; any `failureConditions`
    match fails at once, even if success also matches. When the backoff runs out,
    `errorOnBackoffTimeout` decides: true fails the firing (retryable: the object may still get
    there), false counts it as a success, as in Argo (whose default is false too).
    """

    labels: dict[str, str] = pydantic.Field(default_factory=dict)
    conditions: list[ConditionMatch] = pydantic.Field(default_factory=list)
    failure_conditions: list[ConditionMatch] = pydantic.Field(default_factory=list)
    backoff: Backoff = pydantic.Field(default_factory=Backoff)
    error_on_backoff_timeout: bool = False

    def evaluate(self, obj: Mapping[str, Any]) -> Evaluation:
        """The verdict on one read of the object. Pure."""
        found = _conditions(obj)
        for match in self.failure_conditions:
            hit = found.get(match.type)
            if hit is not None and hit.get("status") == match.status:
                detail = hit.get("message") or hit.get("reason") or ""
                reason = f"condition {match.describe()}" + (f": {detail}" if detail else "")
                return Evaluation(verdict=Verdict.FAILED, reason=reason)
        missing: list[str] = []
        labels = _labels(obj)
        for key, want in self.labels.items():
            have = labels.get(key)
            if have != want:
                missing.append(f"label {key}={want} (is {'unset' if have is None else have})")
        for match in self.conditions:
            hit = found.get(match.type)
            if hit is None or hit.get("status") != match.status:
                have = "absent" if hit is None else hit.get("status")
                missing.append(f"condition {match.describe()} (is {have})")
        if missing:
            return Evaluation(verdict=Verdict.PENDING, reason="waiting for " + ", ".join(missing))
        return Evaluation(verdict=Verdict.SUCCEEDED)


class TriggerPolicy(manifests.Model):
    """Argo Events' `TriggerPolicy`; each kind reads only its own part."""

    status: StatusPolicy | None = None
    k8s: K8sPolicy | None = None


def coerce(policy: Any) -> TriggerPolicy | None:
    """`TriggerContext.policy` as a model: the runtime may hand over the model or its raw dict."""
    if policy is None or isinstance(policy, TriggerPolicy):
        return policy
    return TriggerPolicy.model_validate(policy)


def _labels(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    meta = obj.get("metadata")
    labels = meta.get("labels") if isinstance(meta, Mapping) else None
    return labels if isinstance(labels, Mapping) else {}


def _conditions(obj: Mapping[str, Any]) -> dict[str, Condition]:
    """`status.conditions` by type; a malformed status reads as no conditions, not a crash
    (the object is written by someone else's controller)."""
    status = obj.get("status")
    items = status.get("conditions") if isinstance(status, Mapping) else None
    if not isinstance(items, list):
        return {}
    out: dict[str, Condition] = {}
    for item in items:
        if isinstance(item, dict) and isinstance(item.get("type"), str):
            # A later entry of the same type wins, as the newest one is appended last.
            out[item["type"]] = Condition(
                type=item["type"],
                status=str(item.get("status", "")),
                reason=str(item.get("reason") or ""),
                message=str(item.get("message") or ""),
            )
    return out


def _human(seconds: float) -> str:
    if seconds >= 2 * 86400:
        return f"{seconds / 86400:.3g} days"
    if seconds >= 2 * 3600:
        return f"{seconds / 3600:.3g} h"
    return f"{seconds:.3g} s"


__all__ = [
    "MAX_TOTAL_WAIT",
    "Backoff",
    "Condition",
    "ConditionMatch",
    "Evaluation",
    "K8sPolicy",
    "StatusPolicy",
    "TriggerPolicy",
    "Verdict",
    "coerce",
]
