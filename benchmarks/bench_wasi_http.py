"""A wasi:http/proxy route vs the native Starlette route and the airssys:web route, side by side (not a test).

    .venv/bin/python -m benchmarks.bench_wasi_http [--seconds 5] [--repeats 3] [--python] [--write]
    .venv/bin/python -m benchmarks.bench_wasi_http --in-process [--requests 20000] [--repeats 5] [--write]

One ``airssys-web serve`` (the default stack, ``benchmarks.apps:app`` for ``/native``) serves three equivalent
answers of ``Hello, world!\\n``: ``/native`` (Starlette), ``/wasm`` (the small airssys:web WAT guest) and ``/wasi``
(the hand-written WAT wasi:http guest of tests/guests/wasi_http/hello.wat, about 4 KB). wrk loads each in turn
(``-c16``, after a warm-up), repeated; the medians and the ratios are printed. ``--python`` adds ``/wasi-py``, the
componentize-py wasi:http guest (tests/guests/wasi_http/py_sync), against ``/py``, the airssys:web Python guest.
The issue's target: ``/wasi`` >= 0.5 x ``/native``.

``--in-process`` needs no server nor wrk: it times one request of the same WAT guest through the host alone,
(a) ``WasiHttpSlot.serve`` of a prepared exchange and (b) the ASGI bridge (``serve_asgi``, the inline path the
server takes for a short call), in microseconds per request; ``--write`` puts both into BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from airssys_web.guest.build import compile_wat, wat_response_component
from airssys_web.lifecycle.deploy import deploy
from airssys_web.lifecycle.registry import EmbeddedRegistry

from .fixtures import HELLO, HELLO_HEADERS
from .harness import REPO, Series, ensure_wrk, run_wrk, running_server, write_section

WASI_HELLO = REPO / "tests" / "guests" / "wasi_http" / "hello.wat"
_WAT_TEXT = "hello from a WAT wasi:http guest\\n"


def wasi_hello(text: str = HELLO) -> bytes:
    """The WAT wasi:http guest, answering ``text`` (ASCII) instead of its own greeting."""
    source = WASI_HELLO.read_text()
    escaped = text.replace("\n", "\\n")
    source = source.replace(f'"{_WAT_TEXT}"', f'"{escaped}"').replace(
        "(i32.const 64) (i32.const 33)", f"(i32.const 64) (i32.const {len(text.encode())})")
    return compile_wat(source)


def make_registry(directory: Path, python: bool) -> list[str]:
    paths = ["/native", "/wasm", "/wasi"]
    with EmbeddedRegistry(directory) as reg:
        deploy(reg, "hello", compile_wat(wat_response_component(HELLO, headers=HELLO_HEADERS)), version="1.0.0",
               route="/wasm")
        deploy(reg, "wasi", wasi_hello(), version="1.0.0", route="/wasi")
        if python:
            from airssys_web.guest.build import build_python_guest
            from airssys_web.guest.build_wasi_http import build_wasi_http_guest
            cache = REPO / ".cache" / "guests"
            py = build_python_guest(REPO / "benchmarks" / "guests" / "py_hello", cache_dir=cache)
            deploy(reg, "pyhello", py.read_bytes(), version="1.0.0", route="/py")
            wasi_py = build_wasi_http_guest(REPO / "tests" / "guests" / "wasi_http" / "py_sync", cache_dir=cache)
            deploy(reg, "wasipy", wasi_py.read_bytes(), version="1.0.0", route="/wasi-py")
            paths += ["/py", "/wasi-py"]
    return paths


def _asgi_scope() -> dict[str, Any]:
    return {"type": "http", "method": "GET", "path": "/wasi", "raw_path": b"/wasi", "query_string": b"",
            "scheme": "http", "headers": [(b"host", b"127.0.0.1:8000"), (b"user-agent", b"wrk"),
                                          (b"accept", b"*/*")], "extensions": {}}


def in_process(requests: int, repeats: int) -> tuple[Series, Series]:
    """Microseconds per request of the WAT guest: (``WasiHttpSlot.serve``, ``serve_asgi`` inline)."""
    from airssys_web.runtime.wasi_http.http import Exchange
    from airssys_web.runtime.wasi_http.slot import WasiHttpSlot

    from airssys_web.runtime.artifacts import ArtifactCache
    from airssys_web.runtime.generation import Generation
    from airssys_web.runtime.imports import HostContext
    from airssys_web.runtime.limits import Limits
    from airssys_web.runtime.wasi_http.asgi import serve_asgi

    component = ArtifactCache(None).compile(wasi_hello())
    gen = Generation(component, HostContext(component="wasi", version="1.0.0", config={}), Limits())
    gen.warm()
    headers = [("host", b"127.0.0.1:8000"), ("user-agent", b"wrk"), ("accept", b"*/*")]
    scope = _asgi_scope()
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def asgi_loop(n: int) -> float:
        t = time.perf_counter()
        for _ in range(n):
            sent.clear()
            await serve_asgi(gen, scope, receive, send, [])
        return time.perf_counter() - t

    direct, asgi = Series(), Series()
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(asgi_loop(200))  # warm-up, and samples for the inline policy
        assert sent[-1]["body"] == HELLO.encode(), sent
        for _ in range(repeats):
            slot = gen.pool.materialize(gen.pool.try_acquire())  # type: ignore[arg-type]
            assert isinstance(slot, WasiHttpSlot)
            t = time.perf_counter()
            for _ in range(requests):
                exchange = Exchange("GET", "/wasi", list(headers), authority="127.0.0.1:8000", streaming=False)
                exchange.body.finish()
                slot.serve(exchange)
            direct.add((time.perf_counter() - t) / requests * 1e6)
            gen.pool.release(slot)
            asgi.add(loop.run_until_complete(asgi_loop(requests)) / requests * 1e6)
    finally:
        loop.close()
        gen.close()
    return direct, asgi


def main_in_process(args: argparse.Namespace) -> None:
    direct, asgi = in_process(args.requests, args.repeats)
    print(f"in-process, {args.requests} requests x {args.repeats} runs, median (min to max):")
    print(f"  WasiHttpSlot.serve    {direct.fmt(1, ' us')}")
    print(f"  serve_asgi (inline)   {asgi.fmt(1, ' us')}")
    if args.write:
        table = ("| path | us per request, median (min to max) |\n|---|---|\n"
                 f"| `WasiHttpSlot.serve` | {direct.fmt(1)} |\n| `serve_asgi`, inline | {asgi.fmt(1)} |")
        write_section("wasi:http", (
            "`python -m benchmarks.bench_wasi_http --in-process --write` ({date}, {machine}): one request of the "
            "WAT wasi:http guest (tests/guests/wasi_http/hello.wat, 7 host calls) through the host, no server. "
            f"{args.requests} requests per run, {args.repeats} runs. The wrk comparison with the native route is "
            "`python -m benchmarks.bench_wasi_http` (target: >= 0.5 x native rps)."), table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--python", action="store_true", help="also the componentize-py guests of both worlds")
    parser.add_argument("--in-process", action="store_true", help="time the host alone (no server, no wrk)")
    parser.add_argument("--requests", type=int, default=20000, help="requests per run (--in-process)")
    parser.add_argument("--write", action="store_true", help="write the numbers to BENCHMARKS.md")
    args = parser.parse_args()
    if args.in_process:
        main_in_process(args)
        return
    notes: list[str] = []
    wrk = ensure_wrk(notes)
    if wrk is None:
        print("\n".join(notes))
        return
    with tempfile.TemporaryDirectory(prefix="bench-wasi-http-") as tmp:
        registry = Path(tmp) / "reg"
        paths = make_registry(registry, args.python)
        runs: dict[str, list[float]] = {p: [] for p in paths}
        with running_server(registry) as server:
            for p in paths:  # warm-up: instances, inline-policy samples
                run_wrk(wrk, server.url + p, seconds=2, connections=args.connections)
            for _ in range(args.repeats):
                for p in paths:
                    r = run_wrk(wrk, server.url + p, seconds=args.seconds, connections=args.connections)
                    if r.errors:
                        notes.append(f"{p}: {r.errors} errors or non-2xx answers in one run")
                    runs[p].append(r.rps)
    med = {p: statistics.median(v) for p, v in runs.items()}
    print(f"wrk -c{args.connections} -d{args.seconds:g}s, {args.repeats} runs per route, medians (min-max):")
    for p in paths:
        print(f"  {p:10} {med[p]:8.0f} rps  ({min(runs[p]):.0f}-{max(runs[p]):.0f})")
    ratio = med["/wasi"] / med["/native"]
    print(f"wasi:http / native      = {ratio:.2f}  (target >= 0.5: {'met' if ratio >= 0.5 else 'MISSED'})")
    print(f"wasi:http / airssys:web = {med['/wasi'] / med['/wasm']:.2f}")
    print(f"added per request vs native: {1e6 / med['/wasi'] - 1e6 / med['/native']:.0f} us")
    if args.python:
        print(f"wasi:http Python / airssys:web Python = {med['/wasi-py'] / med['/py']:.2f}")
    for note in notes:
        print("note:", note)
    if args.write:
        rows = "\n".join(f"| `{p}` | {med[p]:,.0f} ({min(runs[p]):,.0f} to {max(runs[p]):,.0f}) | "
                         f"{med[p] / med['/native']:.2f} |" for p in paths)
        write_section("wasi:http vs native (wrk)", (
            f"`python -m benchmarks.bench_wasi_http --seconds {args.seconds} --repeats {args.repeats} --write` "
            "({date}, {machine}): one `airssys-web serve`, "
            f"wrk -c{args.connections} on each route in turn, medians (min to max). Target: `/wasi` >= 0.5 x "
            "`/native`."), "| route | rps | x native |\n|---|---|---|\n" + rows)


if __name__ == "__main__":
    main()
