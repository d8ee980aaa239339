"""Per-process measurements, each in a fresh interpreter: server boot (P5) and memory per pooled instance (P8).

    python -m benchmarks.bench_process boot REGISTRY      # prints JSON
    python -m benchmarks.bench_process memory WASM N      # prints JSON
    python -m benchmarks.bench_process asgi REGISTRY      # prints JSON

``asgi`` is the server-independent view of P1 and P7: µs per request through the very ASGI app ``serve`` runs,
called directly (no sockets, no HTTP parsing), plus one guest call vs one Extism plugin call.
"""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import time
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

from .harness import REPO, free_port, serve_command, wait_ready


def _child(*args: str) -> dict[str, Any]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p))
    done = subprocess.run([sys.executable, "-m", "benchmarks.bench_process", *args], capture_output=True,
                          text=True, cwd=REPO, env=env, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"bench_process {args[0]} failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


# -- P5: boot ------------------------------------------------------------------------------------------------------

def boot_in_process(registry: str) -> dict[str, Any]:
    """Import, then load and warm every active deployment (what the lifespan startup does), counting compiles."""
    started = time.perf_counter()
    from airssys_web.lifecycle.host import AirssysHost

    imported = time.perf_counter()
    host = AirssysHost(registry)
    host.start(watch=False)
    booted = time.perf_counter()
    result = {"import_s": imported - started, "host_start_s": booted - imported,
              "generations": len(host.generations()), "compilations": host.artifacts.compilations}
    host.close()
    return result


def measure_boot(registry: Path, repeats: int = 3) -> dict[str, Any]:
    """Host start in fresh interpreters, and ``serve`` from exec to its first 200 on a component route."""
    runs = [_child("boot", str(registry)) for _ in range(repeats)]
    serve_times = []
    for _ in range(repeats):
        port = free_port()
        env = dict(os.environ, PYTHONPATH=str(REPO))
        env.pop("AIRSSYS_SECRET", None)
        proc = subprocess.Popen(serve_command(registry, port, app=None), env=env, cwd=REPO,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            serve_times.append(wait_ready(f"http://127.0.0.1:{port}/c0", proc, 120))
        finally:
            proc.terminate()
            proc.wait(30)
    return {"runs": runs, "serve_first_response_s": serve_times}


# -- P8: memory per pooled instance -------------------------------------------------------------------------------

def _memory_kib() -> tuple[int, int]:
    """(RSS, USS) of this process in KiB: resident, and private (what the process alone holds)."""
    rss = uss = 0
    for line in Path("/proc/self/smaps_rollup").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key == "Rss":
            rss = int(rest.split()[0])
        elif key in ("Private_Clean", "Private_Dirty"):
            uss += int(rest.split()[0])
    return rss, uss


def memory_in_process(wasm_path: str, count: int) -> dict[str, Any]:
    from airssys_web.runtime.artifacts import ArtifactCache, sha256_hex
    from airssys_web.runtime.dispatch import Dispatcher
    from airssys_web.runtime.generation import Generation
    from airssys_web.runtime.imports import HostContext
    from airssys_web.runtime.limits import Limits

    wasm = Path(wasm_path).read_bytes()
    component = ArtifactCache(None).get(sha256_hex(wasm), wasm)
    limits = Limits(min_instances=0, max_instances=count + 1)
    gen = Generation(component, HostContext(component="m", version="1.0.0"), limits, dispatcher=Dispatcher(1))
    gen.pool.grow_ahead = 0
    gen.pool.warm(1)  # one-time costs (code mapping, linker, first Store) are not per instance
    slot = gen.pool.try_acquire()
    assert slot is not None
    slot.call("GET", "/", "", [], b"")
    gen.pool.release(slot)
    gc.collect()
    rss0, uss0 = _memory_kib()
    gen.pool.warm(count)
    gc.collect()
    rss1, uss1 = _memory_kib()
    slots = [gen.pool.try_acquire() for _ in range(gen.pool.idle)]
    for s in slots:
        assert s is not None
        s.call("GET", "/", "", [("host", "bench")], b"")
    for s in slots:
        assert s is not None
        gen.pool.release(s)
    gc.collect()
    rss2, uss2 = _memory_kib()
    n = count
    gen.close()
    return {"count": n, "rss_kib_per_instance": (rss1 - rss0) / n, "uss_kib_per_instance": (uss1 - uss0) / n,
            "rss_kib_per_instance_after_a_call": (rss2 - rss0) / n,
            "uss_kib_per_instance_after_a_call": (uss2 - uss0) / n}


def measure_memory(wasm: bytes, count: int, workdir: Path, name: str) -> dict[str, Any]:
    path = workdir / f"{name}.wasm"
    path.write_bytes(wasm)
    return _child("memory", str(path), str(count))


# -- the ASGI app without a server (P1, P7) -------------------------------------------------------------------------

def _per_call(fn: Any, budget: float = 0.6) -> float:
    """Best-of-batches seconds per call (warm), spending about ``budget`` seconds."""
    fn()
    best, spent, batch = float("inf"), 0.0, 64
    while spent < budget:
        started = time.perf_counter()
        for _ in range(batch):
            fn()
        took = time.perf_counter() - started
        best, spent = min(best, took / batch), spent + took
    return best


def asgi_in_process(registry: str) -> dict[str, Any]:
    import asyncio

    from airssys_web.web.serve import build_app

    from .apps import new_plugin

    app = build_app(registry, "benchmarks.apps:app")

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: MutableMapping[str, Any]) -> None:
        pass

    def scope(path: str) -> dict[str, Any]:
        return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
                "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
                "headers": [(b"host", b"127.0.0.1:8000"), (b"user-agent", b"wrk"), (b"accept", b"*/*")],
                "client": ("127.0.0.1", 40000), "server": ("127.0.0.1", 8000)}

    paths = ["/native", "/wasm", "/py", "/extism"]
    out: dict[str, Any] = {}

    async def main() -> None:
        await asyncio.to_thread(app.host.start, watch=False)
        loop_n = 2000
        for _ in range(3):  # warm: instances, inline policy, Extism plugin
            for p in paths:
                for _ in range(200):
                    await app(scope(p), receive, send)
        best: dict[str, float] = {p: float("inf") for p in paths}
        for _ in range(5):
            for p in paths:
                s = scope(p)
                started = time.perf_counter()
                for _ in range(loop_n):
                    await app(dict(s), receive, send)
                best[p] = min(best[p], (time.perf_counter() - started) / loop_n)
        out["asgi_us"] = {p: v * 1e6 for p, v in best.items()}
        gens = app.host.generations()
        out["inline_share"] = {name: g.inline.inline_calls / max(1, g.requests) for name, g in gens.items()}
        hello = gens["hello"]
        slot = hello.pool.try_acquire()
        assert slot is not None
        headers = [("host", "127.0.0.1:8000")]
        out["guest_call_us"] = _per_call(lambda: slot.call("GET", "/wasm", "", headers, b"")) * 1e6
        # The same call with a native request served between two calls, as in a server: colder CPU caches.
        spent, native = 0.0, scope("/native")
        for _ in range(loop_n):
            await app(dict(native), receive, send)
            started = time.perf_counter()
            slot.call("GET", "/wasm", "", headers, b"")
            spent += time.perf_counter() - started
        out["guest_call_between_requests_us"] = spent / loop_n * 1e6
        hello.pool.release(slot)
        plugin = new_plugin()
        out["extism_call_us"] = _per_call(lambda: plugin.call("handle", b"/extism")) * 1e6
        app.host.close()
        # The same small-guest route with every call on a worker thread (serve --no-inline): the hop's cost.
        hop = build_app(registry, "benchmarks.apps:app", inline=False)
        await asyncio.to_thread(hop.host.start, watch=False)
        for _ in range(500):
            await hop(scope("/wasm"), receive, send)
        threaded = float("inf")
        for _ in range(5):
            s = scope("/wasm")
            started = time.perf_counter()
            for _ in range(loop_n):
                await hop(dict(s), receive, send)
            threaded = min(threaded, (time.perf_counter() - started) / loop_n)
        out["threaded_wasm_us"] = threaded * 1e6
        hop.host.close()

    asyncio.run(main())
    return out


def measure_asgi(registry: Path) -> dict[str, Any]:
    return _child("asgi", str(registry))


if __name__ == "__main__":
    command = sys.argv[1]
    if command == "boot":
        out = boot_in_process(sys.argv[2])
    elif command == "memory":
        out = memory_in_process(sys.argv[2], int(sys.argv[3]))
    elif command == "asgi":
        out = asgi_in_process(sys.argv[2])
    else:
        raise SystemExit(f"unknown command {command!r}: use boot, memory or asgi")
    print(json.dumps(out))
