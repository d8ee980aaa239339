"""The admin API behind a real uvicorn server on 127.0.0.1: auth, strategies, bad input, audit, and the
zero-failure guarantee under load."""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from support import text_component, wait_until

from airssys_web import AirssysHost, AirssysMiddleware, EmbeddedRegistry
from airssys_web.errors import (
    AirssysError,
    ArtifactError,
    AuthError,
    BuildError,
    InvalidComponent,
    NotFound,
    RegistryUnavailable,
    RouteConflict,
)
from airssys_web.lifecycle.api import DeployRequest, Plan, Serving
from airssys_web.lifecycle.remote import RemoteLifecycle
from airssys_web.lifecycle.settings import VersionSettings
from airssys_web.web.auth import TokenAuthority
from airssys_web.web.errors import error_payload

Server = Callable[..., AbstractContextManager[str]]
SECRET = "test-secret-" + "x" * 20
API = "/_airssys/api"


@dataclass
class Site:
    url: str
    app: AirssysMiddleware
    token: str
    reg_dir: Path

    @property
    def api(self) -> str:
        return self.url + API

    def http(self, token: str | None = None) -> httpx.Client:
        return httpx.Client(base_url=self.api, timeout=30,
                            headers={"authorization": f"Bearer {token or self.token}"})

    def client(self) -> RemoteLifecycle:
        return RemoteLifecycle(self.url, self.token, progress=False)

    def serving(self, path: str = "/hello") -> tuple[str, str]:
        r = httpx.get(self.url + path)
        return r.headers.get("x-airssys-version", ""), r.text


@pytest.fixture
def site(tmp_path: Path, uvicorn_server: Server) -> Iterator[Site]:
    app = AirssysMiddleware(Starlette(), registry=tmp_path / "reg", secret=SECRET, poll_interval=0.05,
                            max_upload=64 * 1024)
    token, _ = TokenAuthority(SECRET).mint("deploy", 3600)
    with uvicorn_server(app) as url:
        s = Site(url, app, token, tmp_path / "reg")
        with s.client() as client:
            client.deploy(DeployRequest("hello", text_component("v1"), version="1.0.0", route="/hello"))
        yield s


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# -- auth -----------------------------------------------------------------------------------------------------
def test_admin_api_is_off_without_a_secret(tmp_path: Path, uvicorn_server: Server, monkeypatch: pytest.MonkeyPatch,
                                           caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.delenv("AIRSSYS_SECRET", raising=False)
    with EmbeddedRegistry(tmp_path) as reg:
        reg.blobs.put(text_component("x"))
    app = AirssysMiddleware(Starlette(), registry=tmp_path)
    with caplog.at_level(logging.WARNING, logger="airssys_web"), uvicorn_server(app) as url:
        r = httpx.get(url + API + "/components", headers={"authorization": "Bearer anything"})
        assert r.status_code == 404 and r.json()["error"] == "not found"
        assert httpx.put(url + API + "/blobs/" + "0" * 64, content=b"x").status_code == 404
    assert any("admin API" in rec.getMessage() and "off" in rec.getMessage() for rec in caplog.records)


def test_missing_forged_expired_and_underscoped_tokens(site: Site) -> None:
    r = httpx.get(site.api + "/components")
    assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")
    assert set(r.json()) == {"error", "detail"}
    forged, _ = TokenAuthority("another-secret-" + "y" * 20).mint("deploy", 3600)
    with site.http(forged) as http:
        assert http.get("/components").status_code == 401
    expired, _ = TokenAuthority(SECRET, timer=lambda: time.time() - 7200).mint("deploy", 3600)
    with site.http(expired) as http:
        r = http.get("/components")
        assert r.status_code == 401 and "expired" in r.json()["detail"]
    read, read_info = TokenAuthority(SECRET).mint("read", 3600)
    with site.http(read) as http:
        assert http.get("/components").status_code == 200
        r = http.post("/components/hello/rollback")
        assert r.status_code == 403 and "scope 'read'" in r.json()["detail"]
        assert http.get("/token").json()["id"] == read_info.id
    assert site.serving() == ("hello@1.0.0", "v1")
    audit = site.client().audit()
    assert (audit[-1].token_id, audit[-1].action, audit[-1].outcome) == (read_info.id, "rollback", "denied")
    with pytest.raises(AuthError):
        RemoteLifecycle(site.url, forged).components()


# -- strategies -------------------------------------------------------------------------------------------------
def test_every_strategy_through_the_api_with_history_and_audit(site: Site) -> None:
    with site.client() as client:
        out = client.deploy(DeployRequest("hello", text_component("v2"), version="2.0.0",
                                          plan=Plan.parse("blue-green", probe="/hello/health")))
        assert out.serving == Serving("2.0.0", None, 0)
        assert site.serving() == ("hello@2.0.0", "v2")  # served when the call returned: no polling needed
        out = client.deploy(DeployRequest("hello", text_component("v3"), version="3.0.0",
                                          plan=Plan.parse("canary", percent=30)))
        assert out.deployment.canary_version == "3.0.0" and out.serving == Serving("2.0.0", "3.0.0", 30)
        out = client.promote("hello")
        assert out.serving == Serving("3.0.0") and site.serving() == ("hello@3.0.0", "v3")
        client.deploy(DeployRequest("hello", text_component("v4"), version="4.0.0",
                                    plan=Plan.parse("canary", percent=50)))
        out = client.rollback("hello")  # a canary goes back to 0 %
        assert out.serving == Serving("3.0.0", None, 0)
        out = client.rollback("hello", to_version="1.0.0")
        assert site.serving() == ("hello@1.0.0", "v1")
        history = client.history("hello")
        audit = client.audit()
    assert [(h.action, h.version, h.strategy) for h in history] == [
        ("deploy", "1.0.0", "immediate"), ("deploy", "2.0.0", "blue-green"), ("canary", "3.0.0", "canary"),
        ("promote", "3.0.0", "canary"), ("canary", "4.0.0", "canary"), ("rollback", "3.0.0", "canary"),
        ("rollback", "1.0.0", "immediate")]
    assert {h.actor for h in history} == {audit[0].token_id}
    actions = [(a.action, a.outcome) for a in audit if a.action != "upload"]
    assert actions == [("deploy", "ok")] * 3 + [("promote", "ok"), ("deploy", "ok"), ("rollback", "ok"),
                                                 ("rollback", "ok")]


def test_failed_probe_names_the_step_and_changes_nothing(site: Site) -> None:
    with site.client() as client, pytest.raises(Exception, match="step 'probe' failed: GET /hello/ok answered 500"):
        client.deploy(DeployRequest("hello", text_component("bad", status=500), version="2.0.0",
                                    plan=Plan.parse("blue-green", probe="/hello/ok")))
    assert site.serving() == ("hello@1.0.0", "v1")
    last = site.client().history("hello")[-1]
    assert (last.version, last.outcome) == ("2.0.0", "failed") and "probe" in last.detail


def test_canary_is_sticky_per_client_and_each_response_names_its_version(site: Site) -> None:
    bodies = {"hello@1.0.0": "v1", "hello@2.0.0": "v2"}
    with site.client() as client:
        client.deploy(DeployRequest("hello", text_component("v2"), version="2.0.0",
                                    plan=Plan.parse("canary", percent=50)))
    seen: set[str] = set()
    for _ in range(24):
        with httpx.Client(base_url=site.url) as browser:
            first = browser.get("/hello")
            assert "airssys_bucket" in first.headers["set-cookie"]
            again = [browser.get("/hello") for _ in range(3)]
        versions = {r.headers["x-airssys-version"] for r in [first, *again]}
        assert len(versions) == 1  # one client, one version
        assert all(bodies[r.headers["x-airssys-version"]] == r.text for r in [first, *again])
        assert all("set-cookie" not in r.headers for r in again)
        seen |= versions
    assert seen == set(bodies)  # 24 clients at 50 %: both versions seen (chance of failure 2 * 2**-24)
    forged = httpx.get(site.url + "/hello", cookies={"airssys_bucket": "0.forged"})
    assert "set-cookie" in forged.headers  # a forged bucket is replaced, not trusted


def test_rollback_restores_settings_without_recompiling(site: Site) -> None:
    with site.client() as client:
        client.deploy(DeployRequest("hello", text_component("v2"), version="2.0.0", settings=VersionSettings.from_json(
            {"limits": {"timeout": 2.5, "min_instances": 2}, "config": {"k": "v"}})))
        client.deploy(DeployRequest("hello", text_component("v3"), version="3.0.0"))
        compilations = site.app.host.artifacts.compilations
        client.rollback("hello", to_version="2.0.0")
    gen = site.app.host.generations()["hello"]
    assert (gen.version, gen.limits.timeout, gen.limits.min_instances, dict(gen.ctx.config)) == (
        "2.0.0", 2.5, 2, {"k": "v"})
    assert site.app.host.artifacts.compilations == compilations
    assert site.serving() == ("hello@2.0.0", "v2")


def test_durations_in_the_api_take_units(site: Site) -> None:
    with site.client() as client:
        out = client.deploy(DeployRequest("hello", text_component("v2"), version="2.0.0",
                                          plan=Plan.parse(auto_rollback="window=1m"),
                                          settings=VersionSettings.of(timeout="2500ms")))
    assert out.deployment.to_json()["settings"]["limits"] == {"timeout": 2.5}  # stored in seconds
    assert out.deployment.auto_rollback == "error-rate=5%,window=1m,min-requests=20"
    assert site.app.host.generations()["hello"].limits.timeout == 2.5


# -- bad input --------------------------------------------------------------------------------------------------
def _upload(http: httpx.Client, data: bytes) -> httpx.Response:
    return http.put(f"/blobs/{_sha(data)}", content=data)


@pytest.mark.parametrize(("case", "status", "needle"), [
    ("not wasm", 422, "not a WebAssembly file"),
    ("digest mismatch", 400, "sha256"),
    ("too large", 413, "cap"),
    ("bad sha", 400, "sha256"),
    ("wrong world", 422, "does not export"),
    ("bad version", 400, "invalid version"),
    ("unknown blob", 404, "blob"),
    ("unknown component rollback", 404, "no component"),
    ("missing version rollback", 404, "has no version 9.9.9"),
    ("unknown component promote", 404, "no component"),
    ("no canary to promote", 404, "no canary"),
    ("bad json", 400, "JSON"),
    ("unknown field", 400, "unknown field"),
    ("bad strategy", 422, "unknown strategy"),
    ("bad percent", 422, "percent"),
    ("bad policy", 400, "auto-rollback"),
    ("bad limits", 400, "timeout"),
    ("existing version, other content", 409, "immutable"),
    ("reserved route", 400, "invalid route '/_airssys/api/x': /_airssys and everything below it is reserved"),
    ("nested route", 409, "route /hello/sub is inside /hello, owned by hello; it would take /hello/sub and "
                          "everything below it away from hello; pass --nested to allow it"),
    ("bad nested", 400, "\"nested\" must be true or false"),
])
def test_bad_input_is_a_4xx_json_error_and_changes_nothing(site: Site, wat_guest: Callable[[str], bytes], case: str,
                                                           status: int, needle: str) -> None:
    good = text_component("v2")
    with site.http() as http:
        assert _upload(http, good).status_code == 201

        def deploy(**body: object) -> httpx.Response:
            return http.post("/components/hello/deploy", json={"version": "2.0.0", "sha256": _sha(good)} | body)

        requests: dict[str, Callable[[], httpx.Response]] = {
            "not wasm": lambda: _upload(http, b"<html>not wasm</html>"),
            "digest mismatch": lambda: http.put(f"/blobs/{_sha(b'other')}", content=good),
            "too large": lambda: _upload(http, b"\x00asm" + bytes(64 * 1024)),
            "bad sha": lambda: http.put("/blobs/XYZ", content=good),
            "wrong world": lambda: (_upload(http, wat_guest("wrong_world")), deploy(
                sha256=_sha(wat_guest("wrong_world"))))[1],
            "bad version": lambda: deploy(version="v2"),
            "unknown blob": lambda: deploy(sha256="a" * 64),
            "unknown component rollback": lambda: http.post("/components/nope/rollback"),
            "missing version rollback": lambda: http.post("/components/hello/rollback", json={"to_version": "9.9.9"}),
            "unknown component promote": lambda: http.post("/components/nope/promote"),
            "no canary to promote": lambda: http.post("/components/hello/promote"),
            "bad json": lambda: http.post("/components/hello/deploy", content=b"{nope"),
            "unknown field": lambda: deploy(colour="red"),
            "bad strategy": lambda: deploy(strategy="yolo"),
            "bad percent": lambda: deploy(strategy="canary", percent=0),
            "bad policy": lambda: deploy(auto_rollback="error-rate=lots"),
            "bad limits": lambda: deploy(settings={"limits": {"timeout": -1}}),
            "existing version, other content": lambda: deploy(version="1.0.0"),
            "reserved route": lambda: deploy(route="/_airssys/api/x"),
            "nested route": lambda: http.post("/components/sub/deploy", json={
                "version": "1.0.0", "sha256": _sha(good), "route": "/hello/sub"}),
            "bad nested": lambda: deploy(nested="yes"),
        }
        r = requests[case]()
        assert r.status_code == status, r.text
        payload = r.json()
        assert set(payload) == {"error", "detail"} and needle in payload["detail"], payload
        assert "\n" not in payload["detail"]
    assert site.serving() == ("hello@1.0.0", "v1")
    assert site.app.host.generations()["hello"].version == "1.0.0"
    assert [c.component.name for c in site.client().components()] == ["hello"]


async def _users(request: Request) -> PlainTextResponse:
    return PlainTextResponse("the app's users page")


def test_a_nested_route_through_the_api_and_the_shadow_warning(tmp_path: Path, uvicorn_server: Server,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    inner = Starlette(routes=[Route("/adm/users", _users)])
    inner.add_middleware(AirssysMiddleware, registry=tmp_path / "reg", secret=SECRET)
    token, _ = TokenAuthority(SECRET).mint("deploy", 3600)
    with caplog.at_level(logging.WARNING, logger="airssys_web"), uvicorn_server(inner) as url, \
            RemoteLifecycle(url, token, progress=False) as client:
        out = client.deploy(DeployRequest("adm", text_component("adm"), version="1.0.0", route="/adm"))
        assert out.warnings == (
            "route /adm of component adm shadows the app's own route /adm/users: requests there now go to adm; "
            "deploy it at another route if that is not intended",)
        assert httpx.get(url + "/adm/users").text == "adm"  # the component serves it all the same
        with pytest.raises(RouteConflict, match="route /adm/sub is inside /adm, owned by adm"):
            client.deploy(DeployRequest("sub", text_component("sub"), version="1.0.0", route="/adm/sub"))
        assert [c.component.name for c in client.components()] == ["adm"]
        out = client.deploy(DeployRequest("sub", text_component("sub"), version="1.0.0", route="/adm/sub",
                                          nested=True))
        assert out.deployment.nested is True and out.warnings == ()
        assert client.component("sub").component.nested and not client.component("adm").component.nested
        assert httpx.get(url + "/adm/sub/x").text == "sub" and httpx.get(url + "/adm/x").text == "adm"
    logged = [r.getMessage() for r in caplog.records if "shadows the app's own route" in r.getMessage()]
    assert len(logged) == 1 and logged[0].startswith("route /adm of component adm shadows the app's own route")


class _Arrived(logging.Handler):
    """Sets ``event`` when a record containing ``needle`` is logged (waiting on the server without sleeping)."""

    def __init__(self, needle: str) -> None:
        super().__init__()
        self.needle, self.event, self.records = needle, threading.Event(), list[logging.LogRecord]()

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        if self.needle in record.getMessage():
            self.event.set()


def test_a_client_that_hangs_up_mid_upload_is_no_server_error(site: Site) -> None:
    data = text_component("never complete") + bytes(20_000)
    sha = _sha(data)
    arrived = _Arrived("disconnected")
    logger = logging.getLogger("airssys_web.web.admin")
    logger.addHandler(arrived)
    try:
        host, port = site.url.removeprefix("http://").rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=30) as sock:
            sock.sendall(f"PUT {API}/blobs/{sha} HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {site.token}\r\n"
                         f"Content-Type: application/wasm\r\nContent-Length: {len(data)}\r\n\r\n".encode())
            sock.sendall(data[:1000])
        assert arrived.event.wait(30), [r.getMessage() for r in arrived.records]
    finally:
        logger.removeHandler(arrived)
    (record,) = [r for r in arrived.records if "disconnected" in r.getMessage()]
    assert record.levelno == logging.WARNING and record.exc_info is None
    assert record.getMessage() == (f"admin API: PUT {API}/blobs/{sha}: the client disconnected after sending 1000 of "
                                   f"{len(data)} bytes of blob {sha[:12]}; nothing was stored")
    assert not any(r.levelno >= logging.ERROR for r in arrived.records)
    assert site.app.host.registry.blobs.size(sha) is None
    last = site.client().audit()[-1]
    assert (last.action, last.target, last.outcome) == ("upload", sha, "aborted")


def test_client_maps_errors_to_the_exception_tree(site: Site) -> None:
    with site.client() as client:
        with pytest.raises(NotFound):
            client.rollback("nope")
        with pytest.raises(InvalidComponent):
            client.deploy(DeployRequest("hello", b"\x00asm\x0d\x00\x01\x00junk", version="2.0.0"))
    with pytest.raises(AuthError, match="no admin token"):
        RemoteLifecycle(site.url, None)


@pytest.mark.parametrize(("error", "status", "body"), [
    (RegistryUnavailable("the registry is not answering"), 503,
     {"error": "registry unavailable", "detail": "the registry is not answering"}),
    (BuildError("cargo failed"), 422, {"error": "build failed", "detail": "cargo failed"}),
    (ArtifactError("/var/cache/x.cwasm is corrupt"), 500,
     {"error": "internal error", "detail": "ArtifactError: see the server log"}),
    (ValueError("a bug"), 500, {"error": "internal error", "detail": "ValueError: see the server log"}),
], ids=["passing", "public", "private", "bug"])
def test_errors_are_rendered_by_their_class_as_everywhere(site: Site, monkeypatch: pytest.MonkeyPatch,
                                                         error: Exception, status: int, body: dict[str, str]) -> None:
    """The admin API answers through the one renderer (web/errors.py): status, reason and Retry-After from the
    error's class, and always a detail (the message only where the class is public)."""

    def fail() -> None:
        raise error

    monkeypatch.setattr(site.app.host.metrics, "samples", fail)
    with site.http() as http:
        r = http.get("/metrics")
    assert (r.status_code, r.json()) == (status, body)
    assert r.headers["content-type"] == "application/json"
    assert r.headers.get("retry-after") == ("1" if isinstance(error, RegistryUnavailable) else None)
    if isinstance(error, AirssysError) and error.public:
        assert json.loads(error_payload(error)) == body  # the middleware's answer for the same error


# -- concurrency, persistence, auto-rollback -----------------------------------------------------------------------
def test_two_deploys_at_once_are_serialized_or_refused(site: Site) -> None:
    blobs = {f"2.{i}.0": text_component(f"c{i}") for i in range(4)}
    with site.http() as http:
        for data in blobs.values():
            assert _upload(http, data).status_code == 201
    results: list[int] = []
    barrier = threading.Barrier(len(blobs))

    def go(version: str) -> None:
        with site.http() as http:
            barrier.wait()
            r = http.post("/components/hello/deploy", json={"version": version, "sha256": _sha(blobs[version])})
            results.append(r.status_code)
            assert r.status_code in (200, 409), r.text
            if r.status_code == 409:
                assert "in progress" in r.json()["detail"]

    threads = [threading.Thread(target=go, args=(v,)) for v in blobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert 200 in results
    history = site.client().history("hello")
    deployed = [h for h in history if h.outcome == "ok"]
    assert [h.id for h in history] == sorted(h.id for h in history)
    for before, after in itertools.pairwise(deployed):
        assert after.previous_version == before.version  # linear: each change starts where the last ended
    assert site.serving()[0] == f"hello@{deployed[-1].version}"


def test_restart_keeps_versions_splits_and_history_without_compiling(site: Site) -> None:
    with site.client() as client:
        client.deploy(DeployRequest("hello", text_component("v2"), version="2.0.0",
                                    plan=Plan.parse("canary", percent=25)))
        history = client.history("hello")
    with AirssysHost(site.reg_dir) as host:
        assert host.artifacts.compilations == 0
        assert host.serving("hello") == ("1.0.0", "2.0.0", 25)
        assert host.registry.history("hello") == history  # the same records, locally and over the API


def test_auto_rollback_undoes_a_failing_version_by_itself(site: Site) -> None:
    with site.client() as client:
        client.deploy(DeployRequest("hello", text_component("broken", status=503), version="2.0.0",
                                    plan=Plan.parse(auto_rollback="error-rate=10%,window=30s,min-requests=5")))
    wait_until(lambda: site.serving()[0] == "hello@1.0.0", 20, "the auto-rollback")  # a bound on the watcher
    last = site.client().history("hello")[-1]
    assert (last.action, last.actor, last.version) == ("rollback", "auto-rollback", "1.0.0")
    assert "requests failed" in last.detail and "error-rate=10%" in last.detail


def test_zero_failed_requests_during_20_updates_and_rollbacks(site: Site) -> None:
    """The issue's guarantee: concurrent clients, 20 alternating update/rollback calls through the admin API."""
    bodies = {"1.0.0": "v1"}
    stop = threading.Event()
    results: list[tuple[int, str, str]] = []
    errors: list[str] = []

    def load() -> None:
        with httpx.Client(base_url=site.url, timeout=10) as browser:
            while not stop.is_set():
                try:
                    r = browser.get("/hello/x")
                    results.append((r.status_code, r.headers.get("x-airssys-version", ""), r.text))
                except httpx.HTTPError as e:
                    errors.append(repr(e))

    clients = [threading.Thread(target=load) for _ in range(4)]
    for t in clients:
        t.start()
    expected = "1.0.0"
    try:
        with site.client() as admin:
            for i in range(1, 11):
                version = f"1.{i}.0"
                bodies[version] = f"body {i}"
                out = admin.deploy(DeployRequest("hello", text_component(bodies[version]), version=version,
                                                 plan=Plan.parse("blue-green" if i % 2 else "immediate")))
                assert out.serving is not None and out.serving.active == version
                back = admin.rollback("hello").serving
                assert back is not None and back.active is not None
                expected = back.active
                assert expected == "1.0.0"  # each rollback undoes the update before it
    finally:
        stop.set()
        for t in clients:
            t.join()
    assert errors == []
    assert len(results) > 20
    bad = [r for r in results if r[0] != 200 or bodies.get(r[1].removeprefix("hello@")) != r[2]]
    assert bad == [], bad[:5]
    assert site.serving() == (f"hello@{expected}", bodies[expected])
    assert len({r[1] for r in results}) >= 2
