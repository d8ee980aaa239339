"""A wasi:http/proxy guest through the host alone, in µs per request (not a test; prints numbers).

    .venv/bin/python -m benchmarks.bench_wasi_http [--requests 5000] [--repeats 5] [--json]

The guest is the hand-written WAT wasi:http guest of tests/guests/wasi_http/hello.wat (~4 KB, 7 host calls),
answering the same ``Hello, world!`` as the ``/wasm`` and ``/native`` routes. Two paths, alternating within each
repeat:

* ``Slot.native.serve``: one buffered exchange (``runtime.instance.new_exchange``, the request complete up front)
  served on a warm instance: the guest and the wasi:http host, nothing else;
* ``serve_asgi``: the ASGI bridge the middleware uses for wasi:http routes, on its inline path (the generation's
  calls are measured short, so they run on the event loop), response messages included.

The wrk comparison with the native route (target: ≥ 0.85 of its rps) is part of ``make bench`` (R7), on the
same server as the other routes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

from airssys_web.runtime.artifacts import ArtifactCache
from airssys_web.runtime.engine import Runtime
from airssys_web.runtime.generation import Generation
from airssys_web.runtime.imports import HostContext
from airssys_web.runtime.instance import new_exchange
from airssys_web.runtime.limits import Limits
from airssys_web.runtime.worlds.wasi_http import serve_asgi

from .fixtures import HELLO, wasi_hello
from .harness import Series

HEADERS = [(b"host", b"127.0.0.1:8000"), (b"user-agent", b"wrk"), (b"accept", b"*/*")]
SCOPE = {"type": "http", "method": "GET", "path": "/wasi", "raw_path": b"/wasi", "query_string": b"",
         "scheme": "http", "headers": HEADERS, "extensions": {}}


def measure(requests: int, repeats: int) -> dict[str, Series]:
    """µs per request of each path, one value per repeat."""
    runtime = Runtime()
    component = ArtifactCache(None, runtime).compile(wasi_hello())
    gen = Generation(component, HostContext(component="wasi", version="1.0.0"), Limits(), runtime=runtime)
    gen.warm()
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def asgi(n: int) -> float:
        started = time.perf_counter()
        for _ in range(n):
            sent.clear()
            await serve_asgi(gen, SCOPE, receive, send, [])
        return time.perf_counter() - started

    def direct(n: int) -> float:
        slot = gen.pool.materialize(gen.pool.acquire_blocking(5))
        try:
            started = time.perf_counter()
            for _ in range(n):
                exchange = new_exchange("GET", "/wasi", list(HEADERS), authority="127.0.0.1:8000")
                exchange.end_request()
                slot.native.serve(exchange)
                exchange.take()
            return time.perf_counter() - started
        finally:
            gen.pool.release(slot)

    out = {"serve": Series(), "asgi": Series()}
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(asgi(200))  # warm-up, and the inline policy's samples
        if sent[-1].get("body") != HELLO.encode() or gen.inline.inline_calls == 0:
            raise RuntimeError(f"the wasi:http guest did not answer inline as expected: {sent}")
        direct(200)
        for _ in range(repeats):
            out["serve"].add(direct(requests) / requests * 1e6)
            out["asgi"].add(loop.run_until_complete(asgi(requests)) / requests * 1e6)
    finally:
        loop.close()
        gen.close()
        runtime.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=5000, help="requests per run")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="print JSON (what make bench reads)")
    args = parser.parse_args()
    res = measure(args.requests, args.repeats)
    if args.json:
        print(json.dumps({k: v.values for k, v in res.items()}))
        return
    print(f"{args.requests} requests x {args.repeats} runs, µs per request, median (min to max):")
    print(f"  Slot.native.serve     {res['serve'].fmt(1)}")
    print(f"  serve_asgi (inline)   {res['asgi'].fmt(1)}")


if __name__ == "__main__":
    main()
