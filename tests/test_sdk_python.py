"""The Python guest SDK (airssys_guest): its pure parts natively, and everything through a real built component."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from conftest import GUEST_CACHE, GUESTS
from hypothesis import given
from hypothesis import strategies as st
from sdk_cases import check_one_build_at_two_routes, client, run_cases

from airssys_web.guest.build import build_python_guest, python_guest_key
from airssys_web.guest.sdk import PYTHON_PATH
from airssys_web.guest.testing import ComponentClient


@pytest.fixture(scope="module")
def guest() -> Iterator[ModuleType]:
    """The SDK imported natively (outside a component: host calls raise, everything else works)."""
    sys.path.insert(0, str(PYTHON_PATH))
    try:
        yield importlib.import_module("airssys_guest")
    finally:
        sys.path.remove(str(PYTHON_PATH))


# -- natively ------------------------------------------------------------------------------------------------------

header_names = st.from_regex(r"[A-Za-z][A-Za-z0-9-]{0,20}", fullmatch=True)


@given(name=header_names, values=st.lists(st.text(max_size=10), min_size=1, max_size=3))
def test_headers_are_case_insensitive_and_keep_repeats(name: str, values: list[str]) -> None:
    sys.path.insert(0, str(PYTHON_PATH))
    try:
        from airssys_guest import Headers
    finally:
        sys.path.remove(str(PYTHON_PATH))
    headers = Headers([(name, v) for v in values])
    assert headers[name.upper()] == headers[name.lower()] == values[0]
    assert headers.get_all(name.swapcase()) == values
    assert name.upper() in headers and len(headers) == 1
    assert Headers(headers).raw() == headers.raw()  # a copy keeps the repeats (what Request and Response make)
    headers[name.title()] = "x"
    assert headers.raw() == [(name.lower(), "x")]


def test_middleware_passes_requests_on_and_answers_itself(guest: ModuleType) -> None:
    seen: list[list[tuple[str, str]]] = []

    def route(request: Any) -> Any:
        seen.append(request.headers.raw())
        return guest.Response.text("inner", headers=[("set-cookie", "a=1"), ("set-cookie", "b=2")])

    @guest.middleware
    def stage(request: Any, next: Any) -> Any:
        if "authorization" not in request.headers:
            raise guest.HTTPError(401)
        request.headers.add("x-user", "alice")
        response = next(request)
        response.headers.add("x-stage", "1")
        return response

    denied = stage(guest.Request("GET", "/", "", [("x-a", "1")]), route)
    assert (denied.status, denied.body, seen) == (401, b'{"error":"unauthorized"}', [])
    answer = stage(guest.Request("GET", "/", "", [("authorization", "t"), ("x-user", "eve")]), route)
    assert seen == [[("authorization", "t"), ("x-user", "eve"), ("x-user", "alice")]]
    assert answer.headers.get_all("set-cookie") == ["a=1", "b=2"] and answer.headers["x-stage"] == "1"
    broken = guest.middleware(debug=True)(lambda request, next: 1 / 0)(guest.Request("GET", "/"), route)
    assert broken.status == 500 and b"ZeroDivisionError" in broken.body
    with pytest.raises(TypeError, match="takes a function"):
        guest.Middleware("not callable")


def test_routes_convert_parameters_and_answer_404_405(guest: ModuleType) -> None:
    app = guest.App(prefix="/api")
    app.get("/items/{id:int}")(lambda req, id: {"id": id})
    app.post("/items")(lambda req: (req.json(), 201))
    app.get("/raw/{rest:path}")(lambda req, rest: rest.encode())
    call = lambda method, path, body=b"": app(guest.Request(method, path, "", [], body))  # noqa: E731
    assert call("GET", "/api/items/7").body == b'{"id":7}'
    created = call("POST", "/api/items", b'{"a": 1}')
    assert (created.status, created.body) == (201, b'{"a":1}')
    assert call("GET", "/api/items/x").status == 404
    refused = call("DELETE", "/api/items/7")
    assert refused.status == 405 and refused.headers["Allow"] == "GET, HEAD"
    assert call("GET", "/api/raw/a/b").body == b"a/b"
    assert call("GET", "/apix").status == 404
    assert call("HEAD", "/api/items/1").body == b""


def test_routes_are_matched_below_the_route_the_host_names(guest: ModuleType) -> None:
    app = guest.App()
    app.get("/")(lambda req: {"root": req.root_path, "below": req.route_path})
    app.get("/items/{id:int}")(lambda req, id: {"id": id, "root": req.root_path})

    def call(path: str, mount: str | None = None) -> tuple[int, bytes]:
        headers = [] if mount is None else [("x-airssys-route", mount)]
        response = app(guest.Request("GET", path, "", headers))
        return response.status, response.body

    assert call("/api/items/7", "/api") == (200, b'{"id":7,"root":"/api"}')
    assert call("/v2/api/items/7", "/v2/api") == (200, b'{"id":7,"root":"/v2/api"}')  # the same app, elsewhere
    assert call("/api", "/api") == (200, b'{"root":"/api","below":"/"}')
    assert call("/items/7") == (200, b'{"id":7,"root":""}')  # outside a host: the full path
    assert call("/api/items/7", "/other")[0] == 404
    fixed = guest.App(prefix="/api")  # an explicit prefix overrides what the host says
    fixed.get("/")(lambda req: req.root_path)
    assert fixed(guest.Request("GET", "/api", "", [("x-airssys-route", "/else")])).body == b"/api"


def test_bad_route_patterns_and_return_values_are_clear(guest: ModuleType) -> None:
    with pytest.raises(ValueError, match="must start with '/'"):
        guest.App().get("items")
    with pytest.raises(ValueError, match=r"names \{id\} twice"):
        guest.App().get("/{id}/{id}")
    with pytest.raises(ValueError, match="must start with '/' and not end"):
        guest.App(prefix="/api/")
    with pytest.raises(TypeError, match="a route returned int"):
        guest.to_response(3)
    with pytest.raises(ValueError, match="from 100 to 599"):
        guest.Response(b"", 700)


def test_an_exception_in_a_route_answers_500_and_is_printed(guest: ModuleType,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    app = guest.App(debug=True)

    @app.get("/")
    def boom(req: object) -> None:
        raise RuntimeError("kaboom")

    response = app(guest.Request("GET", "/"))
    assert response.status == 500 and b"kaboom" in response.body
    assert "RuntimeError: kaboom" in capsys.readouterr().err


def test_host_calls_outside_a_component_say_so(guest: ModuleType) -> None:
    with pytest.raises(guest.GuestSDKError, match="only works inside a built component"):
        guest.kv.get("k")
    with pytest.raises(guest.GuestSDKError, match="only works inside a built component"):
        guest.fetch("https://example.com/")


def test_the_sdk_is_part_of_the_build_cache_key(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text("x = 1\n")
    key = python_guest_key(tmp_path)
    (tmp_path / "test_app.py").write_text("def test(): pass\n")  # the author's tests are not build inputs
    (tmp_path / "airssys.toml").write_text("[limits]\ntimeout = 1\n")
    assert python_guest_key(tmp_path) == key


# -- through a real component ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def py_sdk_wasm() -> bytes:
    pytest.importorskip("componentize_py", reason="componentize-py is not installed")
    return build_python_guest(GUESTS / "py_sdk", cache_dir=GUEST_CACHE).read_bytes()


@pytest.mark.slow
def test_sdk_behaviour_through_a_built_component(py_sdk_wasm: bytes) -> None:
    with client(py_sdk_wasm) as c:
        run_cases(c)
        boom = c.get("/sdk/boom")  # the SDK answers 500 and logs the traceback; the instance lives on
        assert boom.status_code == 500 and boom.json() == {"error": "internal error"}
        assert c.get("/sdk").text == "index"


@pytest.mark.slow
def test_one_build_serves_at_two_routes(tmp_path: Path) -> None:
    pytest.importorskip("componentize_py", reason="componentize-py is not installed")
    wasm = build_python_guest(GUESTS / "py_mount", cache_dir=GUEST_CACHE).read_bytes()
    check_one_build_at_two_routes(wasm, tmp_path / "reg")


@pytest.mark.slow
def test_kv_written_by_the_guest_is_visible_to_the_test(py_sdk_wasm: bytes) -> None:
    with ComponentClient(py_sdk_wasm, kv=True) as c:
        assert c.kv is not None
        c.kv.set("seeded", b'{"from": "test"}')
        assert c.get("/sdk/kv/seeded").json() == {"from": "test"}
        assert c.put("/sdk/kv/new", json=[1]).status_code == 201
        assert c.kv.get("new") == b"[1]"
    with ComponentClient(py_sdk_wasm) as c:  # not granted: the guest sees KVError with the host's reason
        r = c.get("/sdk/kv/x")
        assert r.status_code == 507 and "kv not granted" in r.json()["kv_error"]

