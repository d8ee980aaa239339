"""End-to-end HTTP benchmarks against ``airssys-web serve`` (P1, P3, P6, P7 and the event-loop stall check).

Every ratio compares two routes of the *same* server process in the *same* run, measured alternately (A, B, A, B,
...) so drift on a shared machine hits both sides; each pair gives one ratio, and the report shows the median and
the spread (min to max) of those ratios.
"""

from __future__ import annotations

import statistics
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from .harness import Series, WrkResult, run_wrk, running_server, wrk_command


@dataclass
class Settings:
    seconds: float = 4.0
    repeats: int = 5
    connections: int = 16
    warmup: float = 2.0


@dataclass
class RouteStats:
    rps: Series = field(default_factory=Series)
    wrk_cpu: Series = field(default_factory=Series)
    server_cpu: Series = field(default_factory=Series)
    errors: int = 0

    def add(self, r: WrkResult) -> None:
        self.rps.add(r.rps)
        self.wrk_cpu.add(r.wrk_cpu_share)
        self.server_cpu.add(r.server_cpu_share)
        self.errors += r.errors


@dataclass
class Comparison:
    """Routes measured alternately on one server; ``ratio(a, b)`` per repeat."""

    routes: dict[str, RouteStats]
    runs: dict[str, list[float]]
    command: str

    def ratio(self, a: str, b: str) -> Series:
        return Series([x / y for x, y in zip(self.runs[a], self.runs[b], strict=True)])

    def added_us(self, a: str, b: str) -> Series:
        """Per-request cost of ``a`` over ``b``: 1/rps_a - 1/rps_b, per repeat, in µs."""
        return Series([(1 / x - 1 / y) * 1e6 for x, y in zip(self.runs[a], self.runs[b], strict=True)])


def compare_routes(wrk: str, registry: Path, paths: list[str], s: Settings, *, workers: int = 1,
                   extra: tuple[str, ...] = ()) -> Comparison:
    routes = {p: RouteStats() for p in paths}
    runs: dict[str, list[float]] = {p: [] for p in paths}
    with running_server(registry, workers=workers, extra=extra) as server:
        for p in paths:  # a route that does not answer 200 would be measured as fast errors: refuse
            answer = httpx.get(server.url + p, timeout=30)
            if answer.status_code != 200:
                raise RuntimeError(f"{p} answered {answer.status_code} before the benchmark: {answer.text[:200]}")
        for p in paths:  # warm-up: instances, inline-policy samples, Extism plugin creation, caches
            run_wrk(wrk, server.url + p, seconds=s.warmup, connections=s.connections)
        for _ in range(s.repeats):
            for p in paths:
                r = run_wrk(wrk, server.url + p, seconds=s.seconds, connections=s.connections,
                            server_pid=server.pid)
                routes[p].add(r)
                runs[p].append(r.rps)
        command = " ".join(wrk_command("wrk", server.url + "/PATH", seconds=s.seconds, connections=s.connections))
    return Comparison(routes, runs, command)


@dataclass
class StallResult:
    alone: list[WrkResult]
    loaded: list[WrkResult]
    busy: list[WrkResult]
    native_command: str
    busy_command: str


def stall(wrk: str, registry: Path, s: Settings) -> StallResult:
    """Native-route latency alone, then while the CPU-bound guest's instances are saturated by a second wrk
    (alternately, ``s.repeats`` times).

    ``/busy?xxxx`` burns ~4 ms of CPU per call, so if guest calls ran on the event loop every native request
    queued behind one would wait for milliseconds (p99 would jump to several ms).
    """
    busy_path = "/busy?" + "x" * 4
    alone, loaded, busy = [], [], []
    with running_server(registry) as server:
        run_wrk(wrk, server.url + "/native", seconds=s.warmup, connections=4)
        run_wrk(wrk, server.url + busy_path, seconds=s.warmup, connections=8)
        for _ in range(max(1, s.repeats - 2)):
            alone.append(run_wrk(wrk, server.url + "/native", seconds=s.seconds, connections=4, latency=True))
            box: list[WrkResult] = []
            loader = threading.Thread(target=lambda: box.append(run_wrk(  # noqa: B023
                wrk, server.url + busy_path, seconds=s.seconds + 2, connections=8)))
            loader.start()
            time.sleep(1.0)  # the busy route is saturated before we measure
            loaded.append(run_wrk(wrk, server.url + "/native", seconds=s.seconds, connections=4, latency=True))
            loader.join()
            busy += box
        native_cmd = " ".join(wrk_command("wrk", server.url + "/native", seconds=s.seconds, connections=4,
                                          latency=True))
        busy_cmd = " ".join(wrk_command("wrk", server.url + busy_path, seconds=s.seconds + 2, connections=8))
    return StallResult(alone, loaded, busy, native_cmd, busy_cmd)


@dataclass
class BodyResult:
    wasm: Series
    native: Series
    size: int


def body_echo(registry: Path, *, size: int = 1 << 20, repeats: int = 7) -> BodyResult:
    """P3: POST ``size`` bytes to the echo guest and to the native echo route; seconds per round trip."""
    body = bytes(range(256)) * (size // 256)
    wasm, native = Series(), Series()
    with running_server(registry) as server, httpx.Client(base_url=server.url, timeout=60) as client:
        for path, series in (("/echo", wasm), ("/native-echo", native)):
            client.post(path, content=body)  # warm
            for _ in range(repeats):
                started = time.perf_counter()
                r = client.post(path, content=body)
                series.add(time.perf_counter() - started)
                if r.status_code != 200 or (path == "/native-echo" and r.content != body):
                    raise RuntimeError(f"{path} answered {r.status_code} to the {size}-byte echo")
                if path == "/echo" and not r.content.endswith(body):
                    raise RuntimeError("the echo guest did not return the body")
    return BodyResult(wasm, native, size)


def workers_scaling(wrk: str, registry: Path, s: Settings, path: str = "/wasm") -> tuple[Series, Series, str]:
    """P6: rps of ``path`` with 1 and with 2 workers (alternating servers would double the boots: one server
    per worker count, repeats inside), more connections so two processes have work."""
    one, two = Series(), Series()
    conns = max(32, s.connections)
    for workers, series in ((1, one), (2, two)):
        with running_server(registry, workers=workers) as server:
            run_wrk(wrk, server.url + path, seconds=s.warmup, connections=conns)
            for _ in range(s.repeats):
                series.add(run_wrk(wrk, server.url + path, seconds=s.seconds, connections=conns).rps)
    command = " ".join(wrk_command("wrk", "http://127.0.0.1:PORT" + path, seconds=s.seconds, connections=conns))
    return one, two, command


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")
