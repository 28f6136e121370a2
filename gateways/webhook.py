"""The webhook gateway: an HTTP endpoint whose requests become events (Argo Events `webhook`).

Each entry adds one route to the process's shared servers (`gateways.serving`), so endpoints of
many gateways can share a port. A request is answered only after `dispatch` returned, i.e. once
its event is durable: 200 means "will be processed", 503 means "retry", 4xx means "fix the
request". Every non-200 answer carries a one-line plain-text reason.

Request handling, in order (each rejection counted in `EVENTS_FAILED{reason=...}` and logged at
info, never with the body):

1. method differs from the spec's → 405 with `Allow` (reason `method`);
2. `authSecret` set and no/wrong `Authorization: Bearer <token>` → 401 (reason `auth`);
3. Content-Length, or the bytes actually read (chunked, compressed), above `maxPayloadSize` →
   413 (reason `too_large`); at most `maxPayloadSize + 1` bytes are ever held in memory;
4. body: JSON media types (`application/json`, `*/*+json`) must parse, else 400
   `malformed JSON body: <orjson message>` (reason `malformed`); with no Content-Type a body
   that starts like a JSON object or array is treated the same way (Argo parses every body as
   JSON). `application/x-www-form-urlencoded` → `{field: [values...]}` as Go's `PostForm`.
   Any other body is kept as text if it is UTF-8, else as base64 with `bodyEncoding: "base64"`
   added to the event data (a top-level key, so the user's `metadata` stays theirs). An empty
   body is `null`. A GET request's body is its query, `{name: [values...]}`, as in Argo.
5. dispatch: `BusUnavailableError` → 503 `event bus unavailable, retry` + `Retry-After: 1`
   (reason `bus_unavailable`); anything else → 500, logged with its traceback (`dispatch_error`).
6. 200 with body `ok`; the event id is in the `Tripwire-Event-Id` header, so a client can ask
   the explanation API about exactly its event.

Event data keeps Argo's shape, `{"header": {Name: [values...]}, "body": ..., "metadata": {...}}`,
with header names in Go's canonical form (`X-Github-Event`), so Argo filters such as
`header.X-Github-Event` port unchanged. The `Authorization` value is always masked as `["***"]`.

This handler is the hot path of the webhook benchmark: everything derivable from the spec is
computed in `start()`, there is no pydantic and no regex per request, and caches keyed by the raw
Content-Type and header names (bounded) avoid re-parsing the same strings on every request.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hmac
import logging
import re
import urllib.parse
from typing import Annotated, Any, ClassVar, Final

import aiohttp
import orjson
import pydantic
from aiohttp import http_exceptions, web

from gateways import base, serving
from tripwire import errors, manifests, metrics, secrets

log = logging.getLogger(__name__)

KIND = "webhook"
DEFAULT_MAX_PAYLOAD_SIZE = 1024 * 1024  # Argo Events' default
REASONS = ("method", "auth", "too_large", "malformed", "incomplete", "bus_unavailable")
_DISPATCH_ERROR = "dispatch_error"

_METHOD_RE = re.compile(r"^[A-Za-z]+$")


# Seconds a client has to send its whole body once the headers arrived.
BODY_TIMEOUT = 30.0


class WebhookSpec(manifests.Model):
    """One webhook entry, Argo Events' `webhook` fields (TLS fields are not supported yet)."""

    endpoint: str = pydantic.Field(description="URL path of the endpoint; starts with `/`.")
    # Argo declares the port as a string; pydantic's lax mode accepts "12000" for an int.
    port: Annotated[int, pydantic.Field(ge=1, le=65535)]
    method: str = pydantic.Field(default="POST", description="HTTP method accepted.")
    url: str | None = pydantic.Field(
        default=None, description="Accepted for Argo Events compatibility; not used."
    )
    auth_secret: secrets.SecretRef | None = pydantic.Field(
        default=None, description="Bearer token requests must carry in `Authorization`."
    )
    max_payload_size: int = pydantic.Field(default=DEFAULT_MAX_PAYLOAD_SIZE, ge=1)
    metadata: dict[str, str] = pydantic.Field(default_factory=dict)
    host: str = pydantic.Field(default=serving.DEFAULT_HOST, min_length=1)

    @pydantic.field_validator("endpoint")
    @classmethod
    def _endpoint(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError("must start with /")
        if any(c in value for c in "?# \t\r\n"):
            raise ValueError("must be a plain path (no query, fragment or whitespace)")
        if value == serving.HEALTH_PATH:
            raise ValueError(f"{serving.HEALTH_PATH} is reserved for the port's health check")
        return value

    @pydantic.field_validator("method")
    @classmethod
    def _method(cls, value: str) -> str:
        if not _METHOD_RE.match(value):
            raise ValueError("must be an HTTP method name such as POST")
        return value.upper()


# --- per-request helpers; module-level so the handler does attribute lookups only -----------

_JSON, _FORM, _OTHER, _NONE = 0, 1, 2, 3
# Bounded caches: a client controls these strings, so stop growing past a few hundred entries
# (real traffic uses a handful of content types and a few dozen header names).
_CACHE_LIMIT = 512
_content_kinds: dict[str | None, int] = {None: _NONE}
_canonical_names: dict[str, str] = {}
_LOOKS_LIKE_JSON = re.compile(rb"[ \t\r\n]*[\[{]")
_AUTHORIZATION: Final = "Authorization"
_MASKED: Final = "***"


def _content_kind(content_type: str | None) -> int:
    kind = _content_kinds.get(content_type)
    if kind is not None:
        return kind
    assert content_type is not None  # None is always cached
    mime = content_type.partition(";")[0].strip().lower()
    if mime == "application/json" or mime.endswith("+json"):
        kind = _JSON
    elif mime == "application/x-www-form-urlencoded":
        kind = _FORM
    elif not mime:
        kind = _NONE
    else:
        kind = _OTHER
    if len(_content_kinds) < _CACHE_LIMIT:
        _content_kinds[content_type] = kind
    return kind


def canonical_header(name: str) -> str:
    """Go's `CanonicalMIMEHeaderKey`: `x-github-event` → `X-Github-Event` (ASCII only)."""
    canonical = _canonical_names.get(name)
    if canonical is not None:
        return canonical
    # Go leaves names with non-token bytes untouched; non-ASCII is the case that matters here.
    canonical = "-".join(part.capitalize() for part in name.split("-")) if name.isascii() else name
    if len(_canonical_names) < _CACHE_LIMIT:
        _canonical_names[name] = canonical
    return canonical


def _text(status: int, body: bytes, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        status=status, body=body, headers=headers, content_type="text/plain", charset="utf-8"
    )


class WebhookSource:
    """One webhook entry: a route on the shared servers that turns requests into events."""

    spec_model: ClassVar[type[pydantic.BaseModel]] = WebhookSpec

    def __init__(self, *, spec: WebhookSpec, context: base.SourceContext) -> None:
        self._spec = spec
        self._context = context
        self._dispatch = context.dispatch
        self._method = spec.method
        self._max = spec.max_payload_size
        self._metadata = spec.metadata
        self._token: bytes | None = None
        self._where = f"webhook {context.gateway}/{context.name}"
        # Static answers are encoded once.
        self._allow = {"Allow": spec.method}
        self._too_large = f"payload too large: limit is {spec.max_payload_size} bytes".encode()
        labels = {"gateway": context.gateway, "event": context.name}
        self._received = metrics.EVENTS_RECEIVED.labels(**labels)
        self._published = metrics.EVENTS_PUBLISHED.labels(**labels)
        self._failed = {
            reason: metrics.EVENTS_FAILED.labels(reason=reason, **labels)
            for reason in (*REASONS, _DISPATCH_ERROR)
        }

    @property
    def spec(self) -> WebhookSpec:
        return self._spec

    async def start(self, stack: contextlib.AsyncExitStack) -> None:
        """Resolve the auth token, then add the route; its removal goes on `stack`.

        A `SecretError` propagates: the runtime shows the source not ready and retries.
        """
        ref = self._spec.auth_secret
        if ref is not None:
            # Tokens never legitimately carry surrounding whitespace, but Secrets made with
            # `echo token | base64` do; HTTP strips it from the header value as well.
            token = (await self._context.secrets.resolve(ref)).strip()
            if not token:
                raise errors.SecretError(f"{ref.describe()} is empty")
            self._token = token.encode()
        servers = self._context.servers
        if not isinstance(servers, serving.Servers):
            raise errors.SourceError(
                f"{self._where}: the process has no HTTP servers (SourceContext.servers)"
            )
        remove = await servers.add_route(
            port=self._spec.port,
            path=self._spec.endpoint,
            handler=self._handle,
            host=self._spec.host,
            owner=f"gateway {self._context.gateway} webhook {self._context.name}",
        )
        stack.push_async_callback(remove)

    def _reject(
        self,
        request: web.BaseRequest,
        *,
        status: int,
        reason: str,
        body: bytes,
        headers: dict[str, str] | None = None,
    ) -> web.Response:
        self._failed[reason].inc()
        log.info(
            "%s rejected %s %s from %s with %d: %s",
            self._where,
            request.method,
            request.path,
            request.remote,
            status,
            body.decode(),
        )
        return _text(status, body, headers)

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        method = request.method
        if method != self._method:
            return self._reject(
                request,
                status=405,
                reason="method",
                body=f"method {method} not allowed, use {self._method}".encode(),
                headers=self._allow,
            )
        headers = request.headers
        if self._token is not None:
            problem = self._auth_problem(headers.get(_AUTHORIZATION))
            if problem is not None:
                return self._reject(
                    request,
                    status=401,
                    reason="auth",
                    body=problem,
                    headers={"WWW-Authenticate": "Bearer"},
                )
        length = request.content_length
        if length is not None and length > self._max:
            return self._reject(request, status=413, reason="too_large", body=self._too_large)

        encoded = False
        if method == "GET":
            query = request.query
            body: Any = {key: query.getall(key) for key in query}
        elif not request.body_exists:
            body = None
        else:
            content = request.content
            raw: bytes | None
            try:
                if content.is_eof():
                    # The whole body arrived with the headers (the common case): it is all in
                    # the buffer, so it is taken at once, with no timer and no await.
                    raw = content.read_nowait()
                    if len(raw) > self._max:
                        raw = None
                else:
                    # A client trickling its body must not hold a request (and memory) forever.
                    async with asyncio.timeout(BODY_TIMEOUT):
                        raw = await self._read_body(content, length)
            except TimeoutError:
                response = self._reject(
                    request,
                    status=408,
                    reason="incomplete",
                    body=f"request body not received within {BODY_TIMEOUT:g}s".encode(),
                )
                # Do not keep a connection whose client cannot send a request in time.
                response.force_close()
                return response
            except (http_exceptions.HttpProcessingError, aiohttp.ClientError, OSError) as exc:
                # The client went away or broke the framing mid-body; nobody may read this
                # answer, but it keeps the count and the log honest.
                return self._reject(
                    request,
                    status=400,
                    reason="incomplete",
                    body=f"incomplete body: {type(exc).__name__}".encode(),
                )
            if raw is None:
                return self._reject(request, status=413, reason="too_large", body=self._too_large)
            if not raw:
                body = None
            else:
                kind = _content_kind(headers.get("Content-Type"))
                if kind == _FORM:
                    body = urllib.parse.parse_qs(
                        raw.decode("utf-8", "replace"), keep_blank_values=True
                    )
                elif kind == _JSON or (kind == _NONE and _LOOKS_LIKE_JSON.match(raw)):
                    try:
                        body = orjson.loads(raw)
                    except orjson.JSONDecodeError as exc:
                        return self._reject(
                            request,
                            status=400,
                            reason="malformed",
                            body=f"malformed JSON body: {exc}".encode(),
                        )
                else:
                    try:
                        body = raw.decode()
                    except UnicodeDecodeError:
                        body = base64.b64encode(raw).decode("ascii")
                        encoded = True

        header: dict[str, list[str]] = {}
        canonical = _canonical_names.get
        for name, value in headers.items():
            # The cache hit inlined: this loop runs once per header of every request.
            key = canonical(name) or canonical_header(name)
            values = header.get(key)
            if values is None:
                header[key] = [value]
            else:
                values.append(value)
        if _AUTHORIZATION in header:
            header[_AUTHORIZATION] = [_MASKED]
        # A copy per event: in the embedded bus, sensors get this very object.
        data: dict[str, Any] = {"header": header, "body": body, "metadata": dict(self._metadata)}
        if encoded:
            data["bodyEncoding"] = "base64"

        event = self._context.event(data)
        self._received.inc()
        try:
            await self._dispatch(event)
        except errors.BusUnavailableError as exc:
            self._failed["bus_unavailable"].inc()
            log.info(
                "%s answered 503 for event %s: bus unavailable: %s", self._where, event.id, exc
            )
            return _text(503, b"event bus unavailable, retry", {"Retry-After": "1"})
        except Exception:
            # Whatever broke, this request is answered and the server keeps serving.
            self._failed[_DISPATCH_ERROR].inc()
            log.exception("%s failed to dispatch event %s", self._where, event.id)
            return _text(500, b"internal error, event not accepted")
        self._published.inc()
        return web.Response(
            body=b"ok",
            content_type="text/plain",
            charset="utf-8",
            headers={"Tripwire-Event-Id": event.id},
        )

    def _auth_problem(self, value: str | None) -> bytes | None:
        """None when `value` carries the right bearer token, else the 401 reason."""
        if value is None:
            return b"missing bearer token"
        scheme, _, given = value.partition(" ")
        # The scheme is case-insensitive (RFC 9110 11.1); the token is compared in constant
        # time. Header text comes decoded with surrogateescape; encode it back losslessly.
        expected = self._token
        assert expected is not None
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            given.strip().encode("utf-8", "surrogateescape"), expected
        ):
            return b"invalid bearer token"
        return None

    async def _read_body(self, content: aiohttp.StreamReader, length: int | None) -> bytes | None:
        """The whole body, or None as soon as it exceeds the limit (max + 1 bytes held at most).

        With a Content-Length (already checked against the limit) the parser ends the stream
        there; chunked and compressed bodies are cut off by the limit itself.
        """
        limit = self._max + 1
        first = await content.read(limit)
        if length is not None and len(first) == length:
            return first  # the common case: one read, no join, no extra await for EOF
        chunks = [first]
        size = len(first)
        while first and size < limit:
            first = await content.read(limit - size)
            chunks.append(first)
            size += len(first)
        if size > self._max:
            return None
        return b"".join(chunks)


__all__ = ["KIND", "REASONS", "WebhookSource", "WebhookSpec", "canonical_header"]
