"""End-to-end HTTP benchmarks against ``airssys-web serve``: route rps (wrk), big bodies (httpx), 2 workers ÷ 1,
and the event-loop stall check.

Every ratio compares two routes of the *same* server process in the *same* run, measured alternately (A, B, A, B,
...) so drift on a shared machine hits both sides; each pair gives one ratio, and the report shows the median and
the spread (min to max) of those ratios.
"""

from __future__ import annotations

import hashlib
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
    repeats: int = 7
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
        for p in paths:  # warm-up: instances, inline-policy samples, caches
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


@dataclass(frozen=True)
class Transfer:
    """One big-body request: ``body`` goes up (None: a GET), and the answer must hash to ``expect`` (sha256)."""

    label: str
    path: str
    body: bytes | None
    expect: str


@dataclass
class TransferResult:
    seconds: Series = field(default_factory=Series)
    failures: list[str] = field(default_factory=list)

    @property
    def intact(self) -> bool:
        return not self.failures and bool(self.seconds.values)


def transfers(registry: Path, cases: list[Transfer], repeats: int) -> dict[str, TransferResult]:
    """Seconds per round trip of each case, over HTTP on one server: every repeat runs each case once, in turn
    (after one warm-up each), and each answer is checked (status 200, sha256 of the whole body)."""
    out = {c.label: TransferResult() for c in cases}
    with running_server(registry) as server, httpx.Client(base_url=server.url, timeout=120) as client:
        for round_ in range(repeats + 1):
            for c in cases:
                started = time.perf_counter()
                r = client.request("POST" if c.body is not None else "GET", c.path, content=c.body)
                took = time.perf_counter() - started
                got = hashlib.sha256(r.content).hexdigest()
                if r.status_code != 200 or got != c.expect:
                    why = (f"answered {r.status_code}: {r.text[:120]}" if r.status_code != 200 else
                           f"{len(r.content):,} bytes whose sha256 differs")
                    if why not in out[c.label].failures:
                        out[c.label].failures.append(why)
                elif round_:  # the first round warms up (instances, the Python side's buffers)
                    out[c.label].seconds.add(took)
    return out


def workers_scaling(wrk: str, registry: Path, s: Settings, path: str = "/wasm"
                    ) -> tuple[RouteStats, RouteStats, str]:
    """``path`` on a server with 1 worker and on one with 2, both running, measured in turn within each repeat
    (an idle server costs only its registry watcher), with more connections so two processes have work."""
    one, two = RouteStats(), RouteStats()
    conns = max(32, s.connections)
    with running_server(registry, workers=1) as single, running_server(registry, workers=2) as double:
        for server in (single, double):
            run_wrk(wrk, server.url + path, seconds=s.warmup, connections=conns)
        for _ in range(s.repeats):
            for server, stats in ((single, one), (double, two)):
                stats.add(run_wrk(wrk, server.url + path, seconds=s.seconds, connections=conns,
                                  server_pid=server.pid))
    command = " ".join(wrk_command("wrk", "http://127.0.0.1:PORT" + path, seconds=s.seconds, connections=conns))
    return one, two, command


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")
