"""The `Gateway` manifest model, assembled from the registered source kinds.

`spec` has one optional map per kind (`webhook`, `calendar`, ...) of entry name to that kind's
spec model, exactly as Argo Events' EventSource. The model class is built once from
`gateways.base.KINDS`, so a new kind needs no change here; the CRD schema comes from it too.
"""

from __future__ import annotations

import functools
import re
from typing import Any, Literal

import pydantic

from gateways import base
from tripwire import manifests

# Entry names become one token of a bus subject (`<prefix>.<gateway>.<event>`): no dots,
# wildcards or spaces, which NATS would read as structure.
ENTRY_NAME = re.compile(r"^[A-Za-z0-9_-]{1,253}$")


class GatewaySpecBase(manifests.Model):
    """Fields every gateway spec has besides its kind maps."""

    def entries(self) -> list[tuple[str, str, pydantic.BaseModel]]:
        """`(kind, name, spec)` of every entry, in registry then name order."""
        out = []
        for kind in base.KINDS:
            mapping: dict[str, pydantic.BaseModel] | None = getattr(self, kind)
            for name, spec in (mapping or {}).items():
                out.append((kind, name, spec))
        return out

    @pydantic.model_validator(mode="after")
    def _entries_are_valid(self) -> GatewaySpecBase:
        seen: dict[str, str] = {}
        entries = self.entries()
        if not entries:
            kinds = ", ".join(base.KINDS)
            raise ValueError(f"a gateway needs at least one entry under one of: {kinds}")
        for kind, name, _spec in entries:
            if not ENTRY_NAME.match(name):
                raise manifests.FieldError(
                    [
                        (
                            (kind, name),
                            f"{kind} entry name {name!r} may only use letters, digits, '-' and '_'",
                        )
                    ]
                )
            if name in seen:
                raise ValueError(
                    f"entry name {name!r} is used by both {seen[name]} and {kind}: event names"
                    " must be unique within a gateway"
                )
            seen[name] = kind
        return self


@functools.cache
def spec_model() -> type[GatewaySpecBase]:
    fields: dict[str, Any] = {
        kind: (dict[str, model] | None, None)  # type: ignore[valid-type]
        for kind, model in base.spec_models().items()
    }
    model: type[GatewaySpecBase] = pydantic.create_model(
        "GatewaySpec", __base__=GatewaySpecBase, **fields
    )
    return model


class GatewayBase(manifests.Model):
    api_version: Literal["tripwire.dev/v1alpha1"]
    kind: Literal["Gateway"]
    metadata: manifests.ObjectMeta
    spec: GatewaySpecBase
    status: dict[str, Any] | None = None


@functools.cache
def model() -> type[GatewayBase]:
    """The `Gateway` manifest class with every registered kind in its spec."""
    built: type[GatewayBase] = pydantic.create_model(
        "Gateway", __base__=GatewayBase, spec=(spec_model(), ...)
    )
    return built
