"""Helpers for the capability and limit tests: generations built from settings, a connection-counting server."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from conftest import GUEST_CACHE, GUESTS
from support import runtime_for, shared_artifacts

from airssys_web.guest.build import build_python_guest, compile_wat
from airssys_web.lifecycle.services import HostServices
from airssys_web.runtime.artifacts import sha256_hex
from airssys_web.runtime.dispatch import Dispatcher
from airssys_web.runtime.generation import Generation

CAPS = GUESTS / "caps"
IMPORTS_WAT = GUESTS / "convert" / "imports.wat"


def caps_wat(name: str) -> bytes:
    """A WAT guest from tests/guests/caps (``recurse``, ...)."""
    return compile_wat((CAPS / f"{name}.wat").read_text())


def imports_guest() -> bytes:
    """tests/guests/convert/imports.wat: method ``@g``/``@s``/``@d`` call kv, ``@c`` config, others fetch(path)."""
    return compile_wat(IMPORTS_WAT.read_text())


def build_py_caps() -> Path:
    """The componentize-py probe guest tests/guests/caps/py_caps (built once, cached under .cache/guests)."""
    return build_python_guest(CAPS / "py_caps", cache_dir=GUEST_CACHE)


def generation(wasm: bytes, settings: dict[str, Any], services: HostServices | None = None, *, name: str = "c",
               version: str = "1.0.0", dispatcher: Dispatcher | None = None) -> Generation:
    """A generation built the way the host builds one: from stored-form settings through HostServices."""
    ctx, limits = (services or HostServices(None)).context(name, version, settings)
    runtime = runtime_for(dispatcher)
    sha = sha256_hex(wasm)
    component = shared_artifacts(runtime).get(sha, wasm, fuel=ctx.fuel)
    return Generation(component, ctx, limits, runtime=runtime, sha256=sha)


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        body = f"hello from {self.path}".encode()
        self.send_response(200)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class CountingServer(ThreadingHTTPServer):
    """A loopback HTTP server that counts accepted connections (a denied fetch must leave it at zero)."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.accepted = 0

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def get_request(self) -> tuple[socket.socket, Any]:
        conn, addr = super().get_request()
        self.accepted += 1
        return conn, addr


@contextlib.contextmanager
def counting_server() -> Iterator[CountingServer]:
    server = CountingServer()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@contextlib.contextmanager
def answering_server(answer: bytes) -> Iterator[int]:
    """A loopback upstream that sends ``answer`` (raw bytes: a whole HTTP response) to every request, then closes
    the connection. Yields its port."""
    server = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            if stop.is_set():
                conn.close()
                return
            with conn:
                try:
                    conn.recv(65536)
                    conn.sendall(answer)
                except OSError:
                    pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield int(server.getsockname()[1])
    finally:
        stop.set()
        with contextlib.suppress(OSError), socket.create_connection(server.getsockname()):
            pass  # wakes the accept loop, which sees ``stop`` and returns
        thread.join()
        server.close()


def response_with_headers(headers: list[tuple[str, str]]) -> bytes:
    """A 200 answer carrying ``headers`` and the body ``ok``."""
    lines = "".join(f"{name}: {value}\r\n" for name, value in headers)
    return f"HTTP/1.1 200 OK\r\n{lines}content-length: 2\r\n\r\nok".encode()


@contextlib.contextmanager
def trickling_server(interval: float = 0.5) -> Iterator[int]:
    """A loopback upstream that answers every request with a head, then one body byte every ``interval`` seconds
    (a slow upstream: what a guest's deadline must cut). Yields its port."""
    stop = threading.Event()
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.1)
    handlers: list[threading.Thread] = []

    def handle(conn: socket.socket) -> None:
        with conn:
            try:
                conn.recv(65536)
                conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 100000\r\n\r\n")
                while not stop.wait(interval):
                    conn.sendall(b"x")
            except OSError:
                pass

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            t = threading.Thread(target=handle, args=(conn,), daemon=True)
            handlers.append(t)
            t.start()

    acceptor = threading.Thread(target=accept, daemon=True)
    acceptor.start()
    try:
        yield int(listener.getsockname()[1])
    finally:
        stop.set()
        acceptor.join()
        listener.close()
        for t in handlers:
            t.join()
