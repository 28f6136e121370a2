"""The trigger-level `policy` block: when does an executed trigger count as a success?

Argo Events puts one optional `policy` on a trigger with a part per effect family: `status`
(an allow-list of HTTP status codes for HTTP-like triggers) and `k8s` (wait for labels or a
status on the created object). Both parts live here, as pure models, so that every trigger
kind reads the same shape from `TriggerContext.policy` and the CRD schema has one definition.
The `k8s` part stays an open mapping until the Kubernetes trigger issue gives it a model.
"""

from __future__ import annotations

from typing import Any

import pydantic

from tripwire import manifests


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


class TriggerPolicy(manifests.Model):
    """Argo Events' `TriggerPolicy`; each kind reads only its own part."""

    status: StatusPolicy | None = None
    # Filled in by the Kubernetes trigger issue (labels / backoff / errorOnBackoffTimeout).
    k8s: dict[str, Any] | None = None


def coerce(policy: Any) -> TriggerPolicy | None:
    """`TriggerContext.policy` as a model: the runtime may hand over the model or its raw dict."""
    if policy is None or isinstance(policy, TriggerPolicy):
        return policy
    return TriggerPolicy.model_validate(policy)


__all__ = ["StatusPolicy", "TriggerPolicy", "coerce"]
