"""wasi:http/proxy components next to airssys:web ones: world detection, deploy, serving, wasi:http/types rules.

The guest here is hand-written WAT (tests/guests/wasi_http/hello.wat), so these tests are fast; the Python
(componentize-py) guests are in test_wasi_http_guests.py.
"""

from __future__ import annotations

import ctypes
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
from support import make_generation, text_component

from airssys_web import AirssysMiddleware, EmbeddedRegistry, deploy
from airssys_web.build import compile_wat
from airssys_web.deploy import check_component
from airssys_web.errors import GuestTimeout, InvalidComponent, OutboundDenied, OutboundError
from airssys_web.limits import Limits
from airssys_web.runtime.artifacts import ArtifactCache
from airssys_web.runtime.engine import get_engine
from airssys_web.runtime.wasi_http import AIRSSYS_WORLD, WASI_HTTP_WORLD, detect_world, world_of_exports
from airssys_web.runtime.wasi_http.codec import (
    HandleTable,
    Scope,
    address,
    compile_direct,
    compile_lift,
    compile_lower,
)
from airssys_web.runtime.wasi_http.error_codes import from_outbound, status_for
from airssys_web.runtime.wasi_http.fields import Fields
from airssys_web.runtime.wasi_http.http import method_text, method_value
from airssys_web.runtime.wasi_http.io import Pollable

Server = Callable[..., AbstractContextManager[str]]
HELLO = Path(__file__).parent / "guests" / "wasi_http" / "hello.wat"
HELLO_TEXT = "hello from a WAT wasi:http guest\n"


@pytest.fixture(scope="module")
def wasi_hello() -> bytes:
    return compile_wat(HELLO.read_text())


def test_world_detection(wasi_hello: bytes) -> None:
    cache = ArtifactCache(None)
    assert detect_world(cache.compile(wasi_hello)) == WASI_HTTP_WORLD
    assert detect_world(cache.compile(text_component("x"))) == AIRSSYS_WORLD
    assert world_of_exports(["wasi:http/incoming-handler@0.2.3", "exports"]) == WASI_HTTP_WORLD
    assert world_of_exports(["wasi:http/incoming-handler@0.3.0"]) is None  # p3 (async) is not served


def test_check_component_reports_the_world(wasi_hello: bytes) -> None:
    _, report = check_component(wasi_hello, ArtifactCache(None), label="hello")
    assert report.world == WASI_HTTP_WORLD
    assert "wasi:http/incoming-handler@0.2.0" in report.exports
    assert "wasi:http/types@0.2.0" in report.imports
    _, report = check_component(text_component("x"), ArtifactCache(None), label="x")
    assert report.world == AIRSSYS_WORLD


def test_a_component_of_neither_world_is_refused(wat_guest: Callable[[str], bytes]) -> None:
    with pytest.raises(InvalidComponent, match="wasi:http/proxy"):
        check_component(wat_guest("wrong_world"), ArtifactCache(None), label="w")


def test_generation_calls_a_wasi_http_guest(wasi_hello: bytes) -> None:
    gen = make_generation(wasi_hello, name="wh")
    try:
        assert gen.world == WASI_HTTP_WORLD
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
        deploy(reg, "tiny", wasi_hello, version="1.0.0", route="/tiny", settings={"limits": {"max_body": 10}})
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


# -- wasi:http/types semantics (host objects, no guest needed) --------------------------------------------------

def test_fields_rules() -> None:
    assert Fields.from_list([("Connection", b"close")]) == ("err", "forbidden")
    assert Fields.from_list([("host", b"x")]) == ("err", "forbidden")
    assert Fields.from_list([("bad name", b"v")]) == ("err", "invalid-syntax")
    assert Fields.from_list([("x-v", b"a\r\nb")]) == ("err", "invalid-syntax")
    ok, fields = Fields.from_list([("X-A", b"1"), ("x-a", b"2"), ("x-b", b"\tfine value")])
    assert ok == "ok"
    assert fields.get("x-A") == [b"1", b"2"] and fields.has("X-B")
    assert fields.set("x-a", [b"3"]) == ("ok", None) and fields.get("x-a") == [b"3"]
    assert fields.append("x-c", b"4") == ("ok", None)
    assert fields.delete("x-b") == ("ok", None) and not fields.has("x-b")
    assert fields.append("transfer-encoding", b"chunked") == ("err", "forbidden")
    assert fields.entries == [("x-a", b"3"), ("x-c", b"4")]
    fields.freeze()
    assert fields.set("x-a", [b"5"]) == ("err", "immutable")
    assert fields.delete("x-a") == ("err", "immutable")
    copy = fields.clone()
    assert copy.append("x-d", b"6") == ("ok", None) and fields.entries == [("x-a", b"3"), ("x-c", b"4")]


def test_methods_round_trip() -> None:
    assert method_value("GET") == ("get", None)
    assert method_value("PROPFIND") == ("other", "PROPFIND")
    assert method_value("get") == ("other", "get")  # methods are case-sensitive
    assert method_text(("patch", None)) == "PATCH" and method_text(("other", "PURGE")) == "PURGE"


def test_outbound_failures_map_to_error_codes() -> None:
    assert from_outbound(OutboundDenied("denied: x is not granted")) == ("HTTP-request-denied", None)
    assert from_outbound(OutboundError("could not resolve a.test: no addresses"))[0] == "DNS-error"
    assert from_outbound(OutboundError("could not connect to http://a.test: refused"))[0] == "connection-refused"
    assert from_outbound(OutboundError("http://a.test timed out"))[0] == "connection-timeout"
    assert from_outbound(OutboundError("http://a.test answered more than the 10-byte cap"))[0] == \
        "HTTP-response-body-size"
    assert from_outbound(OutboundError("something else"))[0] == "internal-error"
    assert status_for(("connection-timeout", None)) == 504
    assert status_for(("DNS-error", {})) == 502
    assert status_for(("internal-error", None)) == 500


def test_limits_apply_to_wasi_http_slots(wasi_hello: bytes) -> None:
    gen = make_generation(wasi_hello, name="mem", limits=Limits(memory=64 * 1024 * 1024, max_instances=2))
    try:
        gen.warm()
        assert gen.call("GET", "/").status == 200
    finally:
        gen.close()


def test_handle_reps_are_reused_per_resource_type() -> None:
    table = HandleTable()
    try:
        a = table.add(Fields())
        assert table.pop(a).entries == []
        assert table.add(Fields()) == a  # the freed rep (and its kept resource_host) serves the next fields
        other = table.add(Pollable(lambda: True))
        assert other != a  # another type never takes a rep kept for fields
        assert table.host(a, Fields.RESOURCE_ID) == table.host(a, Fields.RESOURCE_ID)
        with pytest.raises(KeyError):
            table.pop(12345)
    finally:
        table.close()


def test_direct_results_match_the_general_lowering(wasi_hello: bytes) -> None:
    engine = get_engine(False)
    types = ArtifactCache(None).compile(wasi_hello).type.imports(engine)["wasi:http/types@0.2.0"].ty
    finish = types.exports(engine)["[static]outgoing-body.finish"].ty.result  # result<_, error-code>
    direct, lower, lift = compile_direct(finish), compile_lower(finish), compile_lift(finish)
    assert direct is not None
    scope = Scope(0, HandleTable())
    slot = ctypes.create_string_buffer(32)
    assert direct(("ok", None), ctypes.addressof(slot), scope)
    assert lift(ctypes.addressof(slot), scope) == ("ok", None)
    assert not direct(("err", ("internal-error", "x")), ctypes.addressof(slot), scope)  # left to compile_lower
    assert not direct(("maybe", None), ctypes.addressof(slot), scope)
    buf = bytearray(32)
    lower(("err", ("internal-error", "x")), buf, 0, scope)
    assert lift(address(buf), scope) == ("err", ("internal-error", "x"))


def test_many_requests_on_one_instance_reuse_handles(wasi_hello: bytes) -> None:
    gen = make_generation(wasi_hello, name="reuse")
    try:
        gen.warm()
        for _ in range(20):
            assert gen.call("GET", "/").body.decode() == HELLO_TEXT
        slot = gen.pool.materialize(gen.pool.try_acquire())  # type: ignore[arg-type]
        table = slot.session.table  # type: ignore[attr-defined]
        assert table.objects == {}  # every handle of every request was dropped or taken back
        assert table.add(Fields()) <= 10  # and reps come back: 20 requests did not use 20 x 8 of them
        gen.pool.release(slot)
    finally:
        gen.close()


def test_the_deadline_is_set_for_every_call(wasi_hello: bytes) -> None:
    gen = make_generation(wasi_hello, name="late", limits=Limits(timeout=0.2))
    try:
        gen.warm()
        time.sleep(0.3)  # past the deadline set at instantiation: the call must get its own
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
