"""Template sources: inline, file and URL (against a real local aiohttp server), and errors."""

from __future__ import annotations

import asyncio
import dataclasses
import pathlib
import ssl
import subprocess
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pydantic
import pytest
from aiohttp import web

from triggers import sources
from tripwire import errors

WORKFLOW_YAML = """\
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata:
  generateName: train-
  labels: {day: 2024-01-02}
spec:
  entrypoint: main
"""
WORKFLOW = {
    "apiVersion": "argoproj.io/v1alpha1",
    "kind": "Workflow",
    "metadata": {"generateName": "train-", "labels": {"day": "2024-01-02"}},
    "spec": {"entrypoint": "main"},
}


@dataclasses.dataclass
class Server:
    """A real HTTP(S) server on 127.0.0.1; `hits` counts requests per path."""

    base: str
    hits: dict[str, int]


def _app(hits: dict[str, int], release: asyncio.Event) -> web.Application:
    async def count(request: web.Request) -> None:
        hits[request.path] = hits.get(request.path, 0) + 1

    async def ok(request: web.Request) -> web.Response:
        await count(request)
        return web.Response(text=WORKFLOW_YAML, content_type="application/yaml")

    async def json_doc(request: web.Request) -> web.Response:
        await count(request)
        return web.json_response({"kind": "Job", "spec": {"parallelism": 2}})

    async def missing(request: web.Request) -> web.Response:
        return web.Response(status=404, text="no such template")

    async def broken(request: web.Request) -> web.Response:
        return web.Response(status=500, text="database on fire")

    async def bad_yaml(request: web.Request) -> web.Response:
        return web.Response(text="kind: Job\nspec:\n  a: b: c\n")

    async def two_docs(request: web.Request) -> web.Response:
        return web.Response(text="kind: A\n---\nkind: B\n")

    async def empty(request: web.Request) -> web.Response:
        return web.Response(text="# only a comment\n")

    async def large(request: web.Request) -> web.Response:
        return web.Response(text="x: " + "y" * 5000)

    async def large_stream(request: web.Request) -> web.StreamResponse:
        # No Content-Length: the client must stop by counting what it reads.
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        for _ in range(10):
            await response.write(b"#" * 1000 + b"\n")
        await response.write_eof()
        return response

    async def slow(request: web.Request) -> web.Response:
        # Waits until the test ends instead of sleeping for real seconds.
        await release.wait()
        return web.Response(text="kind: Late\n")

    app = web.Application()
    app.router.add_get("/ok.yaml", ok)
    app.router.add_get("/doc.json", json_doc)
    app.router.add_get("/missing.yaml", missing)
    app.router.add_get("/broken.yaml", broken)
    app.router.add_get("/bad.yaml", bad_yaml)
    app.router.add_get("/two.yaml", two_docs)
    app.router.add_get("/empty.yaml", empty)
    app.router.add_get("/large.yaml", large)
    app.router.add_get("/stream.yaml", large_stream)
    app.router.add_get("/slow.yaml", slow)
    return app


async def _serve(ssl_context: ssl.SSLContext | None = None) -> AsyncIterator[Server]:
    hits: dict[str, int] = {}
    release = asyncio.Event()
    runner = web.AppRunner(_app(hits, release), shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_context)
    await site.start()
    port = runner.addresses[0][1]
    scheme = "https" if ssl_context is not None else "http"
    try:
        yield Server(base=f"{scheme}://127.0.0.1:{port}", hits=hits)
    finally:
        release.set()
        await runner.cleanup()


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    async for running in _serve():
        yield running


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


@pytest.fixture
async def tls_server(certificate: tuple[pathlib.Path, pathlib.Path]) -> AsyncIterator[Server]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*certificate)
    async for running in _serve(context):
        yield running


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as shared:
        yield shared


def _loc(**fields: Any) -> sources.ArtifactLocation:
    return sources.ArtifactLocation.model_validate(fields)


async def _resolve(
    location: sources.ArtifactLocation,
    session: aiohttp.ClientSession,
    limits: sources.Limits | None = None,
) -> Any:
    return await sources.resolve(location, session=session, limits=limits or sources.Limits())


# --- validation ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fields",
    [
        {},
        {"resource": {"a": 1}, "file": {"path": "/x"}},
        {"url": {"path": "ftp://example.org/x.yaml"}},
        {"url": {"path": "file:///etc/passwd"}},
        {"url": {"path": "https://x", "verifycert": False}},
        {"configmap": {"name": "c"}},
    ],
)
def test_invalid_locations(fields: dict[str, Any]) -> None:
    with pytest.raises(pydantic.ValidationError):
        sources.ArtifactLocation.model_validate(fields)


# --- inline and file -----------------------------------------------------------------------


async def test_inline_object_is_copied(session: aiohttp.ClientSession) -> None:
    location = _loc(resource={"kind": "Job", "spec": {"x": [1]}})
    first = await _resolve(location, session)
    first["spec"]["x"].append(2)
    assert await _resolve(location, session) == {"kind": "Job", "spec": {"x": [1]}}


async def test_inline_yaml_and_json_strings(session: aiohttp.ClientSession) -> None:
    first = await _resolve(_loc(resource=WORKFLOW_YAML), session)
    first["spec"]["entrypoint"] = "changed"  # parsed once and cached: callers get copies
    assert await _resolve(_loc(resource=WORKFLOW_YAML), session) == WORKFLOW
    assert await _resolve(_loc(inline='{"kind": "Job"}'), session) == {"kind": "Job"}


async def test_inline_bad_yaml_names_line(session: aiohttp.ClientSession) -> None:
    with pytest.raises(
        errors.PermanentTriggerError, match="inline resource: line 2: mapping values"
    ):
        await _resolve(_loc(resource="kind: Job\nspec: a: b\n"), session)


async def test_file(session: aiohttp.ClientSession, tmp_path: pathlib.Path) -> None:
    path = tmp_path / "wf.yaml"
    path.write_text(WORKFLOW_YAML, encoding="utf-8")
    assert await _resolve(_loc(file={"path": str(path)}), session) == WORKFLOW


async def test_file_missing(session: aiohttp.ClientSession, tmp_path: pathlib.Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(errors.PermanentTriggerError, match=f"file {missing}: no such file"):
        await _resolve(_loc(file={"path": str(missing)}), session)


async def test_file_too_large(session: aiohttp.ClientSession, tmp_path: pathlib.Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_text("x: " + "y" * 200, encoding="utf-8")
    with pytest.raises(errors.PermanentTriggerError, match="larger than the limit of 100 bytes"):
        await _resolve(_loc(file={"path": str(path)}), session, sources.Limits(max_bytes=100))


async def test_file_directory(session: aiohttp.ClientSession, tmp_path: pathlib.Path) -> None:
    with pytest.raises(errors.PermanentTriggerError, match="cannot read"):
        await _resolve(_loc(file={"path": str(tmp_path)}), session)


@pytest.mark.parametrize(
    ("fields", "needs"),
    [
        ({"configmap": {"name": "tpl", "key": "wf.yaml"}}, "configmap tpl key wf.yaml: configmap"),
        (
            {
                "s3": {
                    "bucket": {"name": "bkt", "key": "k.yaml"},
                    "accessKey": {"name": "creds", "key": "id"},
                    "secretKey": {"name": "creds", "key": "secret"},
                }
            },
            "s3 bkt/k.yaml: Secret creds key id needs the Kubernetes API client",
        ),
    ],
)
async def test_not_yet_supported(
    session: aiohttp.ClientSession, fields: dict[str, Any], needs: str
) -> None:
    with pytest.raises(errors.PermanentTriggerError, match=needs):
        await _resolve(_loc(**fields), session)


async def test_configmap_without_a_kube_client(session: aiohttp.ClientSession) -> None:
    location = _loc(configmap={"name": "tpl", "key": "wf.yaml", "namespace": "ml"})
    assert location.kind == "configmap"
    assert location.describe() == "configmap ml/tpl key wf.yaml"
    with pytest.raises(
        errors.PermanentTriggerError,
        match=r"configmap ml/tpl key wf\.yaml: configmap sources need the Kubernetes API client",
    ):
        await sources.resolve(location, session=session, kube=None)


@pytest.mark.parametrize(
    "fields",
    [
        {"name": "", "key": "k"},
        {"name": "n", "key": ""},
        {"name": "n", "key": "k", "namespaces": "x"},
    ],
)
def test_invalid_configmap_selectors(fields: dict[str, Any]) -> None:
    with pytest.raises(pydantic.ValidationError):
        sources.ArtifactLocation.model_validate({"configmap": fields})


# --- url -----------------------------------------------------------------------------------


async def test_url_yaml_and_json(server: Server, session: aiohttp.ClientSession) -> None:
    assert await _resolve(_loc(url={"path": f"{server.base}/ok.yaml"}), session) == WORKFLOW
    doc = await _resolve(_loc(url={"path": f"{server.base}/doc.json"}), session)
    assert doc == {"kind": "Job", "spec": {"parallelism": 2}}


@pytest.mark.parametrize(
    ("path", "error", "message"),
    [
        ("/missing.yaml", errors.PermanentTriggerError, "HTTP 404 Not Found: no such template"),
        ("/broken.yaml", errors.TemporaryTriggerError, "HTTP 500 Internal Server Error: datab"),
        ("/bad.yaml", errors.PermanentTriggerError, "line 3: mapping values are not allowed"),
        ("/two.yaml", errors.PermanentTriggerError, "exactly one YAML document, found 2"),
        ("/empty.yaml", errors.PermanentTriggerError, "exactly one YAML document, found no"),
        ("/large.yaml", errors.PermanentTriggerError, "larger than the limit of 1000 bytes"),
        ("/stream.yaml", errors.PermanentTriggerError, "larger than the limit of 1000 bytes"),
        ("/slow.yaml", errors.TemporaryTriggerError, "no complete response within 0.2 s"),
    ],
)
async def test_url_errors(
    server: Server,
    session: aiohttp.ClientSession,
    path: str,
    error: type[errors.TriggerError],
    message: str,
) -> None:
    url = f"{server.base}{path}"
    limits = sources.Limits(max_bytes=1000, timeout=0.2)
    with pytest.raises(error) as caught:
        await _resolve(_loc(url={"path": url}), session, limits)
    assert str(caught.value).startswith(f"template {url}: ")
    assert message in str(caught.value)


async def test_url_connection_refused(session: aiohttp.ClientSession) -> None:
    # Bind then close a socket to get a port where nothing listens.
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    url = f"http://127.0.0.1:{port}/x.yaml"
    with pytest.raises(errors.TemporaryTriggerError, match=f"template {url}: "):
        await _resolve(_loc(url={"path": url}), session)


async def test_https_self_signed(tls_server: Server, session: aiohttp.ClientSession) -> None:
    url = f"{tls_server.base}/ok.yaml"
    with pytest.raises(errors.PermanentTriggerError, match="certificate not trusted"):
        await _resolve(_loc(url={"path": url}), session)
    unverified = _loc(url={"path": url, "verifyCert": False})
    assert await _resolve(unverified, session) == WORKFLOW


async def test_url_cache(server: Server, session: aiohttp.ClientSession) -> None:
    now = [0.0]
    cache = sources.UrlCache(ttl=10.0, clock=lambda: now[0])
    location = _loc(url={"path": f"{server.base}/ok.yaml"})

    first = await sources.resolve(location, session=session, cache=cache)
    first["spec"]["entrypoint"] = "changed"  # callers own what they get
    assert await sources.resolve(location, session=session, cache=cache) == WORKFLOW
    assert server.hits["/ok.yaml"] == 1

    now[0] = 11.0
    assert await sources.resolve(location, session=session, cache=cache) == WORKFLOW
    assert server.hits["/ok.yaml"] == 2
