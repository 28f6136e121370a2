"""HTTP/1.1 on the wire: the request's bytes, the response parsed from the bytes that arrive.

`httpclient` (the pooled client of the trigger hot path) moves bytes over connections; this
module knows what the bytes mean, and nothing about sockets, pools, redirects or the loop:

- `RequestEncoder` turns a method, URL, headers and body into one buffer, written at once: the
  request line and Host line of a URL are computed once and cached (triggers send to the same
  few URLs), header names are validated once and remembered, the framing (`Content-Length`) is
  always the encoder's own, credentials in the URL (`http://user:pass@host/`) become basic
  auth, never part of the Host. It also says whether the request may be sent twice (an
  idempotent method or an `Idempotency-Key` header — Go's `net/http` rule).
- `Reader` parses one response incrementally from what `data_received` hands it: status line,
  headers, `Content-Length`, `chunked` or read-until-close bodies, 1xx skipped, trailers
  ignored; only the first `max_body` bytes are kept (a trigger keeps an excerpt) and a longer
  body ends the response, so that the connection is closed rather than read to the end.
  Whatever makes a connection unfit for reuse (`Connection: close`, both framings, bytes after
  the response) clears `keep_alive`.
- `Response` is the complete answer, and the error classes say what went wrong:

      HttpClientError
      ├── InvalidRequestError (also a ValueError)   the request cannot be sent as given
      ├── ConnectError                              no connection to the server
      │   └── CertificateError                      its TLS certificate was not trusted
      ├── ProtocolError                             the answer is not valid HTTP/1.1
      ├── DisconnectedError                         the connection ended mid-exchange
      └── TooManyRedirectsError                     more than `max_redirects`

No compression (no `Accept-Encoding` is sent), no HTTP/2, no upgrades (a 101 is an error).
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import re

import yarl

_MAX_HEAD = 64 * 1024  # status line + headers of one response
_MAX_CHUNK_LINE = 4096  # a chunk-size line with extensions, or one trailer line
_REPLAYABLE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})
_IDEMPOTENCY_HEADERS = frozenset({"idempotency-key", "x-idempotency-key"})
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

_HEAD, _LENGTH, _CHUNK_SIZE, _CHUNK_DATA, _CHUNK_END, _TRAILERS, _UNTIL_EOF, DONE = range(8)


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


class Reader:
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

    def __init__(self, future: asyncio.Future[Reader], *, head_request: bool, max_body: int):
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
        while buf and self.state != DONE:
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
                    self.state = DONE if state == _LENGTH else _CHUNK_END
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
                    self.state = DONE
            else:  # _UNTIL_EOF
                self._keep(buf, len(buf))
            if self.truncated:
                # The rest is not wanted: the connection is closed instead of read to the end.
                self.keep_alive = False
                self.state = DONE
        if self.state == DONE and buf:
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
            self.state = DONE
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
            self.state = _LENGTH if self.remaining else DONE
        else:
            self.state = _UNTIL_EOF
            self.keep_alive = False

    def ended(self) -> HttpClientError | None:
        """The connection ended: None if that completes the response, else the error."""
        if self.state == _UNTIL_EOF:
            self.state = DONE
            return None
        if self.state == DONE:
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


# --- requests ----------------------------------------------------------------------------


class RequestEncoder:
    """The bytes of requests from one client; its caches are bounded (1024 entries each)."""

    def __init__(self, *, user_agent: str) -> None:
        self._user_agent_line = f"User-Agent: {user_agent}\r\n"
        # Validated header names, lowered; request starts of (method, URL).
        self._lowered: dict[str, str] = {}
        self._starts: dict[tuple[str, yarl.URL], tuple[str, str, str | None]] = {}

    def encode(
        self, method: str, url: yarl.URL, headers: list[tuple[str, str]], body: bytes | None
    ) -> tuple[bytes, bool]:
        """The request's bytes, and whether it may be sent twice (after a stale connection)."""
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
