"""What capabilities and limits cost a guest call (no assertions; prints numbers).

    .venv/bin/python -m benchmarks.bench_capabilities [--calls 2000]

In-process, through ``Generation.call`` (the same path a server's worker thread takes, without HTTP):

- **fuel**: a trivial ``handle`` and a CPU-bound one (a 2-million-iteration loop) on the plain engine and on the
  fuel-metering engine, to show what ``--fuel`` costs the versions that use it (the others run on the plain one);
- **host functions**: ``config.get``, a KV ``set``/``get`` (SQLite in WAL mode, a temporary directory), a denied
  ``outbound.fetch`` (no connection is made) and a granted one to a loopback server.

``make bench`` runs it (id CAPS) and puts the table into BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from airssys_web.guest.build import ALLOCATOR_WAT, compile_wat, handler_component_wat, wat_response_component
from airssys_web.lifecycle.services import HostServices
from airssys_web.runtime.artifacts import ArtifactCache, sha256_hex
from airssys_web.runtime.engine import Runtime
from airssys_web.runtime.generation import Generation

ROOT = Path(__file__).resolve().parents[1]
IMPORTS = ROOT / "tests" / "guests" / "convert" / "imports.wat"
LOOP = handler_component_wat('''  (core module $m
    (memory (export "memory") 1)
''' + ALLOCATOR_WAT.format(heap=1024) + '''
    (data (i32.const 64) "\\c8\\00\\00\\00\\00\\00\\00\\00\\00\\00\\00\\00\\00\\00\\00\\00\\00\\00\\00\\00")
    (func (export "handle") (param i32 i32 i32 i32 i32 i32 i32 i32 i32 i32) (result i32)
      (local $i i32)
      (loop $l (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br_if $l (i32.lt_u (local.get $i) (i32.const 2000000))))
      (i32.const 64))
  )''')


def _generation(wasm: bytes, settings: dict[str, Any], services: HostServices, cache: ArtifactCache) -> Generation:
    ctx, limits = services.context("bench", "1.0.0", settings)
    sha = sha256_hex(wasm)
    return Generation(cache.get(sha, wasm, fuel=ctx.fuel), ctx, limits, runtime=cache.runtime, sha256=sha)


def _time(call: Callable[[], Any], n: int) -> tuple[float, float]:
    for _ in range(min(50, n)):
        call()
    samples = []
    for _ in range(n):
        started = time.perf_counter()
        call()
        samples.append(time.perf_counter() - started)
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.99) - 1]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("content-length", "2")
        self.end_headers()
        self.wfile.write(b"ok")


def measure(n: int = 2000) -> list[str]:
    """The table of guest-call timings (``n`` calls each; fewer for the slow ones)."""
    logging.getLogger("airssys_web").addHandler(logging.NullHandler())  # the denials' warnings are expected
    rows: list[tuple[str, float, float]] = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    with tempfile.TemporaryDirectory() as tmp, Runtime() as runtime:
        services = HostServices(tmp)
        cache = ArtifactCache(None, runtime)
        hello, loop, imports = compile_wat(wat_response_component("hi")), compile_wat(LOOP), compile_wat(
            IMPORTS.read_text())
        for label, wasm, calls in (("trivial handle()", hello, n), ("2M-iteration loop", loop, max(20, n // 20))):
            for fuel in (None, 10**12):
                gen = _generation(wasm, {"limits": {"fuel": fuel}} if fuel else {}, services, cache)
                rows.append((f"{label}, {'fuel engine' if fuel else 'plain engine'}",
                             *_time(lambda gen=gen: gen.call("GET", "/"), calls)))
                gen.close()
        gen = _generation(imports, {"config": {"k": "v"}, "kv": True,
                                    "outbound": [f"http://127.0.0.1:{port}"]}, services, cache)
        rows.append(("config.get", *_time(lambda: gen.call("@c", "k"), n)))
        rows.append(("kv.set (64 B)", *_time(lambda: gen.call("@s", "key", body=b"x" * 64), n)))
        rows.append(("kv.get (64 B)", *_time(lambda: gen.call("@g", "key"), n)))
        rows.append(("outbound.fetch denied", *_time(lambda: gen.call("GET", "http://127.0.0.1:1/"), n)))
        rows.append(("outbound.fetch to loopback", *_time(lambda: gen.call("GET", f"http://127.0.0.1:{port}/"),
                                                           max(20, n // 10))))
        gen.close()
        services.close()
    server.shutdown()
    us = 1e6
    lines = ["| guest call | p50 | p99 |", "|---|---|---|"]
    lines += [f"| {label} | {p50 * us:.1f} µs | {p99 * us:.1f} µs |" for label, p50, p99 in rows]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    args = parser.parse_args()
    print("\n".join(measure(args.calls)))


if __name__ == "__main__":
    main()
