"""A small HTTP/1.1 client for the trigger hot path: one write per request, pooled connections.

Why not aiohttp's `ClientSession` here: the HTTP trigger is the one client call made per event,
and on the 2-core benchmark machine a `session.post` costs ~150-250 µs of CPU before its bytes
leave (URL objects, multidicts, a body-writer task that sends one loop turn later, cookie jar,
response and stream objects) — as much as all of Tripwire's own work on the event. This client
does what a trigger needs and no more, in the same loop turn as the caller:

- the request is encoded into one buffer and written at once, before the first `await`;
- the response is parsed from `data_received` (status line, headers, `Content-Length`,
  `chunked` or read-until-close bodies, 1xx skipped, trailers ignored); only the first
  `max_body` bytes are kept (a trigger keeps an excerpt) and a longer body closes the connection;
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

Errors are classes of `HttpClientError`, so a caller can tell "could not connect" from "the
certificate is not trusted" from "the server broke the protocol". No proxies, no cookies, no
compression (no `Accept-Encoding` is sent), no HTTP/2: aiohttp stays the client for everything
else (Kubernetes, S3, URL sources).
"""

from __future__ import annotations

import asyncio
import base64
import collections
import contextlib
import dataclasses
import re
import ssl
from collections.abc import Iterable, Mapping
from typing import NamedTuple

import yarl

DEFAULT_LIMIT = 256
DEFAULT_KEEPALIVE = 15.0  # seconds an idle connection is kept (aiohttp's default too)
DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_MAX_BODY = 64 * 1024
DEFAULT_MAX_REDIRECTS = 10  # Go's http.Client

_MAX_HEAD = 64 * 1024  # status line + headers of one response
_MAX_CHUNK_LINE = 4096  # a chunk-size line with extensions, or one trailer line
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_REPLAYABLE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})
_IDEMPOTENCY_HEADERS = frozenset({"idempotency-key", "x-idempotency-key"})
_SENSITIVE_ON_REDIRECT = frozenset({"authorization", "cookie", "www-authenticate"})
_FRAMING_HEADERS = frozenset({"content-length", "transfer-encoding"})
# Lengths of the response headers the parser acts on: connection, content-length,
# transfer-encoding.
_FRAMING_NAME_LENGTHS = frozenset({10, 14, 17})
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_HEX = frozenset(b"0123456789abcdefABCDEF")


class HttpClientError(Exception):
    """The request did not produce a complete response."""


class InvalidRequestError(HttpClientError, ValueError):
    """The request cannot be sent as given (URL, method or header)."""


class ConnectError(HttpClientError):
    """No connection to the server (refused, unreachable, name not found, timed out)."""


class CertificateError(ConnectError):
    """The server's TLS certificate was not trusted."""


class ProtocolError(HttpClientError):
    """The server's answer is not valid HTTP/1.1."""


class DisconnectedError(HttpClientError):
    """The connection ended before the response was complete."""

    def __init__(self, message: str, *, before_response: bool) -> None:
        super().__init__(message)
        self.before_response = before_response


class TooManyRedirectsError(HttpClientError):
    """More redirects than `max_redirects`."""


@dataclasses.dataclass(frozen=True, slots=True)
class Response:
    """A complete response; `body` holds at most `max_body` bytes (`truncated` says if more)."""

    status: int
    reason: str
    headers: tuple[tuple[str, str], ...]
    body: bytes
    truncated: bool
    url: yarl.URL  # after redirects

    def header(self, name: str) -> str | None:
        """The last value of header `name` (case-insensitive), or None."""
        wanted = name.lower()
        found = None
        for key, value in self.headers:
            if key.lower() == wanted:
                found = value
        return found


# --- response parsing --------------------------------------------------------------------

_HEAD, _LENGTH, _CHUNK_SIZE, _CHUNK_DATA, _CHUNK_END, _TRAILERS, _UNTIL_EOF, _DONE = range(8)


def _cut_line(buf: bytearray, what: str) -> bytes | None:
    """The next CRLF-ended line of `buf` (removed from it), or None until it is complete."""
    end = buf.find(b"\r\n")
    if end < 0:
        if len(buf) > _MAX_CHUNK_LINE:
            raise ProtocolError(f"{what} too long")
        return None
    line = bytes(buf[:end])
    del buf[: end + 2]
    return line


class _Reader:
    """Incremental parser of one response; resolves `future` when it is complete."""

    __slots__ = (
        "body",
        "future",
        "head_request",
        "headers",
        "keep_alive",
        "max_body",
        "reason",
        "received",
        "remaining",
        "state",
        "status",
        "truncated",
    )

    def __init__(self, future: asyncio.Future[_Reader], *, head_request: bool, max_body: int):
        self.future = future
        self.head_request = head_request
        self.max_body = max_body
        self.state = _HEAD
        self.status = 0
        self.reason = ""
        self.headers: list[tuple[str, str]] = []
        self.body = bytearray()
        self.truncated = False
        self.keep_alive = True
        self.remaining = 0
        self.received = False  # any byte of the response arrived

    def feed(self, buf: bytearray) -> None:
        """Consume what `buf` holds (removing it); raises ProtocolError on a bad response."""
        self.received = True
        while buf and self.state != _DONE:
            state = self.state
            if state == _HEAD:
                end = buf.find(b"\r\n\r\n")
                if end < 0:
                    if len(buf) > _MAX_HEAD:
                        raise ProtocolError(f"response head larger than {_MAX_HEAD} bytes")
                    return
                head = bytes(buf[:end])
                del buf[: end + 4]
                self._head(head)
            elif state in (_LENGTH, _CHUNK_DATA):
                take = min(self.remaining, len(buf))
                self._keep(buf, take)
                self.remaining -= take
                if self.remaining == 0:
                    self.state = _DONE if state == _LENGTH else _CHUNK_END
            elif state == _CHUNK_SIZE:
                line = _cut_line(buf, "chunk size line")
                if line is None:
                    return
                digits = line.partition(b";")[0].strip()
                if not digits or len(digits) > 16 or not _HEX.issuperset(digits):
                    raise ProtocolError(f"invalid chunk size {digits[:20]!r}")
                self.remaining = int(digits, 16)
                self.state = _CHUNK_DATA if self.remaining else _TRAILERS
            elif state == _CHUNK_END:
                if len(buf) < 2:
                    return
                if buf[:2] != b"\r\n":
                    raise ProtocolError("chunk data not followed by CRLF")
                del buf[:2]
                self.state = _CHUNK_SIZE
            elif state == _TRAILERS:
                line = _cut_line(buf, "trailer line")
                if line is None:
                    return
                if not line:
                    self.state = _DONE
            else:  # _UNTIL_EOF
                self._keep(buf, len(buf))
            if self.truncated:
                # The rest is not wanted: the connection is closed instead of read to the end.
                self.keep_alive = False
                self.state = _DONE
        if self.state == _DONE and buf:
            self.keep_alive = False  # bytes after the response: do not trust this connection

    def _keep(self, buf: bytearray, n: int) -> None:
        room = self.max_body - len(self.body)
        if n > room:
            self.body += buf[:room]
            self.truncated = True
        else:
            self.body += buf[:n]
        del buf[:n]

    def _head(self, raw: bytes) -> None:
        # One decode of the whole head; latin-1 maps every byte, so nothing can fail here.
        lines = raw.decode("latin-1").split("\r\n")
        version, _, rest = lines[0].partition(" ")
        code, _, reason = rest.partition(" ")
        if version not in ("HTTP/1.1", "HTTP/1.0") or len(code) != 3 or not code.isdigit():
            raise ProtocolError(f"invalid status line {lines[0][:80]!r}")
        status = int(code)
        headers: list[tuple[str, str]] = []
        connection = ""
        lengths: set[str] = set()
        transfer = None
        for line in lines[1:]:
            if line[:1] in (" ", "\t"):
                if not headers:
                    raise ProtocolError("response starts with a folded header line")
                name, value = headers[-1]
                headers[-1] = (name, f"{value} {line.strip()}")
                continue
            name, sep, value = line.partition(":")
            if not sep or not name or name[-1] in " \t":
                raise ProtocolError(f"invalid header line {line[:80]!r}")
            value = value.strip(" \t")
            headers.append((name, value))
            if len(name) not in _FRAMING_NAME_LENGTHS:
                continue  # cannot be one of the three below: no need to lower it
            lower = name.lower()
            if lower == "content-length":
                lengths.add(value)
            elif lower == "transfer-encoding":
                transfer = value if transfer is None else f"{transfer}, {value}"
            elif lower == "connection":
                connection = f"{connection},{value.lower()}"
        if 100 <= status < 200:
            if status == 101:
                raise ProtocolError("unexpected 101 Switching Protocols")
            return  # an interim response (100 Continue, 103 Early Hints): the real one follows
        self.status = status
        self.reason = reason
        self.headers = headers
        if version == "HTTP/1.0":
            self.keep_alive = "keep-alive" in {t.strip() for t in connection.split(",")}
        elif connection and "close" in {t.strip() for t in connection.split(",")}:
            self.keep_alive = False
        if self.head_request or status in (204, 304):
            self.state = _DONE
        elif transfer is not None:
            if transfer.rpartition(",")[2].strip().lower() == "chunked":
                self.state = _CHUNK_SIZE
                if lengths:
                    self.keep_alive = False  # both framings: smuggling-shaped, do not reuse
            else:
                self.state = _UNTIL_EOF
                self.keep_alive = False
        elif lengths:
            if len(lengths) != 1 or not (length := lengths.pop()).isdigit():
                raise ProtocolError(f"invalid Content-Length {sorted(lengths)}")
            self.remaining = int(length)
            self.state = _LENGTH if self.remaining else _DONE
        else:
            self.state = _UNTIL_EOF
            self.keep_alive = False

    def ended(self) -> HttpClientError | None:
        """The connection ended: None if that completes the response, else the error."""
        if self.state == _UNTIL_EOF:
            self.state = _DONE
            return None
        if self.state == _DONE:
            return None
        if not self.received:
            return DisconnectedError(
                "server closed the connection before answering", before_response=True
            )
        return DisconnectedError(
            "server closed the connection in the middle of the response", before_response=False
        )


def _basic(url: yarl.URL) -> str:
    token = f"{url.user or ''}:{url.password or ''}".encode()
    return "Basic " + base64.b64encode(token).decode("ascii")


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
        self._user_agent_line = f"User-Agent: {user_agent}\r\n"
        # Caches of the encoder (bounded): validated header names, lowered; request starts.
        self._lowered: dict[str, str] = {}
        self._starts: dict[tuple[str, yarl.URL], tuple[str, str, str | None]] = {}

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

    def _encode(
        self, method: str, url: yarl.URL, headers: list[tuple[str, str]], body: bytes | None
    ) -> tuple[bytes, bool]:
        """The request's bytes, and whether it may be sent twice (see `_exchange`)."""
        start = self._starts.get((method, url))
        if start is None:
            start = self._start(method, url)
        request_line, host_line, auth_line = start
        parts = [request_line]
        given: set[str] = set()
        lowered = self._lowered
        for name, value in headers:
            lower = lowered.get(name)
            if lower is None:
                # A name seen for the first time: checked once, then remembered (bounded).
                if not _TOKEN.fullmatch(name):
                    raise InvalidRequestError(f"invalid header name {name!r}")
                lower = name.lower()
                if len(lowered) < 1024:
                    lowered[name] = lower
            if lower in _FRAMING_HEADERS:
                continue  # the body's framing is this client's to write
            if "\r" in value or "\n" in value or "\x00" in value:
                raise InvalidRequestError(f"header {name} has a CR, LF or NUL in its value")
            given.add(lower)
            parts.append(f"{name}: {value}\r\n")
        if "host" not in given:
            parts.insert(1, host_line)
        if "user-agent" not in given:
            parts.append(self._user_agent_line)
        if "accept" not in given:
            parts.append("Accept: */*\r\n")
        if auth_line is not None and "authorization" not in given:
            parts.append(auth_line)
        if body is not None or method in ("POST", "PUT", "PATCH"):
            parts.append(f"Content-Length: {len(body) if body else 0}\r\n")
        parts.append("\r\n")
        head = "".join(parts).encode("utf-8")
        replayable = method in _REPLAYABLE_METHODS or not _IDEMPOTENCY_HEADERS.isdisjoint(given)
        return (head + body if body else head), replayable

    def _start(self, method: str, url: yarl.URL) -> tuple[str, str, str | None]:
        """Request line, Host line and URL-credentials line of `method url` (cached, bounded)."""
        if not _TOKEN.fullmatch(method):
            raise InvalidRequestError(f"invalid method {method!r}")
        path = url.raw_path or "/"
        query = url.raw_query_string
        target = f"{path}?{query}" if query else path
        host = url.raw_host or ""
        if ":" in host:
            host = f"[{host}]"
        if url.explicit_port is not None and not url.is_default_port():
            host = f"{host}:{url.explicit_port}"
        # `http://user:pass@host/`: basic auth from the URL, as Go's and aiohttp's clients do.
        auth = f"Authorization: {_basic(url)}\r\n" if url.raw_user is not None else None
        start = (f"{method} {target} HTTP/1.1\r\n", f"Host: {host}\r\n", auth)
        if len(self._starts) < 1024:
            self._starts[(method, url)] = start
        return start

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
