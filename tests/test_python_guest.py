"""A componentize-py guest served for real: request fields, config, denied imports, trap containment, logging."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from support import text_component

from airssys_web import AirssysMiddleware, EmbeddedRegistry, deploy
from airssys_web.lifecycle.settings import VersionSettings

Server = Callable[..., AbstractContextManager[str]]


@pytest.fixture(scope="module")
def registry_dir(tmp_path_factory: pytest.TempPathFactory, py_echo_wasm: bytes) -> Path:
    reg_dir = tmp_path_factory.mktemp("pyreg")
    with EmbeddedRegistry(reg_dir) as reg:
        deploy(reg, "py", py_echo_wasm, version="1.0.0", route="/py",
               settings=VersionSettings.from_json({"config": {"greeting": "hej"}}))
        deploy(reg, "other", text_component("still here"), version="1.0.0", route="/other")
    return reg_dir


@pytest.fixture
def url(registry_dir: Path, uvicorn_server: Server) -> Iterator[str]:
    with uvicorn_server(AirssysMiddleware(Starlette(), registry=registry_dir)) as base:
        yield base


def test_request_fields_and_config(url: str) -> None:
    r = httpx.post(url + "/py/items/7?a=1&b=%20", content=b"12345", headers={"X-Thing": "Yes"})
    assert r.status_code == 200 and r.headers["x-airssys-version"] == "py@1.0.0"
    doc = json.loads(r.content)
    assert (doc["method"], doc["path"], doc["query"], doc["body_length"]) == ("POST", "/py/items/7", "a=1&b=%20", 5)
    assert ["x-thing", "Yes"] in doc["headers"]  # names lower-case, values as sent
    assert doc["greeting"] == "hej"


def test_fetch_and_kv_are_refused_cleanly(url: str) -> None:
    assert httpx.get(url + "/py/fetch").text.startswith("denied: ")
    assert httpx.get(url + "/py/kv").text.startswith("kv not granted")


def test_exception_traps_instance_and_is_contained(url: str, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="airssys_web"):
        r = httpx.get(url + "/py/boom")
    assert r.status_code == 500
    assert "boom requested" not in r.text
    request_id = r.json()["request_id"]
    assert any(request_id in rec.getMessage() for rec in caplog.records)
    # the guest's traceback (its stderr) reaches Python logging, tagged with the component
    assert any("py@1.0.0" in rec.getMessage() and "boom requested" in rec.getMessage() for rec in caplog.records)
    # the trapped instance was replaced: the route and the others keep serving
    for _ in range(3):
        assert httpx.get(url + "/py/ok").status_code == 200
    assert httpx.get(url + "/other").text == "still here"
