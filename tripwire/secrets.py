"""Secret references in specs (webhook auth tokens, HTTP credentials) and how they resolve.

Specs never hold secret values. A reference names an environment variable, a file, or a key of a
Kubernetes Secret (Argo Events' `SecretKeySelector`); the runtime resolves it at start with a
`Resolver`. `tripwire run` resolves env and file references; the controller adds a resolver that
reads Secrets through the Kubernetes API.
"""

from __future__ import annotations

import asyncio
import os
import pathlib
from typing import Protocol

import pydantic

from tripwire import errors, manifests


class SecretRef(manifests.Model):
    """Exactly one of: `env`, `file`, or `name` + `key` (a Kubernetes Secret in the namespace)."""

    env: str | None = None
    file: str | None = None
    name: str | None = None
    key: str | None = None

    @pydantic.model_validator(mode="after")
    def _one_source(self) -> SecretRef:
        chosen = [s for s in ("env", "file", "name") if getattr(self, s) is not None]
        if len(chosen) != 1:
            raise ValueError("set exactly one of env, file, or name+key")
        if (self.name is None) != (self.key is None):
            raise ValueError("a Kubernetes Secret reference needs both name and key")
        return self

    def describe(self) -> str:
        if self.env is not None:
            return f"environment variable {self.env}"
        if self.file is not None:
            return f"file {self.file}"
        return f"Secret {self.name} key {self.key}"


class Resolver(Protocol):
    async def resolve(self, ref: SecretRef) -> str: ...


class LocalResolver:
    """Resolves env and file references; Kubernetes references need a cluster-aware resolver."""

    async def resolve(self, ref: SecretRef) -> str:
        if ref.env is not None:
            value = os.environ.get(ref.env)
            if value is None:
                raise errors.SecretError(f"{ref.describe()} is not set")
            return value
        if ref.file is not None:
            path = pathlib.Path(ref.file)
            try:
                text = await asyncio.to_thread(path.read_text, encoding="utf-8")
            except OSError as exc:
                raise errors.SecretError(f"cannot read {ref.describe()}: {exc.strerror}") from None
            return text.rstrip("\r\n")
        raise errors.SecretError(
            f"{ref.describe()}: Kubernetes Secret references need `tripwire controller`"
            " (or a kubeconfig); use env or file with `tripwire run`"
        )
