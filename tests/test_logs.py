"""airssys_web.observability.logs: one JSON object per line, with the request's fields where known.

The end-to-end test is what an operator does: ``airssys-web serve --log-format json``, a request to a component
that traps, and the server's stderr read line by line.
"""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path

import httpx
import pytest
from conftest import find_free_port, stop_process
from starlette.applications import Starlette
from support import text_component, wait_until

from airssys_web import AirssysMiddleware, EmbeddedRegistry, deploy
from airssys_web.observability.logs import (
    REQUEST,
    JSONFormatter,
    RequestIds,
    configure_logging,
    logging_config,
)

Server = Callable[..., AbstractContextManager[str]]


def record(message: str, *args: object, **extra: object) -> logging.LogRecord:
    rec = logging.LogRecord("airssys_web.test", logging.WARNING, __file__, 1, message, args, None)
    rec.__dict__.update(extra)
    return rec


def test_json_line_has_the_fields() -> None:
    line = JSONFormatter().format(record("hello %s", "world", status=502, duration_ms=1.5))
    assert "\n" not in line
    data = json.loads(line)
    assert data["level"] == "warning" and data["logger"] == "airssys_web.test" and data["message"] == "hello world"
    assert data["ts"].endswith("Z") and data["status"] == 502 and data["duration_ms"] == 1.5
    assert "request_id" not in data


def test_the_request_being_served_is_on_every_line() -> None:
    served = type("Gen", (), {"name": "hello", "version": "1.0.0"})()
    token = REQUEST.set((b"abc123", served, "/hello"))
    try:
        data = json.loads(JSONFormatter().format(record("multi\nline")))
    finally:
        REQUEST.reset(token)
    assert data["message"] == "multi\nline"
    assert (data["request_id"], data["component"], data["version"], data["route"]) == \
        ("abc123", "hello", "1.0.0", "/hello")


def test_exceptions_are_one_field() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        rec = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", None, sys.exc_info())
    data = json.loads(JSONFormatter().format(rec))
    assert "ValueError: boom" in data["exception"]


def test_request_ids_are_unique_and_well_formed_ones_are_kept() -> None:
    ids = RequestIds()
    made = {ids.new() for _ in range(1000)}
    assert len(made) == 1000 and all(len(i) == 16 for i in made)
    assert ids.accept(b"upstream-7f.3:x") == b"upstream-7f.3:x"
    for bad in (b"", b"a b", b"x" * 129, b"\xff", b"a\nb", b"{}"):
        assert ids.accept(bad) != bad


def test_configure_logging_replaces_its_own_handler() -> None:
    stream = io.StringIO()
    logger = logging.getLogger("airssys_web.test_configure")
    configure_logging("json", logger="airssys_web.test_configure", stream=io.StringIO())
    configure_logging("json", logger="airssys_web.test_configure", stream=stream)
    assert len([h for h in logger.handlers if h.get_name() == "airssys-web"]) == 1
    logger.info("once")
    assert [json.loads(line)["message"] for line in stream.getvalue().splitlines()] == ["once"]
    configure_logging("text", logger="airssys_web.test_configure", stream=stream)
    with pytest.raises(ValueError, match="json"):
        configure_logging("xml", logger="airssys_web.test_configure")
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
    logger.propagate = True
    assert logging_config("json", "info")["formatters"]["airssys"]["()"].endswith("JSONFormatter")


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """airssys-web's log as JSON lines, in a buffer (the package's logger; restored afterwards)."""
    stream = io.StringIO()
    logger = logging.getLogger("airssys_web")
    level, propagate = logger.level, logger.propagate
    handler = configure_logging("json", stream=stream)
    yield stream
    logger.removeHandler(handler)
    logger.setLevel(level)
    logger.propagate = propagate


def test_a_failing_request_logs_its_fields(tmp_path: Path, wat_guest: Callable[[str], bytes],
                                           uvicorn_server: Server, captured: io.StringIO) -> None:
    reg = tmp_path / "reg"
    with EmbeddedRegistry(reg) as registry:
        deploy(registry, "trap", wat_guest("trap"), version="1.0.0", route="/trap")
    with uvicorn_server(AirssysMiddleware(Starlette(), registry=reg)) as url:
        r = httpx.get(url + "/trap/x", headers={"x-request-id": "req-1"})
    assert r.status_code == 500
    lines = [json.loads(line) for line in captured.getvalue().splitlines()]
    failed = [line for line in lines if line.get("request_id") == "req-1"]
    assert failed, lines
    line = failed[0]
    assert line["level"] == "error" and line["logger"] == "airssys_web"
    assert (line["component"], line["version"], line["route"], line["status"]) == ("trap", "1.0.0", "/trap", 500)
    assert line["duration_ms"] >= 0 and "GuestTrap" in line["message"]


def test_serve_log_format_json(tmp_path: Path, wat_guest: Callable[[str], bytes]) -> None:
    """The whole server (uvicorn's lines too) logs JSON lines; a trap's line names its request."""
    reg = tmp_path / "reg"
    with EmbeddedRegistry(reg) as registry:
        deploy(registry, "hello", text_component("hi"), version="1.0.0", route="/hello")
        deploy(registry, "trap", wat_guest("trap"), version="1.0.0", route="/trap")
    port = find_free_port()
    env = {k: v for k, v in os.environ.items() if k != "AIRSSYS_SECRET"}
    proc = subprocess.Popen([sys.executable, "-c", "from airssys_web.cli import main; main()", "serve",
                             "--registry", str(reg), "--port", str(port), "--log-format", "json"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        def up() -> bool:
            try:
                return httpx.get(url + "/hello").status_code == 200
            except httpx.TransportError:
                return False

        wait_until(up, timeout=60, what="the server")
        request_id = httpx.get(url + "/trap").headers["x-request-id"]
    finally:
        stop_process(proc)
    assert proc.stderr is not None
    out = proc.stderr.read()
    lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert lines and all({"ts", "level", "logger", "message"} <= set(line) for line in lines)
    assert len(lines) == len([line for line in out.splitlines() if line.strip()]) - 1  # all but the banner
    trap = [line for line in lines if line.get("request_id") == request_id and line["level"] == "error"]
    assert trap and trap[0]["component"] == "trap" and trap[0]["status"] == 500
    access = [line for line in lines if line["logger"] == "uvicorn.access" and "/trap" in line["message"]]
    assert access and access[0]["status"] == 500
