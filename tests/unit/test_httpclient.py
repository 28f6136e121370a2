"""The HTTP/1.1 client against real local servers: aiohttp's, and raw sockets for the edge cases.

The raw servers write exact bytes (chunked framing with extensions and trailers, interim 1xx
answers, bodies cut short, idle connections closed under the client), which is how the
client's parser and pool are shown to handle what real servers do.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from aiohttp import web

from tripwire.net import httpclient


@dataclasses.dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    peer_port: int


@dataclasses.dataclass(frozen=True)
class Close:
    """Write `data`, then close the connection."""

    data: bytes


Answer = Callable[[Seen, int], Awaitable[bytes | Close | None]]


class RawServer:
    """Reads HTTP/1.1 requests (Content-Length bodies) and writes what `answer` returns.

    `answer(request, index_on_connection)` returns the raw response bytes, `Close(bytes)` to
    close the connection after writing them, or None to close it without answering.
    """

    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.requests: list[Seen] = []
        self.connections = 0
        self.server: asyncio.Server | None = None
        self.port = 0

    async def __aenter__(self) -> RawServer:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        peer_port = writer.get_extra_info("peername")[1]
        try:
            for index in range(1_000_000):
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ")
                headers = {}
                for line in lines[1:]:
                    if line:
                        name, _, value = line.partition(":")
                        headers[name.lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                seen = Seen(method, path, headers, body, peer_port)
                self.requests.append(seen)
                response = await self.answer(seen, index)
                if response is None:
                    return
                writer.write(response.data if isinstance(response, Close) else response)
                await writer.drain()
                if isinstance(response, Close):
                    return
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


def ok(body: bytes = b"ok", *, extra: str = "") -> bytes:
    return f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n{extra}\r\n".encode() + body


@pytest.fixture
async def client() -> AsyncIterator[httpclient.Client]:
    c = httpclient.Client()
    try:
        yield c
    finally:
        await c.close()


# --- the aiohttp server: the common case ---------------------------------------------------


@pytest.fixture
async def app_server() -> AsyncIterator[tuple[str, list[web.BaseRequest]]]:
    seen: list[web.BaseRequest] = []

    async def handle(request: web.BaseRequest) -> web.StreamResponse:
        seen.append(request)
        body = await request.read()
        if request.path == "/chunked":
            response = web.StreamResponse()
            response.enable_chunked_encoding()
            await response.prepare(request)
            for part in (b"alpha-", b"beta-", b"gamma"):
                await response.write(part)
            await response.write_eof()
            return response
        if request.path == "/big":
            return web.Response(body=b"x" * 200_000)
        if request.path == "/empty":
            return web.Response(status=204)
        assert request.transport is not None
        peer = request.transport.get_extra_info("peername")[1]
        return web.Response(
            body=b"echo:" + body, headers={"X-Method": request.method, "X-Peer": str(peer)}
        )

    runner = web.ServerRunner(web.Server(handle, access_log=None))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}", seen
    finally:
        await runner.cleanup()


async def test_post_body_headers_and_keep_alive(
    client: httpclient.Client, app_server: tuple[str, list[web.BaseRequest]]
) -> None:
    base, seen = app_server
    first = await client.request(
        "POST", f"{base}/hook?x=1", headers={"Content-Type": "application/json"}, body=b"{}"
    )
    second = await client.request("POST", f"{base}/hook", body=b"[1]")
    assert (first.status, first.body, first.header("x-method")) == (200, b"echo:{}", "POST")
    assert second.body == b"echo:[1]"
    assert first.header("X-Peer") == second.header("X-Peer"), "one kept-alive connection"
    assert client.open_connections == 1
    request = seen[0]
    assert request.path_qs == "/hook?x=1"
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["User-Agent"] == "tripwire"
    assert request.headers["Host"] == base.removeprefix("http://")
    assert "Accept-Encoding" not in request.headers  # so no compressed answers to decode


async def test_chunked_and_no_content_answers(
    client: httpclient.Client, app_server: tuple[str, list[web.BaseRequest]]
) -> None:
    base, _ = app_server
    chunked = await client.request("GET", f"{base}/chunked")
    assert (chunked.status, chunked.body, chunked.truncated) == (200, b"alpha-beta-gamma", False)
    empty = await client.request("POST", f"{base}/empty", body=b"x")
    assert (empty.status, empty.body) == (204, b"")
    assert client.open_connections == 1, "both framings leave the connection reusable"


async def test_a_long_body_is_cut_at_max_body_and_the_connection_dropped(
    client: httpclient.Client, app_server: tuple[str, list[web.BaseRequest]]
) -> None:
    base, _ = app_server
    response = await client.request("GET", f"{base}/big", max_body=1000)
    assert (len(response.body), response.truncated) == (1000, True)
    assert client.open_connections == 0, "the unread rest is not left on a pooled connection"
    assert (await client.request("GET", f"{base}/x")).status == 200


async def test_limit_bounds_open_connections(
    app_server: tuple[str, list[web.BaseRequest]],
) -> None:
    base, seen = app_server
    client = httpclient.Client(limit=2)
    try:
        answers = await asyncio.gather(
            *(client.request("POST", f"{base}/n", body=str(i).encode()) for i in range(20))
        )
    finally:
        await client.close()
    assert sorted(a.body for a in answers) == sorted(f"echo:{i}".encode() for i in range(20))
    peers = {r.transport.get_extra_info("peername")[1] for r in seen}  # type: ignore[union-attr]
    assert len(peers) <= 2


# --- raw servers: framing and connection edge cases ----------------------------------------


async def test_chunk_extensions_trailers_and_interim_answers(client: httpclient.Client) -> None:
    async def answer(seen: Seen, index: int) -> bytes:
        return (
            b"HTTP/1.1 100 Continue\r\n\r\n"
            b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
            b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\nX-A: 1\r\nx-a: 2\r\n\r\n"
            b"4;name=value\r\nwiki\r\n5\r\npedia\r\n0\r\nTrailer-Field: t\r\n\r\n"
        )

    async with RawServer(answer) as server:
        first = await client.request("POST", f"{server.base}/a", body=b"1")
        second = await client.request("POST", f"{server.base}/a", body=b"2")
    assert (first.status, first.reason, first.body) == (201, "Created", b"wikipedia")
    assert first.header("X-A") == "2", "the last value of a repeated header"
    assert second.body == b"wikipedia"
    assert server.connections == 1


async def test_body_until_close_is_read_and_not_reused(client: httpclient.Client) -> None:
    async def answer(seen: Seen, index: int) -> bytes | Close:
        return Close(b"HTTP/1.0 200 OK\r\n\r\nto the end") if seen.path == "/old" else ok()

    async with RawServer(answer) as server:
        # The server closes after writing: the close ends the body.
        response = await client.request("GET", f"{server.base}/old")
        assert (response.status, response.body) == (200, b"to the end")
        await client.request("GET", f"{server.base}/new")
    assert server.connections == 2


async def test_idle_connection_closed_by_server_is_replaced_for_replayable_requests(
    client: httpclient.Client,
) -> None:
    # Each connection answers its first request and drops the second unanswered, as a server
    # whose keep-alive timeout fires just as the client reuses the connection.
    async def answer(seen: Seen, index: int) -> bytes | None:
        return ok(seen.body) if index == 0 else None

    async with RawServer(answer) as server:
        url = f"{server.base}/hook"
        await client.request("POST", url, body=b"1", headers={"Idempotency-Key": "k1"})
        second = await client.request("POST", url, body=b"2", headers={"Idempotency-Key": "k2"})
        assert second.body == b"2"
        assert [r.body for r in server.requests] == [b"1", b"2", b"2"]
        assert server.connections == 2
        # Without an Idempotency-Key a POST is not sent twice: the caller hears of it.
        with pytest.raises(httpclient.DisconnectedError, match="before answering") as caught:
            await client.request("POST", url, body=b"3")
        assert caught.value.before_response
        assert [r.body for r in server.requests][-1] == b"3"
        assert sum(r.body == b"3" for r in server.requests) == 1


async def test_answer_cut_short_is_an_error_and_never_resent(client: httpclient.Client) -> None:
    async def answer(seen: Seen, index: int) -> Close:
        return Close(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nonly")

    async with RawServer(answer) as server:
        with pytest.raises(httpclient.DisconnectedError, match="middle of the response"):
            # The server closes after writing 4 of 10 bytes.
            await client.request("GET", f"{server.base}/x")
    assert len(server.requests) == 1


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"HTTP/2 200 OK\r\n\r\n", "invalid status line"),
        (b"HTTP/1.1 2000 OK\r\n\r\n", "invalid status line"),
        (b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", "invalid header line"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", "Content-Length"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", "Content-Length"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "invalid chunk size"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabXY", "not followed by CRLF"),
        (b"HTTP/1.1 101 Switching Protocols\r\n\r\n", "101"),
    ],
)
async def test_malformed_answers_are_protocol_errors(
    client: httpclient.Client, raw: bytes, message: str
) -> None:
    async def answer(seen: Seen, index: int) -> bytes:
        return raw

    async with RawServer(answer) as server:
        with pytest.raises(httpclient.ProtocolError, match=message):
            await client.request("GET", f"{server.base}/x", timeout=5)
    assert client.open_connections == 0


async def test_timeout_covers_the_whole_exchange(client: httpclient.Client) -> None:
    release = asyncio.Event()

    async def answer(seen: Seen, index: int) -> bytes:
        await release.wait()
        return ok()

    async with RawServer(answer) as server:
        with pytest.raises(TimeoutError):
            await client.request("GET", f"{server.base}/slow", timeout=0.2)
        assert client.open_connections == 0, "a timed-out connection is never reused"
        release.set()


async def test_redirects_follow_go_rules(client: httpclient.Client) -> None:
    async def answer(seen: Seen, index: int) -> bytes:
        if seen.path == "/302":
            return b"HTTP/1.1 302 Found\r\nLocation: /target\r\nContent-Length: 0\r\n\r\n"
        if seen.path == "/307":
            return b"HTTP/1.1 307 Temporary\r\nLocation: /target\r\nContent-Length: 0\r\n\r\n"
        if seen.path == "/away":
            where = f"http://localhost:{server.port}/target"
            return f"HTTP/1.1 308 Moved\r\nLocation: {where}\r\nContent-Length: 0\r\n\r\n".encode()
        if seen.path == "/loop":
            return b"HTTP/1.1 301 Moved\r\nLocation: /loop\r\nContent-Length: 0\r\n\r\n"
        return ok(f"{seen.method} {seen.body.decode()}".encode())

    async with RawServer(answer) as server:
        headers = {"Authorization": "Bearer t", "Content-Type": "application/json"}
        post_then_get = await client.request(
            "POST", f"{server.base}/302", headers=headers, body=b"{}"
        )
        assert post_then_get.body == b"GET "
        assert post_then_get.url.path == "/target"
        target = server.requests[-1]
        assert "content-type" not in target.headers and "content-length" not in target.headers
        kept = await client.request("POST", f"{server.base}/307", headers=headers, body=b"{}")
        assert kept.body == b"POST {}"
        assert server.requests[-1].headers["authorization"] == "Bearer t"
        other_host = await client.request(
            "POST", f"{server.base}/away", headers=headers, body=b"{}"
        )
        assert other_host.body == b"POST {}"
        assert "authorization" not in server.requests[-1].headers, "not sent to another host"
        with pytest.raises(httpclient.TooManyRedirectsError, match="more than 3 redirects"):
            await client.request("GET", f"{server.base}/loop", max_redirects=3)
        assert sum(r.path == "/loop" for r in server.requests) == 4


async def test_invalid_requests_send_nothing(client: httpclient.Client) -> None:
    async def answer(seen: Seen, index: int) -> bytes:
        return ok()

    async with RawServer(answer) as server:
        url = f"{server.base}/x"
        with pytest.raises(httpclient.InvalidRequestError, match="CR, LF or NUL"):
            await client.request("POST", url, headers={"X-Evil": "a\r\nX-Injected: 1"})
        with pytest.raises(httpclient.InvalidRequestError, match="invalid header name"):
            await client.request("POST", url, headers={"Bad Name": "v"})
        with pytest.raises(httpclient.InvalidRequestError, match="invalid method"):
            await client.request("PO ST", url)
        with pytest.raises(httpclient.InvalidRequestError, match="unsupported URL scheme"):
            await client.request("GET", "ftp://127.0.0.1/x")
    assert server.requests == []


async def test_framing_headers_are_the_clients(client: httpclient.Client) -> None:
    async def answer(seen: Seen, index: int) -> bytes:
        return ok(seen.body)

    async with RawServer(answer) as server:
        headers = {"Content-Length": "999", "Transfer-Encoding": "chunked", "Host": "example.org"}
        response = await client.request("PUT", f"{server.base}/x", headers=headers, body=b"abc")
    assert response.body == b"abc"
    assert server.requests[0].headers["content-length"] == "3"
    assert "transfer-encoding" not in server.requests[0].headers
    assert server.requests[0].headers["host"] == "example.org", "a user's Host is kept"


async def test_credentials_in_the_url_are_basic_auth(client: httpclient.Client) -> None:
    async def answer(seen: Seen, index: int) -> bytes:
        return ok()

    async with RawServer(answer) as server:
        await client.request("GET", f"http://bot:s%40cret@127.0.0.1:{server.port}/x")
        await client.request(
            "GET", f"http://bot:pw@127.0.0.1:{server.port}/y", headers={"Authorization": "Bearer t"}
        )
    first, second = server.requests
    assert first.headers["authorization"] == "Basic " + base64.b64encode(b"bot:s@cret").decode()
    assert first.headers["host"] == f"127.0.0.1:{server.port}"
    assert second.headers["authorization"] == "Bearer t", "a given Authorization wins"


async def test_connect_errors(client: httpclient.Client) -> None:
    listener = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    listener.close()
    await listener.wait_closed()
    with pytest.raises(httpclient.ConnectError, match=f"http://127.0.0.1:{port}"):
        await client.request("GET", f"http://127.0.0.1:{port}/")
    assert client.open_connections == 0


async def test_closed_client_refuses_and_closes_its_connections(
    app_server: tuple[str, list[web.BaseRequest]],
) -> None:
    base, _ = app_server
    client = httpclient.Client()
    await client.request("GET", f"{base}/x")
    assert client.open_connections == 1
    await client.close()
    assert client.open_connections == 0
    with pytest.raises(httpclient.HttpClientError, match="closed"):
        await client.request("GET", f"{base}/x")


async def test_a_cancelled_waiter_passes_its_turn_on(
    app_server: tuple[str, list[web.BaseRequest]],
) -> None:
    base, _ = app_server
    release, arrived = asyncio.Event(), asyncio.Event()

    async def answer(seen: Seen, index: int) -> bytes:
        arrived.set()  # the client's one connection is taken
        await release.wait()
        return ok()

    client = httpclient.Client(limit=1)
    try:
        async with RawServer(answer) as slow:
            holder = asyncio.ensure_future(client.request("GET", f"{slow.base}/hold"))
            await arrived.wait()
            cancelled = asyncio.ensure_future(client.request("GET", f"{base}/a"))
            waiting = asyncio.ensure_future(client.request("GET", f"{base}/b"))
            await asyncio.sleep(0.01)
            release.set()
            await holder
            cancelled.cancel()
            response = await asyncio.wait_for(waiting, 5)
            assert response.status == 200
            with pytest.raises(asyncio.CancelledError):
                await cancelled
    finally:
        await client.close()
