"""The `http` trigger: call an HTTP endpoint with a JSON body built from the events.

Argo Events' HTTP trigger (`pkg/sensors/triggers/http`), with the same spec fields, plus what
Tripwire promises on top: every request carries `Idempotency-Key: <trigger key>` so a
redelivered event cannot be acted on twice by a server that honours the header, and failures
are classified so the sensor runtime knows whether to retry (5xx, 408, 429, timeouts, refused
connections; `Retry-After` becomes the delay) or to give up (other 4xx, policy rejections).

All triggers of a process share one `tripwire.net.httpclient.Client` (`TriggerContext.http`): its
connection pool keeps connections alive across firings, which matters at thousands of
firings per second; a connection per request would pay a TCP (and TLS) handshake every time.
That client, not aiohttp's, because this request is the one client call made per event: it
writes the request in the firing's first loop turn and costs a fraction of a `ClientSession`
request in CPU (see the module). Redirects are followed as Go's client (Argo's) does.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import datetime
import email.utils
from typing import Any, ClassVar

import multidict
import orjson
import pydantic
import yarl

from triggers import base, policies
from triggers import parameters as params  # a spec field is called `parameters`
from tripwire import errors, manifests, secrets
from tripwire.net import httpclient

_BODY_CAP = 64 * 1024  # read at most this much of a response: we only keep an excerpt
_OUTCOME_EXCERPT = 1024
_MESSAGE_EXCERPT = 200
# Statuses that say "try again later" rather than "this request is wrong".
_RETRYABLE_4XX = frozenset({408, 429})


class SecretKeySource(manifests.Model):
    secret_key_ref: secrets.SecretRef


class SecureHeader(manifests.Model):
    """A header whose value is a secret (Argo `SecureHeader`), resolved once at start."""

    name: str = pydantic.Field(min_length=1)
    value_from: SecretKeySource


class BasicAuth(manifests.Model):
    username: secrets.SecretRef
    password: secrets.SecretRef


class TLSConfig(manifests.Model):
    insecure_skip_verify: bool = False


class HttpTriggerSpec(manifests.Model):
    """Argo Events `HTTPTrigger`; `payload` builds the JSON body, `parameters` edit this spec."""

    url: str
    method: str = "POST"
    payload: list[params.TriggerParameter] = pydantic.Field(default_factory=list)
    parameters: list[params.TriggerParameter] = pydantic.Field(default_factory=list)
    headers: dict[str, str] = pydantic.Field(default_factory=dict)
    secure_headers: list[SecureHeader] = pydantic.Field(default_factory=list)
    basic_auth: BasicAuth | None = None
    timeout: float = pydantic.Field(default=60.0, gt=0)
    tls: TLSConfig | None = None

    @pydantic.field_validator("url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        if not url.lower().startswith(("http://", "https://")):
            raise ValueError(f"url must start with http:// or https://, got {url!r}")
        return url

    @pydantic.field_validator("method")
    @classmethod
    def _method(cls, method: str) -> str:
        method = method.upper()
        if not method.isascii() or not method.isalpha():
            raise ValueError(f"not an HTTP method: {method!r}")
        return method


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class HttpRequest:
    """The resolved resource: the spec after `parameters`, and the JSON body from `payload`."""

    spec: HttpTriggerSpec
    body: Any


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class HttpOutcome:
    """What came back; `body` is a decoded excerpt, never the whole response."""

    method: str
    url: str
    status: int
    body: str
    retry_after: str | None = None

    def describe(self) -> str:
        excerpt = self.body[:_MESSAGE_EXCERPT]
        return f"{self.method} {self.url}: HTTP {self.status}" + (f": {excerpt}" if excerpt else "")


@dataclasses.dataclass(frozen=True, slots=True)
class _Credentials:
    headers: dict[str, str]


class HttpTrigger(base.PipelineTrigger[HttpRequest, HttpOutcome]):
    spec_model: ClassVar[type[pydantic.BaseModel]] = HttpTriggerSpec

    def __init__(self, *, spec: HttpTriggerSpec | dict[str, Any], context: base.TriggerContext):
        self._spec = HttpTriggerSpec.model_validate(spec)
        self._context = context
        self._policy = policies.coerce(context.policy)
        self._credentials: _Credentials | None = None
        # Headers of the unparameterized spec, built once (hot path).
        self._prepared: list[tuple[str, str]] | None = None
        self._client = context.http
        self._payload = params.Compiled(self._spec.payload)
        self._shown = _without_credentials(self._spec.url)

    async def start(self, stack: contextlib.AsyncExitStack) -> None:
        # Resolve secrets once, at start: a missing secret shows up before the first event,
        # and firings do not pay a lookup. Parameters therefore cannot change them.
        await self._resolve_credentials()
        if self._client is None:
            self._client = httpclient.Client()
            stack.push_async_callback(self._client.close)

    async def _resolve_credentials(self) -> _Credentials:
        if self._credentials is None:
            resolver = self._context.secrets
            headers = {
                h.name: await resolver.resolve(h.value_from.secret_key_ref)
                for h in self._spec.secure_headers
            }
            if self._spec.basic_auth is not None:
                headers["Authorization"] = _basic_auth(
                    await resolver.resolve(self._spec.basic_auth.username),
                    await resolver.resolve(self._spec.basic_auth.password),
                )
            self._credentials = _Credentials(headers)
        return self._credentials

    async def resolve(self, firing: base.Firing) -> HttpRequest:
        # An HTTP trigger has no external template: the spec itself is the resource.
        return HttpRequest(spec=self._spec, body=None)

    def apply_parameters(self, resource: HttpRequest, firing: base.Firing) -> HttpRequest:
        spec = resource.spec
        if spec.parameters:
            # Argo applies `parameters` to the JSON form of the trigger spec; do the same on
            # the camelCase dict and validate it again, so a parameter cannot smuggle in an
            # invalid URL or method.
            edited = params.apply(
                spec.parameters, firing.events, spec.model_dump(mode="json", by_alias=True)
            )
            try:
                spec = HttpTriggerSpec.model_validate(edited)
            except pydantic.ValidationError as exc:
                problems = "; ".join(
                    f"{manifests.format_loc(e['loc'])}: {e['msg']}"
                    for e in exc.errors(include_url=False)
                )
                raise errors.PermanentTriggerError(
                    f"http trigger {self._context.trigger}: parameters made the spec invalid:"
                    f" {problems}"
                ) from None
        payload = self._payload if spec is self._spec else params.Compiled(spec.payload)
        return HttpRequest(spec=spec, body=payload.apply(firing.events, {}))

    async def fire(self, firing: base.Firing) -> HttpOutcome:
        # The stages of `PipelineTrigger.fire` without its awaits that cannot wait: an HTTP
        # trigger resolves to its own spec and checks its policy synchronously. This is the
        # per-event path of every webhook-to-HTTP sensor.
        spec = self._spec
        if spec.parameters:
            resource = self.apply_parameters(HttpRequest(spec=spec, body=None), firing)
        else:
            resource = HttpRequest(spec=spec, body=self._payload.apply(firing.events, {}))
        outcome = await self.execute(resource, firing)
        self._check_policy(outcome)
        return outcome

    async def _prepare(self, spec: HttpTriggerSpec) -> list[tuple[str, str]]:
        if spec is self._spec and self._prepared is not None:
            return self._prepared
        credentials = await self._resolve_credentials()
        merged: multidict.CIMultiDict[str] = multidict.CIMultiDict()
        merged["Content-Type"] = "application/json"
        # Case-insensitive replacement: a user's `content-type` replaces ours, not joins it.
        for name, value in {**spec.headers, **credentials.headers}.items():
            merged[name] = value
        merged.popall("Idempotency-Key", None)
        prepared = list(merged.items())
        if spec is self._spec:
            self._prepared = prepared
        return prepared

    async def execute(self, resource: HttpRequest, firing: base.Firing) -> HttpOutcome:
        spec = resource.spec
        client = self._client
        assert client is not None, "trigger not started"
        # Added last: the trigger key is what makes the effect idempotent; users cannot override.
        prepared = self._prepared if spec is self._spec else None
        if prepared is None:
            prepared = await self._prepare(spec)
        headers = [*prepared, ("Idempotency-Key", firing.key)]
        shown = self._shown if spec is self._spec else _without_credentials(spec.url)
        try:
            response = await client.request(
                spec.method,
                client.url(spec.url),
                headers=headers,
                body=orjson.dumps(resource.body),
                timeout=spec.timeout,
                verify=not (spec.tls is not None and spec.tls.insecure_skip_verify),
                max_body=_BODY_CAP,
            )
        except httpclient.CertificateError as exc:
            raise errors.PermanentTriggerError(
                f"{spec.method} {shown}: certificate not trusted ({exc});"
                " fix the server certificate or set tls.insecureSkipVerify"
            ) from None
        except TimeoutError:
            raise errors.TemporaryTriggerError(
                f"{spec.method} {shown}: no response within {spec.timeout:g} s"
            ) from None
        except (httpclient.InvalidRequestError, ValueError) as exc:
            # A header value with CR/LF (e.g. set by a parameter), a URL that does not parse:
            # sending it again cannot help.
            raise errors.PermanentTriggerError(
                f"{spec.method} {shown}: invalid request: {exc}"
            ) from None
        except httpclient.TooManyRedirectsError as exc:
            raise errors.PermanentTriggerError(f"{spec.method} {shown}: {exc}") from None
        except httpclient.HttpClientError as exc:
            raise errors.TemporaryTriggerError(f"{spec.method} {shown}: {exc}") from None
        return HttpOutcome(
            method=spec.method,
            url=shown,
            status=response.status,
            body=response.body[:_OUTCOME_EXCERPT].decode("utf-8", "replace"),
            retry_after=response.header("Retry-After"),
        )

    async def apply_policy(self, outcome: HttpOutcome, firing: base.Firing) -> None:
        self._check_policy(outcome)

    def _check_policy(self, outcome: HttpOutcome) -> None:
        status_policy = self._policy.status if self._policy is not None else None
        if status_policy is not None:
            if status_policy.allows(outcome.status):
                return
            reason = f" (not in policy status.allow {status_policy.allow})"
        elif 200 <= outcome.status < 300:
            return
        else:
            reason = ""
        message = outcome.describe() + reason
        if outcome.status >= 500 or outcome.status in _RETRYABLE_4XX:
            raise errors.TemporaryTriggerError(message, delay=retry_after(outcome.retry_after))
        raise errors.PermanentTriggerError(message)


def _without_credentials(url: str) -> str:
    """`url` as messages and logs may show it: a password in it is replaced by `***`."""
    if "@" not in url:
        return url
    try:
        parsed = yarl.URL(url)
    except ValueError:
        return url.rpartition("@")[2]
    return str(parsed.with_password("***")) if parsed.password else url


def _basic_auth(username: str, password: str) -> str:
    # Built by hand: aiohttp.BasicAuth is deprecated in 3.14 and its successor is 3.14-only.
    if ":" in username:
        raise errors.SecretError("basicAuth username must not contain ':' (RFC 7617)")
    token = base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
    return f"Basic {token}"


def retry_after(value: str | None, *, now: datetime.datetime | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` header (delta-seconds or HTTP-date), or None."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.UTC)
    now = now or datetime.datetime.now(datetime.UTC)
    return max(0.0, (when - now).total_seconds())


__all__ = [
    "BasicAuth",
    "HttpOutcome",
    "HttpRequest",
    "HttpTrigger",
    "HttpTriggerSpec",
    "SecureHeader",
    "TLSConfig",
    "retry_after",
]
