"""wasi:http/proxy components next to airssys:web ones: world detection, deploy, serving, wasi:http/types rules.

The guest here is hand-written WAT (tests/guests/wasi_http/hello.wat), so these tests are fast; the Python
(componentize-py) guests are in test_wasi_http_guests.py.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from support import artifacts, make_generation, text_component

from airssys_web import AirssysMiddleware, EmbeddedRegistry, deploy
from airssys_web.errors import GuestTimeout, InvalidComponent
from airssys_web.guest.build import compile_wat
from airssys_web.lifecycle.deploy import check_component
from airssys_web.lifecycle.settings import VersionSettings
from airssys_web.runtime.limits import Limits
from airssys_web.runtime.worlds import (
    AIRSSYS_WORLD,
    WASI_HTTP_WORLD,
    detect_world,
    http_version,
    world_of_exports,
)

Server = Callable[..., AbstractContextManager[str]]
HELLO = Path(__file__).parent / "guests" / "wasi_http" / "hello.wat"
HELLO_TEXT = "hello from a WAT wasi:http guest\n"


@pytest.fixture(scope="module")
def wasi_hello() -> bytes:
    return compile_wat(HELLO.read_text())


def test_world_detection(wasi_hello: bytes) -> None:
    cache = artifacts(None)
    assert detect_world(cache.compile(wasi_hello)) == WASI_HTTP_WORLD
    assert detect_world(cache.compile(text_component("x"))) == AIRSSYS_WORLD
    assert world_of_exports(["wasi:http/incoming-handler@0.2.3", "exports"]) == WASI_HTTP_WORLD
    assert world_of_exports(["wasi:http/handler@0.3.0"]) == WASI_HTTP_WORLD  # 0.3 (async) is served too
    assert world_of_exports(["wasi:http/incoming-handler@0.3.0"]) is None  # no such interface in 0.3
    assert http_version(["wasi:http/incoming-handler@0.2.3", "wasi:http/handler@0.3.0"]) == "0.3"
    assert http_version(["wasi:http/incoming-handler@0.2.0"]) == "0.2"


def test_check_component_reports_the_world(wasi_hello: bytes) -> None:
    _, report = check_component(wasi_hello, artifacts(None), label="hello")
    assert report.world == WASI_HTTP_WORLD
    assert "wasi:http/incoming-handler@0.2.0" in report.exports
    assert "wasi:http/types@0.2.0" in report.imports
    _, report = check_component(text_component("x"), artifacts(None), label="x")
    assert report.world == AIRSSYS_WORLD


def test_a_component_of_neither_world_is_refused(wat_guest: Callable[[str], bytes]) -> None:
    with pytest.raises(InvalidComponent, match="wasi:http/proxy"):
        check_component(wat_guest("wrong_world"), artifacts(None), label="w")


def test_generation_calls_a_wasi_http_guest(wasi_hello: bytes) -> None:
    gen = make_generation(wasi_hello, name="wh")
    try:
        assert gen.world.name == WASI_HTTP_WORLD
        gen.warm()
        for _ in range(3):  # the instance is reused: resources of earlier requests are gone
            resp = gen.call("GET", "/x", "a=1", [("host", "example.test")])
            assert (resp.status, resp.body.decode()) == (200, HELLO_TEXT)
    finally:
        gen.close()


async def native(request: Request) -> PlainTextResponse:
    return PlainTextResponse(f"native {request.url.path}")


@pytest.fixture
def site(tmp_path: Path, wasi_hello: bytes, uvicorn_server: Server) -> Iterator[str]:
    reg_dir = tmp_path / "reg"
    with EmbeddedRegistry(reg_dir) as reg:
        deploy(reg, "wasi", wasi_hello, version="1.0.0", route="/wasi")
        deploy(reg, "classic", text_component("classic"), version="1.0.0", route="/classic")
        deploy(reg, "tiny", wasi_hello, version="1.0.0", route="/tiny", settings=VersionSettings.of(max_body=10))
    app = Starlette(routes=[Route("/{path:path}", native, methods=["GET", "POST"])])
    app.add_middleware(AirssysMiddleware, registry=reg_dir)
    with uvicorn_server(app) as url:
        yield url


def test_served_next_to_airssys_routes_and_native_ones(site: str) -> None:
    with httpx.Client(base_url=site) as client:
        for _ in range(20):  # past the inline policy's warm-up: the inline path is exercised too
            r = client.get("/wasi/deep/path?q=1")
            assert (r.status_code, r.text, r.headers["x-airssys-version"]) == (200, HELLO_TEXT, "wasi@1.0.0")
            assert r.headers["content-length"] == str(len(HELLO_TEXT))
        assert client.get("/classic").text == "classic"
        assert client.get("/elsewhere").text == "native /elsewhere"
        r = client.post("/wasi", content=b"ignored body " * 1000)
        assert r.status_code == 200


def test_route_body_limit_applies(site: str) -> None:
    r = httpx.post(site + "/tiny", content=b"x" * 11)
    assert r.status_code == 413
    assert r.json()["error"] == "request body too large"


def test_limits_apply_to_wasi_http_slots(wasi_hello: bytes) -> None:
    gen = make_generation(wasi_hello, name="mem", limits=Limits(memory=64 * 1024 * 1024, max_instances=2))
    try:
        gen.warm()
        assert gen.call("GET", "/").status == 200
    finally:
        gen.close()


def test_many_requests_on_one_instance(wasi_hello: bytes) -> None:
    gen = make_generation(wasi_hello, name="reuse", limits=Limits(max_instances=1))
    try:
        gen.warm()
        for _ in range(200):  # resources of every request are dropped: the same Store serves on
            assert gen.call("GET", "/").body.decode() == HELLO_TEXT
        assert gen.pool.created == 1 and gen.pool.discarded == 0
    finally:
        gen.close()


def test_the_deadline_is_set_for_every_call(wasi_hello: bytes) -> None:
    gen = make_generation(wasi_hello, name="late", limits=Limits(timeout=0.2))
    try:
        gen.warm()
        time.sleep(0.3)  # the subject, not a wait: outlive the deadline set at instantiation; each call sets its own
        assert gen.call("GET", "/").status == 200
    finally:
        gen.close()
    spinning = HELLO.read_text().replace("(call $drop-request (local.get $request))", "(loop $spin (br $spin))")
    gen = make_generation(compile_wat(spinning), name="spin", limits=Limits(timeout=0.2))
    try:
        gen.warm()
        with pytest.raises(GuestTimeout, match="deadline"):
            gen.call("GET", "/")
    finally:
        gen.close()
