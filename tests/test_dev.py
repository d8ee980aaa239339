"""``airssys-web dev``: rebuild on save, hot-swap into a running server, never a failed request in between."""

from __future__ import annotations

import re
import shutil
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from starlette.applications import Starlette
from support import wait_until

from airssys_web import AirssysMiddleware, EmbeddedRegistry
from airssys_web.cli import cli
from airssys_web.guest.dev import Cycle, DevSession, dev_version
from airssys_web.guest.scaffold import scaffold
from airssys_web.lifecycle.local import LocalLifecycle
from airssys_web.lifecycle.registry import validate_version
from airssys_web.lifecycle.remote import RemoteLifecycle
from airssys_web.web.auth import TokenAuthority

Server = Callable[..., AbstractContextManager[str]]
BOUND = 60.0  # a generous bound for a change to show, not a speed assertion
SECRET = "dev-test-secret-" + "x" * 24


def edit_status(source: Path, lang: str, status: int) -> None:
    """Change the status the scaffolded component answers with (an edit a person would make and save)."""
    path = source / ("app.js" if lang == "js" else f"{source.name}.wat")
    text = path.read_text()
    if lang == "js":
        text = re.sub(r"(app\.get\(\"/\", \(\) => Response\.text\(`[^`]*`)(, \d+)?\)", rf"\1, {status})", text)
    else:
        text = re.sub(r"\(i32\.store16 \(i32\.const 256\) \(i32\.const \d+\)\)",
                      f"(i32.store16 (i32.const 256) (i32.const {status}))", text)
    path.write_text(text)


class Hammer:
    """Sends requests back to back from a thread and records every outcome (status, or the exception)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.outcomes: list[int | str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(timeout=10) as client:
            while not self._stop.is_set():
                try:
                    self.outcomes.append(client.get(self.url).status_code)
                except httpx.HTTPError as e:  # a failed request: recorded, and fails the test
                    self.outcomes.append(f"{type(e).__name__}: {e}")

    def __enter__(self) -> Hammer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(BOUND)

    def wait_for(self, status: int) -> None:
        """Wait until one of the last few answers is ``status`` (the new version is serving)."""
        wait_until(lambda: status in self.outcomes[-5:], BOUND, f"a {status} answer")

    def wait_for_more(self, count: int) -> list[int | str]:
        """The next ``count`` outcomes from now (waits until the hammer has recorded them)."""
        mark = len(self.outcomes)
        wait_until(lambda: len(self.outcomes) >= mark + count, BOUND, f"{count} more requests")
        return self.outcomes[mark:mark + count]


LANGS = [pytest.param("wat", id="wat"),
         pytest.param("js", id="js", marks=pytest.mark.skipif(shutil.which("npm") is None, reason="needs npm"))]


@pytest.mark.parametrize("lang", LANGS)
def test_saves_are_hot_swapped_with_no_failed_request(lang: str, tmp_path: Path, uvicorn_server: Server) -> None:
    source = scaffold(f"live-{lang}", lang, directory=tmp_path / f"live-{lang}").directory
    route = f"/live-{lang}"
    registry = tmp_path / "registry"
    session = DevSession(source, LocalLifecycle(registry), f"live-{lang}", route)
    cycles: list[Cycle] = []
    stop = threading.Event()
    watcher = threading.Thread(target=session.watch, args=(cycles.append,), kwargs={"stop": stop}, daemon=True)
    watcher.start()
    try:
        wait_until(lambda: len(cycles) >= 1, BOUND, "the first build")
        assert cycles[0].ok and cycles[0].deployed, cycles[0].error
        path = f"{route}/x" if lang == "wat" else route
        with uvicorn_server(AirssysMiddleware(Starlette(), registry=registry, poll_interval=0.05)) as url, \
                Hammer(url + path) as hammer:
            hammer.wait_for(200)
            edit_status(source, lang, 201)
            hammer.wait_for(201)
            broken = source / ("app.js" if lang == "js" else f"{source.name}.wat")
            good = broken.read_text()
            broken.write_text(good + "\n(((( this does not parse\n")
            wait_until(lambda: any(not c.ok for c in cycles), BOUND, "the failed build")
            failed = next(c for c in cycles if not c.ok)
            assert failed.error and failed.serving == cycles[-2].serving  # the last good version keeps serving
            assert set(hammer.wait_for_more(5)) == {201}
            broken.write_text(good)
            edit_status(source, lang, 202)
            hammer.wait_for(202)
        outcomes = hammer.outcomes
        assert all(isinstance(o, int) for o in outcomes), [o for o in outcomes if not isinstance(o, int)][:3]
        assert set(outcomes) <= {200, 201, 202} and outcomes == sorted(outcomes)  # each save replaced the last
    finally:
        stop.set()
        watcher.join(BOUND)
        session.target.close()
    with EmbeddedRegistry(registry) as reg:
        versions = [v.version for v in reg.versions(f"live-{lang}")]
    assert len(versions) == 3 and all(v.startswith("0.0.0-dev.") for v in versions)


def test_an_unchanged_build_is_not_redeployed_but_a_manifest_edit_is(tmp_path: Path) -> None:
    source = scaffold("same", "wat", directory=tmp_path / "same").directory
    session = DevSession(source, LocalLifecycle(tmp_path / "reg"), "same", "/same")
    try:
        assert session.cycle().deployed
        again = session.cycle()
        assert again.ok and not again.deployed and again.serving == session.serving
        (source / "test_app.py").write_text("# the author's tests are not build inputs\n")
        assert not session.cycle().deployed
        (source / "airssys.toml").write_text("[limits]\ntimeout = 2\n")
        assert session.cycle().deployed
    finally:
        session.target.close()


def test_dev_deploys_through_the_admin_api(tmp_path: Path, uvicorn_server: Server) -> None:
    source = scaffold("remote", "wat", directory=tmp_path / "remote").directory
    app = AirssysMiddleware(Starlette(), registry=tmp_path / "reg", secret=SECRET, poll_interval=0.05)
    token, _ = TokenAuthority(SECRET).mint("deploy", 3600)
    with uvicorn_server(app) as url:
        session = DevSession(source, RemoteLifecycle(url, token), "remote", "/remote")
        try:
            cycle = session.cycle()
            assert cycle.ok and cycle.deployed, cycle.error
            assert httpx.get(url + "/remote/y").text == "/remote/y"
        finally:
            session.target.close()


def test_dev_refuses_a_nested_route_unless_asked_and_says_so(tmp_path: Path) -> None:
    with EmbeddedRegistry(tmp_path / "reg") as reg:
        reg.deploy("outer", "1.0.0", sha256=reg.blobs.put(b"\0asm" + bytes(8)), route="/outer")
    source = scaffold("inner", "wat", directory=tmp_path / "inner").directory
    refused = DevSession(source, LocalLifecycle(tmp_path / "reg"), "inner", "/outer/inner")
    allowed = DevSession(source, LocalLifecycle(tmp_path / "reg"), "inner", "/outer/inner", nested=True)
    try:
        cycle = refused.cycle()
        assert not cycle.ok and "route /outer/inner is inside /outer, owned by outer" in str(cycle.error)
        assert allowed.cycle().deployed
    finally:
        refused.target.close()
        allowed.target.close()
    with EmbeddedRegistry(tmp_path / "reg") as reg:
        assert reg.get_component("inner").nested


def test_dev_versions_are_semver_and_increase() -> None:
    first, second = dev_version("ab" * 32, now=1000.0), dev_version("cd" * 32, now=1000.001)
    assert validate_version(first) == "0.0.0-dev.1000000+abababababab"
    assert validate_version(second) == "0.0.0-dev.1000001+cdcdcdcdcdcd"


@pytest.mark.parametrize(("args", "message"), [
    ([], "give exactly one of --registry DIR"),
    (["--registry", "r", "--server", "http://127.0.0.1:1"], "give exactly one of --registry DIR"),
    (["--registry", "r", "--route", "no-slash"], "route"),
])
def test_dev_command_checks_its_options(tmp_path: Path, args: list[str], message: str) -> None:
    source = scaffold("opts", "wat", directory=tmp_path / "opts").directory
    result = CliRunner().invoke(cli, ["dev", str(source), *args])
    assert result.exit_code == 2 and message in result.stderr


def test_dev_serves_a_middleware_stage_without_a_route(tmp_path: Path) -> None:
    source = tmp_path / "stage"
    source.mkdir()
    shutil.copy(Path(__file__).parent / "guests" / "stage.wat", source / "stage.wat")
    (source / "airssys.toml").write_text('[component]\nkind = "middleware"\n')
    refused = CliRunner().invoke(cli, ["dev", str(source), "--route", "/stage", "--registry", str(tmp_path / "reg")])
    assert refused.exit_code == 2 and "is a middleware stage" in refused.stderr and "without --route" in refused.stderr
    with LocalLifecycle(tmp_path / "reg") as life:
        cycle = DevSession(source, life, "stage", None).cycle()
        assert cycle.ok, cycle.error
        info = life.component("stage").component
    assert (info.kind, info.route) == ("middleware", None)
