"""The registry contract (``airssys_web.lifecycle.registry.base``): every flavour must pass these.

The tests take a ``reg`` (a :class:`Registry`) and ``opener`` (opens another handle on the same storage, as another
process would). They are parametrized over the flavours in ``FLAVOURS``: adding one (Redis) is adding an entry
there. What only one flavour has (file layout, SQLite, crash recovery) is tested beside it (``test_embedded.py``).
"""

from __future__ import annotations

import itertools
import re
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from redis_support import redis_url

from airssys_web.capabilities.grants import Capability
from airssys_web.errors import (
    CapabilityError,
    Conflict,
    InvalidName,
    NotFound,
    PipelineError,
    RegistryError,
    RouteConflict,
    VersionExists,
)
from airssys_web.lifecycle.registry import EmbeddedRegistry, Registry
from airssys_web.lifecycle.registry.redis_registry import RedisRegistry
from airssys_web.lifecycle.settings import VersionSettings

Opener = Callable[[], Registry]


def _redis(tmp: Path) -> Opener:
    url = redis_url(tmp)  # the session's redis-server, with a key prefix of this test's own
    return lambda: RedisRegistry(url, artifacts_dir=tmp / "artifacts")


#: flavour name -> how to open it in a test's temporary directory
FLAVOURS: dict[str, Callable[[Path], Opener]] = {
    "embedded": lambda tmp: lambda: EmbeddedRegistry(tmp / "reg"),
    "redis": _redis,
}


@pytest.fixture(params=sorted(FLAVOURS))
def opener(request: pytest.FixtureRequest, tmp_path: Path) -> Opener:
    return FLAVOURS[request.param](tmp_path)


@pytest.fixture
def reg(opener: Opener) -> Iterator[Registry]:
    registry = opener()
    yield registry
    registry.close()


def wasm(n: int) -> bytes:
    """Distinct fake blobs: the registry stores bytes, it does not parse them."""
    return b"\0asm" + n.to_bytes(4, "big") * 16


def deploy(reg: Registry, name: str, version: str, n: int, route: str | None = None, **kw: object) -> None:
    reg.deploy(name, version, sha256=reg.blobs.put(wasm(n)), route=route or f"/{name}", **kw)  # type: ignore[arg-type]


def config(**values: str) -> VersionSettings:
    return VersionSettings.of(*(Capability.config(k, v) for k, v in values.items()))


# -- blobs ---------------------------------------------------------------------------------------------------------
def test_blobs_are_content_addressed_and_idempotent(reg: Registry) -> None:
    sha = reg.blobs.put(wasm(1))
    assert reg.blobs.read(sha) == wasm(1) and reg.blobs.size(sha) == len(wasm(1))
    assert reg.blobs.put(wasm(1)) == sha
    assert reg.blobs.size("0" * 64) is None
    with pytest.raises(NotFound):
        reg.blobs.read("0" * 64)
    with pytest.raises(InvalidName, match="64 lowercase hex"):
        reg.blobs.read("../" + "0" * 61)


# -- deploy ----------------------------------------------------------------------------------------------------------
def test_first_deploy_activates_and_lists(reg: Registry) -> None:
    sha = reg.blobs.put(wasm(1))
    settings = VersionSettings.of(memory=64 << 20)
    dep = reg.deploy("hello", "1.0.0", sha256=sha, route="/hello", settings=settings)
    assert (dep.component, dep.route, dep.active_version, dep.sha256) == ("hello", "/hello", "1.0.0", sha)
    assert dep.previous_version is None and dep.settings == settings
    assert reg.active() == [dep]
    info = reg.get_component("hello")
    assert (info.name, info.route, info.active_version) == ("hello", "/hello", "1.0.0")
    assert reg.components() == [info]
    assert reg.get_version("hello", "1.0.0").sha256 == sha


def test_first_deploy_needs_a_route_and_a_stored_blob(reg: Registry) -> None:
    with pytest.raises(InvalidName, match="give it a route"):
        reg.deploy("hello", "1.0.0", sha256=reg.blobs.put(wasm(1)))
    with pytest.raises(NotFound, match=r"blobs\.put"):
        reg.deploy("hello", "1.0.0", sha256="0" * 64, route="/hello")
    assert reg.components() == [] and reg.change_token() == 0


@pytest.mark.parametrize(
    ("name", "version", "route"), [("Bad", "1.0.0", "/a"), ("ok", "1.0", "/a"), ("ok", "1.0.0", "/a/")]
)
def test_deploy_validates_everything_before_writing(reg: Registry, name: str, version: str, route: str) -> None:
    with pytest.raises(InvalidName):
        reg.deploy(name, version, sha256=reg.blobs.put(wasm(1)), route=route)
    assert reg.components() == []


def test_settings_must_be_a_settings_value(reg: Registry) -> None:
    sha = reg.blobs.put(wasm(1))
    with pytest.raises(CapabilityError, match=r"VersionSettings\.from_json"):
        reg.deploy("a", "1.0.0", sha256=sha, route="/a", settings={"limits": {}})  # type: ignore[arg-type]
    assert reg.components() == []


def test_versions_sort_by_semver(reg: Registry) -> None:
    for i, v in enumerate(["1.10.0", "1.2.0", "1.2.0-rc.1", "1.9.0"]):
        deploy(reg, "a", v, i)
    assert [v.version for v in reg.versions("a")] == ["1.2.0-rc.1", "1.2.0", "1.9.0", "1.10.0"]
    with pytest.raises(NotFound):
        reg.versions("nope")


def test_redeploying_the_same_version_is_idempotent(reg: Registry) -> None:
    deploy(reg, "a", "1.0.0", 1, settings=config(b="1", a="2"))
    deploy(reg, "a", "1.1.0", 2)
    deploy(reg, "a", "1.1.0", 2)  # same content, already active
    assert reg.active()[0].previous_version == "1.0.0"
    deploy(reg, "a", "1.0.0", 1, settings=config(a="2", b="1"))  # same settings in another order
    assert [v.version for v in reg.versions("a")] == ["1.0.0", "1.1.0"]
    assert (reg.active()[0].active_version, reg.active()[0].previous_version) == ("1.0.0", "1.1.0")
    assert [h.detail for h in reg.history("a")] == ["", "", "already active", ""]


def test_versions_are_immutable(reg: Registry) -> None:
    deploy(reg, "a", "1.0.0", 1, settings=config(x="1"))
    token = reg.change_token()
    with pytest.raises(VersionExists, match="sha256"):
        deploy(reg, "a", "1.0.0", 2, settings=config(x="1"))
    with pytest.raises(VersionExists, match="settings"):
        deploy(reg, "a", "1.0.0", 1, settings=config(x="2"))
    assert reg.change_token() == token and len(reg.history("a")) == 1
    assert reg.blobs.read(reg.get_version("a", "1.0.0").sha256) == wasm(1)


def test_route_conflict_names_the_owner(reg: Registry) -> None:
    deploy(reg, "a", "1.0.0", 1, route="/x")
    with pytest.raises(RouteConflict, match="owned by component 'a'"):
        deploy(reg, "b", "1.0.0", 2, route="/x")
    assert [c.name for c in reg.components()] == ["a"]
    deploy(reg, "b", "1.0.0", 2, route="/x/nested", allow_nested=True)
    with pytest.raises(RouteConflict, match="owned by component 'a'"):
        deploy(reg, "b", "1.1.0", 3, route="/x", allow_nested=True)  # equal routes: never, even nested
    assert reg.get_component("b").route == "/x/nested" and reg.get_component("b").active_version == "1.0.0"


@pytest.mark.parametrize(("route", "message"), [
    ("/adm/sub", "route /adm/sub is inside /adm, owned by adm; it would take /adm/sub and everything below it "
                 "away from adm; pass --nested to allow it"),
    ("/adm/a/b", "route /adm/a/b is inside /adm, owned by adm"),
    ("/a", "route /a contains /a/b, owned by ab; ab would keep /a/b and everything below it; pass --nested"),
])
def test_a_nested_route_is_refused_unless_asked_for(reg: Registry, route: str, message: str) -> None:
    deploy(reg, "adm", "1.0.0", 1, route="/adm")
    deploy(reg, "ab", "1.0.0", 2, route="/a/b")
    before = (reg.change_token(), reg.components(), reg.active(), reg.history())
    with pytest.raises(RouteConflict, match=re.escape(message)):
        deploy(reg, "sub", "1.0.0", 3, route=route)
    with pytest.raises(RouteConflict, match=re.escape(message)):
        reg.check_route("sub", route)
    with pytest.raises(RouteConflict, match=re.escape(message)):
        reg.add_version("sub", "1.0.0", sha256=reg.blobs.put(wasm(3)), route=route)
    assert (reg.change_token(), reg.components(), reg.active(), reg.history()) == before  # nothing changed
    deploy(reg, "sub", "1.0.0", 3, route=route, allow_nested=True)
    assert reg.get_component("sub").nested and reg.get_deployment("sub").nested
    assert not reg.get_component("adm").nested


def test_unrelated_and_sibling_routes_are_not_nested(reg: Registry) -> None:
    deploy(reg, "adm", "1.0.0", 1, route="/adm")
    deploy(reg, "admin", "1.0.0", 2, route="/admin")  # a sibling sharing a prefix of characters, not of segments
    deploy(reg, "other", "1.0.0", 3, route="/other/adm")
    assert not any(c.nested for c in reg.components())


def test_the_nested_permission_belongs_to_the_route_claim(reg: Registry) -> None:
    deploy(reg, "adm", "1.0.0", 1, route="/adm")
    deploy(reg, "sub", "1.0.0", 2, route="/adm/sub", allow_nested=True)
    reg.deploy("sub", "1.1.0", sha256=reg.blobs.put(wasm(3)))  # keeps its route and permission: no new claim
    deploy(reg, "adm", "1.1.0", 4)  # the outer component's updates (same route) are not refused either
    assert reg.get_component("sub").nested and reg.get_component("sub").route == "/adm/sub"
    with pytest.raises(RouteConflict, match="inside /adm"):
        deploy(reg, "sub", "1.2.0", 5, route="/adm/other")  # a move claims again
    deploy(reg, "sub", "1.2.0", 5, route="/elsewhere")
    assert not reg.get_component("sub").nested
    assert reg.history("sub")[-1].detail == "route /adm/sub -> /elsewhere"


def test_a_later_deploy_may_move_or_keep_the_route(reg: Registry) -> None:
    deploy(reg, "a", "1.0.0", 1, route="/old")
    reg.deploy("a", "1.1.0", sha256=reg.blobs.put(wasm(2)))  # route omitted: kept
    assert reg.get_component("a").route == "/old"
    deploy(reg, "a", "1.2.0", 3, route="/new")
    assert reg.active()[0].route == "/new" and reg.history("a")[-1].detail == "route /old -> /new"
    deploy(reg, "b", "1.0.0", 4, route="/old")  # the freed route can be claimed


# -- activate, rollback, history -------------------------------------------------------------------------------------
def test_activate(reg: Registry) -> None:
    deploy(reg, "a", "1.0.0", 1)
    deploy(reg, "a", "2.0.0", 2)
    dep = reg.activate("a", "1.0.0", actor="alice")
    assert (dep.active_version, dep.previous_version, dep.sha256) == ("1.0.0", "2.0.0", reg.blobs.put(wasm(1)))
    with pytest.raises(NotFound, match=r"no version 3\.0\.0"):
        reg.activate("a", "3.0.0")
    with pytest.raises(NotFound, match="no component named 'b'"):
        reg.activate("b", "1.0.0")


def test_rollback_walks_back_like_an_undo_stack(reg: Registry) -> None:
    for i, v in enumerate(["1.0.0", "2.0.0", "3.0.0"]):
        deploy(reg, "a", v, i)
    assert reg.rollback("a").active_version == "2.0.0"
    assert reg.rollback("a").active_version == "1.0.0"
    with pytest.raises(NotFound, match="no earlier version"):
        reg.rollback("a")
    deploy(reg, "a", "4.0.0", 4)
    dep = reg.rollback("a", actor="bob")
    assert (dep.active_version, dep.previous_version) == ("1.0.0", None)
    assert reg.rollback("a", "3.0.0").previous_version == "2.0.0"  # explicit target restores its own past
    assert reg.rollback("a").active_version == "2.0.0"


def test_rollback_after_activating_an_old_version_returns_to_the_newer_one(reg: Registry) -> None:
    deploy(reg, "a", "1.0.0", 1)
    deploy(reg, "a", "2.0.0", 2)
    reg.activate("a", "1.0.0")
    assert reg.rollback("a").active_version == "2.0.0"
    assert reg.rollback("a").active_version == "1.0.0"


def test_rollback_errors(reg: Registry) -> None:
    with pytest.raises(NotFound, match="no component named"):
        reg.rollback("nope")
    deploy(reg, "a", "1.0.0", 1)
    with pytest.raises(NotFound, match=r"no version 9\.9\.9"):
        reg.rollback("a", "9.9.9")
    with pytest.raises(InvalidName):
        reg.rollback("a", "latest")


def test_history_records_every_activation_in_order(reg: Registry) -> None:
    deploy(reg, "a", "1.0.0", 1, actor="ci", strategy="immediate")
    deploy(reg, "b", "1.0.0", 2)
    deploy(reg, "a", "1.1.0", 3)
    reg.activate("a", "1.0.0", actor="alice", action="promote", strategy="manual")
    reg.rollback("a", actor="bob")
    rows = [(h.component, h.version, h.previous_version, h.action, h.actor) for h in reg.history("a")]
    assert rows == [
        ("a", "1.0.0", None, "deploy", "ci"),
        ("a", "1.1.0", "1.0.0", "deploy", "cli"),
        ("a", "1.0.0", "1.1.0", "promote", "alice"),
        ("a", "1.1.0", "1.0.0", "rollback", "bob"),
    ]
    everything = reg.history()
    assert [h.id for h in everything] == sorted(h.id for h in everything) and len(everything) == 5
    assert everything[-1].detail == "from 1.0.0" and everything[3].strategy == "manual"
    assert all(h.outcome == "ok" for h in everything)
    assert [h.at for h in everything] == sorted(h.at for h in everything)
    with pytest.raises(NotFound):
        reg.history("nope")


def test_failed_attempts_are_recorded_without_disturbing_the_rollback_stack(reg: Registry) -> None:
    deploy(reg, "a", "1.0.0", 1)
    deploy(reg, "a", "2.0.0", 2)
    token = reg.change_token()
    reg.record("a", "3.0.0", action="deploy", strategy="blue-green", actor="t", outcome="failed", detail="probe")
    assert reg.change_token() == token  # nothing for a server to apply
    assert (reg.history("a")[-1].outcome, reg.history("a")[-1].detail) == ("failed", "probe")
    assert reg.rollback("a").active_version == "1.0.0"
    with pytest.raises(NotFound):
        reg.record("nope", "1.0.0", action="deploy", strategy="immediate", actor="t", outcome="failed")


# -- canaries --------------------------------------------------------------------------------------------------------
def test_canary_promote_and_abort(reg: Registry) -> None:
    deploy(reg, "a", "1.0.0", 1)
    reg.add_version("a", "2.0.0", sha256=reg.blobs.put(wasm(2)), settings=config(c="2"))
    dep = reg.start_canary("a", "2.0.0", 20, actor="t")
    assert (dep.active_version, dep.canary_version, dep.canary_percent, dep.newest_version) == (
        "1.0.0", "2.0.0", 20, "2.0.0")
    assert dep.canary_settings == config(c="2") and dep.canary_sha256 == reg.blobs.put(wasm(2))
    assert reg.start_canary("a", "2.0.0", 60).canary_percent == 60  # the share can change
    assert reg.history("a")[-1].detail == "20% -> 60%"
    dep = reg.rollback("a")  # undo = abort the canary
    assert (dep.active_version, dep.canary_version, dep.canary_percent) == ("1.0.0", None, 0)
    reg.start_canary("a", "2.0.0", 10)
    dep = reg.promote("a")
    assert (dep.active_version, dep.previous_version, dep.canary_version) == ("2.0.0", "1.0.0", None)
    assert reg.rollback("a").active_version == "1.0.0"  # the promotion is undone like a deploy


def test_canary_rules(reg: Registry) -> None:
    deploy(reg, "a", "1.0.0", 1)
    sha2, sha3 = reg.blobs.put(wasm(2)), reg.blobs.put(wasm(3))
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


# -- audit log -------------------------------------------------------------------------------------------------------
def test_audit_log_keeps_the_newest_and_moves_no_token(reg: Registry) -> None:
    token = reg.change_token()
    for i in range(5):
        reg.audit.append("deploy", f"a@{i}", "ok", token_id="tok_1", detail=f"#{i}")
    assert reg.change_token() == token  # nothing for a server to apply
    entries = reg.audit.entries(limit=2)
    assert [(a.target, a.detail, a.token_id) for a in entries] == [("a@3", "#3", "tok_1"), ("a@4", "#4", "tok_1")]
    assert [a.id for a in reg.audit.entries()] == sorted(a.id for a in reg.audit.entries())


# -- change token, handles, threads ----------------------------------------------------------------------------------
def test_change_token_moves_on_writes_only_and_across_handles(opener: Opener) -> None:
    writer, watcher = opener(), opener()
    try:
        before = watcher.change_token()
        watcher.active(), watcher.components(), watcher.blobs.put(wasm(1))
        assert watcher.change_token() == before
        deploy(writer, "a", "1.0.0", 1)
        after = watcher.change_token()
        assert after != before and [d.active_version for d in watcher.active()] == ["1.0.0"]
        writer.rollback("a", "1.0.0")
        assert watcher.change_token() != after
    finally:
        writer.close()
        watcher.close()


@pytest.mark.parametrize("shared_object", [False, True], ids=["own-handle-each", "one-handle"])
def test_concurrent_writers_stay_linear(opener: Opener, shared_object: bool) -> None:
    threads_n, ops = 4, 12
    main = opener()
    try:
        for i in range(4):
            deploy(main, "shared", f"1.0.{i}", i)
        errors: list[BaseException] = []
        barrier = threading.Barrier(threads_n)

        def work(t: int) -> None:
            reg = main if shared_object else opener()
            try:
                barrier.wait()
                for j in range(ops):
                    reg.activate("shared", f"1.0.{(t + j) % 4}", actor=f"t{t}")
                    deploy(reg, f"w{t}", f"1.0.{j}", 100 * t + j)
            except BaseException as exc:
                errors.append(exc)
            finally:
                if not shared_object:
                    reg.close()

        workers = [threading.Thread(target=work, args=(t,)) for t in range(threads_n)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        assert errors == []
        history = main.history()
        assert [h.id for h in history] == sorted(h.id for h in history)
        assert len(history) == 4 + 2 * threads_n * ops
        shared = main.history("shared")
        for before, after in itertools.pairwise(shared):
            if after.version != before.version:
                assert after.previous_version == before.version
        assert main.get_component("shared").active_version == shared[-1].version
    finally:
        main.close()


def test_close_is_idempotent_and_final(opener: Opener) -> None:
    reg = opener()
    reg.close()
    reg.close()
    with pytest.raises(RegistryError, match="closed"):
        reg.change_token()


# -- kinds and pipelines ----------------------------------------------------------------------------------------------
def stage(reg: Registry, name: str, version: str = "1.0.0", n: int = 90) -> None:
    reg.deploy(name, version, sha256=reg.blobs.put(wasm(n)), kind="middleware")


def test_a_middleware_component_has_no_route_and_keeps_its_kind(reg: Registry) -> None:
    stage(reg, "auth")
    info = reg.get_component("auth")
    assert (info.kind, info.route, info.stages) == ("middleware", None, ())
    assert reg.get_deployment("auth").route is None
    with pytest.raises(PipelineError, match="auth is a middleware stage: it owns no route"):
        reg.deploy("auth", "1.1.0", sha256=reg.blobs.put(wasm(91)), route="/auth", kind="middleware")
    with pytest.raises(PipelineError, match="auth is a middleware component, but this version is a route"):
        reg.deploy("auth", "1.1.0", sha256=reg.blobs.put(wasm(91)))
    deploy(reg, "api", "1.0.0", 1)
    with pytest.raises(PipelineError, match="api is a route component, but this version is a middleware stage"):
        reg.deploy("api", "1.1.0", sha256=reg.blobs.put(wasm(2)), kind="middleware")
    deploy(reg, "other", "1.0.0", 3, route="/auth")  # a stage claims no route, so /auth is free
    assert [v.version for v in reg.versions("auth")] == ["1.0.0"]  # the refusals changed nothing


def test_a_pipeline_is_set_shown_recorded_and_cleared(reg: Registry) -> None:
    deploy(reg, "api", "1.0.0", 1)
    stage(reg, "auth")
    stage(reg, "log", n=92)
    token = reg.change_token()
    dep = reg.set_pipeline("api", ["auth", "log"], actor="ops")
    assert dep.stages == ("auth", "log") == reg.get_component("api").stages
    assert reg.change_token() != token
    assert [d.stages for d in reg.active() if d.component == "api"] == [("auth", "log")]
    assert reg.pipelines_using("log") == ["api"] and reg.pipelines_using("api") == []
    entry = reg.history("api")[-1]
    assert (entry.action, entry.actor, entry.stages, entry.detail) == ("pipeline", "ops", ("auth", "log"),
                                                                       "(none) -> auth, log")
    token = reg.change_token()
    assert reg.set_pipeline("api", ["auth", "log"]).stages == ("auth", "log")  # the same again: nothing recorded
    assert reg.change_token() == token and len(reg.history("api")) == 2
    assert reg.set_pipeline("api", []).stages == ()
    assert reg.history("api")[-1].detail == "auth, log -> (none)"


def test_bad_pipelines_are_refused_and_change_nothing(reg: Registry) -> None:
    deploy(reg, "api", "1.0.0", 1)
    deploy(reg, "web", "1.0.0", 2)
    stage(reg, "auth")
    reg.set_pipeline("api", ["auth"])
    reg.add_version("idle", "1.0.0", sha256=reg.blobs.put(wasm(93)), kind="middleware")  # no active version
    token, history = reg.change_token(), reg.history("api")
    cases: list[tuple[str, list[str], type[Exception], str]] = [
        ("api", ["nope"], NotFound, "stage 'nope' is not a component; deploy it first"),
        ("nope", ["auth"], NotFound, "no component named 'nope'"),
        ("api", ["web"], PipelineError, "web is a route component, not a middleware stage"),
        ("auth", ["auth"], PipelineError, "auth is a middleware stage; a pipeline goes in front of a route"),
        ("api", ["auth", "auth"], PipelineError, "stage auth is listed twice"),
        ("api", ["api"], PipelineError, "api cannot be a stage in front of itself"),
        ("api", ["idle"], PipelineError, "stage idle has no active version"),
        ("api", ["Bad Name"], InvalidName, "invalid"),
        ("api", ["auth"] * 17, PipelineError, "at most 16 stages"),
    ]
    for name, stages, error, message in cases:
        with pytest.raises(error, match=re.escape(message)):
            reg.set_pipeline(name, stages)
    assert reg.change_token() == token and reg.history("api") == history
    assert reg.get_deployment("api").stages == ("auth",)


def test_rollback_undoes_pipeline_changes_and_deploys_in_order(reg: Registry) -> None:
    deploy(reg, "api", "1.0.0", 1)
    stage(reg, "auth")
    stage(reg, "log", n=92)
    reg.set_pipeline("api", ["auth"])
    deploy(reg, "api", "2.0.0", 2)
    reg.set_pipeline("api", ["auth", "log"])
    steps = []
    for _ in range(3):
        dep = reg.rollback("api", actor="ops")
        steps.append((dep.active_version, dep.stages))
    assert steps == [("2.0.0", ("auth",)), ("1.0.0", ("auth",)), ("1.0.0", ())]
    undo = reg.history("api")[-1]
    assert (undo.action, undo.strategy, undo.stages) == ("rollback", "pipeline", ())
    assert undo.detail == "pipeline auth -> (none)"
    with pytest.raises(NotFound, match="no earlier version"):
        reg.rollback("api")


def test_auto_rollback_rolls_the_version_back_even_after_a_pipeline_change(reg: Registry) -> None:
    deploy(reg, "api", "1.0.0", 1)
    deploy(reg, "api", "2.0.0", 2)
    stage(reg, "auth")
    reg.set_pipeline("api", ["auth"])
    dep = reg.rollback("api", expect="2.0.0", reason="error rate")  # what auto-rollback does
    assert (dep.active_version, dep.stages) == ("1.0.0", ("auth",))
    assert reg.rollback("api").stages == ()  # the pipeline change is still there to undo
