"""The webhook gateway against a real aiohttp server on loopback, with a list-appending dispatch.

Every rejection test checks three things: the status and its reason text, that nothing was
dispatched, and that the same endpoint still answers the next good request.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import socket
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp
import pydantic
import pytest
from aiohttp import web

from gateways import base, serving, webhook
from tripwire import errors, events, metrics, secrets

HOST = "127.0.0.1"


def free_port() -> int:
    """A TCP port nothing listens on right now (the kernel's pick for an ephemeral bind)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # SO_REUSEADDR: connections of the closed listener may linger in TIME_WAIT.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
            sock.listen()
        except OSError:
            return False
        return True


class Recorder:
    """`dispatch` fake: appends events, or raises `error` (once per call) when set."""

    def __init__(self) -> None:
        self.events: list[events.Event] = []
        self.error: Exception | None = None

    async def __call__(self, event: events.Event) -> None:
        if self.error is not None:
            raise self.error
        self.events.append(event)


class NoStore:
    """The webhook must not touch the store; any use fails the test."""

    async def get(self, key: str) -> bytes | None:
        raise AssertionError("webhook used the store")

    async def scan(self, prefix: str = "") -> list[tuple[str, bytes]]:
        raise AssertionError("webhook used the store")

    async def write(self, changes: Mapping[str, bytes | None]) -> None:
        raise AssertionError("webhook used the store")


@dataclasses.dataclass
class StaticResolver:
    values: dict[str, str]

    async def resolve(self, ref: secrets.SecretRef) -> str:
        if ref.env is None or ref.env not in self.values:
            raise errors.SecretError(f"{ref.describe()} is not set")
        return self.values[ref.env]


@dataclasses.dataclass
class Harness:
    servers: serving.Servers
    stack: contextlib.AsyncExitStack
    session: aiohttp.ClientSession
    resolver: StaticResolver

    async def source(
        self,
        *,
        port: int,
        endpoint: str = "/hook",
        gateway: str = "ci",
        name: str = "push",
        dispatch: Recorder | None = None,
        **spec: Any,
    ) -> Recorder:
        """Start a webhook entry on the shared servers; returns its dispatch recorder."""
        recorder = dispatch if dispatch is not None else Recorder()
        model = webhook.WebhookSpec.model_validate(
            {"endpoint": endpoint, "port": port, "host": HOST, **spec}
        )
        context = base.SourceContext(
            gateway=gateway,
            name=name,
            kind=webhook.KIND,
            dispatch=recorder,
            store=NoStore(),
            secrets=self.resolver,
            servers=self.servers,
        )
        await webhook.WebhookSource(spec=model, context=context).start(self.stack)
        return recorder

    async def call(
        self, method: str, url: str, **kwargs: Any
    ) -> tuple[int, str, Mapping[str, str]]:
        async with self.session.request(method, url, **kwargs) as resp:
            return resp.status, await resp.text(), resp.headers


@pytest.fixture
async def h() -> AsyncIterator[Harness]:
    async with contextlib.AsyncExitStack() as stack, aiohttp.ClientSession() as session:
        servers = serving.Servers(shutdown_timeout=1.0)
        await servers.start(stack)
        yield Harness(servers=servers, stack=stack, session=session, resolver=StaticResolver({}))


async def hello(request: web.BaseRequest) -> web.StreamResponse:
    return web.Response(text="hi")


def url(port: int, path: str = "/hook") -> str:
    return f"http://{HOST}:{port}{path}"


async def assert_still_serves(h: Harness, rec: Recorder, port: int, path: str = "/hook") -> None:
    before = len(rec.events)
    status, text, _ = await h.call("POST", url(port, path), json={"next": True})
    assert (status, text) == (200, "ok")
    assert len(rec.events) == before + 1
    assert rec.events[-1].data["body"] == {"next": True}


def failed(reason: str, *, gateway: str = "ci", event: str = "push") -> float:
    value = metrics.REGISTRY.get_sample_value(
        "tripwire_events_failed_total", {"gateway": gateway, "event": event, "reason": reason}
    )
    return value or 0.0


# --- bodies and the event shape ----------------------------------------------------------------


async def test_json_body_makes_an_argo_shaped_event(h: Harness) -> None:
    port = free_port()
    rec = await h.source(port=port, metadata={"team": "ml"})
    status, text, headers = await h.call(
        "POST",
        url(port),
        json={"ref": "refs/heads/main", "n": [1, 2]},
        headers={"x-github-event": "push"},
    )
    assert (status, text) == (200, "ok")
    [event] = rec.events
    assert headers["Tripwire-Event-Id"] == event.id
    assert (event.source, event.subject, event.type) == ("ci", "push", "webhook")
    assert event.data["body"] == {"ref": "refs/heads/main", "n": [1, 2]}
    assert event.data["metadata"] == {"team": "ml"}
    header = event.data["header"]
    # Go's canonical header names, values as lists: Argo filters such as header.X-Github-Event.
    assert header["X-Github-Event"] == ["push"]
    assert header["Content-Type"] == ["application/json"]
    assert set(event.data) == {"header", "body", "metadata"}
    # Each event gets its own copy of the metadata: a sensor mutating one cannot touch the next.
    event.data["metadata"]["team"] = "changed"
    await assert_still_serves(h, rec, port)
    assert rec.events[-1].data["metadata"] == {"team": "ml"}


async def test_json_suffix_media_type_and_repeated_headers(h: Harness) -> None:
    port = free_port()
    rec = await h.source(port=port)
    status, _, _ = await h.call(
        "POST",
        url(port),
        data=b'{"a": 1}',
        headers=[
            ("Content-Type", "application/cloudevents+json; charset=utf-8"),
            ("x-tag", "one"),
            ("x-tag", "two"),
        ],
    )
    assert status == 200
    assert rec.events[0].data["body"] == {"a": 1}
    assert rec.events[0].data["header"]["X-Tag"] == ["one", "two"]


async def test_form_body_is_a_dict_of_lists(h: Harness) -> None:
    port = free_port()
    rec = await h.source(port=port)
    status, _, _ = await h.call("POST", url(port), data={"a": "1", "b": ""})
    assert status == 200
    status, _, _ = await h.call(
        "POST",
        url(port),
        data=b"a=1&a=2&c=%C3%A9",
        headers={"Content-Type": "application/x-www-form-urlencoded; charset=UTF-8"},
    )
    assert status == 200
    assert [e.data["body"] for e in rec.events] == [
        {"a": ["1"], "b": [""]},
        {"a": ["1", "2"], "c": ["é"]},
    ]


async def test_text_body_is_a_string_and_binary_is_base64(h: Harness) -> None:
    port = free_port()
    rec = await h.source(port=port)
    await h.call("POST", url(port), data="héllo {", headers={"Content-Type": "text/plain"})
    blob = b"\xff\xfe\x00binary"
    await h.call("POST", url(port), data=blob, headers={"Content-Type": "application/octet-stream"})
    text_event, blob_event = rec.events
    assert text_event.data["body"] == "héllo {"
    assert "bodyEncoding" not in text_event.data
    assert blob_event.data["bodyEncoding"] == "base64"
    assert base64.b64decode(blob_event.data["body"]) == blob


async def test_no_content_type_body_that_looks_like_json_is_parsed(h: Harness) -> None:
    port = free_port()
    rec = await h.source(port=port)
    # skip_auto_headers: aiohttp would otherwise label bytes application/octet-stream.
    kwargs: dict[str, Any] = {"skip_auto_headers": ["Content-Type"]}
    assert (await h.call("POST", url(port), data=b'  [1, {"x": 2}]', **kwargs))[0] == 200
    assert (await h.call("POST", url(port), data=b"plain words", **kwargs))[0] == 200
    assert [e.data["body"] for e in rec.events] == [[1, {"x": 2}], "plain words"]
    assert "Content-Type" not in rec.events[0].data["header"]
    status, text, _ = await h.call("POST", url(port), data=b"{oops", **kwargs)
    assert status == 400
    assert text.startswith("malformed JSON body: ")
    assert len(rec.events) == 2


async def test_empty_body_is_null(h: Harness) -> None:
    port = free_port()
    rec = await h.source(port=port)
    assert (await h.call("POST", url(port)))[0] == 200
    json_type = {"Content-Type": "application/json"}
    assert (await h.call("POST", url(port), data=b"", headers=json_type))[0] == 200
    assert [e.data["body"] for e in rec.events] == [None, None]


async def test_get_body_is_the_query_like_argo(h: Harness) -> None:
    port = free_port()
    rec = await h.source(port=port, method="get")
    status, _, _ = await h.call("GET", url(port, "/hook?x=1&x=2&y=z"))
    assert status == 200
    assert rec.events[0].data["body"] == {"x": ["1", "2"], "y": ["z"]}


# --- routing on shared ports -----------------------------------------------------------------


async def test_endpoints_of_several_gateways_share_a_port_and_use_several_ports(
    h: Harness,
) -> None:
    port_a, port_b = free_port(), free_port()
    push = await h.source(port=port_a, endpoint="/push", gateway="ci", name="push")
    tag = await h.source(port=port_a, endpoint="/tag", gateway="release", name="tag")
    other = await h.source(port=port_b, endpoint="/push", gateway="ops", name="page")
    assert h.servers.ports() == sorted([port_a, port_b])
    assert (await h.call("POST", url(port_a, "/push"), json=1))[0] == 200
    assert (await h.call("POST", url(port_a, "/tag"), json=2))[0] == 200
    assert (await h.call("POST", url(port_b, "/push"), json=3))[0] == 200
    assert [e.data["body"] for e in push.events] == [1]
    assert [(e.source, e.data["body"]) for e in tag.events] == [("release", 2)]
    assert [(e.source, e.data["body"]) for e in other.events] == [("ops", 3)]


async def test_unknown_path_is_404_with_reason(h: Harness) -> None:
    port = free_port()
    rec = await h.source(port=port)
    status, text, _ = await h.call("POST", url(port, "/x"), json={})
    assert (status, text) == (404, "no endpoint /x on this port")
    # Exact match: a trailing slash is another endpoint, as in Argo.
    assert (await h.call("POST", url(port, "/hook/"), json={}))[0] == 404
    assert rec.events == []
    await assert_still_serves(h, rec, port)


async def test_healthz_on_every_port(h: Harness) -> None:
    port = free_port()
    await h.source(port=port)
    assert (await h.call("GET", url(port, "/healthz")))[:2] == (200, "ok")


async def test_duplicate_route_names_both_owners(h: Harness) -> None:
    port = free_port()
    await h.source(port=port, endpoint="/hook", gateway="ci", name="push")
    with pytest.raises(serving.RouteConflictError) as caught:
        await h.source(port=port, endpoint="/hook", gateway="other", name="dup")
    message = str(caught.value)
    assert "gateway ci webhook push" in message
    assert "gateway other webhook dup" in message
    assert isinstance(caught.value, errors.SourceError)


async def test_route_removal_closes_the_port_with_its_last_route(h: Harness) -> None:
    port = free_port()
    remove_a = await h.servers.add_route(port=port, path="/a", handler=hello, host=HOST)
    remove_b = await h.servers.add_route(port=port, path="b", handler=hello, host=HOST)
    await remove_a()
    assert (await h.call("GET", url(port, "/a")))[0] == 404
    assert (await h.call("GET", url(port, "/b")))[:2] == (200, "hi")
    assert not port_is_free(port)
    await remove_b()
    await remove_b()  # idempotent
    assert h.servers.ports() == []
    assert port_is_free(port)
    # The path can be claimed again, and the port reopens.
    remove_c = await h.servers.add_route(port=port, path="/a", handler=hello, host=HOST)
    assert (await h.call("GET", url(port, "/a")))[:2] == (200, "hi")
    await remove_c()


async def test_routes_added_at_once_open_the_port_once(h: Harness) -> None:
    port = free_port()
    removes = await asyncio.gather(
        *(h.servers.add_route(port=port, path=f"/{i}", handler=hello, host=HOST) for i in range(5))
    )
    assert h.servers.ports() == [port]
    for i in range(5):
        assert (await h.call("GET", url(port, f"/{i}")))[:2] == (200, "hi")
    for remove in removes:
        await remove()
    assert port_is_free(port)


async def test_port_in_use_is_a_source_error(h: Harness) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind((HOST, 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(errors.SourceError, match=f"cannot listen on {HOST}:{port}"):
            await h.source(port=port)
    assert h.servers.ports() == []


async def test_one_port_cannot_listen_on_two_hosts(h: Harness) -> None:
    port = free_port()
    await h.source(port=port)
    with pytest.raises(serving.RouteConflictError, match=r"already listens on host 127\.0\.0\.1"):
        await h.servers.add_route(
            port=port, path="/other", handler=hello, host="0.0.0.0", owner="x"
        )


async def test_healthz_path_is_reserved(h: Harness) -> None:
    with pytest.raises(serving.RouteConflictError, match="reserved"):
        await h.servers.add_route(port=free_port(), path="/healthz", handler=hello, host=HOST)


# --- rejections ------------------------------------------------------------------------------


async def test_wrong_method_is_405_with_allow(h: Harness) -> None:
    port = free_port()
    rec = await h.source(port=port)
    before = failed("method")
    status, text, headers = await h.call("PUT", url(port), json={})
    assert (status, text) == (405, "method PUT not allowed, use POST")
    assert headers["Allow"] == "POST"
    assert rec.events == []
    assert failed("method") == before + 1
    await assert_still_serves(h, rec, port)


async def test_bearer_token_auth_and_masking(h: Harness) -> None:
    port = free_port()
    h.resolver.values["HOOK_TOKEN"] = "s3cret\n"
    rec = await h.source(port=port, authSecret={"env": "HOOK_TOKEN"})
    cases = [
        ({}, "missing bearer token"),
        ({"Authorization": "Bearer wrong"}, "invalid bearer token"),
        ({"Authorization": "Basic s3cret"}, "invalid bearer token"),
        ({"Authorization": "Bearer s3cret-and-more"}, "invalid bearer token"),
    ]
    for headers, reason in cases:
        status, text, resp_headers = await h.call("POST", url(port), json={}, headers=headers)
        assert (status, text) == (401, reason)
        assert resp_headers["WWW-Authenticate"] == "Bearer"
    assert rec.events == []
    good = {"Authorization": "bearer s3cret"}
    status, text, _ = await h.call("POST", url(port), json={"ok": 1}, headers=good)
    assert (status, text) == (200, "ok")
    assert rec.events[0].data["header"]["Authorization"] == ["***"]
    assert "s3cret" not in events.Event.to_bytes(rec.events[0]).decode()


async def test_missing_secret_fails_start(h: Harness) -> None:
    with pytest.raises(errors.SecretError, match="NOPE"):
        await h.source(port=free_port(), authSecret={"env": "NOPE"})
    assert h.servers.ports() == []


async def test_too_large_by_content_length(h: Harness) -> None:
    port = free_port()
    rec = await h.source(port=port, maxPayloadSize=1000)
    status, text, _ = await h.call("POST", url(port), data=b"x" * 1001)
    assert (status, text) == (413, "payload too large: limit is 1000 bytes")
    assert rec.events == []
    # Exactly at the limit is fine.
    status, _, _ = await h.call("POST", url(port), data=b"y" * 1000)
    assert status == 200
    assert rec.events[0].data["body"] == "y" * 1000
    await assert_still_serves(h, rec, port)


async def test_a_body_that_never_finishes_times_out_with_408(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(webhook, "BODY_TIMEOUT", 0.2)
    port = free_port()
    rec = await h.source(port=port)
    reader, writer = await asyncio.open_connection(HOST, port)
    writer.write(
        b"POST /hook HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b'Content-Length: 100\r\n\r\n{"partial":'
    )
    await writer.drain()
    head = await asyncio.wait_for(reader.read(4096), 5)
    # aiohttp drains (lingers on) an unread body for a bounded time after answering; finish
    # sending so that its connection task ends within the test.
    writer.write(b" " * 89)
    await writer.drain()
    writer.close()
    await writer.wait_closed()
    assert head.startswith(b"HTTP/1.1 408")
    assert b"request body not received within 0.2s" in head
    assert rec.events == []
    assert failed("incomplete") >= 1
    await assert_still_serves(h, rec, port)


async def test_too_large_by_chunked_body(h: Harness) -> None:
    port = free_port()
    rec = await h.source(port=port, maxPayloadSize=1000)

    async def chunks(count: int) -> AsyncIterator[bytes]:
        for _ in range(count):
            yield b"z" * 300

    before = failed("too_large")
    status, text, _ = await h.call("POST", url(port), data=chunks(20))
    assert (status, text) == (413, "payload too large: limit is 1000 bytes")
    assert rec.events == []
    assert failed("too_large") == before + 1
    # A chunked body under the limit is read whole.
    assert (await h.call("POST", url(port), data=chunks(3)))[0] == 200
    assert rec.events[0].data["body"] == "z" * 900
    await assert_still_serves(h, rec, port)


async def test_too_large_chunked_body_arriving_with_the_headers(h: Harness) -> None:
    # The whole request in one write: the body is complete when the handler runs, and the
    # limit still applies to what the chunks add up to.
    port = free_port()
    rec = await h.source(port=port, maxPayloadSize=1000)
    chunk = b"z" * 600
    request = (
        b"POST /hook HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
        + (b"%x\r\n" % len(chunk) + chunk + b"\r\n") * 2
        + b"0\r\n\r\n"
    )
    before = failed("too_large")
    reader, writer = await asyncio.open_connection(HOST, port)
    writer.write(request)
    await writer.drain()
    head = await reader.read(4096)
    writer.close()
    await writer.wait_closed()
    assert head.startswith(b"HTTP/1.1 413")
    assert head.endswith(b"payload too large: limit is 1000 bytes")
    assert rec.events == []
    assert failed("too_large") == before + 1
    await assert_still_serves(h, rec, port)


async def test_malformed_json_is_400_with_the_parser_message(h: Harness) -> None:
    port = free_port()
    rec = await h.source(port=port)
    status, text, _ = await h.call(
        "POST", url(port), data=b'{"a": 1,}', headers={"Content-Type": "application/json"}
    )
    assert status == 400
    assert text.startswith("malformed JSON body: ")
    assert "line 1 column" in text
    assert rec.events == []
    await assert_still_serves(h, rec, port)


async def test_bus_unavailable_is_503_retry(h: Harness) -> None:
    port = free_port()
    rec = await h.source(port=port)
    rec.error = errors.BusUnavailableError("journal full")
    status, text, headers = await h.call("POST", url(port), json={})
    assert (status, text) == (503, "event bus unavailable, retry")
    assert headers["Retry-After"] == "1"
    assert rec.events == []
    rec.error = None
    await assert_still_serves(h, rec, port)


async def test_dispatch_crash_is_500_and_the_server_keeps_serving(
    h: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    port = free_port()
    rec = await h.source(port=port)
    rec.error = RuntimeError("boom")
    status, text, _ = await h.call("POST", url(port), json={})
    assert (status, text) == (500, "internal error, event not accepted")
    assert any(r.exc_info and "boom" in str(r.exc_info[1]) for r in caplog.records)
    rec.error = None
    await assert_still_serves(h, rec, port)


# --- the spec --------------------------------------------------------------------------------


def test_spec_accepts_argo_fields() -> None:
    spec = webhook.WebhookSpec.model_validate(
        {
            "endpoint": "/push",
            "port": "12000",
            "method": "post",
            "url": "http://ignored",
            "authSecret": {"name": "hook", "key": "token"},
            "maxPayloadSize": 2048,
            "metadata": {"a": "b"},
        }
    )
    assert (spec.port, spec.method, spec.max_payload_size) == (12000, "POST", 2048)
    assert spec.host == "0.0.0.0"
    assert spec.auth_secret is not None and spec.auth_secret.key == "token"


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"endpoint": "push"}, "endpoint"),
        ({"endpoint": "/healthz"}, "endpoint"),
        ({"endpoint": "/a?b=c"}, "endpoint"),
        ({"port": 0}, "port"),
        ({"port": "http"}, "port"),
        ({"port": 70000}, "port"),
        ({"method": "PO ST"}, "method"),
        ({"maxPayloadSize": 0}, "maxPayloadSize"),
        ({"serverCertSecret": {"env": "X"}}, "serverCertSecret"),
    ],
)
def test_spec_rejects(patch: dict[str, Any], field: str) -> None:
    with pytest.raises(pydantic.ValidationError) as caught:
        webhook.WebhookSpec.model_validate({"endpoint": "/push", "port": 12000, **patch})
    assert [e["loc"] for e in caught.value.errors()] == [(field,)]


def test_canonical_header_names_follow_go() -> None:
    assert webhook.canonical_header("x-github-event") == "X-Github-Event"
    assert webhook.canonical_header("CONTENT-TYPE") == "Content-Type"
    assert webhook.canonical_header("authorization") == "Authorization"


def test_registry_finds_the_webhook_kind() -> None:
    assert base.load("webhook") is webhook.WebhookSource
    assert base.spec_models()["webhook"] is webhook.WebhookSpec
