"""Shared plumbing for the HTTP benchmarks: wrk (installed from Debian if missing), a `serve` subprocess, stats.

Everything talks to 127.0.0.1 only. CPU shares are measured, not guessed: wrk's from ``getrusage`` of the reaped
child, the server's from ``/proc/<pid>/stat`` of its process and its children (uvicorn workers).
"""

from __future__ import annotations

import os
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
CLK_TCK = os.sysconf("SC_CLK_TCK")
#: Niceness of the server and wrk when running as root: other work on a shared machine perturbs them less.
#: Both sides of every comparison get the same.
NICE = -5


def boost() -> None:
    """``preexec_fn`` for measured processes (a no-op unless root)."""
    if os.geteuid() == 0:
        os.nice(NICE)


# -- wrk ---------------------------------------------------------------------------------------------------------

def ensure_wrk(log: list[str]) -> str | None:
    """The path of wrk, installing Debian's package (``apt-get update`` once, then install) if it is missing."""
    found = shutil.which("wrk")
    if found:
        return found
    apt = shutil.which("apt-get")
    if apt is None or os.geteuid() != 0:
        log.append("wrk is not installed and cannot be installed here (needs apt-get as root): "
                   "install it (`apt-get install wrk`) to run the HTTP benchmarks")
        return None
    print("installing wrk from Debian (apt-get update, apt-get install wrk) ...", flush=True)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for cmd in ([apt, "update", "-qq"], [apt, "install", "-y", "-qq", "wrk"]):
        done = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            log.append(f"`{' '.join(cmd)}` failed ({done.stderr.strip().splitlines()[-1:] or 'no output'}): "
                       "the HTTP benchmarks are skipped")
            return None
    return shutil.which("wrk")


def wrk_version(wrk: str) -> str:
    out = subprocess.run([wrk, "-v"], capture_output=True, text=True)
    return (out.stdout + out.stderr).strip().splitlines()[0] if (out.stdout + out.stderr).strip() else "wrk"


@dataclass
class WrkResult:
    rps: float
    p50_ms: float | None = None
    p99_ms: float | None = None
    cpu_s: float = 0.0  # wrk's own user+system CPU seconds
    seconds: float = 0.0
    server_cpu_s: float = 0.0
    errors: int = 0

    @property
    def wrk_cpu_share(self) -> float:
        """wrk's CPU use as a fraction of one core over the run."""
        return self.cpu_s / self.seconds if self.seconds else 0.0

    @property
    def server_cpu_share(self) -> float:
        return self.server_cpu_s / self.seconds if self.seconds else 0.0


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def _latency_ms(text: str, pct: str) -> float | None:
    m = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
    return float(m.group(1)) * _UNITS[m.group(2)] if m else None


def wrk_command(wrk: str, url: str, *, seconds: float, connections: int, threads: int = 1,
                latency: bool = False) -> list[str]:
    cmd = [wrk, f"-t{threads}", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--timeout", "10s"]  # whole s
    return [*cmd, "--latency", url] if latency else [*cmd, url]


def run_wrk(wrk: str, url: str, *, seconds: float, connections: int, threads: int = 1, latency: bool = False,
            server_pid: int | None = None) -> WrkResult:
    """One wrk run; also measures wrk's CPU time and (given its pid) the server's."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    server_before = process_tree_cpu(server_pid) if server_pid else 0.0
    started = time.perf_counter()
    done = subprocess.run(wrk_command(wrk, url, seconds=seconds, connections=connections, threads=threads,
                                      latency=latency), capture_output=True, text=True, check=True,
                          preexec_fn=boost)
    took = time.perf_counter() - started
    server_after = process_tree_cpu(server_pid) if server_pid else 0.0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    m = re.search(r"Requests/sec:\s+([\d.]+)", done.stdout)
    if not m:
        raise RuntimeError(f"cannot read wrk's output:\n{done.stdout}\n{done.stderr}")
    errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", done.stdout))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", done.stdout)
    return WrkResult(
        rps=float(m.group(1)), p50_ms=_latency_ms(done.stdout, "50"), p99_ms=_latency_ms(done.stdout, "99"),
        cpu_s=(after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), seconds=took,
        server_cpu_s=server_after - server_before, errors=errors + (int(non2xx.group(1)) if non2xx else 0))


# -- the server under test -----------------------------------------------------------------------------------------

def process_tree_cpu(pid: int) -> float:
    """user+system CPU seconds of ``pid`` and its direct children (uvicorn's workers)."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if entry.name == str(pid) or fields[1] == str(pid):  # fields[1] is the ppid
            total += (int(fields[11]) + int(fields[12])) / CLK_TCK
    return total


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Server:
    url: str
    pid: int
    command: list[str] = field(default_factory=list)


def serve_command(registry: Path, port: int, *, workers: int = 1, app: str | None = "benchmarks.apps:app",
                  extra: Sequence[str] = ()) -> list[str]:
    cmd = [sys.executable, "-c", "from airssys_web.cli import main; main()", "serve", "--registry", str(registry),
           "--port", str(port), "--workers", str(workers), "--log-level", "warning", *extra]
    return [*cmd, "--app", app] if app else cmd


@contextmanager
def running_server(registry: Path, *, workers: int = 1, ready_path: str = "/native",
                   extra: Sequence[str] = (), app: str | None = "benchmarks.apps:app",
                   bound: float = 120.0) -> Iterator[Server]:
    """``airssys-web serve`` in a subprocess (the default serve stack), ready when ``ready_path`` answers 200."""
    port = free_port()
    cmd = serve_command(registry, port, workers=workers, app=app, extra=extra)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p))
    env.pop("AIRSSYS_SECRET", None)
    proc = subprocess.Popen(cmd, env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            preexec_fn=boost)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url + ready_path, proc, bound)
        yield Server(url=url, pid=proc.pid, command=cmd)
    finally:
        stop_server(proc)


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    """Stop a server as Ctrl-C would (it drains and exits); kill it if it has not exited within 30 s."""
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def wait_ready(url: str, proc: subprocess.Popen[bytes], bound: float) -> float:
    """Poll ``url`` until it answers 200; return the seconds it took."""
    started = time.perf_counter()
    while True:
        if proc.poll() is not None:
            err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
            raise RuntimeError(f"the server exited during startup:\n{err[-2000:]}")
        try:
            if httpx.get(url, timeout=5).status_code == 200:
                return time.perf_counter() - started
        except httpx.HTTPError:
            pass
        if time.perf_counter() - started > bound:
            raise RuntimeError(f"{url} did not answer within {bound:g}s")
        time.sleep(0.01)


# -- statistics --------------------------------------------------------------------------------------------------

@dataclass
class Series:
    """Repeated measurements of one quantity: median and spread (min..max)."""

    values: list[float] = field(default_factory=list)

    def add(self, value: float) -> None:
        self.values.append(value)

    @property
    def median(self) -> float:
        return statistics.median(self.values) if self.values else float("nan")

    @property
    def spread(self) -> tuple[float, float]:
        return (min(self.values), max(self.values)) if self.values else (float("nan"), float("nan"))

    def fmt(self, digits: int = 0, unit: str = "") -> str:
        lo, hi = self.spread
        return f"{self.median:,.{digits}f}{unit} ({lo:,.{digits}f} to {hi:,.{digits}f})"
