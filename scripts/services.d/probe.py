#!/usr/bin/env python3
"""Protocol-level readiness probes for scripts/services (stdlib only: runs before the venv).

Usage: probe.py KIND [ARGS...]; exit 0 when the server answers like a ready server, 1 otherwise.
Each probe speaks the server's own protocol (not just a TCP connect), so "ready" means a client
would succeed now.
"""

from __future__ import annotations

import json
import socket
import ssl
import struct
import sys
import urllib.request

TIMEOUT = 3.0


def _connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("closed")
        buf += chunk
    return buf


def redis(port: str) -> bool:
    with _connect(int(port)) as s:
        s.sendall(b"*1\r\n$4\r\nPING\r\n")
        return s.recv(64).startswith(b"+PONG")


def nats(port: str) -> bool:
    with _connect(int(port)) as s:
        f = s.makefile("rb")
        info = f.readline()
        if not info.startswith(b"INFO "):
            return False
        if not json.loads(info[5:]).get("jetstream"):
            return False
        s.sendall(b'CONNECT {"verbose":false,"pedantic":false}\r\nPING\r\n')
        return f.readline().startswith(b"PONG")


def mqtt(port: str) -> bool:
    client_id = b"tripwire-probe"
    var = b"\x00\x04MQTT\x04\x02\x00\x0a"  # MQTT 3.1.1, clean session, keepalive 10
    payload = struct.pack(">H", len(client_id)) + client_id
    body = var + payload
    with _connect(int(port)) as s:
        s.sendall(bytes([0x10, len(body)]) + body)
        ack = _recv_exact(s, 4)
        s.sendall(b"\xe0\x00")  # DISCONNECT
        return ack == b"\x20\x02\x00\x00"


def amqp(port: str) -> bool:
    with _connect(int(port)) as s:
        s.sendall(b"AMQP\x00\x00\x09\x01")
        frame = _recv_exact(s, 11)
        # method frame (type 1) on channel 0 carrying connection.start (class 10, method 10)
        return frame[0] == 1 and frame[7:11] == b"\x00\x0a\x00\x0a"


def _kafka_request(s: socket.socket, api_key: int, version: int, body: bytes) -> bytes:
    client = b"tripwire-probe"
    header = struct.pack(">hhih", api_key, version, 7, len(client)) + client
    msg = header + body
    s.sendall(struct.pack(">i", len(msg)) + msg)
    (size,) = struct.unpack(">i", _recv_exact(s, 4))
    return _recv_exact(s, size)[4:]  # strip correlation id


def kafka(port: str) -> bool:
    with _connect(int(port)) as s:
        resp = _kafka_request(s, 18, 0, b"")  # ApiVersions v0
        if struct.unpack(">h", resp[:2])[0] != 0:
            return False
        resp = _kafka_request(s, 3, 1, struct.pack(">i", 0))  # Metadata v1, no topics
        (n_brokers,) = struct.unpack(">i", resp[:4])
        if n_brokers < 1:
            return False
        # skip brokers to read controller_id: node_id, host, port, rack
        off = 4
        for _ in range(n_brokers):
            off += 4
            (hlen,) = struct.unpack(">h", resp[off : off + 2])
            off += 2 + hlen + 4
            (rlen,) = struct.unpack(">h", resp[off : off + 2])
            off += 2 + max(rlen, 0)
        (controller,) = struct.unpack(">i", resp[off : off + 4])
        return controller >= 0


def http(url: str, expect: str = "", token: str = "", cafile: str = "") -> bool:
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"not an http(s) URL: {url}")
    req = urllib.request.Request(url)  # noqa: S310 (scheme checked above)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    ctx = ssl.create_default_context(cafile=cafile) if cafile else None
    with urllib.request.urlopen(req, timeout=TIMEOUT, context=ctx) as resp:  # noqa: S310
        body = resp.read().decode("utf-8", "replace")
        return resp.status == 200 and expect in body


PROBES = {"redis": redis, "nats": nats, "mqtt": mqtt, "amqp": amqp, "kafka": kafka, "http": http}


def main() -> int:
    kind, *args = sys.argv[1:]
    try:
        return 0 if PROBES[kind](*args) else 1
    except (OSError, ValueError, struct.error, json.JSONDecodeError):
        return 1


if __name__ == "__main__":
    sys.exit(main())
