"""Pipelines end to end: middleware stages deployed without a route, put in front of a route component, served by a
real uvicorn server, changed through the CLI, the Python API and the admin API, swapped under load, rolled back.

The stage is tests/guests/stage.wat, or the same stage written with the Python and JavaScript SDKs (py_stage/,
js_stage/): configured by its version's config (name, require, upper, trap), it adds ``x-stages: NAME`` to the
request and ``x-seen-by: NAME`` to the answer. The route is the echo guest of tests/guests/convert: it answers the
headers it received, so what the stages did is visible.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from conftest import GUEST_CACHE, GUESTS
from starlette.applications import Starlette
from support import wait_until

from airssys_web import AirssysMiddleware, EmbeddedRegistry, LocalLifecycle, Pipeline, deploy
from airssys_web.capabilities.grants import Capability
from airssys_web.cli import cli
from airssys_web.errors import NotFound, PipelineError
from airssys_web.guest.build import build_component, compile_wat
from airssys_web.lifecycle.api import DeployRequest, Plan
from airssys_web.lifecycle.remote import RemoteLifecycle
from airssys_web.lifecycle.settings import VersionSettings
from airssys_web.web.auth import TokenAuthority

Server = Callable[..., AbstractContextManager[str]]
ECHO = compile_wat((GUESTS / "convert" / "echo.wat").read_text())
STAGE = compile_wat((GUESTS / "stage.wat").read_text())
SECRET = "pipeline-secret-" + "x" * 20


def config(**values: str) -> VersionSettings:
    return VersionSettings.of(*(Capability.config(k, v) for k, v in values.items()))


def values(response: httpx.Response, name: str) -> list[str]:
    return [v for k, v in response.headers.multi_items() if k == name]


@dataclass
class Site:
    url: str
    app: AirssysMiddleware
    reg_dir: Path

    def get(self, path: str = "/api/x", **kw: object) -> httpx.Response:
        return httpx.get(self.url + path, timeout=30, **kw)  # type: ignore[arg-type]

    def registry(self) -> EmbeddedRegistry:
        return EmbeddedRegistry(self.reg_dir)

    def serves(self, what: Callable[[httpx.Response], bool], label: str) -> httpx.Response:
        """Wait until the server's answer to /api/x satisfies ``what`` (a change was picked up)."""
        seen: list[httpx.Response] = []

        def check() -> bool:
            seen.append(self.get())
            return what(seen[-1])

        wait_until(check, 10, label)
        return seen[-1]


@pytest.fixture
def site(tmp_path: Path, uvicorn_server: Server) -> Iterator[Site]:
    reg_dir = tmp_path / "reg"
    with EmbeddedRegistry(reg_dir) as reg:
        deploy(reg, "api", ECHO, version="1.0.0", route="/api")
    app = AirssysMiddleware(Starlette(), registry=reg_dir, poll_interval=0.05, secret=SECRET)
    with uvicorn_server(app) as url:
        yield Site(url, app, reg_dir)


@pytest.fixture(scope="module", params=["wat", "python", "js"])
def stage_wasm(request: pytest.FixtureRequest) -> bytes:
    if request.param == "wat":
        return STAGE
    if request.param == "js" and (shutil.which("node") is None or shutil.which("npm") is None):
        pytest.skip("JavaScript guests need node and npm on PATH (apt-get install nodejs npm)")
    source = GUESTS / ("py_stage" if request.param == "python" else "js_stage")
    return build_component(source, out=GUEST_CACHE / f"{source.name}.wasm", cache_dir=GUEST_CACHE).path.read_bytes()


def test_stages_see_the_request_first_and_the_answer_last(site: Site, stage_wasm: bytes) -> None:
    with site.registry() as reg:
        deploy(reg, "auth", stage_wasm, version="1.0.0", settings=config(name="auth", require="authorization"))
        deploy(reg, "shout", stage_wasm, version="2.0.0", settings=config(name="shout", upper="1"))
        reg.set_pipeline("api", ["auth", "shout"])
    site.serves(lambda r: r.status_code == 401, "the pipeline to be served")
    route = site.app.host.generations()["api"]
    answered = route.completed
    denied = site.get()
    assert (denied.status_code, denied.text) == (401, "unauthorized by auth")  # answered by the first stage
    assert route.completed == answered  # the route never ran
    r = site.get("/api/items", headers={"authorization": "Bearer t"})  # (echo's status grows with the query)
    assert r.status_code == 200
    assert values(r, "x-path") == ["/api/items"] and values(r, "authorization") == ["Bearer t"]
    assert values(r, "x-stages") == ["auth", "shout"]  # what the route received: auth's header, then shout's
    assert values(r, "x-seen-by") == ["shout", "auth"]  # the answer came back through shout, then auth
    assert r.headers["x-airssys-version"] == "api@1.0.0"
    assert r.headers["x-airssys-stages"] == "auth@1.0.0, shout@2.0.0"


def test_a_failing_stage_fails_the_request_cleanly_and_nothing_else(site: Site) -> None:
    with site.registry() as reg:
        deploy(reg, "other", ECHO, version="1.0.0", route="/other")
        deploy(reg, "bad", STAGE, version="1.0.0", settings=config(name="bad", trap="1"))
        reg.set_pipeline("api", ["bad"])
    failed = site.serves(lambda r: r.status_code == 500, "the trapping stage to be served")
    assert failed.json()["error"] == "the component failed" and "request_id" in failed.json()
    assert failed.headers["x-airssys-stages"] == "bad@1.0.0"
    assert site.get("/other/x").status_code == 200  # other routes are not affected
    with site.registry() as reg:
        reg.set_pipeline("api", [])
    cleared = site.serves(lambda r: r.status_code == 200, "the cleared pipeline to be served")
    assert "x-airssys-stages" not in cleared.headers and values(cleared, "x-stages") == []


def test_a_stage_that_cannot_load_keeps_the_route_closed(site: Site, tmp_path: Path, uvicorn_server: Server) -> None:
    """A stage may be what guards a route: a server that cannot load it answers 503 there, never unguarded."""
    data = tmp_path / "data"
    data.mkdir()
    with site.registry() as reg:
        settings = VersionSettings.of(Capability.config("require", "authorization"), Capability.file_read(data, "/d"))
        deploy(reg, "guard", STAGE, version="1.0.0", settings=settings)
        reg.set_pipeline("api", ["guard"])
    site.serves(lambda r: r.status_code == 401, "the guard to be served")
    data.rmdir()  # the granted directory is gone: a server starting now cannot load the stage
    with uvicorn_server(AirssysMiddleware(Starlette(), registry=site.reg_dir)) as url:
        r = httpx.get(url + "/api/x", headers={"authorization": "t"})
        assert (r.status_code, r.json()["error"], r.headers["retry-after"]) == (503, "unavailable", "5")
        assert httpx.get(url + "/api/x").status_code == 503  # without the guard, nothing gets through


def test_a_stage_swapped_under_load_fails_no_request(site: Site) -> None:
    with site.registry() as reg:
        deploy(reg, "tag", STAGE, version="1.0.0", settings=config(name="v1.0.0"))
        reg.set_pipeline("api", ["tag"])
    site.serves(lambda r: values(r, "x-seen-by") == ["v1.0.0"], "the pipeline to be served")
    stop = threading.Event()
    answers: list[tuple[int, str, list[str], list[str]]] = []
    failures: list[str] = []

    def load() -> None:
        with httpx.Client(base_url=site.url, timeout=30) as client:
            while not stop.is_set():
                try:
                    r = client.get("/api/x")
                    answers.append((r.status_code, r.headers.get("x-airssys-stages", ""), values(r, "x-stages"),
                                    values(r, "x-seen-by")))
                except httpx.HTTPError as e:
                    failures.append(repr(e))

    threads = [threading.Thread(target=load) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        for minor in range(1, 5):
            version = f"1.{minor}.0"
            with site.registry() as reg:
                deploy(reg, "tag", STAGE, version=version, settings=config(name=f"v{version}"))
            site.serves(lambda r, v=version: values(r, "x-seen-by") == [f"v{v}"], f"tag {version} to serve")
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert failures == []
    assert answers and all(status == 200 for status, *_ in answers)
    # every answer went through one whole version of the stage, and says which
    assert all(stages == f"tag@{seen[0][1:]}" and sent == seen for _, stages, sent, seen in answers)
    assert len({stages for _, stages, _, _ in answers}) >= 3


def test_a_canary_of_a_stage_splits_clients_and_keeps_each_on_its_chain(site: Site) -> None:
    """A stage rolls out like any component: a canary of it splits new clients by their bucket cookie, a client
    keeps its chain, and promoting it moves everyone."""
    with site.registry() as reg:
        deploy(reg, "tag", STAGE, version="1.0.0", settings=config(name="one"))
        reg.set_pipeline("api", ["tag"])
    site.serves(lambda r: r.headers.get("x-airssys-stages") == "tag@1.0.0", "the stage to be served")
    with LocalLifecycle(site.reg_dir) as lifecycle:
        lifecycle.deploy(DeployRequest("tag", STAGE, version="2.0.0", settings=config(name="two"),
                                       plan=Plan.parse("canary", percent=50)))
    chains: dict[str, str] = {}

    def both_served() -> bool:
        r = site.get()  # a new client: no cookie (it gets one once the host serves the split)
        if "airssys_bucket" in r.cookies:
            chains[r.headers["x-airssys-stages"]] = r.cookies["airssys_bucket"]
        return len(chains) == 2

    wait_until(both_served, 20, "both versions of the stage served to new clients")
    assert set(chains) == {"tag@1.0.0", "tag@2.0.0"}
    for stages, bucket in chains.items():
        replies = [site.get(cookies={"airssys_bucket": bucket}) for _ in range(10)]
        assert {r.headers["x-airssys-stages"] for r in replies} == {stages}  # sticky
        assert {values(r, "x-stages")[0] for r in replies} == {"one" if stages == "tag@1.0.0" else "two"}
    with LocalLifecycle(site.reg_dir) as lifecycle:
        lifecycle.promote("tag")
    site.serves(lambda r: r.headers["x-airssys-stages"] == "tag@2.0.0", "the promoted stage")
    assert all(site.get(cookies={"airssys_bucket": b}).headers["x-airssys-stages"] == "tag@2.0.0"
               for b in chains.values())


def test_the_cli_sets_shows_clears_and_rolls_back_pipelines(site: Site) -> None:
    run = CliRunner().invoke
    reg = str(site.reg_dir)
    stage_file = site.reg_dir.parent / "stage.wasm"
    stage_file.write_bytes(STAGE)
    refused = run(cli, ["deploy", "auth", str(stage_file), "--version", "1.0.0", "--route", "/auth", "--registry",
                        reg])
    assert refused.exit_code == 2 and "auth is a middleware stage: it owns no route" in refused.stderr
    made = run(cli, ["deploy", "auth", str(stage_file), "--version", "1.0.0", "--config", "name=auth",
                     "--registry", reg])
    assert made.exit_code == 0 and "deployed auth@1.0.0 as a middleware stage" in made.stdout
    piped = run(cli, ["pipeline", "set", "api", "auth", "--registry", reg])
    assert piped.exit_code == 0 and "at /api behind auth" in piped.stdout
    assert run(cli, ["pipeline", "show", "api", "--registry", reg]).stdout == "auth > api\n"
    site.serves(lambda r: values(r, "x-seen-by") == ["auth"], "the pipeline to be served")
    bad = run(cli, ["pipeline", "set", "api", "api", "--registry", reg])
    assert bad.exit_code == 2 and "api cannot be a stage in front of itself" in bad.stderr
    assert run(cli, ["pipeline", "clear", "api", "--registry", reg]).exit_code == 0
    site.serves(lambda r: values(r, "x-seen-by") == [], "the cleared pipeline to be served")
    history = run(cli, ["history", "api", "--registry", reg]).stdout
    assert "(none) -> auth" in history and "auth -> (none)" in history
    assert run(cli, ["rollback", "api", "--registry", reg]).exit_code == 0  # undoes the clear
    site.serves(lambda r: values(r, "x-seen-by") == ["auth"], "the rolled-back pipeline to be served")
    assert run(cli, ["pipeline", "show", "api", "--json", "--registry", reg]).stdout.split() == \
        ['{', '"component":', '"api",', '"stages":', '[', '"auth"', ']', '}']


def test_the_python_api_and_the_admin_api_change_pipelines(site: Site) -> None:
    with LocalLifecycle(site.reg_dir) as life:
        deploy(life.registry, "web", ECHO, version="1.0.0", route="/web")
        deploy(life.registry, "a", STAGE, version="1.0.0", settings=config(name="a"))
        deploy(life.registry, "b", STAGE, version="1.0.0", settings=config(name="b"))
        change = life.set_pipeline(Pipeline("api").then("a"))
        assert change.deployment.stages == ("a",)
    site.serves(lambda r: values(r, "x-seen-by") == ["a"], "the pipeline set from Python")
    token, _ = TokenAuthority(SECRET).mint("deploy", 3600)
    with RemoteLifecycle(site.url, token, progress=False) as remote:
        change = remote.set_pipeline(Pipeline("api", ["b", "a"]))
        assert change.deployment.stages == ("b", "a") and change.serving is not None
        assert values(site.get(), "x-seen-by") == ["a", "b"]  # the server answered once it served the change
        with pytest.raises(PipelineError, match="web is a route component, not a middleware stage"):
            remote.set_pipeline(Pipeline("api", ["a", "web"]))
        with pytest.raises(NotFound, match="stage 'ghost' is not a component"):
            remote.set_pipeline(Pipeline("api", ["ghost"]))
        assert remote.component("api").component.stages == ("b", "a")  # the refusals changed nothing
        assert remote.rollback("api").deployment.stages == ("a",)
        actions = [(a.action, a.outcome) for a in remote.audit()]
    assert actions.count(("pipeline", "ok")) == 1 and actions.count(("pipeline", "error")) == 2
    read, _ = TokenAuthority(SECRET).mint("read", 3600)
    with httpx.Client(base_url=site.url + "/_airssys/api", headers={"authorization": f"Bearer {read}"}) as http:
        assert http.get("/components/api/pipeline").json() == {"component": "api", "stages": ["a"]}
        assert http.delete("/components/api/pipeline").status_code == 403  # read scope looks, deploy acts
        assert http.put("/components/api/pipeline", json={"stages": "a"}).status_code == 403
    with httpx.Client(base_url=site.url + "/_airssys/api", headers={"authorization": f"Bearer {token}"}) as http:
        bad = http.put("/components/api/pipeline", json={"stages": "a"})
        assert bad.status_code == 400 and "a list of middleware component names" in bad.json()["detail"]
        assert http.delete("/components/api/pipeline").json()["deployment"]["stages"] == []


def test_pipeline_values_are_checked_when_built() -> None:
    assert Pipeline("api").then("a", "b").without("a") == Pipeline("api", ["b"])
    assert Pipeline("api", ["a", "b"]).describe() == "a > b > api" and Pipeline("api").describe() == "api (no stages)"
    with pytest.raises(PipelineError, match="stage a is listed twice"):
        Pipeline("api", ["a", "b", "a"])
    with pytest.raises(PipelineError, match="at most 16 stages"):
        Pipeline("api", (f"s{i}" for i in range(17)))
    with pytest.raises(TypeError, match="not the string"):
        Pipeline("api", "auth")
    with pytest.raises(PipelineError, match="x is not a stage of api"):
        Pipeline("api").without("x")
