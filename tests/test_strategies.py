"""Strategies without a server: the canary cookie, the host's split and prepared generations, and the
registry-directory (CLI) flavour of each strategy. (Plans: ``test_api.py``; the registry's canary rules:
``test_registry.py``.)"""

from __future__ import annotations

from pathlib import Path

import pytest
from support import artifacts, text_component

from airssys_web import AirssysHost, EmbeddedRegistry, deploy
from airssys_web.errors import Conflict, DeployError, InvalidComponent, RouteConflict
from airssys_web.lifecycle.api import DeployRequest, Plan
from airssys_web.lifecycle.host import Code
from airssys_web.lifecycle.settings import VersionSettings
from airssys_web.lifecycle.strategies import BucketCookie, rollout_local
from airssys_web.lifecycle.targets import Split


@pytest.fixture
def reg(tmp_path: Path) -> EmbeddedRegistry:
    with EmbeddedRegistry(tmp_path) as r:
        deploy(r, "a", text_component("A1"), version="1.0.0", route="/a")
        yield r  # type: ignore[misc]


# -- the canary cookie ------------------------------------------------------------------------------------------
def test_bucket_cookie_round_trip_and_forgery() -> None:
    cookies = BucketCookie("k" * 32)
    buckets = set()
    for _ in range(200):
        bucket, header = cookies.issue()
        value = header.decode().split(";")[0].split("=", 1)[1]
        assert cookies.read(value) == bucket
        buckets.add(bucket)
    assert buckets <= set(range(100)) and len(buckets) > 50
    assert b"HttpOnly" in header and b"SameSite=Lax" in header
    value = header.decode().split(";")[0].split("=", 1)[1]
    assert BucketCookie("other" * 8).read(value) is None
    assert cookies.read("99.forged") is None and cookies.read("") is None and cookies.read(None) is None


# -- the host ---------------------------------------------------------------------------------------------------
def test_host_serves_a_split_and_reuses_the_canary_on_promote(reg: EmbeddedRegistry) -> None:
    dep2 = deploy(reg, "a", text_component("A2"), version="2.0.0", route="/a")
    reg.rollback("a")
    reg.start_canary("a", "2.0.0", 30)
    with AirssysHost(reg) as host:
        target = host.match("/a/x")
        assert isinstance(target, Split) and target.percent == 30
        assert target.pick(29).version == "2.0.0" and target.pick(30).version == "1.0.0"
        gen = host.enter("/a/x", lambda: 0)
        assert gen is target.canary
        gen.leave()
        assert host.enter("/a/x") is target.stable  # no bucket: the stable version
        target.stable.leave()
        canary = target.canary
        reg.promote("a")
        host.sync()
        assert host.generations()["a"] is canary  # promoted without building anything
        assert canary.pool.size >= 1 and host.serving("a") == ("2.0.0", None, 0)
        assert host.generations()["a"].sha256 == dep2.sha256


def test_prepared_generation_is_adopted_not_rebuilt(reg: EmbeddedRegistry) -> None:
    wasm = text_component("A2")
    sha = reg.blobs.put(wasm)
    with AirssysHost(reg) as host:
        host.artifacts.compile(wasm)
        code = Code("a", "2.0.0", sha, VersionSettings().json_text())
        prepared = host.prepare(code)
        assert host.prepare(code) is prepared
        reg.deploy("a", "2.0.0", sha256=sha)
        host.sync()
        assert host.generations()["a"] is prepared
        host.discard_prepared(code)  # adopted: nothing to discard, the generation keeps serving
        assert prepared.call("GET", "/a").body == b"A2"
        other = VersionSettings.from_json({"config": {"x": "y"}}).json_text()
        unused = host.prepare(Code("a", "3.0.0", sha, other))
        host.discard_prepared(Code("a", "3.0.0", sha, other))
        with pytest.raises(Exception, match="closed"):
            unused.call("GET", "/a")


# -- the registry-directory flavour (the CLI without a server) -----------------------------------------------------
def test_local_blue_green_probe_failure_changes_nothing(reg: EmbeddedRegistry) -> None:
    plan = Plan.parse("blue-green", probe="/a/health")
    with pytest.raises(DeployError, match="blue-green step 'probe' failed: GET /a/health answered 500"):
        rollout_local(reg, DeployRequest("a", text_component("bad", status=500), version="2.0.0", plan=plan))
    assert reg.get_deployment("a").active_version == "1.0.0"
    assert (reg.history("a")[-1].outcome, reg.history("a")[-1].version) == ("failed", "2.0.0")
    dep = rollout_local(reg, DeployRequest("a", text_component("A2"), version="2.0.0", plan=plan))
    assert dep.active_version == "2.0.0" and reg.history("a")[-1].strategy == "blue-green"


def test_local_canary_and_its_preconditions(reg: EmbeddedRegistry) -> None:
    plan = Plan.parse("canary", percent=25, auto_rollback="error-rate=5%")
    dep = rollout_local(reg, DeployRequest("a", text_component("A2"), version="2.0.0", plan=plan))
    assert (dep.canary_version, dep.canary_percent, dep.auto_rollback) == (
        "2.0.0", 25, "error-rate=5%,window=30s,min-requests=20")
    with pytest.raises(DeployError, match="needs an active version"):
        rollout_local(reg, DeployRequest("b", text_component("B"), version="1.0.0", route="/b", plan=plan))
    with pytest.raises(DeployError, match="cannot move"):
        rollout_local(reg, DeployRequest("a", text_component("A3"), version="3.0.0", route="/elsewhere", plan=plan))
    with pytest.raises(DeployError, match="give it a route"):
        rollout_local(reg, DeployRequest("c", text_component("C"), version="1.0.0"))
    cache = artifacts(None)
    with pytest.raises(Conflict, match=r"already runs canary 2\.0\.0"):
        rollout_local(reg, DeployRequest("a", text_component("A3"), version="3.0.0", plan=plan), artifacts=cache)
    assert cache.compilations == 0  # refused before any work
    assert reg.start_canary("a", "2.0.0", 50).canary_percent == 50  # the running canary may change its share


def test_local_check_failure_is_named_and_recorded(reg: EmbeddedRegistry) -> None:
    with pytest.raises(InvalidComponent, match=r"immediate step .check. failed: .*not a WebAssembly file"):
        rollout_local(reg, DeployRequest("a", b"not wasm at all", version="2.0.0"))
    assert reg.get_deployment("a").active_version == "1.0.0"
    assert reg.history("a")[-1].outcome == "failed"


@pytest.mark.parametrize("strategy", ["immediate", "blue-green"])
def test_a_nested_route_is_refused_before_any_work(reg: EmbeddedRegistry, strategy: str) -> None:
    cache = artifacts(None)
    before = (reg.change_token(), reg.components(), reg.history())
    with pytest.raises(RouteConflict, match=r"route /a/b is inside /a, owned by a; .*pass --nested to allow it"):
        rollout_local(reg, DeployRequest("b", text_component("B"), version="1.0.0", route="/a/b",
                                         plan=Plan.parse(strategy)), artifacts=cache)
    with pytest.raises(RouteConflict, match="inside /a"):
        deploy(reg, "b", b"not even wasm", version="1.0.0", route="/a/b")  # refused before the file is looked at
    assert cache.compilations == 0 and (reg.change_token(), reg.components(), reg.history()) == before
    dep = rollout_local(reg, DeployRequest("b", text_component("B"), version="1.0.0", route="/a/b",
                                           plan=Plan.parse(strategy), nested=True))
    assert dep.nested and dep.route == "/a/b"
