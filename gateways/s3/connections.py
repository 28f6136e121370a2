"""One s3 entry's connection: resolved endpoint and credentials, and the clients built on them.

The gateway talks to S3 two ways: boto3 for the bucket calls (HeadBucket, ListObjectsV2),
blocking and so run in a thread; and raw aiohttp requests for the long-lived notification stream
and SQS long-polls, which must stay cancellable and are signed here with botocore's SigV4.
botocore and boto3 are imported inside the methods, never at import time (they are the `s3`
extra; building the manifest model imports every kind module).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import ssl
import tempfile
from collections.abc import Callable
from typing import Any

from tripwire import errors, secrets


@dataclasses.dataclass(frozen=True, kw_only=True)
class Connection:
    """Resolved endpoint and credentials of one entry."""

    endpoint: str
    region: str
    access_key: str | None
    secret_key: str | None
    ca_file: str | None

    def ssl(self) -> ssl.SSLContext | bool:
        if self.ca_file is None:
            return True
        return ssl.create_default_context(cafile=self.ca_file)

    def credentials(self) -> Any:
        """botocore Credentials for SigV4 (None: anonymous)."""
        from botocore.credentials import Credentials

        if self.access_key is not None and self.secret_key is not None:
            return Credentials(self.access_key, self.secret_key)
        import botocore.session

        return botocore.session.get_session().get_credentials()

    def signed_headers(
        self, *, method: str, url: str, service: str, body: bytes = b"", headers: Any = None
    ) -> dict[str, str]:
        """SigV4 headers for one request; `url` must be encoded exactly as it will be sent."""
        from botocore.auth import S3SigV4Auth, SigV4Auth
        from botocore.awsrequest import AWSRequest

        request = AWSRequest(method=method, url=url, data=body, headers=headers or {})
        creds = self.credentials()
        if creds is not None:
            auth = S3SigV4Auth if service == "s3" else SigV4Auth
            auth(creds, service, self.region).add_auth(request)
        return dict(request.headers.items())

    def s3_client(self) -> Any:
        """A boto3 S3 client (blocking: call in a thread)."""
        import boto3.session
        from botocore.config import Config

        config = Config(
            s3={"addressing_style": "path"},
            retries={"max_attempts": 3, "mode": "standard"},
            connect_timeout=10,
            read_timeout=60,
            max_pool_connections=4,
        )
        return boto3.session.Session().client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=self.region,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            verify=self.ca_file if self.ca_file is not None else True,
            config=config,
        )


async def connect(
    *,
    endpoint: str,
    region: str,
    access_key: secrets.SecretRef | None,
    secret_key: secrets.SecretRef | None,
    ca_certificate: secrets.SecretRef | None,
    resolver: secrets.Resolver,
    stack: contextlib.AsyncExitStack,
) -> Connection:
    """Resolve the entry's secrets; a CA certificate goes to a file that lives on `stack`."""
    access = await resolver.resolve(access_key) if access_key else None
    secret = await resolver.resolve(secret_key) if secret_key else None
    ca_file: str | None = None
    if ca_certificate is not None:
        pem = await resolver.resolve(ca_certificate)
        handle = tempfile.NamedTemporaryFile(  # noqa: SIM115 - lives as long as the entry
            "w", suffix=".pem", prefix="tripwire-s3-ca-", delete=False
        )
        with handle:
            handle.write(pem)
        ca_file = handle.name
        stack.callback(os.unlink, ca_file)
    return Connection(
        endpoint=endpoint,
        region=region,
        access_key=access,
        secret_key=secret,
        ca_file=ca_file,
    )


async def in_thread(where: str, call: Callable[..., Any], /, **kwargs: Any) -> Any:
    """One blocking boto3 call in a thread; its client errors become `SourceError`s."""
    try:
        return await asyncio.to_thread(call, **kwargs)
    except Exception as exc:
        if not _is_client_error(exc):
            raise
        raise errors.SourceError(f"{where}: {exc}") from exc


def _is_client_error(exc: BaseException) -> bool:
    module = type(exc).__module__
    return module.startswith(("botocore", "boto3", "urllib3"))


__all__ = ["Connection", "connect", "in_thread"]
