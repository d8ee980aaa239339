"""The guests and the registry every benchmark serves (built once per run; the registry in a temporary directory).

One registry holds every wasm route, so each comparison runs on *one* server process, side by side with the native
routes of ``benchmarks/apps.py``. The same build is deployed twice where a comparison needs it (pooled and with
``isolation="request"``), so the two routes differ only in that limit.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from airssys_web.errors import BuildError
from airssys_web.guest.build import build_python_guest, compile_wat, wat_response_component
from airssys_web.lifecycle.deploy import deploy
from airssys_web.lifecycle.registry import EmbeddedRegistry
from airssys_web.lifecycle.settings import VersionSettings

from .harness import REPO

GUESTS = Path(__file__).resolve().parent / "guests"
TEST_GUESTS = REPO / "tests" / "guests"
CACHE = REPO / ".cache" / "guests"
HELLO = "Hello, world!\n"
HELLO_HEADERS = [("content-type", "text/plain")]
MiB = 1 << 20
#: Request bodies up to this size are accepted by the echo routes (16 MiB echo, with room).
BIG_BODY = 32 * MiB
#: linear-memory cap of the pooled Python route (see make_registry)
PY_MEMORY = 1024 * MiB

#: route -> what serves it (the native twins live in benchmarks/apps.py)
ROUTES = {
    "/wasm": "small WAT guest (~1 KB), pooled",
    "/wasm-fresh": "the same, `isolation=\"request\"` (a fresh instance per request)",
    "/py": "Python guest (componentize-py, benchmarks/guests/py_hello), pooled",
    "/py-fresh": "the same, `isolation=\"request\"`",
    "/js": "JavaScript guest (componentize-qjs, benchmarks/guests/js_echo)",
    "/wasi": "WAT wasi:http guest (tests/guests/wasi_http/hello.wat)",
    "/echo": "WAT echo guest (tests/guests/echo.wat)",
    "/big": "WAT guest answering 64 MiB (tests/guests/big.wat)",
    "/busy": "CPU-bound WAT guest (benchmarks/guests/busy.wat)",
}


@dataclass(frozen=True)
class Guests:
    hello: bytes
    python: bytes
    js: bytes | None  # None: no node/npm here (the JavaScript rows are skipped and say why)
    js_missing: str
    busy: bytes
    echo: bytes
    big: bytes
    wasi: bytes


def wasi_hello(text: str = HELLO) -> bytes:
    """The WAT wasi:http guest, answering ``text`` (ASCII) instead of its own greeting (same body as /wasm)."""
    source = (TEST_GUESTS / "wasi_http" / "hello.wat").read_text()
    original = "hello from a WAT wasi:http guest\\n"
    source = source.replace(f'"{original}"', '"{}"'.format(text.replace("\n", "\\n"))).replace(
        "(i32.const 64) (i32.const 33)", f"(i32.const 64) (i32.const {len(text.encode())})")
    return compile_wat(source)


def _js_guest() -> tuple[bytes | None, str]:
    if shutil.which("node") is None or shutil.which("npm") is None:
        return None, "node and npm are not on PATH, so the JavaScript guest cannot be built"
    from airssys_web.guest.build_js import build_js_guest

    try:
        return build_js_guest(GUESTS / "js_echo", cache_dir=CACHE).read_bytes(), ""
    except BuildError as e:
        return None, f"the JavaScript guest did not build: {str(e).splitlines()[0]}"


def build_guests(js: bool = True) -> Guests:
    """Every benchmark guest; componentize-py and componentize-qjs builds are cached in ``.cache/guests``."""
    js_wasm, js_missing = _js_guest() if js else (None, "skipped")
    return Guests(
        hello=compile_wat(wat_response_component(HELLO, headers=HELLO_HEADERS)),
        python=build_python_guest(GUESTS / "py_hello", cache_dir=CACHE).read_bytes(),
        js=js_wasm, js_missing=js_missing,
        busy=compile_wat((GUESTS / "busy.wat").read_text()),
        echo=compile_wat((TEST_GUESTS / "echo.wat").read_text()),
        big=compile_wat((TEST_GUESTS / "big.wat").read_text()),
        wasi=wasi_hello(),
    )


def make_registry(directory: Path, guests: Guests) -> Path:
    """Deploy every benchmark route (compiled artifacts land on disk: servers only load them).

    ``/py`` gets 1 GiB of linear memory instead of the default 256 MiB: a pooled componentize-py instance keeps
    each response body it returned (R2 measures and reports that growth), so the big-body rounds would otherwise
    exhaust the cap after a few 64 MiB responses."""
    big = VersionSettings.of(max_body=BIG_BODY)
    fresh = VersionSettings.of(isolation="request")
    with EmbeddedRegistry(directory) as reg:
        deploy(reg, "hello", guests.hello, version="1.0.0", route="/wasm")
        deploy(reg, "hello-fresh", guests.hello, version="1.0.0", route="/wasm-fresh", settings=fresh)
        deploy(reg, "pyhello", guests.python, version="1.0.0", route="/py",
               settings=VersionSettings.of(max_body=BIG_BODY, memory=PY_MEMORY))
        deploy(reg, "pyhello-fresh", guests.python, version="1.0.0", route="/py-fresh", settings=fresh)
        if guests.js is not None:
            deploy(reg, "js", guests.js, version="1.0.0", route="/js", settings=big)
        deploy(reg, "wasi", guests.wasi, version="1.0.0", route="/wasi")
        deploy(reg, "echo", guests.echo, version="1.0.0", route="/echo", settings=big)
        deploy(reg, "big", guests.big, version="1.0.0", route="/big")
        # One instance: saturated, it keeps one core busy with guest code and leaves the other to the event loop
        # and wrk (on 2 cores, two spinning instances would measure CPU sharing, not the loop).
        deploy(reg, "busy", guests.busy, version="1.0.0", route="/busy",
               settings=VersionSettings.of(max_instances=1, min_instances=1, acquire_timeout=30.0))
    return directory
