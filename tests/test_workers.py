"""Many workers: ``airssys-web serve --workers N`` (options travel to the worker processes, a deploy reaches every
worker) and gunicorn with uvicorn workers (a deploy, a canary's sticky cookie and auto-rollback's counts hold across
workers, without an admin secret).

The multi-worker tests run real servers in subprocesses (two workers each). Their bounds are generous: they only keep
a broken build from hanging, they are not speed assertions.
"""

from __future__ import annotations

import functools
import logging.config
import os
import pickle
import signal
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from conftest import find_free_port, stop_process
from support import text_component, wait_until

from airssys_web import EmbeddedRegistry, deploy
from airssys_web.errors import AirssysError
from airssys_web.lifecycle.api import DeployRequest, Plan
from airssys_web.lifecycle.autorollback import ACTOR
from airssys_web.lifecycle.local import LocalLifecycle
from airssys_web.web import serve
from airssys_web.web.auth import TokenAuthority
from airssys_web.web.serve import ServeOptions, app_from_options, run

BOUND = 60.0
SECRET = "workers-secret-" + "s" * 20

PID_APP = textwrap.dedent("""\
    import os

    from starlette.applications import Starlette
    from starlette.responses import JSONResponse, PlainTextResponse
    from starlette.routing import Route


    async def pid(request):
        return PlainTextResponse(str(os.getpid()))

    async def env(request):
        return JSONResponse(dict(os.environ))

    app = Starlette(routes=[Route("/pid", pid), Route("/env", env)])
    """)


def test_options_survive_the_trip_to_a_worker(tmp_path: Path) -> None:
    """What ``serve --workers`` hands uvicorn is a picklable factory (spawned workers get it pickled)."""
    options = ServeOptions(registry=str(tmp_path / "reg"), version_header=False, threads=3, inline=False)
    factory = pickle.loads(pickle.dumps(functools.partial(app_from_options, options, SECRET)))
    app = factory()
    try:
        assert app.version_header is False
        assert app.host.runtime.dispatcher.max_threads == 3
        assert app.host.runtime.dispatcher.new_policy().long_running  # inline=False: every call on a thread
        assert app.admin is not None  # the secret travelled beside the options
    finally:
        app.host.close()


def test_run_with_workers_leaves_the_environment_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Options and secret reach the workers in uvicorn's config, not in ``os.environ`` (no global state)."""
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path / "metrics"))  # serve would set it, documented
    monkeypatch.setattr(logging.config, "dictConfig", lambda config: None)  # keep pytest's logging as it is
    started: list[uvicorn.Config] = []
    monkeypatch.setattr(serve, "_run_workers", lambda config, banner, on_exit=None: started.append(config))
    before = dict(os.environ)
    run(registry=tmp_path / "reg", port=0, workers=2, secret=SECRET, version_header=False)
    assert dict(os.environ) == before
    [config] = started
    assert config.factory and config.workers == 2
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR")  # this process is no worker: its metrics are not multiprocess
    app = pickle.loads(pickle.dumps(config.app))()  # what a spawned worker does with it
    try:
        assert app.version_header is False and app.admin is not None
    finally:
        app.host.close()


def test_bad_options_are_refused_before_any_worker_starts() -> None:
    with pytest.raises(AirssysError, match="--workers"):
        run(registry="x", workers=0)
    with pytest.raises(AirssysError, match="--app"):
        run(registry="x", workers=2, app="no_such_module_here:app")
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
    secret_file = tmp_path / "secret"
    secret_file.write_text(SECRET)
    proc = subprocess.Popen(
        [sys.executable, "-c", "from airssys_web.cli import main; main()", "serve", "--registry", str(reg),
         "--port", str(port), "--workers", "2", "--app", "pid_app:app", "--log-level", "warning",
         "--secret-file", str(secret_file)],
        env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        def answers() -> bool:
            assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else "server exited"
            try:
                return httpx.get(url + "/pid", timeout=5).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(answers, BOUND, "the server's start-up")
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

    def both_answered() -> bool:
        pids.update(r.text for r in _fresh_connections(url, "/pid", 10))
        return len(pids) >= 2

    wait_until(both_answered, BOUND, "both workers answering")
    environments = [r.json() for r in _fresh_connections(url, "/env", 10)]
    assert not [name for env in environments for name, value in env.items()
                if name in ("AIRSSYS_SECRET", "AIRSSYS_WEB_SERVE") or SECRET in value]
    token, _ = TokenAuthority(SECRET).mint("read", 600)
    for _ in range(10):  # a new connection each, so both workers answer: each has the secret from --secret-file
        with httpx.Client(timeout=10, headers={"authorization": f"Bearer {token}"}) as admin:
            assert admin.get(url + "/_airssys/api/status").status_code == 200
    for r in _fresh_connections(url, "/_airssys/api/status", 6):  # the API is on, and refuses a missing token
        assert r.status_code == 401
    first = _fresh_connections(url, "/hello", 20)
    assert {(r.status_code, r.text, r.headers["x-airssys-version"]) for r in first} == {
        (200, "version one", "hello@1.0.0")}

    with EmbeddedRegistry(reg) as registry:
        deploy(registry, "hello", text_component("version two"), version="1.1.0", route="/hello")
    # every worker swaps on its own (within its poll interval plus warm-up)
    wait_until(lambda: {(r.text, r.headers["x-airssys-version"]) for r in _fresh_connections(url, "/hello", 30)}
               == {("version two", "hello@1.1.0")}, BOUND, "every worker serving version two")


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


GUNICORN_APP = textwrap.dedent("""\
    import os

    from starlette.applications import Starlette

    from airssys_web import AirssysMiddleware


    class WithPid:
        \"\"\"Says which worker answered (x-pid), components' answers included.\"\"\"

        def __init__(self, app):
            self.app = app

        async def __call__(self, scope, receive, send):
            async def tagged(message):
                if message["type"] == "http.response.start":
                    headers = [*message.get("headers", []), (b"x-pid", str(os.getpid()).encode())]
                    message = dict(message, headers=headers)
                await send(message)

            await self.app(scope, receive, tagged if scope["type"] == "http" else send)


    app = WithPid(AirssysMiddleware(Starlette(), registry=os.environ["AIRSSYS_TEST_REGISTRY"]))
    """)


@pytest.fixture
def gunicorn_workers(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """gunicorn with two uvicorn workers (uvicorn-worker), no admin secret, an app that mounts the middleware."""
    pytest.importorskip("uvicorn_worker", reason="uvicorn-worker is a dev dependency")
    reg = tmp_path / "reg"
    with EmbeddedRegistry(reg) as registry:
        deploy(registry, "hello", text_component("version one"), version="1.0.0", route="/hello")
    (tmp_path / "gunicorn_app.py").write_text(GUNICORN_APP)
    port = find_free_port()
    env = dict(os.environ, AIRSSYS_TEST_REGISTRY=str(reg),
               PYTHONPATH=os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]))
    env.pop("AIRSSYS_SECRET", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-w", "2", "-k", "uvicorn_worker.UvicornWorker", "-b",
         f"127.0.0.1:{port}", "--log-level", "warning", "gunicorn_app:app"],
        env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        pids: set[str] = set()

        def both_answered() -> bool:
            assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else "gunicorn exited"
            try:
                pids.update(r.headers["x-pid"] for r in _fresh_connections(url, "/hello", 10))
            except httpx.HTTPError:
                pass
            return len(pids) >= 2

        wait_until(both_answered, BOUND, "both of gunicorn's workers answering")
        yield url, reg
    finally:
        stop_process(proc, BOUND)


def _get(url: str, cookies: dict[str, str] | None = None) -> httpx.Response:
    with httpx.Client(timeout=10, cookies=cookies) as client:  # a new connection: any worker may answer
        return client.get(url)


def test_gunicorn_workers_share_deploys_canary_cookies_and_rollback_counts(
        gunicorn_workers: tuple[str, Path]) -> None:
    url, reg = gunicorn_workers
    canary = Plan.parse("canary", percent=50)
    with LocalLifecycle(reg) as lifecycle:
        lifecycle.deploy(DeployRequest("hello", text_component("version two"), version="2.0.0", plan=canary))
    wait_until(lambda: {r.headers["x-airssys-version"] for r in _fresh_connections(url, "/hello", 20)} == {
        "hello@1.0.0", "hello@2.0.0"}, BOUND, "both versions served to new clients")

    # Stickiness: without an admin secret the cookie is signed with the registry's key, which every worker shares,
    # so a client keeps its version whichever worker answers.
    answered_by: set[str] = set()
    for _ in range(6):
        first = _get(url + "/hello")
        cookie = {"airssys_bucket": first.cookies["airssys_bucket"]}
        replies = [_get(url + "/hello", cookie) for _ in range(12)]
        assert {r.headers["x-airssys-version"] for r in replies} == {first.headers["x-airssys-version"]}
        assert all("set-cookie" not in r.headers for r in replies)  # every worker accepted the cookie
        answered_by |= {r.headers["x-pid"] for r in replies}
    assert len(answered_by) == 2, "one worker answered every request: stickiness across workers was not tested"

    # Auto-rollback counts the failures of both workers: neither sees min-requests=20 alone.
    with LocalLifecycle(reg) as lifecycle:
        lifecycle.promote("hello")
        broken = Plan.parse("canary", percent=100, auto_rollback="error-rate=50%,window=5m,min-requests=20")
        lifecycle.deploy(DeployRequest("hello", text_component("broken", status=500), version="3.0.0", plan=broken))
    failures: dict[str, int] = {}  # every 500 a client saw, by the worker that answered it

    def get_counted() -> httpx.Response:
        r = _get(url + "/hello")
        if r.status_code == 500:
            failures[r.headers["x-pid"]] = failures.get(r.headers["x-pid"], 0) + 1
        return r

    def rolled_back() -> bool:
        with EmbeddedRegistry(reg) as registry:
            return registry.history("hello")[-1].actor == ACTOR

    wait_until(lambda: get_counted().status_code == 500, BOUND, "the broken canary served")
    for _ in range(80):  # until the rollback is recorded: after 20 failures counted across both workers
        get_counted()
        if rolled_back():
            break
    # The rollback came from the sum: no worker had seen min-requests=20 of its own.
    assert sum(failures.values()) >= 20 and all(n < 20 for n in failures.values()), failures
    wait_until(rolled_back, BOUND, f"an auto-rollback of the broken canary (failures per worker: {failures})")
    wait_until(lambda: {r.headers["x-airssys-version"] for r in _fresh_connections(url, "/hello", 10)} == {
        "hello@2.0.0"}, BOUND, "every worker serving 2.0.0 again")
