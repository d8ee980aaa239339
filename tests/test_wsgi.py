"""AirssysWSGIMiddleware: the ASGI core behind a WSGI adapter, called directly and under real WSGI servers.

Direct calls (a wsgiref environ) pin the adapter's contract: nothing is made at construction, the app's own
requests run in the caller's thread, a route gone between the lookup and the loop goes back to the app, request
bodies are read a chunk at a time. Under waitress (threaded): a Flask app and a Django app swap a route under
load without a failed request, and the admin API works through WSGI, canary cookie included. wasi:http bodies
stream both ways; pre-fork servers (gunicorn with 2 sync workers, a bare ``os.fork()``) start a core per process.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from wsgiref.util import setup_testing_defaults

import httpx
import pytest
from conftest import run_waitress, stop_process
from support import text_component, wait_until
from test_wasi_http_guests import _deploy, py_sync_wasm  # noqa: F401  (a fixture, and its artifact cache)

from airssys_web import AirssysWSGIMiddleware, EmbeddedRegistry, RemoteLifecycle, deploy
from airssys_web.errors import CapabilityError
from airssys_web.lifecycle.api import DeployRequest, Plan
from airssys_web.lifecycle.settings import VersionSettings
from airssys_web.web.auth import TokenAuthority
from airssys_web.web.wsgi_bridge import CHUNK

SECRET = "wsgi-test-secret-0123456789abcdef"


# -- helpers -------------------------------------------------------------------------------------------------------

def environ(path: str, method: str = "GET", body: bytes = b"", *, stream: Any = None,
            length: int | None = -1, **extra: str) -> dict[str, Any]:
    env: dict[str, Any] = {}
    setup_testing_defaults(env)
    env.update({"PATH_INFO": path, "REQUEST_METHOD": method, "QUERY_STRING": ""} | extra)
    env["wsgi.input"] = stream if stream is not None else io.BytesIO(body)
    if length == -1:
        length = len(body)
    if length is not None:
        env["CONTENT_LENGTH"] = str(length)
    return env


def call(app: Any, env: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
    """Run one request through a WSGI app as a server does (iterate, then close)."""
    got: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
        got["status"], got["headers"] = int(status.split()[0]), dict(headers)

    result = app(env, start_response)
    try:
        body = b"".join(result)
    finally:
        getattr(result, "close", lambda: None)()
    return got["status"], got["headers"], body


def plain_app(seen: list[tuple[str, int, bytes]]) -> Callable[..., Any]:
    """A bare WSGI app recording (path, thread, body) of every request it answers."""
    def app(env: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        body = env["wsgi.input"].read(int(env.get("CONTENT_LENGTH") or 0))
        seen.append((env["PATH_INFO"], threading.get_ident(), body))
        start_response("200 OK", [("content-type", "text/plain")])
        return [b"app:" + body]
    return app


@pytest.fixture
def registry(tmp_path: Path, wat_guest: Callable[[str], bytes]) -> Path:
    path = tmp_path / "reg"
    with EmbeddedRegistry(path) as reg:
        deploy(reg, "hello", text_component("v1"), version="1.0.0", route="/hello")
        deploy(reg, "echo", wat_guest("echo"), version="1.0.0", route="/echo")
    return path


@pytest.fixture
def adapter(registry: Path) -> Iterator[tuple[AirssysWSGIMiddleware, list[tuple[str, int, bytes]]]]:
    seen: list[tuple[str, int, bytes]] = []
    wrapped = AirssysWSGIMiddleware(plain_app(seen), registry=registry, poll_interval=0.05)
    yield wrapped, seen
    wrapped.close()


def _loop_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "airssys-wsgi-loop"]


# -- the adapter's contract ----------------------------------------------------------------------------------------

def test_nothing_is_made_until_the_first_request(tmp_path: Path) -> None:
    """Pre-fork servers construct the app in the master: no thread, registry file or runtime may exist yet."""
    before = set(threading.enumerate())
    wrapped = AirssysWSGIMiddleware(plain_app([]), registry=tmp_path / "reg")
    assert set(threading.enumerate()) == before
    assert not (tmp_path / "reg").exists() and wrapped.middleware is None
    assert call(wrapped, environ("/x"))[2] == b"app:"
    assert (tmp_path / "reg" / "registry.db").is_file() and len(_loop_threads()) == 1
    assert wrapped.middleware is not None and wrapped.middleware.host.runtime is not None
    wrapped.close()
    wrapped.close()
    assert not _loop_threads()
    assert call(wrapped, environ("/x"))[2] == b"app:"  # a later request starts a new core
    wrapped.close()


def test_options_are_checked_at_construction(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match=r"registry=\.\.\. or host="):
        AirssysWSGIMiddleware(plain_app([]))
    with pytest.raises(TypeError, match="unexpected keyword argument 'poll'"):
        AirssysWSGIMiddleware(plain_app([]), registry=tmp_path, poll=1)  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="admin_prefix"):
        AirssysWSGIMiddleware(plain_app([]), registry=tmp_path, admin_prefix="admin/")
    with pytest.raises(CapabilityError, match="body_timeout"):
        AirssysWSGIMiddleware(plain_app([]), registry=tmp_path, body_timeout="soon")
    with pytest.raises(ValueError, match="metrics_path must start and not end with '/'"):
        AirssysWSGIMiddleware(plain_app([]), registry=tmp_path, metrics_path="metrics")
    assert not any(tmp_path.iterdir())


def test_metrics_and_request_ids_answer_through_wsgi(adapter: Any) -> None:
    """The observability of the core is the adapter's too: the metrics path is claimed (not passed to the app),
    component answers carry a request id, and their requests are counted."""
    wrapped, seen = adapter
    status, headers, _ = call(wrapped, environ("/hello/x", HTTP_X_REQUEST_ID="wsgi-req-1"))
    assert (status, headers["x-request-id"]) == (200, "wsgi-req-1")
    status, headers, body = call(wrapped, environ("/_airssys/metrics"))
    assert status == 200 and headers["content-type"].startswith("text/plain")
    assert 'airssys_requests_total{component="hello",status="200",version="1.0.0"} 1.0' in body.decode()
    assert seen == []  # neither request reached the app


def test_the_apps_own_requests_stay_in_the_callers_thread(adapter: Any) -> None:
    wrapped, seen = adapter
    status, _, body = call(wrapped, environ("/helloworld", "POST", b"data"))
    assert (status, body) == (200, b"app:data")
    assert seen == [("/helloworld", threading.get_ident(), b"data")]


def test_components_answer_with_the_cores_headers(adapter: Any) -> None:
    wrapped, seen = adapter
    status, headers, body = call(wrapped, environ("/hello/x"))
    assert (status, body, headers["x-airssys-version"]) == (200, b"v1", "hello@1.0.0")
    status, headers, body = call(wrapped, environ("/echo/a b", "PUT", b"payload", QUERY_STRING="q=1"))
    assert (status, body) == (200, b"payload")
    assert (headers["x-echo-path"], headers["x-echo-query"], headers["x-echo-method"]) == ("/echo/a b", "q=1", "PUT")
    assert not seen


class _CountingInput:
    """A ``wsgi.input`` that records the size of every read."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)
        self.reads: list[int] = []

    def read(self, size: int = -1) -> bytes:
        self.reads.append(size)
        return self._data.read(size)


def test_request_bodies_are_read_a_chunk_at_a_time(adapter: Any) -> None:
    wrapped, _ = adapter
    data = os.urandom(5 * CHUNK + 123)
    counted = _CountingInput(data)
    status, _, body = call(wrapped, environ("/echo", "POST", stream=counted, length=len(data)))
    assert (status, body) == (200, data)
    assert max(counted.reads) == CHUNK and len(counted.reads) == 6
    # No Content-Length, a body that ends at EOF (gunicorn's chunked requests): read until it ends.
    terminated = _CountingInput(data)
    env = environ("/echo", "POST", stream=terminated, length=None, HTTP_TRANSFER_ENCODING="chunked")
    env["wsgi.input_terminated"] = True
    assert call(wrapped, env)[2] == data
    # No Content-Length and no terminated input: PEP 3333 says there is no body to read.
    assert call(wrapped, environ("/echo", "POST", stream=_CountingInput(b"ignored"), length=None))[2] == b""


def test_a_route_gone_before_the_loop_goes_back_to_the_app(adapter: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The route table is read twice (by the adapter, then by the core); in between a swap may remove the route."""
    wrapped, seen = adapter
    core = wrapped.start()
    monkeypatch.setattr(core, "claims", lambda path: True)
    status, _, body = call(wrapped, environ("/gone", "POST", b"kept"))
    assert (status, body) == (200, b"app:kept")
    assert seen == [("/gone", threading.get_ident(), b"kept")]


def test_objects_made_before_a_fork_are_refused_after_it(registry: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A ready Registry (its SQLite connection) belongs to the process that made it: a forked worker must not use
    it, and is told to pass the directory instead."""
    with EmbeddedRegistry(registry) as reg:
        wrapped = AirssysWSGIMiddleware(plain_app([]), registry=reg)
        made_in = os.getpid()
        monkeypatch.setattr(os, "getpid", lambda: made_in + 1)
        with pytest.raises(RuntimeError, match="pass registry= as a directory path"):
            call(wrapped, environ("/hello"))
        monkeypatch.undo()
        assert call(wrapped, environ("/hello"))[2] == b"v1"
        wrapped.close()


def test_close_lets_no_server_thread_wait_forever(tmp_path: Path, wat_guest: Callable[[str], bytes]) -> None:
    """close() gives requests in flight ``grace`` seconds, then cancels them: a server thread still waiting for a
    head gets an error (its server answers 500) instead of waiting forever."""
    with EmbeddedRegistry(tmp_path / "reg") as reg:
        deploy(reg, "spin", wat_guest("spin"), version="1.0.0", route="/spin",
               settings=VersionSettings.of(timeout="2s"))
    wrapped = AirssysWSGIMiddleware(plain_app([]), registry=tmp_path / "reg")
    gen = wrapped.start().host.generations()["spin"]
    outcome: list[object] = []

    def request() -> None:
        try:
            outcome.append(call(wrapped, environ("/spin")))
        except Exception as e:
            outcome.append(e)

    waiting = threading.Thread(target=request)
    waiting.start()
    wait_until(lambda: gen.in_flight == 1, 30, "the request to reach the guest")
    wrapped.close(grace=0.1)
    waiting.join(30)
    assert not waiting.is_alive() and len(outcome) == 1
    assert isinstance(outcome[0], RuntimeError) or outcome[0][0] >= 500  # type: ignore[index]
    assert not _loop_threads()


# -- real apps under a real WSGI server ----------------------------------------------------------------------------

def flask_app() -> Any:
    flask = pytest.importorskip("flask")
    app = flask.Flask("wsgi_test")

    @app.get("/app/ping")
    def ping() -> str:
        return f"flask {flask.request.path}"

    return app


_django_urls: list[Any] = []
urlpatterns = _django_urls  # this module is the Django test site's ROOT_URLCONF


def django_app() -> Any:
    pytest.importorskip("django")
    import django
    from django.conf import settings
    from django.core.wsgi import get_wsgi_application
    from django.http import HttpRequest, HttpResponse
    from django.urls import path

    if not settings.configured:
        settings.configure(DEBUG=False, SECRET_KEY="wsgi-test", ALLOWED_HOSTS=["*"], ROOT_URLCONF=__name__,
                           MIDDLEWARE=[], INSTALLED_APPS=[], USE_TZ=True)
        django.setup()

        def ping(request: HttpRequest) -> HttpResponse:
            return HttpResponse(f"django {request.path}", content_type="text/plain")

        _django_urls.append(path("app/ping", ping))
    return get_wsgi_application()


def _wrap(app: Any, kind: str, registry: Path, **options: Any) -> AirssysWSGIMiddleware:
    """Mount the adapter the way each framework's recipe in the README does."""
    if kind == "flask":
        app.wsgi_app = AirssysWSGIMiddleware(app.wsgi_app, registry=registry, poll_interval=0.05, **options)
        return app.wsgi_app  # type: ignore[no-any-return]
    return AirssysWSGIMiddleware(app, registry=registry, poll_interval=0.05, **options)


@pytest.mark.parametrize("kind", ["flask", "django"])
def test_a_swap_under_load_fails_no_request(kind: str, registry: Path) -> None:
    app = flask_app() if kind == "flask" else django_app()
    wrapped = _wrap(app, kind, registry)
    served: dict[int, list[str]] = {}
    failures: list[str] = []
    stop = threading.Event()

    def client(n: int) -> None:
        versions = served.setdefault(n, [])
        with httpx.Client(base_url=url, timeout=30) as http:
            while not stop.is_set():
                try:
                    r = http.get(f"/hello/{n}")
                    native = http.get("/app/ping")
                except httpx.HTTPError as e:
                    failures.append(f"client {n}: {e!r}")
                    continue
                if r.status_code != 200 or native.status_code != 200 or native.text != f"{kind} /app/ping":
                    failures.append(f"client {n}: {r.status_code} {r.text!r} / {native.status_code} {native.text!r}")
                versions.append(r.text)

    try:
        with run_waitress(app if kind == "flask" else wrapped, threads=4) as url:
            threads = [threading.Thread(target=client, args=(n,)) for n in range(4)]
            for t in threads:
                t.start()
            wait_until(lambda: all(len(served.get(n, [])) >= 20 for n in range(4)), 30, "traffic before the swap")
            with EmbeddedRegistry(registry) as reg:
                deploy(reg, "hello", text_component("v2"), version="2.0.0")
            wait_until(lambda: all(v and v[-1] == "v2" for v in served.values()), 30, "every client on v2")
            marks = {n: len(v) for n, v in served.items()}
            wait_until(lambda: all(len(served[n]) >= marks[n] + 20 for n in range(4)), 30, "traffic after it")
            stop.set()
            for t in threads:
                t.join(30)
    finally:
        stop.set()
        wrapped.close()
    assert not failures, failures[:5]
    for versions in served.values():  # each client's requests are sequential: v1 until the switch, then v2
        switch = versions.index("v2")
        assert set(versions[:switch]) == {"v1"} and set(versions[switch:]) == {"v2"}


def test_the_admin_api_works_through_wsgi(registry: Path) -> None:
    app = flask_app()
    wrapped = _wrap(app, "flask", registry, secret=SECRET)
    authority = TokenAuthority(SECRET)
    deploy_token, _ = authority.mint("deploy", "1h")
    read_token, _ = authority.mint("read", "1h")
    try:
        with run_waitress(app) as url:
            assert httpx.get(url + "/_airssys/api/status").status_code == 401
            with RemoteLifecycle(url, read_token, progress=False) as reader:
                assert {c.component.name for c in reader.components()} == {"echo", "hello"}
                forbidden = httpx.post(url + "/_airssys/api/components/hello/rollback",
                                       headers={"authorization": f"Bearer {read_token}"})
                assert forbidden.status_code == 403
            with RemoteLifecycle(url, deploy_token, progress=False) as admin:
                change = admin.deploy(DeployRequest("hello", text_component("canary"), version="1.1.0",
                                                    plan=Plan.parse("canary", percent=50)))
                assert change.serving is not None
                assert (change.serving.active, change.serving.canary) == ("1.0.0", "1.1.0")
            seen = set()
            for _ in range(40):  # fresh clients: each gets a bucket cookie, and keeps its version with it
                with httpx.Client(base_url=url) as client:
                    first = client.get("/hello")
                    assert "airssys_bucket" in first.headers.get("set-cookie", "")
                    again = {client.get("/hello").text for _ in range(3)}
                    assert again == {first.text}
                    seen.add(first.text)
            assert seen == {"v1", "canary"}
            assert httpx.get(url + "/app/ping").text == "flask /app/ping"
    finally:
        wrapped.close()


# -- wasi:http: bodies stream through WSGI -------------------------------------------------------------------------

@pytest.fixture
def wasi_adapter(tmp_path: Path, py_sync_wasm: bytes) -> Iterator[AirssysWSGIMiddleware]:  # noqa: F811
    with EmbeddedRegistry(tmp_path / "reg") as reg:
        _deploy(reg, "sync", py_sync_wasm, version="1.0.0", route="/sync",
                settings=VersionSettings.of(max_body=64 * 1024 * 1024))
    wrapped = AirssysWSGIMiddleware(plain_app([]), registry=tmp_path / "reg")
    yield wrapped
    wrapped.close()


class _LoggedInput(_CountingInput):
    def __init__(self, data: bytes, log: list[str]) -> None:
        super().__init__(data)
        self.log = log

    def read(self, size: int = -1) -> bytes:
        data = super().read(size)
        self.log.append("read")
        return data


@pytest.mark.slow
def test_a_wasi_http_echo_streams_both_ways(wasi_adapter: AirssysWSGIMiddleware) -> None:
    """The body is read a chunk at a time as the guest consumes it, and its echo is yielded as the guest writes
    it: with 4 MiB, more than every buffer on the way holds (the guest's pipes, the bridge's ``AHEAD``), the
    response must start before the request is read to its end."""
    data = os.urandom(4 * 1024 * 1024)
    log: list[str] = []
    stream = _LoggedInput(data, log)
    got: dict[str, Any] = {}
    result = wasi_adapter(environ("/sync/echo", "POST", stream=stream, length=len(data)),
                          lambda status, headers, exc_info=None: got.update(status=status, headers=dict(headers)))
    echoed = bytearray()
    try:
        for chunk in result:
            log.append("chunk")
            echoed += chunk
    finally:
        result.close()
    assert got["status"] == "200 OK" and "content-length" not in got["headers"]
    assert bytes(echoed) == data
    assert max(stream.reads) <= CHUNK
    assert log.index("chunk") < len(log) - 1 - log[::-1].index("read"), "the echo began after the whole body"


@pytest.mark.slow
def test_a_large_wasi_http_response_streams_through_waitress(wasi_adapter: AirssysWSGIMiddleware) -> None:
    size = 8 * 1024 * 1024
    with run_waitress(wasi_adapter) as url, httpx.stream("GET", f"{url}/sync/big?n={size}", timeout=60) as r:
        assert r.status_code == 200 and r.headers["transfer-encoding"] == "chunked"
        body = b"".join(r.iter_bytes())
    block = bytes(range(256)) * 256
    assert len(body) == size and body[: len(block)] == block and body[-len(block):] == block


@pytest.mark.slow
def test_a_response_the_server_abandons_frees_its_instance(wasi_adapter: AirssysWSGIMiddleware) -> None:
    """A server closes the body iterable early when its client goes: the core sees a disconnect, the guest's
    output stream breaks, and the request leaves its generation (a swap's drain does not wait for it)."""
    result = wasi_adapter(environ("/sync/big", QUERY_STRING=f"n={512 * 1024 * 1024}"), lambda *a: None)
    assert next(iter(result))
    core = wasi_adapter.middleware
    assert core is not None
    gen = core.host.generations()["sync"]
    assert gen.in_flight == 1
    result.close()
    wait_until(lambda: gen.in_flight == 0, 30, "the abandoned request to leave its generation")
    status, _, body = call(wasi_adapter, environ("/sync/hello"))
    assert status == 200 and body.startswith(b"hello from py_sync")


# -- pre-fork servers ----------------------------------------------------------------------------------------------

_SITE = '''
import os, threading, time
from airssys_web import AirssysWSGIMiddleware
from airssys_web.web import wsgi

def app(environ, start_response):
    start_response("200 OK", [("content-type", "text/plain")])
    return [b"app"]

airssys = AirssysWSGIMiddleware(app, registry=os.environ["AIRSSYS_TEST_REGISTRY"], poll_interval=0.05)
MASTER_THREADS = threading.active_count()  # gunicorn --preload imports this module in the master

def application(environ, start_response):
    """``?hold`` holds the request, so that a concurrent one goes to the other (sync) worker; every answer says
    which worker gave it, and whether that worker's core was made there (not inherited)."""
    if "hold" in environ.get("QUERY_STRING", ""):
        time.sleep(0.3)  # the subject, not a wait: a busy request, so a concurrent one goes to the other worker

    def tagged(status, headers, exc_info=None):
        fresh = not wsgi._BEFORE_FORK and airssys._core is not None and airssys._core.pid == os.getpid()
        headers = headers + [("x-pid", str(os.getpid())), ("x-master-threads", str(MASTER_THREADS)),
                             ("x-fresh", str(fresh))]
        return start_response(status, headers, exc_info)

    return airssys(environ, tagged)
'''


def test_gunicorn_workers_each_start_their_own_core(registry: Path, tmp_path: Path) -> None:
    """gunicorn --preload, 2 sync workers: the master imports the app (the adapter makes nothing), each worker
    starts a core of its own on its first request, and a deploy reaches both."""
    pytest.importorskip("gunicorn")
    (tmp_path / "site_wsgi.py").write_text(_SITE)
    log = tmp_path / "gunicorn.log"
    env = dict(os.environ, AIRSSYS_TEST_REGISTRY=str(registry))
    with log.open("wb") as sink:
        proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "--preload", "--workers", "2", "--bind",
                                 "127.0.0.1:0", "--chdir", str(tmp_path), "site_wsgi:application"],
                                env=env, stdout=sink, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: log.read_text().count("Booting worker") == 2, 60, "gunicorn's two workers")
        port = log.read_text().split("Listening at: http://127.0.0.1:", 1)[1].split()[0]
        url = f"http://127.0.0.1:{port}/hello/x?hold"

        def both_workers(body: str) -> bool:
            """Two concurrent held requests: one per worker; True if both answered ``body`` from the component."""
            answers: list[httpx.Response] = []
            pair = [threading.Thread(target=lambda: answers.append(httpx.get(url, timeout=30))) for _ in range(2)]
            for t in pair:
                t.start()
            for t in pair:
                t.join()
            assert all(r.headers["x-master-threads"] == "1" and r.headers["x-fresh"] == "True" for r in answers)
            return len({r.headers["x-pid"] for r in answers}) == 2 and all(r.text == body for r in answers)

        wait_until(lambda: both_workers("v1"), 30, "both workers serving v1")
        with EmbeddedRegistry(registry) as reg:
            deploy(reg, "hello", text_component("v2"), version="2.0.0")
        wait_until(lambda: both_workers("v2"), 30, "both workers serving v2")
    finally:
        stop_process(proc)
    assert proc.returncode == 0
    assert "Traceback" not in log.read_text()


_FORK = '''
import io, os, sys
from wsgiref.util import setup_testing_defaults
from airssys_web import AirssysWSGIMiddleware
from airssys_web.web import wsgi

def app(environ, start_response):
    start_response("200 OK", [])
    return [b"app"]

adapter = AirssysWSGIMiddleware(app, registry=sys.argv[1])

def get(path):
    env = {}
    setup_testing_defaults(env)
    env.update(PATH_INFO=path, REQUEST_METHOD="GET", CONTENT_LENGTH="0")
    env["wsgi.input"] = io.BytesIO()
    result = adapter(env, lambda *a: None)
    try:
        return b"".join(result)
    finally:
        result.close()

assert get("/hello") == b"v1"
parent = adapter._core
child = os.fork()
if child == 0:
    ok = get("/hello") == b"v1" and adapter._core is not parent and wsgi._BEFORE_FORK == [parent]
    sys.exit(0 if ok and adapter._core.pid == os.getpid() else 3)  # atexit closes the child's own core
_, status = os.waitpid(child, 0)
assert os.waitstatus_to_exitcode(status) == 0, status
assert get("/hello") == b"v1" and adapter._core is parent and not wsgi._BEFORE_FORK
print("ok")
'''


def test_a_forked_process_starts_a_core_of_its_own(registry: Path, tmp_path: Path) -> None:
    """A process that served requests, then forked (what a pre-fork server without --preload's discipline may do):
    the child sees a new pid and starts afresh, leaving what it inherited alone; the parent serves on."""
    script = tmp_path / "fork_case.py"
    script.write_text(_FORK)
    done = subprocess.run([sys.executable, str(script), str(registry)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-3000:]


def test_a_client_cannot_spoof_the_route_header_through_wsgi(tmp_path: Path, py_echo_wasm: bytes) -> None:
    """Issue #20 (8): the guest is told its mount point; an ``X-Airssys-Route`` a client sends (HTTP_X_AIRSSYS_ROUTE
    in the WSGI environ) never reaches it."""
    import json

    with EmbeddedRegistry(tmp_path / "reg") as reg:
        deploy(reg, "echo", py_echo_wasm, version="1.0.0", route="/one")
    wrapped = AirssysWSGIMiddleware(plain_app([]), registry=tmp_path / "reg")
    try:
        status, _, body = call(wrapped, environ("/one/a", HTTP_X_AIRSSYS_ROUTE="/evil"))
    finally:
        wrapped.close()
    assert status == 200
    assert [value for name, value in json.loads(body)["headers"] if name == "x-airssys-route"] == ["/one"]
