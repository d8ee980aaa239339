"""The sandbox end to end: real guests, real grants, a real uvicorn server and a real loopback HTTP server.

A guest gets nothing it was not granted (no files outside its directories, no writes to read-only ones, no fetch
outside its origins: the target sees no connection), and a guest that hits a limit loses only its own instance
while the server and every other route keep serving. Python guests (componentize-py) make some tests ``slow``.
"""

from __future__ import annotations

import concurrent.futures
import logging
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import httpx
import pytest
from caps_support import CountingServer, build_py_caps, caps_wat, counting_server, generation, imports_guest
from conftest import run_uvicorn
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from support import text_component

from airssys_web import AirssysMiddleware, EmbeddedRegistry, deploy
from airssys_web.capabilities.grants import Capability
from airssys_web.lifecycle.host import AirssysHost
from airssys_web.lifecycle.services import HostServices
from airssys_web.lifecycle.settings import VersionSettings

Server = Callable[..., AbstractContextManager[str]]
MARGIN = 5.0  # generous bound on scheduling noise; these tests prove "answered", not "fast"


@pytest.fixture(scope="module")
def loopback() -> Iterator[CountingServer]:
    with counting_server() as server:
        yield server


@pytest.fixture(scope="session")
def py_caps() -> bytes:
    pytest.importorskip("componentize_py", reason="componentize-py is not installed")
    return build_py_caps().read_bytes()


def _app(reg_dir: Path) -> Starlette:
    async def native(request: Any) -> PlainTextResponse:
        return PlainTextResponse("native")

    app = Starlette(routes=[Route("/{path:path}", native)])
    app.add_middleware(AirssysMiddleware, registry=reg_dir)
    return app


# -- outbound: a bypass table through a real guest and the host's own wiring -----------------------------------

NAMES = {"allowed.example": ["127.0.0.1"], "localhost": ["127.0.0.1"]}


def _resolver(host: str, port: int) -> list[str]:
    if host not in NAMES:
        raise socket.gaierror(socket.EAI_NONAME, host)
    return NAMES[host]


GRANTED = ["http://127.0.0.1:{port}"]
BYPASSES: list[tuple[str, list[str], str, list[tuple[str, str]]]] = [
    ("no-grants-at-all", [], "http://127.0.0.1:{port}/x", []),
    ("other-port", ["http://127.0.0.1:{port1}"], "http://127.0.0.1:{port}/x", []),
    ("https-grant-http-url", ["https://127.0.0.1:{port}"], "http://127.0.0.1:{port}/x", []),
    ("name-not-granted", GRANTED, "http://localhost:{port}/x", []),
    ("ipv6-loopback", GRANTED, "http://[::1]:{port}/x", []),
    ("unspecified", GRANTED, "http://0.0.0.0:{port}/x", []),
    ("short-ipv4", GRANTED, "http://127.1:{port}/x", []),
    ("hex-dword", GRANTED, "http://0x7f000001:{port}/x", []),
    ("decimal-dword", GRANTED, "http://2130706433:{port}/x", []),
    ("octal", GRANTED, "http://0177.0.0.1:{port}/x", []),
    ("fullwidth-digits", GRANTED, "http://\uff11\uff12\uff17.0.0.1:{port}/x", []),
    ("percent-encoded-host", GRANTED, "http://%31%32%37.0.0.1:{port}/x", []),
    ("userinfo-before-granted", GRANTED, "http://evil.example@127.0.0.1:{port}/x", []),
    ("userinfo-after-granted", GRANTED, "http://127.0.0.1:{port}@evil.example/x", []),
    ("backslash", GRANTED, "http://127.0.0.1:{port}\\@evil.example/x", []),
    ("relative-url-CVE-2024-32980", GRANTED, "/x", []),
    ("scheme-relative", GRANTED, "//127.0.0.1:{port}/x", []),
    ("non-http-scheme", ["*://127.0.0.1:*"], "ftp://127.0.0.1:{port}/x", []),
    ("port-overflow", GRANTED, "http://127.0.0.1:{port_wrap}/x", []),
    ("crlf-injection", GRANTED, "http://127.0.0.1:{port}/x HTTP/1.1\r\nHost: evil/", []),
    ("space-in-host", GRANTED, "http://127.0.0.1 :{port}/x", []),
    ("wildcard-is-not-loopback", ["http://*:*"], "http://127.0.0.1:{port}/x", []),
    ("dns-rebinding-to-loopback", ["http://allowed.example:{port}"], "http://allowed.example:{port}/x", []),
    ("host-header-override", GRANTED, "http://127.0.0.1:{port}/x", [("host", "evil.example")]),
    ("header-injection", GRANTED, "http://127.0.0.1:{port}/x", [("x-a", "1\r\nHost: evil")]),
]


def _fill(text: str, port: int) -> str:
    return text.format(port=port, port1=port + 1, port_wrap=port + 65536)


@pytest.mark.parametrize(("grants", "url", "headers"), [c[1:] for c in BYPASSES], ids=[c[0] for c in BYPASSES])
def test_fetch_bypass_attempts_are_denied_before_any_connection(
    loopback: CountingServer, grants: list[str], url: str, headers: list[tuple[str, str]]
) -> None:
    services = HostServices(None, fetcher_options={"resolver": _resolver})
    gen = generation(imports_guest(), {"outbound": [_fill(g, loopback.port) for g in grants]}, services)
    before = loopback.accepted
    r = gen.call("GET", _fill(url, loopback.port), headers=headers)
    assert r.status == 502
    assert r.headers[0][0] == "error" and r.headers[0][1].startswith("denied: "), r.headers
    assert loopback.accepted == before  # the target never saw a connection
    assert sum(gen.ctx.outbound_denials().values()) == 1
    assert gen.pool.discarded == 0
    gen.close()


def test_bypass_table_is_large_enough() -> None:
    assert len(BYPASSES) >= 20


@pytest.mark.parametrize("grant", ["http://127.0.0.1:{port}", "http://localhost:{port}", "http://127.0.0.0/8:*"])
def test_granted_fetch_reaches_the_server(loopback: CountingServer, grant: str) -> None:
    services = HostServices(None, fetcher_options={"resolver": _resolver})
    gen = generation(imports_guest(), {"outbound": [_fill(grant, loopback.port)]}, services)
    host = "localhost" if "localhost" in grant else "127.0.0.1"
    before = loopback.accepted
    r = gen.call("GET", f"http://{host}:{loopback.port}/hello")
    assert (r.status, r.body) == (200, b"hello from /hello")
    assert loopback.accepted == before + 1 and gen.ctx.outbound_denials() == {}
    (fetcher,) = gen.ctx.resources
    gen.close()
    assert fetcher._client.is_closed  # the generation released its fetcher


# -- through a real server -----------------------------------------------------------------------------------

@pytest.fixture
def limits_site(tmp_path: Path, wat_guest: Callable[[str], bytes], uvicorn_server: Server) -> Iterator[str]:
    reg_dir = tmp_path / "reg"
    with EmbeddedRegistry(reg_dir) as reg:
        deploy(reg, "hello", text_component("still here"), version="1.0.0", route="/hello")
        deploy(reg, "spin", wat_guest("spin"), version="1.0.0", route="/spin", settings=VersionSettings.of(timeout=0.3))
        deploy(reg, "grow", wat_guest("grow"), version="1.0.0", route="/grow",
               settings=VersionSettings.of(memory=2 << 20))
        deploy(reg, "recurse", caps_wat("recurse"), version="1.0.0", route="/recurse")
        deploy(reg, "busy", wat_guest("spin"), version="1.0.0", route="/busy",
               settings=VersionSettings.of(timeout=2.0, max_instances=1, min_instances=1, acquire_timeout=0.2))
        deploy(reg, "small", wat_guest("echo"), version="1.0.0", route="/small",
               settings=VersionSettings.of(max_body=16))
        deploy(reg, "fuel", wat_guest("spin"), version="1.0.0", route="/fuel",
               settings=VersionSettings.of(fuel=200_000))
    with uvicorn_server(_app(reg_dir)) as url:
        yield url


def test_limits_answer_cleanly_and_other_routes_keep_serving(limits_site: str,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="airssys_web")
    with httpx.Client(base_url=limits_site, timeout=30) as client:
        for round_ in range(2):  # the second round runs on refilled instances
            started = time.monotonic()
            assert client.get("/spin").status_code == 504
            assert time.monotonic() - started < 0.3 + MARGIN
            assert client.get("/grow").status_code == 500
            assert client.get("/recurse").status_code == 500
            assert client.get("/fuel").status_code == 504
            assert client.post("/small", content=b"x" * 17).status_code == 413
            assert client.post("/small", content=b"x" * 16).text == "x" * 16
            r = client.get("/hello")
            assert (r.status_code, r.text) == (200, "still here"), round_
        assert client.get("/").text == "native"
    messages = [r.getMessage() for r in caplog.records]
    assert any("exceeded its 0.3s deadline" in m for m in messages)
    assert any("stack overflow" in m for m in messages)
    assert any("ran out of fuel" in m for m in messages)
    assert any("hit its memory limit of 2 MiB" in m for m in messages)


def test_concurrency_limit_waits_then_503_while_others_serve(limits_site: str) -> None:
    with httpx.Client(base_url=limits_site, timeout=30) as client, \
            concurrent.futures.ThreadPoolExecutor(2) as pool:
        # One instance: whichever request gets it spins until its 2 s deadline (504); the other waits 0.2 s (503).
        calls = [pool.submit(client.get, "/busy") for _ in range(2)]
        assert client.get("/hello").text == "still here"
        answers = sorted((r.status_code, r.headers.get("retry-after")) for r in (c.result() for c in calls))
    assert answers == [(503, "1"), (504, None)]


# -- Python guest: files, memory, fetch through the server (slow) -------------------------------------------------

class PySite:
    def __init__(self, url: str, root: Path, loopback: CountingServer) -> None:
        self.url, self.root, self.loopback = url, root, loopback
        self.data, self.out, self.outside, self.reg = (root / n for n in ("data", "out", "outside", "reg"))


@pytest.fixture(scope="module")
def py_site(py_caps: bytes, loopback: CountingServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PySite]:
    """One server for the Python-guest tests (compiling the 18 MB guest dominates their cost): ``caps`` may read
    data/ and write out/ under a 48 MiB cap, ``open`` may fetch the loopback server, ``shut`` gets nothing."""
    root = tmp_path_factory.mktemp("py_site")
    for d in ("data", "out", "outside"):
        (root / d).mkdir()
    (root / "data" / "a.txt").write_text("granted")
    (root / "outside" / "secret.txt").write_text("not yours")
    (root / "data" / "escape").symlink_to(root / "outside" / "secret.txt")
    (root / "data" / "up").symlink_to(root / "outside")
    with EmbeddedRegistry(root / "reg") as reg:
        deploy(reg, "caps", py_caps, version="1.0.0", route="/caps",
               settings=VersionSettings.of(Capability.file_read(root / "data", "/data"),
                                           Capability.file_write(root / "out", "/out"), memory=48 << 20))
        deploy(reg, "open", py_caps, version="1.0.0", route="/open",
               settings=VersionSettings.of(Capability.network_outbound(f"http://127.0.0.1:{loopback.port}")))
        deploy(reg, "shut", py_caps, version="1.0.0", route="/shut")
        deploy(reg, "hello", text_component("still here"), version="1.0.0", route="/hello")
    with run_uvicorn(_app(root / "reg")) as url:
        yield PySite(url, root, loopback)


@pytest.mark.slow
def test_python_guest_sees_only_its_directories(py_site: PySite) -> None:
    with httpx.Client(base_url=py_site.url, timeout=30) as client:
        def call(op: str, arg: str, body: bytes = b"") -> httpx.Response:
            return client.post(f"/caps/{op}?{arg}", content=body)

        assert call("read", "/data/a.txt").text == "granted"
        for path in ("/etc/passwd", f"{py_site.outside}/secret.txt", "/data/../outside/secret.txt", "/data/escape",
                     "/data/up/secret.txt", f"{py_site.reg}/registry.db", "/out/../data/a.txt"):
            r = call("read", path)
            assert r.status_code == 403, (path, r.text)
            assert "not yours" not in r.text
        assert call("list", "/").status_code == 403
        assert call("list", "/data").text.split("\n") == ["a.txt", "escape", "up"]
        for op, path in (("write", "/data/a.txt"), ("write", "/data/new.txt"), ("mkdir", "/data/d"),
                         ("remove", "/data/a.txt")):
            r = call(op, path, b"overwritten")
            assert r.status_code == 403 and "PermissionError" in r.text, (op, path, r.text)
        assert (py_site.data / "a.txt").read_text() == "granted"
        assert sorted(p.name for p in py_site.data.iterdir()) == ["a.txt", "escape", "up"]
        assert call("write", "/out/new.txt", b"written").text == "wrote 7"
        assert (py_site.out / "new.txt").read_text() == "written"
        assert call("mkdir", "/out/sub").status_code == 200 and (py_site.out / "sub").is_dir()
        assert client.post("/shut/read?/data/a.txt").status_code == 403  # another component: nothing granted


@pytest.mark.slow
def test_python_memory_bomb_is_a_memory_limit(py_site: PySite, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="airssys_web")
    with httpx.Client(base_url=py_site.url, timeout=30) as client:
        for _ in range(2):
            assert client.get("/caps/alloc").status_code == 500
            assert client.get("/caps/ok").text == "ok"  # a fresh instance serves the next request
            assert client.get("/hello").text == "still here"
        assert client.get("/caps/recurse").status_code == 500
    limits = [r.getMessage() for r in caplog.records if "GuestMemoryLimit" in r.getMessage()]
    assert len(limits) == 2 and all("hit its memory limit of 48 MiB" in m for m in limits)


@pytest.mark.slow
def test_python_guest_fetch_with_and_without_the_grant(py_site: PySite) -> None:
    loopback = py_site.loopback
    target = f"http://127.0.0.1:{loopback.port}/page"
    with httpx.Client(base_url=py_site.url, timeout=30) as client:
        before = loopback.accepted
        r = client.get(f"/shut/fetch?{target}")
        assert r.status_code == 502 and r.text.startswith("denied: ")
        assert loopback.accepted == before
        r = client.get(f"/open/fetch?http://127.0.0.1:{loopback.port + 1}/")
        assert r.status_code == 502 and r.text.startswith("denied: ") and loopback.accepted == before
        r = client.get(f"/open/fetch?{target}")
        assert (r.status_code, r.text) == (200, "200 hello from /page")
        assert loopback.accepted == before + 1


# -- persistence ------------------------------------------------------------------------------------------------

def test_grants_and_limits_survive_a_restart(tmp_path: Path) -> None:
    reg_dir = tmp_path / "reg"
    with EmbeddedRegistry(reg_dir) as reg:
        deploy(reg, "imp", imports_guest(), version="1.0.0", route="/imp",
               settings=VersionSettings.of(Capability.kv(max_keys=5), Capability.secret("token", "t0k3n"),
                                           Capability.config("greeting", "hej"), timeout=1.5, memory=32 << 20,
                                           max_instances=3))
        deploy(reg, "imp", imports_guest(), version="1.1.0", route="/imp")  # grants nothing
        reg.rollback("imp")  # back to 1.0.0, with the grants 1.0.0 was deployed with
    for run in range(2):
        with AirssysHost(reg_dir) as host:
            gen = host.generations()["imp"]
            assert (gen.version, gen.limits.timeout, gen.limits.memory, gen.limits.max_instances) == (
                "1.0.0", 1.5, 32 << 20, 3)
            assert gen.call("@c", "token").headers == [("value", "t0k3n")]
            assert gen.call("@c", "greeting").headers == [("value", "hej")]
            if run == 0:
                assert gen.call("@s", "kept", body=b"across restarts").status == 204
            else:
                assert gen.call("@g", "kept").body == b"across restarts"


@pytest.mark.parametrize(("settings", "blocking"), [
    ({}, False), ({"config": {"a": "b"}}, False), ({"outbound": ["https://api.example.com"]}, True),
    ({"kv": True}, True),
])
def test_guests_that_may_block_on_io_never_run_on_the_event_loop(tmp_path: Path, settings: dict[str, Any],
                                                                 blocking: bool) -> None:
    gen = generation(imports_guest(), settings, HostServices(tmp_path))
    assert gen.ctx.blocking_io is blocking and gen.inline.long_running is blocking
    gen.close()
