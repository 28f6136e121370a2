"""Secret references of specs resolved through the Kubernetes API, in the object's namespace.

In a cluster a webhook's `authSecret: {name, key}` names a Secret next to the Gateway, as in
Argo Events. `tripwire run` refuses such references (`tripwire.secrets.LocalResolver`); the
controller gives each namespace's runtime a `KubeResolver` for that namespace, which reads the
Secret when the source or trigger starts. env and file references keep working (they name the
controller's own environment and files). Messages name the Secret, key and namespace — never a
value — and every failure is a `SecretError`, which the runtime reports as not ready and
retries with backoff (the Secret may be created after the Gateway).
"""

from __future__ import annotations

import base64
import binascii

from tripwire import errors
from tripwire import secrets as local_secrets
from tripwire.net.kube import client as kube_client

SECRETS = kube_client.Resource(
    group="", version="v1", plural="secrets", kind="Secret", namespaced=True
)


class KubeResolver:
    """`tripwire.secrets.Resolver` for one namespace: Secret refs via the API, others locally."""

    def __init__(self, kube: kube_client.Client, namespace: str) -> None:
        self._kube = kube
        self.namespace = namespace
        self._local = local_secrets.LocalResolver()

    async def resolve(self, ref: local_secrets.SecretRef) -> str:
        if ref.name is None or ref.key is None:
            return await self._local.resolve(ref)
        where = f"Secret {self.namespace}/{ref.name} key {ref.key}"
        try:
            secret = await self._kube.get(SECRETS, ref.name, namespace=self.namespace)
        except kube_client.ApiError as exc:
            if exc.not_found:
                raise errors.SecretError(f"{where}: no Secret {ref.name!r}") from None
            raise errors.SecretError(f"{where}: {exc.status} {exc.reason}: {exc.message}") from None
        except kube_client.KubeError as exc:
            raise errors.SecretError(f"{where}: {exc}") from None
        data = secret.get("data") or {}
        encoded = data.get(ref.key)
        if encoded is None:
            keys = ", ".join(sorted(data)) or "none"
            raise errors.SecretError(f"{where}: the Secret has no such key (keys: {keys})")
        try:
            return base64.b64decode(encoded, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise errors.SecretError(f"{where}: the value is not base64 of UTF-8 text") from None
