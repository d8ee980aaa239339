"""The guests and the registry every benchmark serves (built once per run, in a temporary directory)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from airssys_web.guest.build import build_python_guest, compile_wat, wat_response_component
from airssys_web.lifecycle.deploy import deploy
from airssys_web.lifecycle.registry import EmbeddedRegistry
from airssys_web.lifecycle.settings import VersionSettings

from .harness import REPO

GUESTS = Path(__file__).resolve().parent / "guests"
HELLO = "Hello, world!\n"
HELLO_HEADERS = [("content-type", "text/plain")]

#: route -> what serves it (the native twins live in benchmarks/apps.py)
ROUTES = {
    "/wasm": "small WAT guest (hello, ~1 KB)",
    "/py": "Python guest (componentize-py, benchmarks/guests/py_hello)",
    "/busy": "CPU-bound WAT guest (benchmarks/guests/busy.wat)",
    "/echo": "echo WAT guest (tests/guests/convert/echo.wat)",
}


@dataclass(frozen=True)
class Guests:
    hello: bytes
    python: bytes
    busy: bytes
    echo: bytes


def build_guests() -> Guests:
    py = build_python_guest(GUESTS / "py_hello", cache_dir=REPO / ".cache" / "guests")
    return Guests(
        hello=compile_wat(wat_response_component(HELLO, headers=HELLO_HEADERS)),
        python=py.read_bytes(),
        busy=compile_wat((GUESTS / "busy.wat").read_text()),
        echo=compile_wat((REPO / "tests" / "guests" / "convert" / "echo.wat").read_text()),
    )


def make_registry(directory: Path, guests: Guests) -> Path:
    """Deploy the four benchmark routes (compiled artifacts land on disk: servers only load them)."""
    with EmbeddedRegistry(directory) as reg:
        deploy(reg, "hello", guests.hello, version="1.0.0", route="/wasm")
        deploy(reg, "pyhello", guests.python, version="1.0.0", route="/py")
        # One instance: saturated, it keeps one core busy with guest code and leaves the other to the event loop
        # and wrk (on 2 cores, two spinning instances would measure CPU sharing, not the loop).
        deploy(reg, "busy", guests.busy, version="1.0.0", route="/busy",
               settings=VersionSettings.of(max_instances=1, min_instances=1, acquire_timeout=30.0))
        deploy(reg, "echo", guests.echo, version="1.0.0", route="/echo",
               settings=VersionSettings.of(max_body=4 * 1024 * 1024))
    return directory
