"""The served app without an HTTP server: µs per request of each route, and what a fresh instance costs.

    python -m benchmarks.bench_asgi REGISTRY [--repeats 7] [--requests 2000]     # prints JSON

``serve`` runs ``build_app(registry, "benchmarks.apps:app")``; this builds the very same app and awaits it with a
prebuilt scope, so sockets, HTTP parsing and uvicorn are out of the picture and what remains is the middleware,
the runtime and the guest (or Starlette's routing and the endpoint, for the native routes). Every repeat runs
each route in turn, in ``CHUNKS`` rounds whose median is the repeat's value, so drift on a shared machine hits
all of them and a burst spoils one chunk only; differences and ratios are taken per repeat. A second app built
with ``inline=False`` serves ``/wasm`` with every guest call on a worker thread: the difference is the thread
hop that measured-short calls avoid.

The cost of a fresh instance (``Limits(isolation="request")``) is measured without ASGI around it: the same
build is deployed pooled and request-isolated, and ``Generation.call`` on each, in the same rounds, gives the
difference per call. ``fresh_breakdown`` then splits a fresh request into instantiate, the call and the drop,
with the minor page faults of each phase, to show which of them the time goes to.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import statistics
import time
from collections.abc import MutableMapping
from typing import Any

from airssys_web.runtime.generation import Generation
from airssys_web.runtime.pool import CREATE

HEADERS = [(b"host", b"127.0.0.1:8000"), (b"user-agent", b"wrk"), (b"accept", b"*/*")]
#: routes measured when deployed, in this order within each repeat; "/wasm no-inline" is the second app
ROUTES = ["/native", "/wasm", "/wasm-fresh", "/py", "/py-fresh", "/js", "/wasi", "/extism", "/wasm no-inline"]
#: requests per run are divided by this for routes whose requests cost about a millisecond
SLOW = {"/py-fresh": 10}
#: rounds per repeat (see run())
CHUNKS = 5


def scope(path: str) -> dict[str, Any]:
    return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
            "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "", "headers": HEADERS,
            "client": ("127.0.0.1", 40000), "server": ("127.0.0.1", 8000)}


async def receive() -> dict[str, Any]:
    return {"type": "http.request", "body": b"", "more_body": False}


class Sink:
    """``send`` that keeps the last status (a route that fails must not be timed as a fast error)."""

    def __init__(self) -> None:
        self.status = 0

    async def __call__(self, message: MutableMapping[str, Any]) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]


def _phase(fn: Any) -> tuple[Any, float, int]:
    """(result, seconds, minor page faults) of ``fn()``."""
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    started = time.perf_counter()
    out = fn()
    took = time.perf_counter() - started
    return out, took, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults


def fresh_breakdown(gen: Generation, pooled: Generation, n: int) -> dict[str, float]:
    """Mean µs and minor faults of each phase of a fresh request on ``gen`` (request isolation), and of a warm
    call on ``pooled`` (the same guest), over ``n`` requests."""
    headers = [("host", "bench")]
    sums: dict[str, float] = dict.fromkeys(("instantiate", "call", "drop", "warm_call"), 0.0)
    faults: dict[str, float] = dict.fromkeys(sums, 0.0)
    for _ in range(n):
        if not gen.pool.try_reserve():
            raise RuntimeError(f"{gen.tag}: no capacity for a fresh instance")
        slot, t, f = _phase(lambda: gen.pool.materialize(CREATE))
        sums["instantiate"] += t
        faults["instantiate"] += f
        _, t, f = _phase(lambda: slot.call("GET", "/", "", headers, b""))  # noqa: B023
        sums["call"] += t
        faults["call"] += f
        _, t, f = _phase(lambda: gen.pool.release(slot))  # noqa: B023
        sums["drop"] += t
        faults["drop"] += f
        warm = pooled.pool.materialize(pooled.pool.acquire_blocking(5))  # warm: it served the warm-up
        _, t, f = _phase(lambda: warm.call("GET", "/", "", headers, b""))  # noqa: B023
        pooled.pool.release(warm)
        sums["warm_call"] += t
        faults["warm_call"] += f
    out = {f"{k}_us": v / n * 1e6 for k, v in sums.items()}
    out |= {f"{k}_faults": v / n for k, v in faults.items()}
    return out


def run(registry: str, repeats: int, requests: int) -> dict[str, Any]:
    from airssys_web.web.serve import build_app

    app = build_app(registry, "benchmarks.apps:app")
    hop = build_app(registry, "benchmarks.apps:app", inline=False)
    out: dict[str, Any] = {"repeats": repeats, "requests": requests, "chunks": CHUNKS}

    async def main() -> None:
        await asyncio.to_thread(app.host.start, watch=False)
        await asyncio.to_thread(hop.host.start, watch=False)
        gens = app.host.generations()
        deployed = {"/native", "/extism", "/wasm no-inline"} | {app.host.route_of(n) for n in gens}
        routes = [r for r in ROUTES if r in deployed]
        sink = Sink()

        async def serve(route: str, n: int) -> float:
            target, path = (hop, "/wasm") if route == "/wasm no-inline" else (app, route)
            s = scope(path)
            started = time.perf_counter()
            for _ in range(n):
                await target(dict(s), receive, sink)
            took = (time.perf_counter() - started) / n
            if sink.status != 200:
                raise RuntimeError(f"{route} answered {sink.status}")
            return took

        for route in routes:  # warm: instances, the inline policy's samples, the Extism plugin
            await serve(route, max(20, 300 // SLOW.get(route, 1)))
        runs: dict[str, list[float]] = {r: [] for r in routes}
        calls: dict[str, list[float]] = {"pooled": [], "fresh": [], "py_pooled": [], "py_fresh": []}
        pairs = [("pooled", "hello", 2000), ("fresh", "hello-fresh", 2000),
                 ("py_pooled", "pyhello", 200), ("py_fresh", "pyhello-fresh", 200)]
        def call(name: str, n: int) -> float:  # Generation.call: a call's whole path, no ASGI around it
            gen = gens[name]
            started = time.perf_counter()
            for _ in range(n):
                gen.call("GET", "/", "", [("host", "bench")], b"")
            return (time.perf_counter() - started) / n

        for _ in range(repeats):
            # Each repeat is CHUNKS rounds of every route in turn; its value is the median of its chunks, so a
            # burst of other work on a shared machine spoils one chunk, not the repeat.
            chunks: dict[str, list[float]] = {k: [] for k in [*routes, *calls]}
            for _ in range(CHUNKS):
                for route in routes:
                    n = max(2, requests // SLOW.get(route, 1) // CHUNKS)
                    chunks[route].append(await serve(route, n) * 1e6)
                for key, name, n in pairs:
                    chunks[key].append(call(name, max(2, n * requests // 2000 // CHUNKS)) * 1e6)
            for key, values in chunks.items():
                (runs[key] if key in runs else calls[key]).append(statistics.median(values))
        out["asgi_us"] = runs
        out["call_us"] = calls
        out["inline_share"] = {app.host.route_of(name): g.inline.inline_calls / max(1, g.requests)
                               for name, g in gens.items()}
        out["breakdown"] = {"small": fresh_breakdown(gens["hello-fresh"], gens["hello"], 200),
                            "python": fresh_breakdown(gens["pyhello-fresh"], gens["pyhello"], 30)}
        await asyncio.to_thread(app.host.close)
        await asyncio.to_thread(hop.host.close)

    asyncio.run(main())
    out["medians"] = {r: statistics.median(v) for r, v in out["asgi_us"].items()}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("registry")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--requests", type=int, default=2000, help="requests per route and repeat")
    args = parser.parse_args()
    print(json.dumps(run(args.registry, args.repeats, args.requests)))


if __name__ == "__main__":
    main()
