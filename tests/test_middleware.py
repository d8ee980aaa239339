"""The middleware behind a real uvicorn server on 127.0.0.1, with real components."""

from __future__ import annotations

import functools
import json
import logging
import socket
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from support import text_component

from airssys_web import AirssysMiddleware, EmbeddedRegistry, deploy
from airssys_web.errors import CapabilityError
from airssys_web.guest.build import compile_wat, wat_response_component
from airssys_web.lifecycle.settings import VersionSettings

Server = Callable[..., AbstractContextManager[str]]


async def native(request: Request) -> PlainTextResponse:
    return PlainTextResponse(f"native {request.url.path}")


@pytest.fixture
def site(tmp_path: Path, wat_guest: Callable[[str], bytes], uvicorn_server: Server) -> Iterator[tuple[str, Path]]:
    reg_dir = tmp_path / "reg"
    with EmbeddedRegistry(reg_dir) as reg:
        deploy(reg, "hello", text_component("hello v1"), version="1.0.0", route="/hello")
        deploy(reg, "echo", wat_guest("echo"), version="1.0.0", route="/echo")
        deploy(reg, "trap", wat_guest("trap"), version="1.0.0", route="/trap")
        deploy(reg, "badstatus", wat_guest("bad_status"), version="1.0.0", route="/badstatus")
        deploy(reg, "badheader", wat_guest("bad_header"), version="1.0.0", route="/badheader")
        deploy(reg, "small", wat_guest("echo"), version="1.0.0", route="/small",
               settings=VersionSettings.of(max_body=10))
        deploy(reg, "flood", _flood(), version="1.0.0", route="/flood")
        deploy(reg, "fat", _fat(), version="1.0.0", route="/fat")
        deploy(reg, "bigecho", wat_guest("echo"), version="1.0.0", route="/bigecho",
               settings=VersionSettings.of(max_body=32 * 2**20))
        deploy(reg, "huge", wat_guest("big"), version="1.0.0", route="/huge")
    app = Starlette(routes=[Route("/{path:path}", native, methods=["GET", "POST"])])
    app.add_middleware(AirssysMiddleware, registry=reg_dir)
    with uvicorn_server(app) as url:
        yield url, reg_dir


@functools.cache
def _flood() -> bytes:
    """A guest answering 100,000 headers (the host must not pass them on, nor hold them)."""
    return compile_wat(wat_response_component("flood", headers=[(f"x-h{i}", "v") for i in range(100_000)]))


@functools.cache
def _fat() -> bytes:
    """A guest answering few headers but 160,000 bytes of them (over the cap on their total size)."""
    return compile_wat(wat_response_component("fat", headers=[(f"x-h{i}", "v" * 16_000) for i in range(10)]))


HUGE = b"x" * (64 * 2**20)


def test_component_routes_and_fall_through(site: tuple[str, Path]) -> None:
    url, _ = site
    with httpx.Client(base_url=url) as client:
        r = client.get("/hello")
        assert (r.status_code, r.text, r.headers["x-airssys-version"]) == (200, "hello v1", "hello@1.0.0")
        assert client.get("/hello/anything/below").text == "hello v1"
        r = client.get("/helloworld")
        assert r.text == "native /helloworld" and "x-airssys-version" not in r.headers
        assert client.get("/").text == "native /"


def test_request_reaches_guest_intact(site: tuple[str, Path]) -> None:
    url, _ = site
    body = bytes(range(256)) * 40
    r = httpx.post(url + "/echo/p%C3%A4th?q=1&x=%20y", content=body, headers={"X-Custom": "Value"})
    assert r.status_code == 200
    assert r.content == body
    assert r.headers["x-echo-method"] == "POST"
    # ``path`` is percent-decoded (as ASGI and Starlette give it); the echo sends it back as a latin-1 header
    assert r.headers.raw[[k for k, _ in r.headers.raw].index(b"x-echo-path")][1] == "/echo/päth".encode("latin-1")
    assert r.headers["x-echo-query"] == "q=1&x=%20y"


def test_trap_is_contained(site: tuple[str, Path], caplog: pytest.LogCaptureFixture) -> None:
    url, _ = site
    with caplog.at_level(logging.ERROR, logger="airssys_web"):
        r = httpx.get(url + "/trap")
    assert r.status_code == 500
    payload = r.json()
    assert payload["request_id"] == r.headers["x-request-id"]
    assert "unreachable" not in r.text  # the trap message goes to the log, not to the client
    assert any(payload["request_id"] in rec.getMessage() and "trap" in rec.getMessage() for rec in caplog.records)
    # the server and other routes keep serving
    assert httpx.get(url + "/hello").text == "hello v1"
    assert httpx.get(url + "/trap").status_code == 500


@pytest.mark.parametrize("route", ["/badstatus", "/badheader"])
def test_invalid_guest_response_is_502(site: tuple[str, Path], route: str) -> None:
    url, _ = site
    r = httpx.get(url + route)
    assert r.status_code == 502
    assert "request_id" in r.json()


def test_a_header_flood_is_a_502_with_a_log_line(site: tuple[str, Path], caplog: pytest.LogCaptureFixture) -> None:
    url, _ = site
    with caplog.at_level(logging.ERROR, logger="airssys_web"):
        r = httpx.get(url + "/flood")
    assert r.status_code == 502 and len(r.headers) < 20
    assert any("100000 headers, more than the 256 allowed" in rec.getMessage() for rec in caplog.records)
    with caplog.at_level(logging.ERROR, logger="airssys_web"):
        r = httpx.get(url + "/fat")
    assert r.status_code == 502 and "x-h0" not in r.headers
    assert any("fat@1.0.0 answered with 160040 bytes of headers, more than the 65536 allowed" in rec.getMessage()
               for rec in caplog.records)
    assert httpx.get(url + "/hello").text == "hello v1"


def test_bodies_of_many_megabytes_cross_intact(site: tuple[str, Path]) -> None:
    """16 MiB up and back through the echo guest, and a 64 MiB response: bulk copies, no per-byte cap."""
    url, _ = site
    body = bytes(range(256)) * (16 * 4096)
    with httpx.Client(base_url=url, timeout=120) as client:
        r = client.post("/bigecho", content=body)
        assert r.status_code == 200 and r.content == body
        r = client.get("/huge")
        assert r.status_code == 200 and r.headers["content-length"] == str(len(HUGE)) and r.content == HUGE


def test_body_over_limit_is_413(site: tuple[str, Path]) -> None:
    url, _ = site
    assert httpx.post(url + "/small", content=b"0123456789").status_code == 200
    r = httpx.post(url + "/small", content=b"0123456789A")
    assert r.status_code == 413 and "10 bytes" in r.json()["detail"]

    def chunks() -> Iterator[bytes]:  # no content-length: the limit is enforced while streaming
        yield b"012345"
        yield b"6789AB"

    assert httpx.post(url + "/small", content=chunks()).status_code == 413


def test_version_header_can_be_turned_off(tmp_path: Path, uvicorn_server: Server) -> None:
    with EmbeddedRegistry(tmp_path) as reg:
        deploy(reg, "hello", text_component("quiet"), version="1.0.0", route="/q")
    app = AirssysMiddleware(Starlette(), registry=tmp_path, version_header=False)
    with uvicorn_server(app) as url:
        r = httpx.get(url + "/q")
    assert r.text == "quiet" and "x-airssys-version" not in r.headers


def test_needs_exactly_one_of_registry_or_host() -> None:
    with pytest.raises(TypeError, match="exactly one"):
        AirssysMiddleware(Starlette())


def test_a_route_shadowing_the_apps_own_routes_is_logged(tmp_path: Path, uvicorn_server: Server,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    with EmbeddedRegistry(tmp_path) as reg:
        deploy(reg, "adm", text_component("adm"), version="1.0.0", route="/adm")
        deploy(reg, "other", text_component("other"), version="1.0.0", route="/other")
    app = Starlette(routes=[Route("/adm/users", native), Route("/", native)])
    app.add_middleware(AirssysMiddleware, registry=tmp_path)  # the routes are found below Starlette's own layers
    with caplog.at_level(logging.WARNING, logger="airssys_web"), uvicorn_server(app) as url:
        assert httpx.get(url + "/adm/users").text == "adm"
        assert httpx.get(url + "/").text == "native /"
    warnings = [r.getMessage() for r in caplog.records if "shadows" in r.getMessage()]
    assert warnings == ["route /adm of component adm shadows the app's own route /adm/users: requests there now go "
                        "to adm; deploy it at another route if that is not intended"]


def _route_headers(response: httpx.Response) -> list[str]:
    return [value for name, value in response.json()["headers"] if name == "x-airssys-route"]


def test_the_guest_is_told_its_route_and_a_client_cannot_spoof_it(tmp_path: Path, py_echo_wasm: bytes,
                                                                   uvicorn_server: Server) -> None:
    with EmbeddedRegistry(tmp_path) as reg:
        dep = deploy(reg, "echo", py_echo_wasm, version="1.0.0", route="/one")
        deploy(reg, "nested", py_echo_wasm, version="1.0.0", route="/one/inner", allow_nested=True)
    app = AirssysMiddleware(Starlette(), registry=tmp_path)
    with uvicorn_server(app) as url:
        assert _route_headers(httpx.get(url + "/one/a/b")) == ["/one"]
        assert _route_headers(httpx.get(url + "/one/inner/x")) == ["/one/inner"]  # the route that matched
        spoofed = httpx.get(url + "/one/a", headers=[("X-Airssys-Route", "/evil"), ("x-airssys-route", "/one/inner")])
        assert _route_headers(spoofed) == ["/one"]  # every client copy is dropped, whatever its case
        before = app.host.generations()["echo"]
        with EmbeddedRegistry(tmp_path) as reg:  # a route move reuses the running generation ...
            reg.deploy("echo", "1.0.0", sha256=dep.sha256, route="/two", settings=dep.settings)
        app.host.sync()
        assert app.host.generations()["echo"] is before
        assert _route_headers(httpx.get(url + "/two/a")) == ["/two"]  # ... and the guest is told the new route


def _raw_exchange(url: str, request: bytes) -> tuple[bytes, bytes]:
    """Send ``request`` as is on a fresh connection and read until the server closes it: (head, body)."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=30) as sock:  # 30 s: a bound, not a wait
        sock.sendall(request)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    return head, body


UNFINISHED_CHUNKED = b"POST /echo/x HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n"
UNFINISHED_LENGTH = b"PUT /echo/x HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nhello"


@pytest.mark.parametrize(("request_bytes", "body_timeout", "route_timeout", "detail"), [
    (UNFINISHED_CHUNKED, 0.2, 30,
     "no request body bytes arrived for 200ms (5 bytes received); send the body without pausing"),
    (UNFINISHED_CHUNKED, "10s", "300ms",
     "the request body did not arrive within this route's deadline of 300ms (5 bytes received)"),
    (UNFINISHED_LENGTH, "200ms", 30,
     "no request body bytes arrived for 200ms (5 bytes received); send the body without pausing"),
])
def test_an_unfinished_body_gets_408(tmp_path: Path, wat_guest: Callable[[str], bytes], uvicorn_server: Server,
                                     request_bytes: bytes, body_timeout: float | str, route_timeout: float | str,
                                     detail: str) -> None:
    with EmbeddedRegistry(tmp_path) as reg:
        deploy(reg, "echo", wat_guest("echo"), version="1.0.0", route="/echo",
               settings=VersionSettings.of(timeout=route_timeout))
    app = AirssysMiddleware(Starlette(), registry=tmp_path, body_timeout=body_timeout)
    with uvicorn_server(app) as url:
        head, body = _raw_exchange(url, request_bytes)
        assert head.startswith(b"HTTP/1.1 408 ") and b"connection: close" in head.lower()
        assert json.loads(body) == {"error": "request body timeout", "detail": detail}
        assert httpx.post(url + "/echo/x", content=b"whole").content == b"whole"  # complete bodies still pass


def test_body_timeout_is_checked() -> None:
    with pytest.raises(CapabilityError, match="invalid body_timeout 'soon'"):
        AirssysMiddleware(Starlette(), registry=Path("never-created"), body_timeout="soon")
    assert not Path("never-created").exists()  # refused before the registry is opened
