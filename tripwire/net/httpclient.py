"""A small HTTP/1.1 client for the trigger hot path: one write per request, pooled connections.

Why not aiohttp's `ClientSession` here: the HTTP trigger is the one client call made per event,
and on the 2-core benchmark machine a `session.post` costs ~150-250 µs of CPU before its bytes
leave (URL objects, multidicts, a body-writer task that sends one loop turn later, cookie jar,
response and stream objects) — as much as all of Tripwire's own work on the event. This client
does what a trigger needs and no more, in the same loop turn as the caller:

- the request is encoded into one buffer and written at once, before the first `await`;
- the response is parsed from `data_received`, as it arrives; only the first `max_body` bytes
  are kept (a trigger keeps an excerpt) and a longer body closes the connection;
- keep-alive connections are pooled per origin (scheme, host, port, TLS verification), at most
  `limit` open at once (callers wait for room), idle ones dropped after `keepalive` seconds;
- a request that finds its reused connection closed by the server before any byte of the answer
  is sent again on a new connection when it is replayable (an idempotent method or an
  `Idempotency-Key` header — Go's `net/http` rule), as an idle-timeout race is not a failure;
- redirects (301, 302, 303, 307, 308) are followed up to `max_redirects` as Go's client does:
  303, and 301/302 of a non-GET, become a GET without body; `Authorization` and `Cookie` are
  dropped when the host changes;
- TLS through `ssl` with certificate and hostname checks, or none with `verify=False`;
- credentials in the URL (`http://user:pass@host/`) are sent as basic auth, never in the Host.

This module is the client's side of the socket: connections, the pool, replays, redirects,
timeouts. What the bytes say, the request's encoding and the response's parsing (and the
`Response` and error classes, reachable here as well), is HTTP/1.1's wire format, in `http1`.

Errors are classes of `HttpClientError`, so a caller can tell "could not connect" from "the
certificate is not trusted" from "the server broke the protocol". No proxies, no cookies, no
compression (no `Accept-Encoding` is sent), no HTTP/2: aiohttp stays the client for everything
else (Kubernetes, S3, URL sources).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ssl
from collections.abc import Iterable, Mapping
from typing import NamedTuple

import yarl

from tripwire.net import http1

DEFAULT_LIMIT = 256
DEFAULT_KEEPALIVE = 15.0  # seconds an idle connection is kept (aiohttp's default too)
DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_MAX_BODY = 64 * 1024
DEFAULT_MAX_REDIRECTS = 10  # Go's http.Client

_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_SENSITIVE_ON_REDIRECT = frozenset({"authorization", "cookie", "www-authenticate"})

# The wire format's names, as callers know them (`httpclient.Response`,
# `httpclient.HttpClientError`, ...): the response and the error tree belong to this client's API.
Response = http1.Response
HttpClientError = http1.HttpClientError
InvalidRequestError = http1.InvalidRequestError
ConnectError = http1.ConnectError
CertificateError = http1.CertificateError
ProtocolError = http1.ProtocolError
DisconnectedError = http1.DisconnectedError
TooManyRedirectsError = http1.TooManyRedirectsError
# Read once per request or per arriving chunk: bound here so the hot path does one global
# lookup, as when the parser lived in this module, instead of a module attribute each time.
_Reader = http1.Reader
_DONE = http1.DONE


def _expire(future: asyncio.Future[_Reader]) -> None:
    if not future.done():
        future.set_exception(TimeoutError())


# --- connections -------------------------------------------------------------------------


class _Origin(NamedTuple):
    """Where a connection goes; its pool key."""

    scheme: str
    host: str
    port: int
    verify: bool


class _Connection(asyncio.Protocol):
    """One TCP (or TLS) connection; carries one request at a time."""

    def __init__(self, client: Client, origin: _Origin) -> None:
        self.client = client
        self.origin = origin
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.reader: _Reader | None = None
        self.closed = False
        self.idle_since = 0.0
        self._paused = False
        self._drained: asyncio.Future[None] | None = None

    # -- asyncio.Protocol -----------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        reader = self.reader
        if reader is None:
            self.close()  # bytes nobody asked for: the connection is out of step
            return
        self.buf += data
        try:
            reader.feed(self.buf)
        except ProtocolError as exc:
            self.reader = None
            self.close()
            if not reader.future.done():
                reader.future.set_exception(exc)
            return
        if reader.state == _DONE:
            self.reader = None
            if not reader.future.done():
                reader.future.set_result(reader)

    def eof_received(self) -> bool:
        self._ended(None)
        return False  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self._ended(exc)
        self.closed = True
        self.client._forget(self)
        if self._drained is not None and not self._drained.done():
            self._drained.set_exception(ConnectionResetError("connection lost while writing"))

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)

    # -- use ------------------------------------------------------------------------------
    def _ended(self, exc: Exception | None) -> None:
        reader = self.reader
        if reader is None:
            return
        self.reader = None
        if reader.future.done():
            return
        error = reader.ended()
        if error is None:
            reader.keep_alive = False
            reader.future.set_result(reader)
        else:
            if exc is not None:
                error.__cause__ = exc
            reader.future.set_exception(error)

    def usable(self, now: float, keepalive: float) -> bool:
        transport = self.transport
        return (
            not self.closed
            and transport is not None
            and not transport.is_closing()
            and now - self.idle_since < keepalive
        )

    def send(self, data: bytes, *, head_request: bool, max_body: int) -> asyncio.Future[_Reader]:
        """Write the request; the future resolves with the parsed response."""
        assert self.transport is not None and self.reader is None
        future: asyncio.Future[_Reader] = asyncio.get_running_loop().create_future()
        self.reader = _Reader(future, head_request=head_request, max_body=max_body)
        self.buf.clear()
        self.transport.write(data)
        return future

    async def drain(self) -> None:
        if self._paused and not self.closed:
            self._drained = asyncio.get_running_loop().create_future()
            await self._drained

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            if self.transport is not None:
                self.transport.close()
            self.client._forget(self)


# --- the client --------------------------------------------------------------------------


class Client:
    """Pooled HTTP/1.1 requests; one per process, closed with `close()`."""

    def __init__(
        self,
        *,
        limit: int = DEFAULT_LIMIT,
        keepalive: float = DEFAULT_KEEPALIVE,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        user_agent: str = "tripwire",
    ) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self._limit = limit
        self._keepalive = keepalive
        self._connect_timeout = connect_timeout
        self._idle: dict[_Origin, list[_Connection]] = {}
        self._open: set[_Connection] = set()
        self._connecting = 0
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._ssl: dict[bool, ssl.SSLContext] = {}
        self._closed = False
        self._urls: dict[str, yarl.URL] = {}
        # The bound method, not the encoder: one attribute lookup per request, as before.
        self._encode = http1.RequestEncoder(user_agent=user_agent).encode

    @property
    def open_connections(self) -> int:
        return len(self._open)

    async def close(self) -> None:
        self._closed = True
        for conn in list(self._open):
            conn.close()
        self._idle.clear()
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)

    def url(self, text: str) -> yarl.URL:
        """`text` parsed (and cached, bounded): triggers send to the same few URLs."""
        parsed = self._urls.get(text)
        if parsed is None:
            parsed = yarl.URL(text)
            if len(self._urls) < 1024:
                self._urls[text] = parsed
        return parsed

    async def request(
        self,
        method: str,
        url: yarl.URL | str,
        *,
        headers: Mapping[str, str] | Iterable[tuple[str, str]] = (),
        body: bytes | None = None,
        timeout: float | None = None,
        verify: bool = True,
        max_body: int = DEFAULT_MAX_BODY,
        max_redirects: int = DEFAULT_MAX_REDIRECTS,
    ) -> Response:
        """Send one request (following redirects) and read its response.

        `timeout` bounds everything, connecting and redirects included (TimeoutError).
        """
        if self._closed:
            raise HttpClientError("client is closed")
        url = self.url(url) if isinstance(url, str) else url
        if not isinstance(headers, list):  # a list is read, never changed: redirects copy it
            headers = list(headers.items() if isinstance(headers, Mapping) else headers)
        # A deadline rather than `asyncio.timeout`: the common path then costs one timer on the
        # response future instead of a context manager that reschedules around every await.
        deadline = None if timeout is None else asyncio.get_running_loop().time() + timeout
        for _ in range(max_redirects + 1):
            response = await self._exchange(method, url, headers, body, verify, max_body, deadline)
            location = response.header("Location") if response.status in _REDIRECTS else None
            if not location:
                return response
            try:
                following = url.join(yarl.URL(location))
            except ValueError:
                return response  # an unusable Location: the 3xx is the answer
            if following.scheme not in ("http", "https") or not following.host:
                return response
            status = response.status
            if status == 303 or (status in (301, 302) and method not in ("GET", "HEAD")):
                method = "GET" if method != "HEAD" else "HEAD"
                body = None
                headers = [(k, v) for k, v in headers if k.lower() != "content-type"]
            if following.host != url.host:
                headers = [(k, v) for k, v in headers if k.lower() not in _SENSITIVE_ON_REDIRECT]
            url = following
        raise TooManyRedirectsError(f"more than {max_redirects} redirects, last to {url}")

    async def _exchange(
        self,
        method: str,
        url: yarl.URL,
        headers: list[tuple[str, str]],
        body: bytes | None,
        verify: bool,
        max_body: int,
        deadline: float | None,
    ) -> Response:
        data, replayable = self._encode(method, url, headers, body)
        scheme = url.scheme
        if scheme not in ("http", "https"):
            raise InvalidRequestError(f"unsupported URL scheme {scheme!r} in {url}")
        host = url.raw_host
        if not host:
            raise InvalidRequestError(f"no host in URL {url}")
        port = url.port or (443 if scheme == "https" else 80)
        origin = _Origin(scheme, host, port, verify or scheme == "http")
        head_request = method == "HEAD"
        loop = asyncio.get_running_loop()
        conn = self._take_idle(origin, loop.time())
        reused = conn is not None
        if conn is None:
            conn, reused = await self._acquire(origin, deadline)
        while True:
            future = conn.send(data, head_request=head_request, max_body=max_body)
            timer = None if deadline is None else loop.call_at(deadline, _expire, future)
            try:
                if conn._paused:
                    async with asyncio.timeout_at(deadline):
                        await conn.drain()
                reader = await future
            except DisconnectedError as exc:
                conn.close()
                if reused and exc.before_response and replayable:
                    # An idle connection the server had just closed: not this request's fault.
                    conn, reused = await self._acquire(origin, deadline, fresh=True)
                    continue
                raise
            except BaseException:
                conn.close()  # cancelled or timed out mid-exchange: the state is unknown
                raise
            finally:
                if timer is not None:
                    timer.cancel()
            break
        self._release(conn, keep=reader.keep_alive and not reader.truncated)
        return Response(
            status=reader.status,
            reason=reader.reason,
            headers=tuple(reader.headers),
            body=bytes(reader.body),
            truncated=reader.truncated,
            url=url,
        )

    # -- the pool -------------------------------------------------------------------------
    async def _acquire(
        self, origin: _Origin, deadline: float | None, *, fresh: bool = False
    ) -> tuple[_Connection, bool]:
        loop = asyncio.get_running_loop()
        while True:
            if self._closed:
                raise HttpClientError("client is closed")
            if not fresh:
                conn = self._take_idle(origin, loop.time())
                if conn is not None:
                    return conn, True
            if len(self._open) + self._connecting < self._limit or self._evict_idle():
                break
            waiter = loop.create_future()
            self._waiters.append(waiter)
            try:
                async with asyncio.timeout_at(deadline):
                    await waiter
            except BaseException:
                if waiter.done() and not waiter.cancelled():
                    self._wake()  # woken, then cancelled: pass the turn on
                else:
                    with contextlib.suppress(ValueError):
                        self._waiters.remove(waiter)
                raise
        return await self._connect(origin, deadline), False

    def _take_idle(self, origin: _Origin, now: float) -> _Connection | None:
        """The most recently used idle connection to `origin` that is still good, if any."""
        idle = self._idle.get(origin)
        while idle:
            conn = idle.pop()
            if conn.usable(now, self._keepalive):
                return conn
            conn.close()
        return None

    def _evict_idle(self) -> bool:
        """Close one idle connection (of any origin) to make room; False if there is none."""
        for origin, idle in self._idle.items():
            if idle:
                idle.pop(0).close()
                if not idle:
                    del self._idle[origin]
                return True
        return False

    async def _connect(self, origin: _Origin, deadline: float | None) -> _Connection:
        loop = asyncio.get_running_loop()
        give_up = loop.time() + self._connect_timeout
        if deadline is not None and deadline < give_up:
            give_up = deadline
        context = self._ssl_context(origin.verify) if origin.scheme == "https" else None
        self._connecting += 1
        where = f"{origin.scheme}://{origin.host}:{origin.port}"
        opened = False
        try:
            async with asyncio.timeout_at(give_up):
                _, conn = await loop.create_connection(
                    lambda: _Connection(self, origin),
                    origin.host,
                    origin.port,
                    ssl=context,
                    server_hostname=origin.host if context is not None else None,
                )
            opened = True
        except ssl.SSLCertVerificationError as exc:
            raise CertificateError(f"{where}: {exc.verify_message or exc}") from None
        except TimeoutError:
            if give_up == deadline:
                raise  # the request's own time is up
            raise ConnectError(
                f"{where}: no connection within {self._connect_timeout:g} s"
            ) from None
        except OSError as exc:
            raise ConnectError(f"{where}: {exc.strerror or exc}") from None
        finally:
            self._connecting -= 1
            if not opened:
                self._wake()  # the room this attempt held is free again
        self._open.add(conn)
        if self._closed:
            conn.close()
            raise HttpClientError("client is closed")
        return conn

    def _ssl_context(self, verify: bool) -> ssl.SSLContext:
        context = self._ssl.get(verify)
        if context is None:
            context = ssl.create_default_context()
            if not verify:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            self._ssl[verify] = context
        return context

    def _release(self, conn: _Connection, *, keep: bool) -> None:
        if not keep or self._closed or conn.closed:
            conn.close()
            return
        conn.idle_since = asyncio.get_running_loop().time()
        self._idle.setdefault(conn.origin, []).append(conn)
        self._wake()

    def _forget(self, conn: _Connection) -> None:
        if conn in self._open:
            self._open.discard(conn)
            idle = self._idle.get(conn.origin)
            if idle and conn in idle:
                idle.remove(conn)
            self._wake()

    def _wake(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return


__all__ = [
    "CertificateError",
    "Client",
    "ConnectError",
    "DisconnectedError",
    "HttpClientError",
    "InvalidRequestError",
    "ProtocolError",
    "Response",
    "TooManyRedirectsError",
]
