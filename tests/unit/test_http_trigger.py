"""The HTTP trigger against a real local aiohttp server: body, headers, policy, failures."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import datetime
import pathlib
import ssl
import subprocess
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pydantic
import pytest
from aiohttp import web

from triggers import base, http, policies
from tripwire import errors, events, secrets
from tripwire.net import httpclient


@dataclasses.dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: Any
    peer_port: int


@dataclasses.dataclass
class Server:
    base: str
    requests: list[Received]


async def _handle(request: web.Request, requests: list[Received], release: asyncio.Event) -> Any:
    raw = await request.read()
    peer = request.transport.get_extra_info("peername") if request.transport else None
    requests.append(
        Received(
            method=request.method,
            path=request.path,
            headers=dict(request.headers),
            body=orjson.loads(raw) if raw else None,
            peer_port=peer[1] if peer else 0,
        )
    )
    if request.path == "/slow":
        await release.wait()
    status = int(request.query.get("status", "200"))
    headers = {}
    if "retry" in request.query:
        headers["Retry-After"] = request.query["retry"]
    return web.Response(status=status, text=request.query.get("say", "ok"), headers=headers)


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    requests: list[Received] = []
    release = asyncio.Event()

    async def handler(request: web.Request) -> web.StreamResponse:
        response: web.StreamResponse = await _handle(request, requests, release)
        return response

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app, shutdown_timeout=1.0)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield Server(base=f"http://127.0.0.1:{runner.addresses[0][1]}", requests=requests)
    finally:
        release.set()
        await runner.cleanup()


@dataclasses.dataclass(frozen=True)
class Clients:
    """What the runtime shares between triggers: an aiohttp session and the HTTP/1.1 client."""

    session: aiohttp.ClientSession
    http: httpclient.Client


@pytest.fixture
async def clients() -> AsyncIterator[Clients]:
    async with aiohttp.ClientSession() as session:
        http_client = httpclient.Client()
        try:
            yield Clients(session, http_client)
        finally:
            await http_client.close()


EVENT = events.Event(
    id="ev-1",
    source="ci",
    subject="push",
    type="webhook",
    data={"body": {"ref": "main", "after": "abc123", "n": 3, "repo": {"name": "tw"}}},
    time=datetime.datetime(2024, 1, 2, tzinfo=datetime.UTC),
)
FIRING = base.Firing(key="trigger-key-1", sensor="s", trigger="t", events={"pushed": EVENT})


def _trigger(spec: dict[str, Any], clients: Clients, policy: Any = None) -> http.HttpTrigger:
    context = base.TriggerContext(
        sensor="s",
        trigger="t",
        session=clients.session,
        http=clients.http,
        secrets=secrets.LocalResolver(),
        policy=policy,
    )
    return http.HttpTrigger(spec=spec, context=context)


async def _fire(trigger: http.HttpTrigger) -> http.HttpOutcome:
    async with contextlib.AsyncExitStack() as stack:
        await trigger.start(stack)
        return await trigger.fire(FIRING)


def _p(dest: str, **src: Any) -> dict[str, Any]:
    return {"src": {"dependencyName": "pushed", **src}, "dest": dest}


async def test_payload_headers_and_idempotency_key(
    server: Server, clients: Clients, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TW_TOKEN", "s3cr3t")
    monkeypatch.setenv("TW_USER", "bob")
    monkeypatch.setenv("TW_PASS", "pw")
    spec = {
        "url": f"{server.base}/hook",
        "payload": [
            _p("commit", dataKey="body.after"),
            _p("meta.count", dataKey="body.n", useRawData=True),
            _p("repo", dataKey="body.repo", useRawData=True),
            _p("fixed", dataKey="body.absent", value="dflt"),
        ],
        "headers": {"X-Team": "ml", "content-type": "application/json; charset=utf-8"},
        "secureHeaders": [{"name": "X-Token", "valueFrom": {"secretKeyRef": {"env": "TW_TOKEN"}}}],
        "basicAuth": {"username": {"env": "TW_USER"}, "password": {"env": "TW_PASS"}},
    }
    outcome = await _fire(_trigger(spec, clients))

    assert outcome.status == 200
    assert outcome.body == "ok"
    [got] = server.requests
    assert got.method == "POST"
    assert got.path == "/hook"
    assert got.body == {
        "commit": "abc123",
        "meta": {"count": 3},
        "repo": {"name": "tw"},
        "fixed": "dflt",
    }
    assert got.headers["Idempotency-Key"] == "trigger-key-1"
    assert got.headers["Content-Type"] == "application/json; charset=utf-8"
    assert got.headers["X-Team"] == "ml"
    assert got.headers["X-Token"] == "s3cr3t"
    assert got.headers["Authorization"] == "Basic " + base64.b64encode(b"bob:pw").decode()


async def test_empty_payload_is_empty_object_and_method(server: Server, clients: Clients) -> None:
    await _fire(_trigger({"url": f"{server.base}/x", "method": "put"}, clients))
    [got] = server.requests
    assert (got.method, got.body) == ("PUT", {})
    assert got.headers["Content-Type"] == "application/json"


async def test_idempotency_key_cannot_be_overridden(server: Server, clients: Clients) -> None:
    spec = {"url": f"{server.base}/x", "headers": {"idempotency-key": "mine"}}
    await _fire(_trigger(spec, clients))
    assert server.requests[0].headers["Idempotency-Key"] == "trigger-key-1"


async def test_parameters_change_url_and_headers(server: Server, clients: Clients) -> None:
    spec = {
        "url": f"{server.base}/default",
        "parameters": [
            _append(_p("url", dataKey="body.ref")),
            _p("headers.X-Commit", dataKey="body.after"),
        ],
    }
    trigger = _trigger(spec, clients)
    outcome = await _fire(trigger)
    assert outcome.url == f"{server.base}/defaultmain"
    [got] = server.requests
    assert got.path == "/defaultmain"
    assert got.headers["X-Commit"] == "abc123"


async def test_header_injection_is_permanent(server: Server, clients: Clients) -> None:
    spec = {"url": f"{server.base}/x", "parameters": [_p("headers.X-Evil", value="a\r\nX-B: c")]}
    with pytest.raises(errors.PermanentTriggerError, match="invalid request"):
        await _fire(_trigger(spec, clients))
    assert server.requests == []


def _append(param: dict[str, Any]) -> dict[str, Any]:
    return {**param, "operation": "append"}


async def test_parameters_cannot_make_spec_invalid(clients: Clients) -> None:
    spec = {"url": "http://127.0.0.1:1/", "parameters": [_p("url", value="ftp://x")]}
    with pytest.raises(errors.PermanentTriggerError, match="parameters made the spec invalid: url"):
        await _fire(_trigger(spec, clients))


async def test_connection_is_reused(server: Server, clients: Clients) -> None:
    trigger = _trigger({"url": f"{server.base}/x"}, clients)
    await _fire(trigger)
    await _fire(trigger)
    first, second = server.requests
    assert first.peer_port == second.peer_port, "the shared clients must keep connections alive"


@pytest.mark.parametrize(
    ("query", "policy", "error", "delay"),
    [
        ("status=201", None, None, None),
        ("status=404", {"status": {"allow": [200, 404]}}, None, None),
        ("status=201", {"status": {"allow": [200]}}, errors.PermanentTriggerError, None),
        ("status=500&retry=7", None, errors.TemporaryTriggerError, 7.0),
        ("status=503", {"status": {"allow": [200]}}, errors.TemporaryTriggerError, None),
        ("status=429&retry=2", None, errors.TemporaryTriggerError, 2.0),
        ("status=408", None, errors.TemporaryTriggerError, None),
        ("status=404&say=gone", None, errors.PermanentTriggerError, None),
        ("status=302", None, errors.PermanentTriggerError, None),
    ],
)
async def test_status_and_policy(
    server: Server,
    clients: Clients,
    query: str,
    policy: dict[str, Any] | None,
    error: type[errors.TriggerError] | None,
    delay: float | None,
) -> None:
    url = f"{server.base}/hook?{query}"
    trigger = _trigger({"url": url}, clients, policy)
    if error is None:
        await _fire(trigger)
        return
    with pytest.raises(error) as caught:
        await _fire(trigger)
    status = query.split("&")[0].removeprefix("status=")
    assert str(caught.value).startswith(f"POST {url}: HTTP {status}: ")
    if isinstance(caught.value, errors.TemporaryTriggerError):
        assert caught.value.delay == delay


async def test_error_message_has_body_excerpt(server: Server, clients: Clients) -> None:
    url = f"{server.base}/hook?status=400&say={'x' * 500}"
    with pytest.raises(errors.PermanentTriggerError) as caught:
        await _fire(_trigger({"url": url}, clients))
    assert str(caught.value) == f"POST {url}: HTTP 400: {'x' * 200}"


async def test_policy_model_is_accepted(server: Server, clients: Clients) -> None:
    policy = policies.TriggerPolicy(status=policies.StatusPolicy(allow=[418]))
    await _fire(_trigger({"url": f"{server.base}/x?status=418"}, clients, policy))


async def _refusing_port() -> int:
    """A port that was just listened on and closed: connecting to it is refused."""
    listener = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port: int = listener.sockets[0].getsockname()[1]
    listener.close()
    await listener.wait_closed()
    return port


async def test_connection_refused_is_temporary(clients: Clients) -> None:
    url = f"http://127.0.0.1:{await _refusing_port()}/hook"
    with pytest.raises(errors.TemporaryTriggerError, match=f"POST {url}: "):
        await _fire(_trigger({"url": url}, clients))


async def test_credentials_in_the_url_never_reach_messages(clients: Clients) -> None:
    port = await _refusing_port()
    url = f"http://bot:hunter2@127.0.0.1:{port}/hook"
    with pytest.raises(errors.TemporaryTriggerError) as caught:
        await _fire(_trigger({"url": url}, clients))
    assert "hunter2" not in str(caught.value)
    assert f"POST http://bot:***@127.0.0.1:{port}/hook: " in str(caught.value)


async def test_timeout_is_temporary(server: Server, clients: Clients) -> None:
    url = f"{server.base}/slow"
    with pytest.raises(errors.TemporaryTriggerError, match=f"POST {url}: no response within 0.2 s"):
        await _fire(_trigger({"url": url, "timeout": 0.2}, clients))


@pytest.fixture
def certificate(tmp_path: pathlib.Path) -> tuple[pathlib.Path, pathlib.Path]:
    """A self-signed certificate for 127.0.0.1 (the `cryptography` package is not installed)."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-nodes", "-days", "1",
            "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-keyout", str(key), "-out", str(cert),
            "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


async def test_tls_verification_and_insecure_skip_verify(
    clients: Clients, certificate: tuple[pathlib.Path, pathlib.Path]
) -> None:
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(*certificate)

    async def ok(request: web.Request) -> web.Response:
        return web.Response(text="secure")

    app = web.Application()
    app.router.add_post("/hook", ok)
    runner = web.AppRunner(app, shutdown_timeout=1.0)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0, ssl_context=tls).start()
    url = f"https://127.0.0.1:{runner.addresses[0][1]}/hook"
    try:
        with pytest.raises(errors.PermanentTriggerError, match="certificate not trusted"):
            await _fire(_trigger({"url": url}, clients))
        spec = {"url": url, "tls": {"insecureSkipVerify": True}}
        assert (await _fire(_trigger(spec, clients))).body == "secure"
    finally:
        await runner.cleanup()


async def test_missing_secret_fails_at_start(
    clients: Clients, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TW_ABSENT", raising=False)
    spec = {
        "url": "http://127.0.0.1:1/",
        "secureHeaders": [{"name": "X", "valueFrom": {"secretKeyRef": {"env": "TW_ABSENT"}}}],
    }
    with pytest.raises(errors.SecretError, match="TW_ABSENT"):
        await _fire(_trigger(spec, clients))


@pytest.mark.parametrize(
    "spec",
    [
        {},
        {"url": "ftp://x"},
        {"url": "http://x", "method": "PO ST"},
        {"url": "http://x", "timeout": 0},
        {"url": "http://x", "tls": {"insecure": True}},
    ],
)
def test_invalid_specs(spec: dict[str, Any]) -> None:
    with pytest.raises(pydantic.ValidationError):
        http.HttpTriggerSpec.model_validate(spec)


def test_registered_kind() -> None:
    assert base.load("http") is http.HttpTrigger
    assert base.spec_models()["http"] is http.HttpTriggerSpec


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("", None),
        ("12", 12.0),
        ("Wed, 01 Jan 2025 00:00:30 GMT", 30.0),
        ("Tue, 31 Dec 2024 23:00:00 GMT", 0.0),
        ("soon", None),
    ],
)
def test_retry_after(header: str | None, expected: float | None) -> None:
    now = datetime.datetime(2025, 1, 1, tzinfo=datetime.UTC)
    assert http.retry_after(header, now=now) == expected
