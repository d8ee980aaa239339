"""Real wasi:http/proxy guests built with componentize-py in the test session (blocking and asyncio styles).

Both bodies stream through ASGI with back-pressure, a trap mid-stream cuts the response short, outbound requests
go through the component's grants, and a route swaps between a wasi:http and an airssys:web version under load
without a failed request.
"""

from __future__ import annotations

import hashlib
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import h11
import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from support import artifacts, runtime_for, text_component, wait_until

from airssys_web import AirssysMiddleware, EmbeddedRegistry, deploy
from airssys_web.capabilities.grants import Capability
from airssys_web.lifecycle.settings import VersionSettings
from airssys_web.runtime.artifacts import ArtifactCache, Component, sha256_hex

pytestmark = pytest.mark.slow
GUESTS = Path(__file__).parent / "guests" / "wasi_http"
CACHE = Path(__file__).resolve().parents[1] / ".cache" / "guests"
ARTIFACTS = CACHE.parent / "wasi-http-artifacts"


@pytest.fixture(scope="session")
def py_sync_wasm() -> bytes:
    pytest.importorskip("componentize_py", reason="componentize-py is not installed")
    from airssys_web.guest.build_wasi_http import build_wasi_http_guest
    return build_wasi_http_guest(GUESTS / "py_sync", cache_dir=CACHE).read_bytes()


@pytest.fixture(scope="session")
def py_async_wasm() -> bytes:
    pytest.importorskip("componentize_py", reason="componentize-py is not installed")
    from airssys_web.guest.build_wasi_http import build_wasi_http_guest
    return build_wasi_http_guest(GUESTS / "py_async", cache_dir=CACHE).read_bytes()


COMPONENTIZE_JS = "@bytecodealliance/componentize-js@0.23.0"
_BUILD_JS = """import { componentize } from "@bytecodealliance/componentize-js";
import { writeFile } from "node:fs/promises";
const [source, wit, out] = process.argv.slice(2);
const { component } = await componentize({ sourcePath: source, witPath: wit, worldName: "proxy" });
await writeFile(out, component);
"""


@pytest.fixture(scope="session")
def js_hello_wasm() -> bytes:
    """tests/guests/wasi_http/js_hello built with componentize-js (npm; cached under .cache like the others)."""
    from airssys_web.guest.build_wasi_http import wasi_http_wit_dir
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node/npm are not installed")
    root = CACHE.parent / "wasi-http-js"
    source = GUESTS / "js_hello" / "app.js"
    wit = wasi_http_wit_dir(CACHE)
    key = hashlib.sha256(COMPONENTIZE_JS.encode() + source.read_bytes()).hexdigest()[:24]
    out = root / f"js_hello-{key}.wasm"
    if not out.is_file():
        root.mkdir(parents=True, exist_ok=True)
        if not (root / "node_modules" / "@bytecodealliance" / "componentize-js").is_dir():
            done = subprocess.run(["npm", "install", "--prefix", str(root), "--no-audit", "--no-fund",
                                   COMPONENTIZE_JS], capture_output=True, text=True, timeout=600)
            if done.returncode != 0:
                pytest.skip(f"npm could not install {COMPONENTIZE_JS}: {done.stderr.strip()[-300:]}")
        (root / "build.mjs").write_text(_BUILD_JS)
        staged = out.with_suffix(".tmp")
        subprocess.run(["node", str(root / "build.mjs"), str(source), str(wit), str(staged)], cwd=root,
                       check=True, capture_output=True, timeout=600)
        staged.replace(out)
    return out.read_bytes()


async def upstream(request: Request) -> PlainTextResponse:
    return PlainTextResponse(f"upstream {request.url.path}")


@pytest.fixture(scope="module")
def upstream_url() -> Iterator[str]:
    from conftest import run_uvicorn
    with run_uvicorn(Starlette(routes=[Route("/{p:path}", upstream)])) as url:
        yield url


class _Reuse(ArtifactCache):
    """Deploy's compile step served from artifacts already on disk (an 18 MB Python guest takes ~10 s)."""

    def compile(self, wasm: bytes, *, sha: str | None = None, fuel: bool = False) -> Component:
        return self.get(sha or sha256_hex(wasm), wasm, fuel=fuel)


def _deploy(reg: EmbeddedRegistry, name: str, wasm: bytes, **kw: Any) -> None:
    """``deploy``, with the compiled artifact taken from (or added to) a cache kept across test sessions."""
    sha = sha256_hex(wasm)
    artifacts(ARTIFACTS).get(sha, wasm)
    for path in ARTIFACTS.glob(f"{sha}*"):
        shutil.copy2(path, Path(reg.artifacts_dir) / path.name)
    deploy(reg, name, wasm, artifacts=_Reuse(reg.artifacts_dir, runtime_for()), **kw)


@pytest.fixture(scope="module")
def site_and_registry(tmp_path_factory: pytest.TempPathFactory, py_sync_wasm: bytes, py_async_wasm: bytes
                      ) -> Iterator[tuple[str, Path]]:
    from conftest import run_uvicorn
    reg_dir = tmp_path_factory.mktemp("wasi") / "reg"
    with EmbeddedRegistry(reg_dir) as reg:
        big = VersionSettings.of(max_body=64 * 1024 * 1024)  # streamed, never buffered: a large limit costs nothing
        _deploy(reg, "sync", py_sync_wasm, version="1.0.0", route="/sync", settings=big)
        _deploy(reg, "granted", py_sync_wasm, version="1.0.0", route="/granted",
               settings=VersionSettings.of(Capability.network_outbound("http://127.0.0.1:*")))
        _deploy(reg, "hurried", py_sync_wasm, version="1.0.0", route="/hurried",
                settings=VersionSettings.of(Capability.network_outbound("http://127.0.0.1:*"), timeout="1s"))
        _deploy(reg, "elsewhere", py_sync_wasm, version="1.0.0", route="/elsewhere",
               settings=VersionSettings.of(Capability.network_outbound("https://api.example.com")))
        _deploy(reg, "async", py_async_wasm, version="1.0.0", route="/async",
               settings=big.merged(VersionSettings.of(Capability.network_outbound("http://127.0.0.1:*"))))
        _deploy(reg, "classic", text_component("classic"), version="1.0.0", route="/classic")
    app = Starlette(routes=[Route("/{path:path}", upstream, methods=["GET", "POST"])])
    app.add_middleware(AirssysMiddleware, registry=reg_dir, poll_interval=0.05)
    with run_uvicorn(app) as url:
        yield url, reg_dir


@pytest.fixture
def site(site_and_registry: tuple[str, Path]) -> str:
    return site_and_registry[0]


def test_sync_guest_answers(site: str) -> None:
    r = httpx.get(site + "/sync/a?b=c", headers={"host": "example.test"})
    assert r.status_code == 200
    assert r.text == "hello from py_sync: GET /sync/a?b=c example.test\n"
    assert r.headers["x-airssys-version"] == "sync@1.0.0" and r.headers["content-type"] == "text/plain"
    assert httpx.get(site + "/classic").text == "classic"


def test_async_guest_answers(site: str) -> None:
    r = httpx.get(site + "/async")
    assert (r.status_code, r.text) == (200, "hello from py_async\n")


def test_header_rules_seen_by_the_guest(site: str) -> None:
    r = httpx.get(site + "/sync/rules")
    assert r.text == ("connection=HeaderError_Forbidden x-ok=ok bad name=HeaderError_InvalidSyntax "
                      "x-bad=HeaderError_InvalidSyntax incoming=HeaderError_Immutable\n")


def test_header_floods_are_refused(site: str, caplog: pytest.LogCaptureFixture) -> None:
    """Past the count cap the answer is a 502; a flood cannot even be built (its fields outgrow the host's size
    limit: wasi:http 0.2 traps the guest then), and that is a 502 too, logged as such. The server serves on."""
    assert len([k for k in httpx.get(site + "/sync/headers?n=20").headers if k.startswith("x-h")]) == 20
    r = httpx.get(site + "/sync/headers?n=300")
    assert r.status_code == 502 and len(r.headers) < 20
    assert "300 headers, more than the 256 allowed" in caplog.text
    r = httpx.get(site + "/sync/headers?n=100000")
    assert r.status_code == 502 and len(r.headers) < 20
    assert ("sync@1.0.0 built HTTP header fields past the host's limit (total size of fields exceeds limit): "
            "wasi:http stopped the guest; answer with fewer or smaller headers") in caplog.text
    assert httpx.get(site + "/sync/after").text.startswith("hello from py_sync")


def _stream_echo(url: str, path: str, total: int, chunk: int = 256 * 1024) -> dict[str, Any]:
    """POST ``total`` bytes while reading the response concurrently (an HTTP/1.1 echo needs both at once)."""
    parts = urlsplit(url)
    sock = socket.create_connection((parts.hostname, parts.port))
    block = bytes(range(256)) * (chunk // 256)
    sent = [0]
    state: dict[str, Any] = {"sent_at_first_byte": None}

    def writer() -> None:
        conn = h11.Connection(h11.CLIENT)
        head = h11.Request(method="POST", target=path, headers=[("Host", "t"), ("Content-Length", str(total))])
        sock.sendall(conn.send(head))
        left = total
        while left:
            piece = block[:left]
            sock.sendall(conn.send(h11.Data(data=piece)))
            sent[0] += len(piece)
            left -= len(piece)

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    conn = h11.Connection(h11.CLIENT)
    conn.send(h11.Request(method="POST", target=path, headers=[("Host", "t"), ("Content-Length", str(total))]))
    digest, received, status = hashlib.sha256(), 0, None
    sock.settimeout(60)
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            conn.receive_data(sock.recv(1 << 16))
        elif isinstance(event, h11.Response):
            status = event.status_code
        elif isinstance(event, h11.Data):
            if state["sent_at_first_byte"] is None:
                state["sent_at_first_byte"] = sent[0]
            digest.update(event.data)
            received += len(event.data)
        elif isinstance(event, h11.EndOfMessage):
            break
    thread.join(60)
    sock.close()
    expected = hashlib.sha256((block * (total // len(block) + 1))[:total]).hexdigest()
    return {"status": status, "received": received, "ok": digest.hexdigest() == expected, **state}


@pytest.mark.parametrize("route", ["/sync/echo", "/async/echo"])
def test_large_body_streams_both_ways(site: str, route: str) -> None:
    total = 24 * 1024 * 1024
    got = _stream_echo(site, route, total)
    assert (got["status"], got["received"], got["ok"]) == (200, total, True)
    # the answer began while most of the request was still to be sent: nothing was buffered whole
    assert got["sent_at_first_byte"] < total // 2


def test_large_response_streams(site: str) -> None:
    n = 32 * 1024 * 1024 + 123
    digest, size = hashlib.sha256(), 0
    with httpx.stream("GET", f"{site}/sync/big?n={n}", timeout=60) as r:
        assert r.status_code == 200 and "content-length" not in r.headers
        for piece in r.iter_bytes():
            digest.update(piece)
            size += len(piece)
    block = bytes(range(256)) * 256
    assert size == n
    assert digest.hexdigest() == hashlib.sha256((block * (n // len(block) + 1))[:n]).hexdigest()


def test_trap_mid_stream_cuts_the_response_and_recovers(site: str, caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(httpx.RemoteProtocolError), httpx.stream("GET", site + "/sync/trap-mid") as r:
        assert r.status_code == 200  # the head was on the wire before the guest failed
        for _ in r.iter_bytes():
            pass
    assert "cut short" in caplog.text
    assert httpx.get(site + "/sync/after").text.startswith("hello from py_sync")


def test_outbound_without_grants_is_denied(site: str, upstream_url: str) -> None:
    r = httpx.get(f"{site}/sync/fetch", params={"url": upstream_url + "/x"})
    assert r.text == "error-code: ErrorCode_HttpRequestDenied"


def test_outbound_outside_the_grants_is_denied(site: str, upstream_url: str) -> None:
    r = httpx.get(f"{site}/elsewhere/fetch", params={"url": upstream_url + "/x"})
    assert r.text == "error-code: ErrorCode_HttpRequestDenied"


def test_the_deadline_cuts_an_outgoing_request_to_a_trickling_upstream(site: str,
                                                                     caplog: pytest.LogCaptureFixture) -> None:
    """Issue #20 (1) for wasi:http: a guest blocked on outgoing-handler's future (an upstream sending one byte now
    and then, which the fetcher's own 30 s would cut) answers 504 at its route's 1 s deadline; had the fetch been
    cut by anything else, the guest would have answered 200 with the error code."""
    from caps_support import trickling_server

    with trickling_server() as port:
        r = httpx.get(f"{site}/hurried/fetch", params={"url": f"http://127.0.0.1:{port}/slow"}, timeout=60)
    assert r.status_code == 504 and r.json()["error"] == "the component ran past its deadline"
    assert "hurried@1.0.0 exceeded its 1s deadline" in caplog.text
    assert httpx.get(f"{site}/hurried/after").text.startswith("hello from py_sync")


@pytest.mark.parametrize(("count", "size", "code"), [
    (150, 1, "ErrorCode_HttpResponseHeaderSectionSize"),
    (3, 30_000, "ErrorCode_HttpResponseHeaderSectionSize"),
    (2, 30_000, None),
])
def test_an_upstream_header_flood_never_reaches_a_wasi_http_guest(site: str, count: int, size: int,
                                                                  code: str | None) -> None:
    """Issue #20 (4) for outbound responses handed to a wasi:http guest: past the count or byte cap the guest gets
    the header-section-size error code instead of the headers; within the caps the answer passes."""
    from caps_support import answering_server, response_with_headers

    with answering_server(response_with_headers([(f"x-h{i}", "v" * size) for i in range(count)])) as port:
        r = httpx.get(f"{site}/granted/fetch", params={"url": f"http://127.0.0.1:{port}/flood"})
    assert r.status_code == 200
    assert r.text == (f"error-code: {code}" if code else "status 200: ok")


def test_granted_outbound_request(site: str, upstream_url: str) -> None:
    r = httpx.get(f"{site}/granted/fetch", params={"url": upstream_url + "/from-sync"})
    assert r.text == "status 200: upstream /from-sync"
    r = httpx.get(f"{site}/async/fetch", params={"url": upstream_url + "/from-async"})
    assert r.text == "status 200: upstream /from-async"


def test_componentize_js_guest(site_and_registry: tuple[str, Path], js_hello_wasm: bytes) -> None:
    url, reg_dir = site_and_registry
    with EmbeddedRegistry(reg_dir) as reg:
        _deploy(reg, "js", js_hello_wasm, version="1.0.0", route="/js")
    answers: list[httpx.Response] = []

    def picked_up() -> bool:
        answers.append(r := httpx.get(url + "/js/x?y=1"))
        return r.status_code != 200 or "x-airssys-version" in r.headers

    wait_until(picked_up, 60, "the JS component to be picked up")
    r = answers[-1]
    assert (r.status_code, r.text) == (200, "hello from componentize-js /js/x?y=1\n")
    assert r.headers["x-airssys-version"] == "js@1.0.0"


def test_hot_swap_between_worlds_under_load(site_and_registry: tuple[str, Path], py_sync_wasm: bytes) -> None:
    url, reg_dir = site_and_registry
    with EmbeddedRegistry(reg_dir) as reg:
        _deploy(reg, "swap", py_sync_wasm, version="1.0.0", route="/swap")
    failures: list[str] = []
    seen: set[str] = set()
    answered: list[str] = []
    stop = threading.Event()

    def load() -> None:
        with httpx.Client(base_url=url, timeout=30) as client:
            while not stop.is_set():
                try:
                    r = client.get("/swap/x")
                except httpx.HTTPError as e:  # a dropped connection is a failure (an exception would end the thread)
                    failures.append(repr(e))
                    continue
                if r.status_code == 200 or (r.status_code == 404 and not seen):  # before v1 is picked up
                    seen.add(r.headers.get("x-airssys-version", "?"))
                    answered.append(r.headers.get("x-airssys-version", "?"))
                else:
                    failures.append(f"{r.status_code} {r.text[:80]}")

    def wait_for(version: str) -> None:
        wait_until(lambda: f"swap@{version}" in seen, 60, f"swap@{version} to be served")

    threads = [threading.Thread(target=load) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        wait_for("1.0.0")
        with EmbeddedRegistry(reg_dir) as reg:
            _deploy(reg, "swap", text_component("airssys version"), version="2.0.0", route="/swap")
        wait_for("2.0.0")
        with EmbeddedRegistry(reg_dir) as reg:
            _deploy(reg, "swap", py_sync_wasm, version="3.0.0", route="/swap")
        wait_for("3.0.0")
        mark = len(answered)  # then some more traffic on the new version, which must not fail either
        wait_until(lambda: answered[mark:].count("swap@3.0.0") >= 20, 60, "more answers from swap@3.0.0")
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    assert failures == []
    assert {"swap@1.0.0", "swap@2.0.0", "swap@3.0.0"} <= seen
