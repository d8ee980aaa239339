"""Strategies without a server: plan validation, the canary cookie, the registry's canary/promote/rollback rules,
the host's split and prepared generations, and the registry-directory (CLI) flavour of each strategy."""

from __future__ import annotations

from pathlib import Path

import pytest
from support import artifacts, text_component

from airssys_web import AirssysHost, EmbeddedRegistry, deploy
from airssys_web.errors import Conflict, DeployError, InvalidComponent, InvalidName, NotFound, RouteConflict
from airssys_web.lifecycle.host import Code, Split
from airssys_web.lifecycle.registry import settings_json
from airssys_web.lifecycle.strategies import BucketCookie, Plan, Strategy, rollout_local


@pytest.fixture
def reg(tmp_path: Path) -> EmbeddedRegistry:
    with EmbeddedRegistry(tmp_path) as r:
        deploy(r, "a", text_component("A1"), version="1.0.0", route="/a")
        yield r  # type: ignore[misc]


# -- plans and cookies ------------------------------------------------------------------------------------------
def test_plan_parse_defaults_and_validation() -> None:
    assert Plan.parse() == Plan()
    assert Plan.parse("canary").percent == 10
    plan = Plan.parse("blue-green", probe="/a/health", auto_rollback="error-rate=1%")
    assert (plan.strategy, plan.probe, plan.policy_text) == (Strategy.BLUE_GREEN, "/a/health",
                                                             "error-rate=1%,window=30s,min-requests=20")
    for kwargs, needle in [({"strategy": "yolo"}, "unknown strategy"),
                           ({"strategy": "canary", "percent": 0}, "percent"),
                           ({"strategy": "canary", "percent": 101}, "percent"),
                           ({"percent": 5}, "canary only"),
                           ({"probe": "/x"}, "blue-green or canary"),
                           ({"strategy": "blue-green", "probe": "health"}, "probe path")]:
        with pytest.raises(DeployError, match=needle):
            Plan.parse(**kwargs)  # type: ignore[arg-type]


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


# -- the registry's canary rules --------------------------------------------------------------------------------
def test_canary_promote_and_abort_in_the_registry(reg: EmbeddedRegistry) -> None:
    sha = reg.put_blob(text_component("A2"))
    reg.add_version("a", "2.0.0", sha256=sha)
    dep = reg.start_canary("a", "2.0.0", 20, actor="t")
    assert (dep.active_version, dep.canary_version, dep.canary_percent, dep.newest_version) == (
        "1.0.0", "2.0.0", 20, "2.0.0")
    assert reg.start_canary("a", "2.0.0", 60).canary_percent == 60  # the share can change
    assert reg.history("a")[-1].detail == "20% -> 60%"
    dep = reg.rollback("a")  # undo = abort the canary
    assert (dep.active_version, dep.canary_version, dep.canary_percent) == ("1.0.0", None, 0)
    reg.start_canary("a", "2.0.0", 10)
    dep = reg.promote("a")
    assert (dep.active_version, dep.previous_version, dep.canary_version) == ("2.0.0", "1.0.0", None)
    assert reg.rollback("a").active_version == "1.0.0"  # the promotion is undone like a deploy


def test_canary_rules(reg: EmbeddedRegistry) -> None:
    sha2, sha3 = reg.put_blob(text_component("A2")), reg.put_blob(text_component("A3"))
    reg.add_version("a", "2.0.0", sha256=sha2)
    reg.add_version("a", "3.0.0", sha256=sha3)
    with pytest.raises(Conflict, match="already the active"):
        reg.start_canary("a", "1.0.0", 10)
    with pytest.raises(InvalidName, match="percent"):
        reg.start_canary("a", "2.0.0", 0)
    with pytest.raises(NotFound, match="no canary"):
        reg.promote("a")
    reg.start_canary("a", "2.0.0", 10)
    with pytest.raises(Conflict, match=r"already runs canary 2\.0\.0"):
        reg.start_canary("a", "3.0.0", 10)
    with pytest.raises(Conflict, match="changed meanwhile"):
        reg.rollback("a", expect="1.0.0")  # the newest version is the canary
    dep = reg.deploy("a", "3.0.0", sha256=sha3)  # a deploy supersedes the canary
    assert (dep.active_version, dep.canary_version) == ("3.0.0", None)
    assert "canary 2.0.0 ended" in reg.history("a")[-1].detail


def test_failed_attempts_do_not_disturb_the_rollback_stack(reg: EmbeddedRegistry) -> None:
    deploy(reg, "a", text_component("A2"), version="2.0.0", route="/a")
    reg.record("a", "1.0.0", action="deploy", strategy="blue-green", actor="t", outcome="failed", detail="probe")
    assert reg.rollback("a").active_version == "1.0.0"
    with pytest.raises(NotFound):
        reg.record("nope", "1.0.0", action="deploy", strategy="immediate", actor="t", outcome="failed")


def test_audit_log_keeps_the_newest(reg: EmbeddedRegistry) -> None:
    token = reg.change_token()
    for i in range(5):
        reg.audit("deploy", f"a@{i}", "ok", token_id="tok_1")
    assert reg.change_token() == token  # nothing for a server to apply
    assert [a.target for a in reg.audit_log(limit=2)] == ["a@3", "a@4"]


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
    sha = reg.put_blob(wasm)
    with AirssysHost(reg) as host:
        host.artifacts.compile(wasm)
        code = Code("a", "2.0.0", sha, settings_json({}))
        prepared = host.prepare(code)
        assert host.prepare(code) is prepared
        reg.deploy("a", "2.0.0", sha256=sha)
        host.sync()
        assert host.generations()["a"] is prepared
        host.discard_prepared(code)  # adopted: nothing to discard, the generation keeps serving
        assert prepared.call("GET", "/a").body == b"A2"
        unused = host.prepare(Code("a", "3.0.0", sha, settings_json({"config": {"x": "y"}})))
        host.discard_prepared(Code("a", "3.0.0", sha, settings_json({"config": {"x": "y"}})))
        with pytest.raises(Exception, match="closed"):
            unused.call("GET", "/a")


# -- the registry-directory flavour (the CLI without a server) -----------------------------------------------------
def test_local_blue_green_probe_failure_changes_nothing(reg: EmbeddedRegistry) -> None:
    plan = Plan.parse("blue-green", probe="/a/health")
    with pytest.raises(DeployError, match="blue-green step 'probe' failed: GET /a/health answered 500"):
        rollout_local(reg, "a", text_component("bad", status=500), version="2.0.0", plan=plan)
    assert reg.get_deployment("a").active_version == "1.0.0"
    assert (reg.history("a")[-1].outcome, reg.history("a")[-1].version) == ("failed", "2.0.0")
    dep = rollout_local(reg, "a", text_component("A2"), version="2.0.0", plan=plan)
    assert dep.active_version == "2.0.0" and reg.history("a")[-1].strategy == "blue-green"


def test_local_canary_and_its_preconditions(reg: EmbeddedRegistry) -> None:
    plan = Plan.parse("canary", percent=25, auto_rollback="error-rate=5%")
    dep = rollout_local(reg, "a", text_component("A2"), version="2.0.0", plan=plan)
    assert (dep.canary_version, dep.canary_percent, dep.auto_rollback) == (
        "2.0.0", 25, "error-rate=5%,window=30s,min-requests=20")
    with pytest.raises(DeployError, match="needs an active version"):
        rollout_local(reg, "b", text_component("B"), version="1.0.0", route="/b", plan=plan)
    with pytest.raises(DeployError, match="cannot move"):
        rollout_local(reg, "a", text_component("A3"), version="3.0.0", route="/elsewhere", plan=plan)
    with pytest.raises(DeployError, match="give it a route"):
        rollout_local(reg, "c", text_component("C"), version="1.0.0")
    cache = artifacts(None)
    with pytest.raises(Conflict, match=r"already runs canary 2\.0\.0"):
        rollout_local(reg, "a", text_component("A3"), version="3.0.0", plan=plan, artifacts=cache)
    assert cache.compilations == 0  # refused before any work
    assert reg.start_canary("a", "2.0.0", 50).canary_percent == 50  # the running canary may change its share


def test_local_check_failure_is_named_and_recorded(reg: EmbeddedRegistry) -> None:
    with pytest.raises(InvalidComponent, match=r"immediate step .check. failed: .*not a WebAssembly file"):
        rollout_local(reg, "a", b"not wasm at all", version="2.0.0")
    assert reg.get_deployment("a").active_version == "1.0.0"
    assert reg.history("a")[-1].outcome == "failed"


@pytest.mark.parametrize("strategy", ["immediate", "blue-green"])
def test_a_nested_route_is_refused_before_any_work(reg: EmbeddedRegistry, strategy: str) -> None:
    cache = artifacts(None)
    before = (reg.change_token(), reg.components(), reg.history())
    with pytest.raises(RouteConflict, match=r"route /a/b is inside /a, owned by a; .*pass --nested to allow it"):
        rollout_local(reg, "b", text_component("B"), version="1.0.0", route="/a/b", plan=Plan.parse(strategy),
                      artifacts=cache)
    with pytest.raises(RouteConflict, match="inside /a"):
        deploy(reg, "b", b"not even wasm", version="1.0.0", route="/a/b")  # refused before the file is looked at
    assert cache.compilations == 0 and (reg.change_token(), reg.components(), reg.history()) == before
    dep = rollout_local(reg, "b", text_component("B"), version="1.0.0", route="/a/b", plan=Plan.parse(strategy),
                        allow_nested=True)
    assert dep.nested and dep.route == "/a/b"
