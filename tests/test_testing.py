"""guest.testing.ComponentClient: a component called in-process, with the host's grants, limits and checks."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from airssys_web.capabilities.kv import SqliteKVStore
from airssys_web.errors import (
    BadGuestResponse,
    CapabilityError,
    GuestTimeout,
    GuestTrap,
    InvalidComponent,
    InvalidName,
)
from airssys_web.guest.testing import ComponentClient

Guest = Callable[[str], bytes]


def test_the_request_reaches_the_guest_as_the_host_sends_it(wat_guest: Guest) -> None:
    with ComponentClient(wat_guest("echo"), name="echo", version="1.2.3") as client:
        r = client.post("/a%20b/c?x=1&y=%20", content=b"\x00payload\xff")
    assert r.status_code == 200 and r.content == b"\x00payload\xff"
    assert r.headers["x-echo-method"] == "POST"
    assert r.headers["x-echo-path"] == "/a b/c"  # percent-decoded path, raw query: as the middleware does
    assert r.headers["x-echo-query"] == "x=1&y=%20"
    assert r.headers["x-airssys-version"] == "echo@1.2.3"


def test_config_grants_reach_the_guest(wat_guest: Guest) -> None:
    with ComponentClient(wat_guest("config_only"), config={"greeting": "bonjour"}) as client:
        assert client.get("/").text == "bonjour"
    with ComponentClient(wat_guest("config_only")) as client:
        assert client.get("/").text == "none"


def test_guest_failures_raise_by_default(wat_guest: Guest) -> None:
    with ComponentClient(wat_guest("trap")) as client, pytest.raises(GuestTrap):
        client.get("/")
    with ComponentClient(wat_guest("bad_status")) as client, pytest.raises(BadGuestResponse, match="status 700"):
        client.get("/")
    with ComponentClient(wat_guest("spin"), limits={"timeout": 0.2}) as client, pytest.raises(GuestTimeout):
        client.get("/")


def test_guest_failures_become_statuses_when_asked(wat_guest: Guest) -> None:
    with ComponentClient(wat_guest("trap"), raise_guest_errors=False) as client:
        r = client.get("/")
        assert r.status_code == 500 and "trapped" in r.json()["error"]
    with ComponentClient(wat_guest("spin"), limits={"timeout": 0.2}, raise_guest_errors=False) as client:
        assert client.get("/").status_code == 504
    with ComponentClient(wat_guest("bad_header"), raise_guest_errors=False) as client:
        assert client.get("/").status_code == 502


def test_the_body_limit_answers_413(wat_guest: Guest) -> None:
    with ComponentClient(wat_guest("echo"), limits={"max_body": 4}) as client:
        assert client.post("/", content=b"12345").status_code == 413
        assert client.post("/", content=b"1234").status_code == 200


def test_the_manifest_beside_the_wasm_is_read_like_deploy_reads_it(wat_guest: Guest, tmp_path: Path) -> None:
    wasm = tmp_path / "greeter.wasm"
    wasm.write_bytes(wat_guest("config_only"))
    (tmp_path / "airssys.toml").write_text('[grants]\nconfig = { greeting = "from the manifest" }\n')
    with ComponentClient(wasm) as client:
        assert client.get("/").text == "from the manifest"
    with ComponentClient(wasm, config={"greeting": "from the test"}) as client:  # explicit grants win
        assert client.get("/").text == "from the test"
    with ComponentClient(wasm, manifest=False) as client:
        assert client.get("/").text == "none"


def test_kv_is_private_unless_a_store_is_shared(wat_guest: Guest, tmp_path: Path) -> None:
    with ComponentClient(wat_guest("echo"), kv=True) as client:
        assert client.kv is not None
        client.kv.set("k", b"v")
        assert client.kv.get("k") == b"v"
    store = SqliteKVStore(tmp_path / "kv.db")
    try:
        with ComponentClient(wat_guest("echo"), kv=True, kv_store=store, name="shared") as client:
            assert client.kv is not None
            client.kv.set("k", b"kept")
        with ComponentClient(wat_guest("echo"), kv=True, kv_store=store, name="shared") as client:
            assert client.kv is not None and client.kv.get("k") == b"kept"
    finally:
        store.close()
    with ComponentClient(wat_guest("echo")) as client:
        assert client.kv is None


def test_bad_input_is_one_clear_error(wat_guest: Guest, tmp_path: Path) -> None:
    with pytest.raises(InvalidComponent, match=r"file not found: .*; build the component first"):
        ComponentClient(tmp_path / "missing.wasm")
    with pytest.raises(InvalidComponent, match="core WebAssembly module"):
        ComponentClient(wat_guest("core_module"))
    with pytest.raises(CapabilityError, match="invalid limit timeout"):
        ComponentClient(wat_guest("echo"), limits={"timeout": -1})


def test_it_is_an_httpx_client(wat_guest: Guest) -> None:
    with ComponentClient(wat_guest("hello"), base_url="http://site.test/app") as client:
        assert isinstance(client, httpx.Client)
        r = client.get("/x", headers={"X-Test": "1"})
        assert r.request.url == "http://site.test/app/x" and r.text == "hello from wat"


def test_route_tells_the_guest_its_mount_point_as_the_middleware_does(py_echo_wasm: bytes, wat_guest: Guest) -> None:
    def seen(client: ComponentClient, **headers: str) -> list[str]:
        echoed = client.get("/api/x", headers=headers).json()["headers"]
        return [value for name, value in echoed if name == "x-airssys-route"]

    with ComponentClient(py_echo_wasm, route="/api") as client:
        assert seen(client) == ["/api"]
        assert seen(client, **{"X-Airssys-Route": "/spoofed"}) == ["/api"]
    with ComponentClient(py_echo_wasm) as client:  # no route: as outside a host, the headers go as sent
        assert seen(client) == []
    with pytest.raises(InvalidName, match="invalid route 'api'"):
        ComponentClient(wat_guest("hello"), route="api")


def test_a_middleware_stage_is_tested_with_a_stand_in_for_what_follows(wat_guest: Guest) -> None:
    passed_on: list[httpx.Request] = []

    def route(request: httpx.Request) -> httpx.Response:
        passed_on.append(request)
        return httpx.Response(201, headers=[("set-cookie", "a"), ("set-cookie", "b")], text="from the route")

    with ComponentClient(wat_guest("stage"), next=route, config={"name": "auth", "require": "authorization"}) as c:
        assert c.get("/nope").status_code == 401 and passed_on == []  # answered by the stage itself
        r = c.post("/items?x=1", headers={"authorization": "t"}, content=b"data")
    assert (r.status_code, r.text) == (201, "from the route")
    assert r.headers.get_list("set-cookie") == ["a", "b"] and r.headers["x-seen-by"] == "auth"
    sent = passed_on[0]
    assert (sent.method, sent.url.path, sent.url.query, sent.content) == ("POST", "/items", b"x=1", b"data")
    assert sent.headers["x-stages"] == "auth" and sent.headers["authorization"] == "t"


def test_next_is_required_for_a_stage_and_refused_for_a_route(wat_guest: Guest) -> None:
    with pytest.raises(InvalidComponent, match="is a middleware stage: pass next="):
        ComponentClient(wat_guest("stage"))
    with pytest.raises(InvalidComponent, match="is a route component; only a middleware stage calls next"):
        ComponentClient(wat_guest("hello"), next=lambda request: httpx.Response(200))
