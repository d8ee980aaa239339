"""Hot swaps while traffic flows: zero failed requests, every response from exactly one version."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

import httpx
from starlette.applications import Starlette
from support import text_component, wait_until, write_wasm

from airssys_web import AirssysHost, AirssysMiddleware, EmbeddedRegistry, deploy

Server = Callable[..., AbstractContextManager[str]]


def _load(url: str, stop: threading.Event, results: list[tuple[int, str, str]], errors: list[str]) -> None:
    with httpx.Client(base_url=url, timeout=10) as client:
        while not stop.is_set():
            try:
                r = client.get("/hello/x")
                results.append((r.status_code, r.headers.get("x-airssys-version", ""), r.text))
            except httpx.HTTPError as e:  # a dropped connection counts as a failure
                errors.append(repr(e))


def test_deploys_under_load_drop_nothing(tmp_path: Path, uvicorn_server: Server) -> None:
    reg_dir = tmp_path / "reg"
    versions = [f"1.{i}.0" for i in range(6)]
    bodies = {v: f"body of {v}" for v in versions}
    with EmbeddedRegistry(reg_dir) as reg:
        deploy(reg, "hello", text_component(bodies[versions[0]]), version=versions[0], route="/hello")
    app = AirssysMiddleware(Starlette(), registry=reg_dir, poll_interval=0.05)
    stop = threading.Event()
    results: list[tuple[int, str, str]] = []
    errors: list[str] = []
    with uvicorn_server(app) as url:
        clients = [threading.Thread(target=_load, args=(url, stop, results, errors)) for _ in range(4)]
        for t in clients:
            t.start()
        def load_saw(version: str) -> None:
            """Wait until the load threads got a few answers from ``version`` (so the load spans every version)."""
            tag = f"hello@{version}"
            mark = len(results)
            wait_until(lambda: sum(r[1] == tag for r in results[mark:]) >= 5, 30,
                       f"the load to reach {version}")

        try:
            with EmbeddedRegistry(reg_dir) as reg:
                for previous, v in itertools.pairwise(versions):
                    load_saw(previous)
                    deploy(reg, "hello", text_component(bodies[v]), version=v, route="/hello")
                    wait_until(lambda v=v: httpx.get(url + "/hello").headers["x-airssys-version"] == f"hello@{v}",
                               30, f"{v} to be served")
            load_saw(versions[-1])
            assert app.host.generations()["hello"].version == versions[-1]
        finally:
            stop.set()
            for t in clients:
                t.join()
    assert errors == []
    assert results, "the load threads made no requests"
    bad = [r for r in results if r[0] != 200 or r[2] != bodies.get(r[1].removeprefix("hello@"))]
    assert bad == [], bad[:5]
    seen = {r[1] for r in results}
    assert seen <= {f"hello@{v}" for v in versions}
    assert len(seen) >= 3  # the load really spanned several versions


def test_cli_deploy_is_picked_up_by_running_server(tmp_path: Path, uvicorn_server: Server) -> None:
    """The issue's user story: another process deploys; the running server picks it up by itself."""
    reg_dir = tmp_path / "reg"
    app = AirssysMiddleware(Starlette(), registry=reg_dir)
    with uvicorn_server(app) as url:
        assert httpx.get(url + "/hello").status_code == 404
        wasm = write_wasm(tmp_path, "hello.wasm", text_component("from the CLI"))
        cli = [sys.executable, "-m", "airssys_web.cli", "deploy", "hello", str(wasm), "--route", "/hello",
               "--version", "1.0.0", "--registry", str(reg_dir)]
        proc = subprocess.run(cli, capture_output=True, text=True, env=os.environ | {"PYTHONWARNINGS": "ignore"})
        assert proc.returncode == 0, proc.stderr
        # the watcher picks it up within its poll interval; the bound is generous, not a speed assertion
        wait_until(lambda: httpx.get(url + "/hello/anything").status_code == 200, 30, "the deploy to be served")
        assert httpx.get(url + "/hello/anything").text == "from the CLI"


def test_host_restart_serves_same_versions_without_compiling(tmp_path: Path) -> None:
    with EmbeddedRegistry(tmp_path) as reg:
        deploy(reg, "a", text_component("A"), version="1.0.0", route="/a")
        deploy(reg, "b", text_component("B"), version="2.0.0", route="/b")
    with AirssysHost(tmp_path) as host:
        assert host.artifacts.compilations == 0
        gens = host.generations()
        assert {n: g.version for n, g in gens.items()} == {"a": "1.0.0", "b": "2.0.0"}
        assert host.match("/a/x") is gens["a"]


def test_failed_activation_keeps_previous_version(tmp_path: Path) -> None:
    with EmbeddedRegistry(tmp_path) as reg:
        deploy(reg, "a", text_component("A1"), version="1.0.0", route="/a")
        host = AirssysHost(reg)
        host.start(watch=False)
        try:
            # A version whose blob and artifact vanished cannot be built; the old one must keep serving.
            dep = deploy(reg, "a", text_component("A2"), version="1.1.0", route="/a")
            for p in [reg.blobs.path(dep.sha256), *reg.artifacts_dir.glob(f"{dep.sha256}-*")]:
                p.unlink()
            host.factory.artifacts = type(host.artifacts)(reg.artifacts_dir, host.runtime)  # forget memory
            host.sync()
            assert host.generations()["a"].version == "1.0.0"
            assert host.generations()["a"].call("GET", "/a").body == b"A1"
        finally:
            host.close()
