"""What the WSGI adapter adds: a component request through AirssysWSGIMiddleware vs through AirssysMiddleware.

    python -m benchmarks.bench_wsgi process REGISTRY     # prints JSON (``make bench`` runs it in a fresh interpreter)

* In process, no HTTP server: the small guest's route called through the ASGI middleware (awaited on an event
  loop, as an ASGI server does) and through the WSGI adapter (called from a plain thread, as a WSGI server's
  thread does: the hop to the adapter's loop thread and back is what is measured), in alternating rounds, each
  round giving one difference; plus a native WSGI route through the adapter (what the app's own requests pay).
* Over HTTP: waitress (4 threads) serving :data:`wsgi_app` - a native WSGI route and the same guest - with wrk on
  the two routes alternately, as P1 does for ``serve``.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, MutableMapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .bench_http import Comparison, RouteStats, Settings
from .fixtures import HELLO, HELLO_HEADERS
from .harness import REPO, Series, Server, boost, free_port, run_wrk, stop_server, wait_ready, wrk_command

REGISTRY_ENV = "AIRSSYS_BENCH_REGISTRY"


def native_wsgi(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    """The WSGI twin of the hello guest (same status, ``content-type`` and body)."""
    start_response("200 OK", HELLO_HEADERS)
    return [HELLO.encode()]


def _wsgi_app() -> Any:
    from airssys_web import AirssysWSGIMiddleware

    registry = os.environ.get(REGISTRY_ENV)
    return None if registry is None else AirssysWSGIMiddleware(native_wsgi, registry=registry)


#: ``waitress benchmarks.bench_wsgi:wsgi_app`` with ``AIRSSYS_BENCH_REGISTRY`` set (making it starts nothing).
wsgi_app = _wsgi_app()


# -- in process ----------------------------------------------------------------------------------------------------

def _environ(path: str) -> dict[str, Any]:
    return {"REQUEST_METHOD": "GET", "SCRIPT_NAME": "", "PATH_INFO": path, "QUERY_STRING": "",
            "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "8000", "SERVER_PROTOCOL": "HTTP/1.1",
            "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(), "HTTP_HOST": "127.0.0.1:8000",
            "HTTP_USER_AGENT": "wrk", "HTTP_ACCEPT": "*/*", "REMOTE_ADDR": "127.0.0.1", "REMOTE_PORT": "40000"}


def in_process(registry: str, *, rounds: int = 7, n: int = 2000) -> dict[str, Any]:
    from airssys_web import AirssysMiddleware, AirssysWSGIMiddleware

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
        if not status.startswith("200"):
            raise RuntimeError(f"answered {status}")

    wsgi = AirssysWSGIMiddleware(native_wsgi, registry=registry)

    def wsgi_batch(path: str) -> float:
        started = time.perf_counter()
        for _ in range(n):
            result = wsgi(_environ(path), start_response)
            for _ in result:
                pass
            getattr(result, "close", lambda: None)()
        return (time.perf_counter() - started) / n

    async def never(scope: Any, receive: Any, send: Any) -> None:
        raise RuntimeError("the benchmark route is not served by a component")

    asgi = AirssysMiddleware(never, registry=registry)
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
             "path": "/wasm", "raw_path": b"/wasm", "query_string": b"", "root_path": "",
             "headers": [(b"host", b"127.0.0.1:8000"), (b"user-agent", b"wrk"), (b"accept", b"*/*")],
             "client": ("127.0.0.1", 40000), "server": ("127.0.0.1", 8000)}

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: MutableMapping[str, Any]) -> None:
        if message["type"] == "http.response.start" and message["status"] != 200:
            raise RuntimeError(f"answered {message['status']}")

    async def asgi_batch() -> float:
        started = time.perf_counter()
        for _ in range(n):
            await asgi(dict(scope), receive, send)
        return (time.perf_counter() - started) / n

    loop = asyncio.new_event_loop()
    loop.run_until_complete(asgi.startup())
    wsgi.start()
    for _ in range(3):  # warm: instances, the inline policy's samples, caches
        loop.run_until_complete(asgi_batch())
        wsgi_batch("/wasm")
        wsgi_batch("/native")
    asgi_us, wsgi_us, native_us = Series(), Series(), Series()
    for _ in range(rounds):
        asgi_us.add(loop.run_until_complete(asgi_batch()) * 1e6)
        wsgi_us.add(wsgi_batch("/wasm") * 1e6)
        native_us.add(wsgi_batch("/native") * 1e6)
    loop.run_until_complete(asgi.shutdown())
    loop.close()
    wsgi.close()
    return {"asgi_us": asgi_us.values, "wsgi_us": wsgi_us.values, "wsgi_native_us": native_us.values}


def measure_in_process(registry: Path) -> dict[str, Any]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p))
    done = subprocess.run([sys.executable, "-m", "benchmarks.bench_wsgi", "process", str(registry)],
                          capture_output=True, text=True, cwd=REPO, env=env, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"bench_wsgi process failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


# -- over HTTP -----------------------------------------------------------------------------------------------------

def waitress_command(port: int, threads: int = 4) -> list[str]:
    return [sys.executable, "-m", "waitress", f"--listen=127.0.0.1:{port}", f"--threads={threads}",
            "benchmarks.bench_wsgi:wsgi_app"]


@contextmanager
def running_waitress(registry: Path, bound: float = 120.0) -> Iterator[Server]:
    """waitress serving :data:`wsgi_app` on ``registry``, ready when a component route answers 200."""
    port = free_port()
    cmd = waitress_command(port)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p))
    env[REGISTRY_ENV] = str(registry)
    env.pop("AIRSSYS_SECRET", None)
    # waitress logs a line for every request that waits for a thread: an unread pipe would fill up and stall it
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(cmd, env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=log, preexec_fn=boost)
        url = f"http://127.0.0.1:{port}"
        try:
            try:
                wait_ready(url + "/wasm", proc, bound)
            except RuntimeError as e:
                log.seek(0)
                raise RuntimeError(f"{e}\n{log.read()[-2000:].decode(errors='replace')}") from None
            yield Server(url=url, pid=proc.pid, command=cmd)
        finally:
            stop_server(proc)


def compare_over_http(wrk: str, registry: Path, s: Settings) -> Comparison:
    """``/native`` and ``/wasm`` on one waitress process, measured alternately (see bench_http.compare_routes)."""
    paths = ["/native", "/wasm"]
    routes = {p: RouteStats() for p in paths}
    runs: dict[str, list[float]] = {p: [] for p in paths}
    with running_waitress(registry) as server:
        for p in paths:
            run_wrk(wrk, server.url + p, seconds=s.warmup, connections=s.connections)
        for _ in range(s.repeats):
            for p in paths:
                r = run_wrk(wrk, server.url + p, seconds=s.seconds, connections=s.connections, server_pid=server.pid)
                routes[p].add(r)
                runs[p].append(r.rps)
        command = " ".join(wrk_command("wrk", server.url + "/PATH", seconds=s.seconds, connections=s.connections))
    return Comparison(routes, runs, command)


if __name__ == "__main__":
    if sys.argv[1:2] != ["process"] or len(sys.argv) != 3:
        raise SystemExit("usage: python -m benchmarks.bench_wsgi process REGISTRY")
    print(json.dumps(in_process(sys.argv[2])))
