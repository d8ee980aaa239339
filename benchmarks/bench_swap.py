"""How fast a swap is, and what it costs the traffic around it (no assertions; prints numbers).

    .venv/bin/python -m benchmarks.bench_swap [--swaps 20] [--seconds 5]

Starts a real server process (``airssys-web serve`` with a secret) on 127.0.0.1 and measures, through the admin
API:

- **blue-green / rollback**: time from sending the admin request until (a) its answer, which the server sends once
  the new version serves in its process, and (b) the first response of an ordinary client carrying the new
  ``x-airssys-version``. The components are precompiled: every version was deployed once before, so the swap
  loads its artifact from the cache (the check step still validates the upload, which for these ~1 KB WAT
  components costs a few milliseconds).
- **steady client latency**: p50/p99 of sequential GETs by two keep-alive clients, first with no swaps, then while
  blue-green updates and rollbacks alternate back to back.

``make bench`` runs it (id SWAP) and puts the tables into BENCHMARKS.md. The issue's targets: swap <= 200 ms, p99
during swaps <= 2x steady.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from airssys_web.guest.build import compile_wat, wat_response_component
from airssys_web.lifecycle.api import DeployRequest, Plan
from airssys_web.lifecycle.remote import RemoteLifecycle
from airssys_web.web.auth import TokenAuthority

ROOT = Path(__file__).resolve().parents[1]
SECRET = "bench-secret-" + "b" * 24


@contextmanager
def server(registry: Path) -> Iterator[str]:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "airssys_web.cli", "serve", "--registry", str(registry),
                             "--port", str(port), "--log-level", "warning"],
                            env=os.environ | {"AIRSSYS_SECRET": SECRET}, stdout=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                httpx.get(url + "/", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def first_seen(client: httpx.Client, tag: str, started: float) -> float:
    """Seconds from ``started`` until a plain (already connected) client gets a response from ``tag``."""
    while client.get("/bench").headers.get("x-airssys-version") != tag:
        pass
    return time.perf_counter() - started


class Steady:
    """Clients issuing sequential GETs and recording each latency."""

    def __init__(self, url: str, clients: int = 2) -> None:
        self.url, self.clients = url, clients
        self.latencies: list[float] = []
        self.failures = 0
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def _run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=10) as c:
            while not self._stop.is_set():
                t = time.perf_counter()
                try:
                    ok = c.get("/bench").status_code == 200
                except httpx.HTTPError:
                    ok = False
                self.latencies.append(time.perf_counter() - t)
                self.failures += not ok

    def __enter__(self) -> Steady:
        self._threads = [threading.Thread(target=self._run) for _ in range(self.clients)]
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join()


@dataclass(frozen=True)
class SwapResult:
    lines: list[str]  # the Markdown tables
    median_swap_s: float  # blue-green swap, admin answer
    p99_steady_s: float  # the steady clients' p99 without swaps
    p99_swaps_s: float  # ... and during swaps

    @property
    def p99_ratio(self) -> float:
        return self.p99_swaps_s / self.p99_steady_s


def measure(swaps: int = 20, seconds: float = 5.0) -> SwapResult:
    """``swaps`` blue-green updates, each followed by a rollback, against a steady client; see the docstring."""
    versions = [f"1.{i}.0" for i in range(swaps + 1)]
    wasm = {v: compile_wat(wat_response_component(f"body of {v}")) for v in versions}
    token, _ = TokenAuthority(SECRET).mint("deploy", 3600)
    with tempfile.TemporaryDirectory() as tmp, server(Path(tmp) / "reg") as url:
        admin = RemoteLifecycle(url, token, progress=False)
        admin.deploy(DeployRequest("bench", wasm[versions[0]], version=versions[0], route="/bench"))
        for v in versions[1:]:  # precompile every version (and upload it) once
            admin.deploy(DeployRequest("bench", wasm[v], version=v))
        admin.rollback("bench", to_version=versions[0])
        watcher = httpx.Client(base_url=url)
        watcher.get("/bench")

        def timed(call: Callable[[], object], tag: str) -> tuple[float, float]:
            started = time.perf_counter()
            call()
            answered = time.perf_counter() - started
            return answered, first_seen(watcher, tag, started)

        with Steady(url) as quiet:
            time.sleep(seconds)
        swap_answer, swap_seen, back_answer, back_seen = [], [], [], []
        with Steady(url) as busy:
            for v in versions[1:]:
                blue_green = DeployRequest("bench", wasm[v], version=v, plan=Plan.parse("blue-green"))
                a, s = timed(lambda r=blue_green: admin.deploy(r), f"bench@{v}")
                swap_answer.append(a)
                swap_seen.append(s)
                a, s = timed(lambda: admin.rollback("bench"), f"bench@{versions[0]}")
                back_answer.append(a)
                back_seen.append(s)
        admin.close()
        watcher.close()

    ms = 1000.0
    rows = [
        ("blue-green swap: admin answer", swap_answer),
        ("blue-green swap: first client response", swap_seen),
        ("rollback: admin answer", back_answer),
        ("rollback: first client response", back_seen),
    ]
    lines = ["| measurement | p50 | p99 | max |", "|---|---|---|---|"]
    for label, values in rows:
        lines.append(f"| {label} (n={len(values)}) | {pct(values, .5) * ms:.1f} ms | {pct(values, .99) * ms:.1f} ms "
                     f"| {max(values) * ms:.1f} ms |")
    lines += ["", "| steady client (2 keep-alive clients) | requests | failed | p50 | p99 |", "|---|---|---|---|---|"]
    for label, run in (("no swaps", quiet), (f"during {2 * swaps} swaps", busy)):
        lines.append(f"| {label} | {len(run.latencies)} | {run.failures} | {pct(run.latencies, .5) * ms:.2f} ms "
                     f"| {pct(run.latencies, .99) * ms:.2f} ms |")
    return SwapResult(lines, statistics.median(swap_answer), pct(quiet.latencies, .99), pct(busy.latencies, .99))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--swaps", type=int, default=20, help="blue-green updates (each followed by a rollback)")
    parser.add_argument("--seconds", type=float, default=5.0, help="length of the steady-latency run without swaps")
    args = parser.parse_args()
    res = measure(args.swaps, args.seconds)
    print("\n".join(res.lines))
    print(f"\np99 during swaps / p99 steady: {res.p99_ratio:.2f}x (target <= 2x); median swap (admin answer): "
          f"{res.median_swap_s * 1000:.0f} ms (target <= 200 ms)")


if __name__ == "__main__":
    main()
