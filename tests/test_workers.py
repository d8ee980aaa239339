"""``airssys-web serve --workers N``: options travel to the worker processes, and a deploy reaches every worker.

The multi-worker test runs the real CLI in a subprocess (two uvicorn workers sharing one socket). Its bounds are
generous: they only keep a broken build from hanging, they are not speed assertions.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import find_free_port, stop_process
from support import text_component, wait_until

from airssys_web import EmbeddedRegistry, deploy
from airssys_web.errors import AirssysError
from airssys_web.web.serve import OPTIONS_ENV, ServeOptions, app_from_env, run

BOUND = 60.0

PID_APP = textwrap.dedent("""\
    import os

    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route


    async def pid(request):
        return PlainTextResponse(str(os.getpid()))

    app = Starlette(routes=[Route("/pid", pid)])
    """)


def test_options_round_trip_through_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    options = ServeOptions(registry=str(tmp_path / "reg"), version_header=False, threads=3, inline=False)
    assert ServeOptions.from_env(options.to_env()) == options
    monkeypatch.setenv(OPTIONS_ENV, options.to_env())
    app = app_from_env()
    assert app.version_header is False
    assert app.host.runtime.dispatcher.max_threads == 3
    assert app.host.runtime.dispatcher.new_policy().long_running  # inline=False: every call on a thread
    app.host.close()


def test_bad_options_name_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(OPTIONS_ENV, raising=False)
    with pytest.raises(AirssysError, match=OPTIONS_ENV):
        app_from_env()
    with pytest.raises(AirssysError, match="not valid"):
        ServeOptions.from_env('{"registry": "x", "colour": "blue"}')
    with pytest.raises(AirssysError, match="--workers"):
        run(registry="x", workers=0)
    with pytest.raises(AirssysError, match="--app"):
        run(registry="x", workers=2, app="no_such_module_here:app")


@pytest.fixture
def two_workers(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    reg = tmp_path / "reg"
    with EmbeddedRegistry(reg) as registry:
        deploy(registry, "hello", text_component("version one"), version="1.0.0", route="/hello")
    (tmp_path / "pid_app.py").write_text(PID_APP)
    port = find_free_port()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]),
               PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "metrics"))  # serve uses it (else it makes its own)
    env.pop("AIRSSYS_SECRET", None)
    proc = subprocess.Popen(
        [sys.executable, "-c", "from airssys_web.cli import main; main()", "serve", "--registry", str(reg),
         "--port", str(port), "--workers", "2", "--app", "pid_app:app", "--log-level", "warning"],
        env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + BOUND
        while True:
            assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else "server exited"
            try:
                if httpx.get(url + "/pid", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.1)
        yield url, reg
    finally:
        stop_process(proc, BOUND)


def _fresh_connections(url: str, path: str, n: int) -> list[httpx.Response]:
    """``n`` requests, each on a new connection (so the kernel spreads them over the workers)."""
    out = []
    for _ in range(n):
        with httpx.Client(timeout=10) as client:
            out.append(client.get(url + path))
    return out


def test_a_deploy_reaches_every_worker(two_workers: tuple[str, Path]) -> None:
    url, reg = two_workers
    pids: set[str] = set()
    deadline = time.monotonic() + BOUND
    while len(pids) < 2:  # both workers are up and accepting
        pids |= {r.text for r in _fresh_connections(url, "/pid", 10)}
        assert time.monotonic() < deadline, f"only one worker answered: {pids}"
    first = _fresh_connections(url, "/hello", 20)
    assert {(r.status_code, r.text, r.headers["x-airssys-version"]) for r in first} == {
        (200, "version one", "hello@1.0.0")}

    with EmbeddedRegistry(reg) as registry:
        deploy(registry, "hello", text_component("version two"), version="1.1.0", route="/hello")
    deadline = time.monotonic() + BOUND
    while True:  # every worker swaps on its own (within its poll interval plus warm-up)
        seen = {(r.text, r.headers["x-airssys-version"]) for r in _fresh_connections(url, "/hello", 30)}
        if seen == {("version two", "hello@1.1.0")}:
            break
        assert time.monotonic() < deadline, f"workers still answer {seen}"
        time.sleep(0.2)


def test_each_worker_socket_joins_one_reuseport_group() -> None:
    from airssys_web.web.serve import _ReusePortBinder

    bind = _ReusePortBinder("127.0.0.1", 0, 16)
    first, second = bind(), bind()
    try:
        assert first.getsockname() == second.getsockname()  # the first bind fixed the ephemeral port
        assert first.proto == second.proto == socket.IPPROTO_TCP  # so asyncio sets TCP_NODELAY on connections
    finally:
        first.close()
        second.close()


def test_a_port_taken_by_another_server_is_a_clear_error() -> None:
    from airssys_web.web.serve import _ReusePortBinder

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        with pytest.raises(AirssysError, match=r"cannot listen on 127\.0\.0\.1"):
            _ReusePortBinder("127.0.0.1", taken.getsockname()[1], 16)()


def test_one_scrape_covers_every_worker_and_a_dead_one_is_marked(two_workers: tuple[str, Path]) -> None:
    """prometheus-client's multiprocess mode: whichever worker answers the scrape counts both; a worker killed
    and replaced by the supervisor leaves the live gauges (its instances), its counts stay."""
    from test_metrics import scrape, total, value

    url, reg = two_workers
    metrics_dir = reg.parent / "metrics"
    pids: set[str] = set()

    def both_answered() -> bool:
        pids.update(r.text for r in _fresh_connections(url, "/pid", 6))
        return len(pids) >= 2

    wait_until(both_answered, timeout=BOUND, what="both workers answering")
    assert all(r.status_code == 200 for r in _fresh_connections(url, "/hello", 60))

    def hello_total() -> float:
        return value(scrape(httpx.get(url + "/_airssys/metrics").text), "airssys_requests_total",
                     component="hello", version="1.0.0", status="200")

    wait_until(lambda: hello_total() == 60, timeout=BOUND, what="60 requests in one scrape")
    assert total(scrape(httpx.get(url + "/_airssys/metrics").text), "airssys_instances", component="hello") >= 2
    victim = int(sorted(pids)[0])
    assert (metrics_dir / f"gauge_livesum_{victim}.db").exists()
    os.kill(victim, signal.SIGKILL)
    wait_until(lambda: not (metrics_dir / f"gauge_livesum_{victim}.db").exists(), timeout=BOUND,
               what="the dead worker marked")
    assert hello_total() == 60  # a dead worker's counts stay in the sum
