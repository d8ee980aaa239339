"""Shared fixtures: real guest components (WAT and componentize-py) and loopback servers (uvicorn, waitress).

Guests live in ``tests/guests/`` (see ``tests/guests/README.md``). Python guests are built once and cached in
``<repo>/.cache/guests`` keyed by their sources, so only the first run pays for componentize-py; tests that use
them are marked ``slow`` automatically.
"""

from __future__ import annotations

import contextlib
import functools
import socket
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from starlette.types import ASGIApp
from support import wait_until

from airssys_web.guest.build import build_python_guest, compile_wat

REPO = Path(__file__).resolve().parents[1]
GUESTS = Path(__file__).resolve().parent / "guests"
GUEST_CACHE = REPO / ".cache" / "guests"
PYTHON_GUEST_FIXTURES = {"py_echo_path", "py_echo_wasm"}
_STARTUP_BOUND = 60.0  # a generous bound on server startup, not a speed assertion


@pytest.fixture(scope="session", autouse=True)
def _close_runtimes() -> Iterator[None]:
    """Close every runtime the tests' helpers made (tests/support.py), at the end of the session."""
    yield
    from redis_support import stop_session_redis
    from support import close_runtimes

    close_runtimes()
    stop_session_redis()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that needs a componentize-py build as ``slow`` (deselect with ``-m 'not slow'``)."""
    for item in items:
        if PYTHON_GUEST_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


def wat_guest_names() -> list[str]:
    """Names of the WAT guests in tests/guests (``hello``, ``echo``, ...), for parametrisation."""
    return sorted(path.stem for path in GUESTS.glob("*.wat"))


@functools.cache
def _compile_guest(name: str) -> bytes:
    path = GUESTS / f"{name}.wat"
    if not path.is_file():
        raise LookupError(f"no WAT guest {name!r} in {GUESTS}; known: {', '.join(wat_guest_names())}")
    return compile_wat(path.read_text())


@pytest.fixture(scope="session")
def wat_guest() -> Callable[[str], bytes]:
    """``wat_guest("echo")`` -> the binary of tests/guests/echo.wat (compiled once per session)."""
    return _compile_guest


@pytest.fixture(scope="session")
def py_echo_path() -> Path:
    """Path of the built tests/guests/py_echo component (componentize-py; cached across runs)."""
    pytest.importorskip("componentize_py", reason="componentize-py is not installed")
    return build_python_guest(GUESTS / "py_echo", cache_dir=GUEST_CACHE)


@pytest.fixture(scope="session")
def py_echo_wasm(py_echo_path: Path) -> bytes:
    """Bytes of the py_echo component (~18 MB; compiling it with wasmtime takes seconds: share the result)."""
    return py_echo_path.read_bytes()


def find_free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (prefer port 0 where the server allows it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def free_port() -> int:
    return find_free_port()


def stop_process(proc: subprocess.Popen[Any], bound: float = _STARTUP_BOUND) -> None:
    """Stop a server process a test started: SIGTERM (a graceful shutdown), SIGKILL if it hangs past ``bound``."""
    proc.terminate()
    try:
        proc.wait(bound)
    except subprocess.TimeoutExpired:  # pragma: no cover - a hung shutdown
        proc.kill()
        proc.wait()


@contextlib.contextmanager
def run_uvicorn(app: ASGIApp, **config: Any) -> Iterator[str]:
    """Serve ``app`` with uvicorn on 127.0.0.1 (ephemeral port) in a thread; yield its base URL.

    Extra keyword arguments go to ``uvicorn.Config``. On exit the server shuts down gracefully (lifespan
    shutdown included) and the thread is joined, so no test leaks a listening socket.
    """
    options: dict[str, Any] = {"host": "127.0.0.1", "port": 0, "log_level": "warning"} | config
    server = uvicorn.Server(uvicorn.Config(app, **options))
    thread = threading.Thread(target=server.run, name="uvicorn-test-server", daemon=True)
    thread.start()
    try:

        def started() -> bool:
            if not thread.is_alive():
                raise RuntimeError("uvicorn exited during startup (see the log above)")
            return bool(server.started)

        wait_until(started, _STARTUP_BOUND, "uvicorn's startup")
        host, port = server.servers[0].sockets[0].getsockname()[:2]
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(_STARTUP_BOUND)


@pytest.fixture
def uvicorn_server() -> Callable[..., contextlib.AbstractContextManager[str]]:
    """``with uvicorn_server(app) as url: httpx.get(url + "/")`` — see :func:`run_uvicorn`."""
    return run_uvicorn


@contextlib.contextmanager
def run_waitress(app: Callable[..., Any], *, threads: int = 4, **options: Any) -> Iterator[str]:
    """Serve the WSGI ``app`` with waitress on 127.0.0.1 (ephemeral port) in a thread; yield its base URL.

    Extra keyword arguments go to ``waitress.server.create_server``. On exit the listening socket and every
    connection close, in the server's own thread (waitress's loop is not thread-safe), its worker threads stop and
    the thread is joined, so no test leaks a listening socket.
    """
    from waitress.server import create_server

    server: Any = create_server(app, host="127.0.0.1", port=0, threads=threads, **options)
    thread = threading.Thread(target=server.run, name="waitress-test-server", daemon=True)
    thread.start()

    def stop() -> None:
        for channel in list(server._map.values()):
            channel.close()

    try:
        yield f"http://127.0.0.1:{server.effective_port}"
    finally:
        server.trigger.pull_trigger(stop)
        thread.join(_STARTUP_BOUND)
        server.task_dispatcher.shutdown()


@pytest.fixture
def wsgi_server() -> Callable[..., contextlib.AbstractContextManager[str]]:
    """``with wsgi_server(wsgi_app) as url: httpx.get(url + "/")`` — waitress, see :func:`run_waitress`."""
    return run_waitress
