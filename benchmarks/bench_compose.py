"""Composition in process: what one middleware stage and one internal call add to a request (issue #16).

    python -m benchmarks.bench_compose REGISTRY [--repeats 5] [--requests 2000]     # prints JSON
    (REGISTRY made by ``make_compose_registry``)

Like ``bench_asgi``, the app ``serve`` runs (``build_app``) is awaited with a prebuilt GET scope: no socket, HTTP
parser or uvicorn. Its routes, all answering the small WAT guest's ``Hello, world!``:

* ``/bare``: the small WAT guest alone (it runs inline on the event loop once measured short);
* ``/staged``: the same guest behind one stage (tests/guests/stage.wat, kind middleware: it adds a request
  header, calls the next handler and adds a response header on the way back), a pipeline of one stage;
* ``/caller``: tests/guests/caller.wat granted ``--allow-component bare``, fetching
  ``http://bare.airssys.internal/`` (the URL is its request's query string) and answering what ``bare`` answered.

A chain of short stages runs inline on the event loop as ``/bare`` does (runtime/chain.py); a guest that may fetch
never does (its calls may block), so it always takes the worker-thread hop that ``/bare`` avoids. To say what the
added cost is made of, the same run
also measures ``/bare`` from a second app built with ``inline=False`` (every call on a worker thread: the hop),
and, without ASGI, one call of each from a plain thread (``Generation.call``, ``Chain.call``): the guest work
alone. Every repeat runs each route in turn, in ``CHUNKS`` rounds whose median is the repeat's value; differences
are taken per repeat.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from pathlib import Path
from typing import Any

from .bench_asgi import Sink, receive, scope

#: route -> (path, query string)
ROUTES = {"bare": ("/bare", b""), "bare on a thread": ("/bare", b""), "staged": ("/staged", b""),
          "caller": ("/caller", b"http://bare.airssys.internal/")}
CHUNKS = 5
STAGE = "pass"


def make_compose_registry(directory: Path, hello: bytes) -> Path:
    """The three routes of this benchmark (``hello``: the small WAT guest of the other benchmarks)."""
    from airssys_web.capabilities.grants import Capability
    from airssys_web.guest.build import compile_wat
    from airssys_web.lifecycle.deploy import deploy
    from airssys_web.lifecycle.registry import EmbeddedRegistry
    from airssys_web.lifecycle.settings import VersionSettings

    from .fixtures import TEST_GUESTS

    stage = compile_wat((TEST_GUESTS / "stage.wat").read_text())
    caller = compile_wat((TEST_GUESTS / "caller.wat").read_text())
    with EmbeddedRegistry(directory) as reg:
        deploy(reg, "bare", hello, version="1.0.0", route="/bare")
        deploy(reg, "staged", hello, version="1.0.0", route="/staged")
        deploy(reg, STAGE, stage, version="1.0.0", settings=VersionSettings.of(Capability.config("name", STAGE)))
        reg.set_pipeline("staged", [STAGE])
        deploy(reg, "caller", caller, version="1.0.0", route="/caller",
               settings=VersionSettings.of(Capability.component("bare")))
    return directory


def run(registry: str, repeats: int, requests: int) -> dict[str, Any]:
    from airssys_web.runtime.chain import Chain
    from airssys_web.web.serve import build_app

    app = build_app(registry, None)
    hop = build_app(registry, None, inline=False)
    out: dict[str, Any] = {"repeats": repeats, "requests": requests, "chunks": CHUNKS}

    async def main() -> None:
        await asyncio.to_thread(app.host.start, watch=False)
        await asyncio.to_thread(hop.host.start, watch=False)
        gens = app.host.generations()
        chain = Chain([gens[STAGE]], gens["staged"])
        sink = Sink()
        headers = [("host", "bench")]
        direct = {"bare": lambda: gens["bare"].call("GET", "/", "", headers, b""),
                  "staged": lambda: chain.call("GET", "/", "", headers, b""),
                  "caller": lambda: gens["caller"].call("GET", "/", "http://bare.airssys.internal/", headers, b"")}

        async def serve(key: str, n: int) -> float:
            path, query = ROUTES[key]
            target = hop if key == "bare on a thread" else app
            s = scope(path) | {"query_string": query}
            sink.status = 0
            started = time.perf_counter()
            for _ in range(n):
                await target(dict(s), receive, sink)
            took = (time.perf_counter() - started) / n
            if sink.status != 200:
                raise RuntimeError(f"{key} ({path}) answered {sink.status}")
            return took

        def call(key: str, n: int) -> float:
            fn = direct[key]
            started = time.perf_counter()
            for _ in range(n):
                answer = fn()
            took = (time.perf_counter() - started) / n
            if answer.status != 200:
                raise RuntimeError(f"{key}: a direct call answered {answer.status}")
            return took

        for key in ROUTES:  # warm: instances and the inline policy's samples
            await serve(key, 300)
        for key in direct:
            await asyncio.to_thread(call, key, 100)
        asgi: dict[str, list[float]] = {k: [] for k in ROUTES}
        calls: dict[str, list[float]] = {k: [] for k in direct}
        n = max(2, requests // CHUNKS)
        for _ in range(repeats):
            chunks: dict[str, list[float]] = {k: [] for k in [*ROUTES, *(f"call {k}" for k in direct)]}
            for _ in range(CHUNKS):
                for key in ROUTES:
                    chunks[key].append(await serve(key, n) * 1e6)
                for key in direct:  # from a plain thread, as a worker thread runs them
                    chunks[f"call {key}"].append(await asyncio.to_thread(call, key, n) * 1e6)
            for key in ROUTES:
                asgi[key].append(statistics.median(chunks[key]))
            for key in direct:
                calls[key].append(statistics.median(chunks[f"call {key}"]))
        out["asgi_us"] = asgi
        out["call_us"] = calls
        await asyncio.to_thread(app.host.close)
        await asyncio.to_thread(hop.host.close)

    asyncio.run(main())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("registry")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--requests", type=int, default=2000, help="requests per route and repeat")
    args = parser.parse_args()
    print(json.dumps(run(args.registry, args.repeats, args.requests)))


if __name__ == "__main__":
    main()
