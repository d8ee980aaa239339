"""RemoteLifecycle against a stand-in admin API (httpx.MockTransport): what it sends, and how it reads answers and
errors. Against a real server it is exercised by test_admin.py and test_lifecycle_cli.py."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import UTC, datetime

import httpx
import pytest

from airssys_web.capabilities.grants import Capability
from airssys_web.errors import AirssysError, AuthError, Conflict, DeployError, NotFound
from airssys_web.lifecycle.api import Change, DeployRequest, Plan, Serving
from airssys_web.lifecycle.registry import Deployment
from airssys_web.lifecycle.remote import RemoteLifecycle, admin_base
from airssys_web.lifecycle.settings import VersionSettings

WASM = b"\0asm\x0d\x00\x01\x00remote"
DEPLOYMENT = Deployment("hello", "/hello", "1.0.0", hashlib.sha256(WASM).hexdigest(), "{}", None,
                        datetime(2024, 1, 1, tzinfo=UTC))


def remote(handler: Callable[[httpx.Request], httpx.Response]) -> RemoteLifecycle:
    return RemoteLifecycle("http://testserver", "tok", transport=httpx.MockTransport(handler), progress=False)


def test_admin_base_defaults_to_the_admin_prefix() -> None:
    assert admin_base("http://h:8000") == "http://h:8000/_airssys/api"
    assert admin_base("https://h/custom/api/") == "https://h/custom/api"
    with pytest.raises(AirssysError, match="give the server's URL"):
        admin_base("h:8000")
    with pytest.raises(AuthError, match="no admin token"):
        RemoteLifecycle("http://h", None)


def test_deploy_uploads_once_and_sends_the_request_as_json() -> None:
    seen: list[tuple[str, str, bytes]] = []

    def api(request: httpx.Request) -> httpx.Response:
        seen.append((request.method, request.url.path, request.content))
        if request.method == "GET":
            return httpx.Response(404, json={"error": "not found", "detail": "no blob"})
        if request.method == "PUT":
            return httpx.Response(201, json={"sha256": "x", "size": len(WASM)})
        return httpx.Response(200, json=Change(DEPLOYMENT, Serving("1.0.0")).to_json())

    settings = VersionSettings.of(Capability.secret("token", "v"), timeout=2)
    request = DeployRequest("hello", WASM, version="1.0.0", route="/hello", settings=settings,
                            plan=Plan.parse("canary", percent=5, auto_rollback="error-rate=5%"))
    with remote(api) as client:
        assert client.deploy(request) == Change(DEPLOYMENT, Serving("1.0.0"))
    sha = hashlib.sha256(WASM).hexdigest()
    assert [(m, p) for m, p, _ in seen] == [("GET", f"/_airssys/api/blobs/{sha}"),
                                            ("PUT", f"/_airssys/api/blobs/{sha}"),
                                            ("POST", "/_airssys/api/components/hello/deploy")]
    assert seen[1][2] == WASM
    assert json.loads(seen[2][2]) == {
        "version": "1.0.0", "sha256": sha, "strategy": "canary", "percent": 5, "route": "/hello",
        "auto_rollback": "error-rate=5%,window=30s,min-requests=20",
        "settings": {"limits": {"timeout": 2}, "secrets": {"token": "v"}}}  # the server stores a reference


@pytest.mark.parametrize(("status", "body", "error", "message"), [
    (404, {"error": "not found", "detail": "no component named 'x'"}, NotFound, "no component named 'x'"),
    (409, {"error": "conflict", "detail": "in progress"}, Conflict, "in progress"),
    (403, {"error": "forbidden", "detail": "scope 'read'"}, AuthError, "scope 'read'"),
    (422, {"error": "something new", "detail": "refused"}, DeployError, "refused"),
    (500, {"error": "internal error", "detail": "RuntimeError"}, AirssysError, r"server error \(500\)"),
    (404, "<html>nope</html>", AirssysError, "has no admin API"),
    (200, {"deployment": {"component": "x"}}, AirssysError, "unexpected shape"),
])
def test_answers_become_the_error_the_server_meant(status: int, body: object, error: type[Exception],
                                                    message: str) -> None:
    def api(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, json=body) if isinstance(body, dict) else httpx.Response(status, text=str(body))

    with remote(api) as client, pytest.raises(error, match=message):
        client.promote("x")


def test_an_unreachable_server_is_one_line() -> None:
    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused")

    with remote(down) as client, pytest.raises(AirssysError, match="cannot reach the server at http://testserver"):
        client.components()
