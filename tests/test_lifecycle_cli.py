"""The lifecycle CLI on a registry directory and against a server (--server), and crash safety with a real server
process killed with SIGKILL in the middle of an upload and of a switch."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from conftest import find_free_port
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from support import text_component, wait_until, write_wasm

from airssys_web import AirssysMiddleware, EmbeddedRegistry
from airssys_web.cli import cli
from airssys_web.lifecycle.api import DeployRequest
from airssys_web.lifecycle.remote import RemoteLifecycle
from airssys_web.lifecycle.settings import VersionSettings
from airssys_web.web.auth import TokenAuthority

Server = Callable[..., AbstractContextManager[str]]
SECRET = "cli-test-secret-" + "z" * 20


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def _ok(runner: CliRunner, *args: str, env: dict[str, str] | None = None) -> str:
    """stdout of a successful command (what --json output is parsed from)."""
    r = runner.invoke(cli, list(args), env=env)
    assert r.exit_code == 0, r.output
    return r.stdout


def _err(runner: CliRunner, *args: str, env: dict[str, str] | None = None) -> str:
    """The one line a refused command writes to stderr (exit code 2)."""
    r = runner.invoke(cli, list(args), env=env)
    assert r.exit_code == 2, r.output
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), r.output
    return lines[0]


# -- on a registry directory --------------------------------------------------------------------------------------
def test_update_promote_rollback_history_status_on_a_registry(runner: CliRunner, tmp_path: Path) -> None:
    reg = str(tmp_path / "reg")
    v1, v2, v3 = (write_wasm(tmp_path, f"v{i}.wasm", text_component(f"v{i}")) for i in (1, 2, 3))
    _ok(runner, "deploy", "hello", str(v1), "--route", "/hello", "--version", "1.0.0", "--registry", reg)
    out = _ok(runner, "update", "hello", str(v2), "--version", "2.0.0", "--strategy", "blue-green",
              "--probe", "/hello/ping", "--registry", reg)
    assert "deployed hello@2.0.0 at /hello" in out
    out = _ok(runner, "update", "hello", str(v3), "--version", "3.0.0", "--strategy", "canary", "--percent", "20",
              "--auto-rollback", "error-rate=5%,window=30s,min-requests=20", "--registry", reg, "--json")
    result = json.loads(out)
    dep = result["deployment"]
    assert (dep["active_version"], dep["canary_version"], dep["canary_percent"]) == ("2.0.0", "3.0.0", 20)
    assert result["serving"] is None and result["warnings"] == []  # no server took part
    assert "canary hello@3.0.0 serves 20%" in _ok(runner, "status", "--registry", reg)
    promoted = json.loads(_ok(runner, "promote", "hello", "--registry", reg, "--json"))
    assert promoted["deployment"]["active_version"] == "3.0.0"
    assert "rolled back to hello@2.0.0" in _ok(runner, "rollback", "hello", "--registry", reg)
    assert json.loads(_ok(runner, "rollback", "hello", "--to-version", "1.0.0", "--registry", reg,
                          "--json"))["deployment"]["active_version"] == "1.0.0"
    history = json.loads(_ok(runner, "history", "hello", "--registry", reg, "--json"))
    assert [(h["action"], h["version"]) for h in history] == [
        ("deploy", "1.0.0"), ("deploy", "2.0.0"), ("canary", "3.0.0"), ("promote", "3.0.0"),
        ("rollback", "2.0.0"), ("rollback", "1.0.0")]
    assert all(h["actor"].startswith("cli") for h in history)
    table = _ok(runner, "history", "hello", "--registry", reg, env={"COLUMNS": "200"})
    assert "blue-green" in table and "promote" in table
    status = json.loads(_ok(runner, "status", "--registry", reg, "--json"))
    assert status[0]["deployment"]["active_version"] == "1.0.0" and status[0]["deployment"]["canary_version"] is None


@pytest.mark.parametrize(("args", "needle"), [
    (["update", "hello", "{v2}", "--version", "2.0.0", "--strategy", "canary", "--percent", "0"], "percent"),
    (["update", "hello", "{v2}", "--version", "2.0.0", "--probe", "/x"], "--probe needs"),
    (["update", "hello", "{v2}", "--version", "2.0.0", "--auto-rollback", "error-rate"], "auto-rollback"),
    (["update", "hello", "{bad}", "--version", "2.0.0", "--strategy", "blue-green", "--probe", "/hello"],
     "step 'probe' failed"),
    (["update", "nope", "{v2}", "--version", "2.0.0"], "give it a route"),
    (["promote", "hello"], "no canary"),
    (["rollback", "hello", "--to-version", "9.9.9"], "no version 9.9.9"),
    (["rollback", "nope"], "no component"),
    (["history", "nope"], "no component"),
    (["update", "hello", "{v2}", "--version", "2.0.0", "--server", "http://127.0.0.1:9"], "--registry or --server"),
])
def test_lifecycle_errors_are_one_line(runner: CliRunner, tmp_path: Path, args: list[str], needle: str) -> None:
    reg = str(tmp_path / "reg")
    files = {"v1": write_wasm(tmp_path, "v1.wasm", text_component("v1")),
             "v2": write_wasm(tmp_path, "v2.wasm", text_component("v2")),
             "bad": write_wasm(tmp_path, "bad.wasm", text_component("bad", status=500))}
    _ok(runner, "deploy", "hello", str(files["v1"]), "--route", "/hello", "--version", "1.0.0", "--registry", reg)
    line = _err(runner, *[a.format(**{k: str(v) for k, v in files.items()}) for a in args], "--registry", reg)
    assert needle in line
    with EmbeddedRegistry(reg) as r:
        assert r.get_deployment("hello").active_version == "1.0.0"


def test_history_and_list_print_whole_rows_off_a_terminal(runner: CliRunner, tmp_path: Path) -> None:
    """CliRunner's output is not a terminal, like a pipe: no row may be folded to the 80 columns rich assumes."""
    reg = str(tmp_path / "reg")
    v1 = write_wasm(tmp_path, "v1.wasm", text_component("v1"))
    v2 = write_wasm(tmp_path, "v2.wasm", text_component("bad", status=500))
    _ok(runner, "deploy", "hello", str(v1), "--route", "/hello", "--version", "1.0.0", "--registry", reg)
    _err(runner, "update", "hello", str(v2), "--version", "2.0.0", "--strategy", "blue-green", "--probe", "/hello/ok",
         "--registry", reg)
    rows = _ok(runner, "history", "hello", "--registry", reg, env={"COLUMNS": "80"}).splitlines()
    assert len(rows) == 3 and rows[0].split()[-1] == "detail"  # a header and one line per change
    assert rows[2].endswith("blue-green step 'probe' failed: GET /hello/ok answered 500, not 2xx; nothing changed")
    assert all(row == row.rstrip() for row in rows)
    listed = _ok(runner, "list", "--registry", reg).splitlines()
    cells = [[cell.strip() for cell in row.split("│")[1:-1]] for row in listed if "/hello" in row]
    assert cells == [["hello", "/hello", "1.0.0", "1.0.0", "none"]]  # one line: no cell folded


NESTED_REFUSAL = ("route /adm/sub is inside /adm, owned by adm; it would take /adm/sub and everything below it away "
                  'from adm; pass --nested to allow it (Python: allow_nested=True; admin API: "nested": true)')


@pytest.mark.parametrize("strategy", ["immediate", "blue-green"])
def test_a_nested_route_needs_nested_on_a_registry(runner: CliRunner, tmp_path: Path, strategy: str) -> None:
    reg = str(tmp_path / "reg")
    v1, v2, v3 = (write_wasm(tmp_path, f"v{i}.wasm", text_component(f"v{i}")) for i in (1, 2, 3))
    _ok(runner, "deploy", "adm", str(v1), "--route", "/adm", "--version", "1.0.0", "--registry", reg)
    with EmbeddedRegistry(reg) as r:
        before = (r.change_token(), r.components(), r.history())
    line = _err(runner, "deploy", "sub", str(v2), "--route", "/adm/sub", "--version", "1.0.0", "--strategy", strategy,
                "--registry", reg)
    assert line == f"error: {NESTED_REFUSAL}"
    with EmbeddedRegistry(reg) as r:
        assert (r.change_token(), r.components(), r.history()) == before  # a refused deploy changes nothing
    out = json.loads(_ok(runner, "deploy", "sub", str(v2), "--route", "/adm/sub", "--nested", "--version", "1.0.0",
                         "--strategy", strategy, "--registry", reg, "--json"))
    assert (out["deployment"]["route"], out["deployment"]["nested"]) == ("/adm/sub", True)
    listed = {row["component"]: row for row in json.loads(_ok(runner, "list", "--registry", reg, "--json"))}
    assert (listed["adm"]["nested"], listed["sub"]["nested"]) == (False, True)
    assert "/adm/sub (nested)" in _ok(runner, "list", "--registry", reg, env={"COLUMNS": "200"})
    assert "serving sub@1.0.0 at /adm/sub (nested)" in _ok(runner, "status", "--registry", reg)
    line = _err(runner, "update", "sub", str(v3), "--route", "/adm/other", "--version", "1.1.0", "--registry", reg)
    assert "route /adm/other is inside /adm, owned by adm" in line and "pass --nested" in line
    _ok(runner, "deploy", "deep", str(v1), "--route", "/x/y", "--version", "1.0.0", "--registry", reg)
    line = _err(runner, "update", "adm", str(v3), "--route", "/x", "--version", "1.1.0", "--registry", reg)
    assert line.startswith("error: route /x contains /x/y, owned by deep; deep would keep /x/y")


def test_token_command(runner: CliRunner, tmp_path: Path) -> None:
    bearer = _ok(runner, "token", "--scope", "deploy", "--ttl", "1h", env={"AIRSSYS_SECRET": SECRET}).strip()
    token = TokenAuthority(SECRET).verify(bearer)
    assert token.scope == "deploy" and 3599 <= token.expires_at - token.issued_at <= 3600
    secret_file = tmp_path / "secret"
    secret_file.write_text(SECRET)
    out = json.loads(_ok(runner, "token", "--secret-file", str(secret_file), "--json", env={"AIRSSYS_SECRET": ""}))
    assert out["scope"] == "read" and TokenAuthority(SECRET).verify(out["token"]).id == out["id"]
    assert "no secret" in _err(runner, "token", env={"AIRSSYS_SECRET": ""})
    assert "at least 16" in _err(runner, "token", env={"AIRSSYS_SECRET": "short"})
    assert "invalid --ttl" in _err(runner, "token", "--ttl", "forever", env={"AIRSSYS_SECRET": SECRET})


# -- against a server -----------------------------------------------------------------------------------------------
def test_every_command_through_a_server(runner: CliRunner, tmp_path: Path, uvicorn_server: Server) -> None:
    app = AirssysMiddleware(Starlette(), registry=tmp_path / "reg", secret=SECRET)
    token, _ = TokenAuthority(SECRET).mint("deploy", 600)
    v1, v2 = (write_wasm(tmp_path, f"v{i}.wasm", text_component(f"v{i}")) for i in (1, 2))
    with uvicorn_server(app) as url:
        env = {"AIRSSYS_TOKEN": token}
        remote = ["--server", url]
        _ok(runner, "deploy", "hello", str(v1), "--route", "/hello", "--version", "1.0.0", *remote, env=env)
        assert httpx.get(url + "/hello").text == "v1"
        out = json.loads(_ok(runner, "update", "hello", str(v2), "--version", "2.0.0", "--strategy", "canary",
                             "--percent", "100", *remote, "--json", env=env))
        assert out["serving"] == {"active": "1.0.0", "canary": "2.0.0", "canary_percent": 100}
        assert out["deployment"]["canary_version"] == "2.0.0" and out["warnings"] == []
        assert httpx.get(url + "/hello").text == "v2"
        assert "serves 100%" in _ok(runner, "status", *remote, env=env)
        _ok(runner, "promote", "hello", *remote, env=env)
        listed = json.loads(_ok(runner, "list", *remote, "--json", env=env))
        assert [(c["component"], c["route"], c["nested"], c["active_version"], [v["version"] for v in c["versions"]])
                for c in listed] == [("hello", "/hello", False, "2.0.0", ["1.0.0", "2.0.0"])]
        assert listed[0]["serving"] == {"active": "2.0.0", "canary": None, "canary_percent": 0}
        local = json.loads(_ok(runner, "list", "--registry", str(tmp_path / "reg"), "--json"))
        assert [{**c, "serving": None} for c in listed] == local  # one shape: the server adds what it serves
        _ok(runner, "rollback", "hello", *remote, "--token", token)
        assert httpx.get(url + "/hello").headers["x-airssys-version"] == "hello@1.0.0"
        history = json.loads(_ok(runner, "history", "hello", *remote, "--json", env=env))
        assert [h["action"] for h in history] == ["deploy", "canary", "promote", "rollback"]
        assert "no admin token" in _err(runner, "status", *remote, env={"AIRSSYS_TOKEN": ""})
        assert "invalid token" in _err(runner, "status", *remote, "--token", "forged")
        assert "has no version 7.0.0" in _err(runner, "rollback", "hello", "--to-version", "7.0.0", *remote, env=env)
    assert "cannot reach the server" in _err(runner, "status", *remote, env=env)


async def _users(request: Request) -> PlainTextResponse:
    return PlainTextResponse("the app's users page")


def test_deploy_through_a_server_prints_the_shadow_warning_and_takes_nested(runner: CliRunner, tmp_path: Path,
                                                                            uvicorn_server: Server) -> None:
    app = AirssysMiddleware(Starlette(routes=[Route("/adm/users", _users)]), registry=tmp_path / "reg", secret=SECRET)
    token, _ = TokenAuthority(SECRET).mint("deploy", 600)
    v1, v2 = (write_wasm(tmp_path, f"v{i}.wasm", text_component(f"v{i}")) for i in (1, 2))
    with uvicorn_server(app) as url:
        env = {"AIRSSYS_TOKEN": token}
        r = runner.invoke(cli, ["deploy", "adm", str(v1), "--route", "/adm", "--version", "1.0.0", "--server", url],
                          env=env)
        assert r.exit_code == 0, r.output
        assert r.stderr.startswith("warning: route /adm of component adm shadows the app's own route /adm/users: ")
        assert "deployed adm@1.0.0 at /adm" in r.stdout
        line = _err(runner, "deploy", "sub", str(v2), "--route", "/adm/sub", "--version", "1.0.0", "--server", url,
                    env=env)
        assert line == f"error: {NESTED_REFUSAL}"  # the same words as on a registry directory
        out = _ok(runner, "deploy", "sub", str(v2), "--route", "/adm/sub", "--nested", "--version", "1.0.0",
                  "--server", url, env=env)
        assert "deployed sub@1.0.0 at /adm/sub (nested)" in out
        assert "/adm/sub (nested)" in _ok(runner, "status", "--server", url, env=env)


# -- crash safety with a real server process ------------------------------------------------------------------------
@contextmanager
def server_process(reg: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    port = find_free_port()
    env = os.environ | {"AIRSSYS_SECRET": SECRET, "PYTHONWARNINGS": "ignore"}
    proc = subprocess.Popen([sys.executable, "-m", "airssys_web.cli", "serve", "--registry", str(reg), "--port",
                             str(port), "--log-level", "warning"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        def answers() -> bool:
            assert proc.poll() is None, "the server exited during start-up"
            try:
                httpx.get(url + "/", timeout=1)
            except httpx.TransportError:
                return False
            return True

        wait_until(answers, 60, "the server's start-up")  # a bound on start-up, not a speed assertion
        yield url, proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def _consistent(reg: Path) -> str:
    """After a crash: the registry verifies and the version it names is the one a restarted server serves."""
    with EmbeddedRegistry(reg) as r:
        assert r.verify() == []
        active = r.get_deployment("hello").active_version
    with server_process(reg) as (url, _):
        assert httpx.get(url + "/hello").headers["x-airssys-version"] == f"hello@{active}"
    return active


def test_kill_9_mid_upload_leaves_the_old_version(tmp_path: Path) -> None:
    reg = tmp_path / "reg"
    token, _ = TokenAuthority(SECRET).mint("deploy", 600)
    big = text_component("new")  # a valid component; its upload is stalled half way below
    with server_process(reg) as (url, proc):
        with RemoteLifecycle(url, token, progress=False) as client:
            client.deploy(DeployRequest("hello", text_component("old"), version="1.0.0", route="/hello"))
        sent_half = threading.Event()

        def body() -> Iterator[bytes]:
            yield big[: len(big) // 2]
            sent_half.set()
            time.sleep(30)  # the subject, not a wait: an upload stalled half way (the server dies first)
            yield big[len(big) // 2:]

        sha = hashlib.sha256(big).hexdigest()
        errors: list[Exception] = []

        def upload() -> None:
            try:
                httpx.put(f"{url}/_airssys/api/blobs/{sha}", content=body(), timeout=60,
                          headers={"authorization": f"Bearer {token}", "content-length": str(len(big))})
            except httpx.HTTPError as e:
                errors.append(e)

        t = threading.Thread(target=upload, daemon=True)
        t.start()
        # half the body is on the wire: whether the server has read it yet or not, a kill must store nothing
        assert sent_half.wait(10)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    with EmbeddedRegistry(reg) as r:
        assert r.blobs.size(sha) is None
    assert _consistent(reg) == "1.0.0"


def test_kill_9_mid_switch_leaves_old_or_new_never_half(tmp_path: Path) -> None:
    reg = tmp_path / "reg"
    token, _ = TokenAuthority(SECRET).mint("deploy", 600)
    seen: set[str] = set()
    for attempt, delay in enumerate((0.0, 0.05, 0.15)):
        with server_process(reg) as (url, proc):
            with RemoteLifecycle(url, token, progress=False) as client:
                if attempt == 0:
                    client.deploy(DeployRequest("hello", text_component("v0"), version="1.0.0", route="/hello"))
                wasm = text_component(f"v{attempt + 1}")
                client.upload(wasm)

                def deploy(version: str = f"2.{attempt}.0", data: bytes = wasm) -> None:
                    try:
                        with RemoteLifecycle(url, token, progress=False) as c:
                            # many instances to warm make the switch long enough to be interrupted
                            c.deploy(DeployRequest("hello", data, version=version,
                                                   settings=VersionSettings.of(min_instances=64, max_instances=64)))
                    except Exception:
                        pass

                t = threading.Thread(target=deploy, daemon=True)
                t.start()
                time.sleep(delay)  # the subject, not a wait: kill at a different point of the switch each time
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                t.join(10)
        seen.add(_consistent(reg))
    assert seen <= {"1.0.0", "2.0.0", "2.1.0", "2.2.0"}
