"""Tests for the embedded registry: validation, blobs, deploy/activate/rollback, change polling, crashes."""

from __future__ import annotations

import itertools
import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import airssys_web
from airssys_web.errors import (
    CapabilityError,
    InvalidName,
    NotFound,
    RegistryError,
    RouteConflict,
    VersionExists,
)
from airssys_web.lifecycle.registry import (
    SCHEMA_VERSION,
    EmbeddedRegistry,
    Registry,
    validate_name,
    validate_route,
    validate_version,
    version_key,
)

REPO_ROOT = Path(airssys_web.__file__).resolve().parents[1]


@pytest.fixture
def reg(tmp_path: Path) -> Iterator[EmbeddedRegistry]:
    with EmbeddedRegistry(tmp_path / "reg") as registry:
        yield registry


def wasm(n: int) -> bytes:
    """Distinct fake blobs: the registry stores bytes, it does not parse them."""
    return b"\0asm" + n.to_bytes(4, "big") * 16


def deploy(reg: Registry, name: str, version: str, n: int, route: str | None = None, **kw: object) -> None:
    reg.deploy(name, version, sha256=reg.put_blob(wasm(n)), route=route or f"/{name}", **kw)  # type: ignore[arg-type]


def run_child(code: str, *args: str, **kw: object) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.Popen(  # type: ignore[call-overload,no-any-return]
        [sys.executable, "-c", code, *args], env=env, text=True, **kw
    )


# -- names, versions, routes ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["a", "0", "hello", "my-app_2", "a" * 63])
def test_valid_names(name: str) -> None:
    assert validate_name(name) == name


@pytest.mark.parametrize("name", ["", "A", "Hello", "a/b", "..", "a b", "-a", "_a", "a.b", "a" * 64, "é", "a\n"])
def test_invalid_names_say_what_is_allowed(name: str) -> None:
    with pytest.raises(InvalidName, match=r"a-z, 0-9, '_' and '-'"):
        validate_name(name)


@pytest.mark.parametrize("version", ["0.0.0", "1.2.3", "1.0.0-rc.1", "1.0.0-0a.1", "1.0.0+build.001", "10.20.30"])
def test_valid_versions(version: str) -> None:
    assert validate_version(version) == version


@pytest.mark.parametrize(
    "version", ["", "1", "1.2", "v1.2.3", "01.2.3", "1.2.3-01", "1.2.3-", "1.2.3+", "1.2.3-a..b", " 1.2.3", "1.2.3\n"]
)
def test_invalid_versions(version: str) -> None:
    with pytest.raises(InvalidName, match=r"SemVer 2\.0\.0"):
        validate_version(version)


def test_overlong_version_is_refused() -> None:
    with pytest.raises(InvalidName, match="at most 128"):
        validate_version("1.0.0-" + "a" * 200)


def test_semver_precedence_from_the_spec() -> None:
    spec = ["1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta", "1.0.0-beta.2", "1.0.0-beta.11"]
    spec += ["1.0.0-rc.1", "1.0.0", "1.0.1", "1.2.0", "1.10.0", "2.0.0"]
    assert sorted(reversed(spec), key=version_key) == spec
    # Build metadata has no precedence; the raw string breaks the tie so sorting stays deterministic.
    assert sorted(["1.0.0+b", "1.0.0+a"], key=version_key) == ["1.0.0+a", "1.0.0+b"]


@pytest.mark.parametrize("route", ["/a", "/hello", "/api/v1", "/a.b/c_d/e-f/~g", "/A", "/_airssysx", "/a/_airssys"])
def test_valid_routes(route: str) -> None:
    assert validate_route(route) == route


@pytest.mark.parametrize(
    ("route", "why"),
    [
        ("", "must start with '/'"),
        ("hello", "must start with '/'"),
        ("/", "shadow the whole app"),
        ("/a/", "must not end with '/'; use '/a'"),
        ("/a//b", "empty segment"),
        ("//", "empty segment"),
        ("/a/../b", "'..' segments"),
        ("/..", "'..' segments"),
        ("/a/./b", "'.' and '..'"),
        ("/a?x=1", "no query"),
        ("/a#top", "no query or fragment"),
        ("/a b", "segments may only use"),
        ("/caf%C3%A9", "segments may only use"),
        ("/a\\b", "segments may only use"),
        ("/" + "a" * 300, "longer than 256"),
        ("/_airssys", "/_airssys and everything below it is reserved for airssys-web itself"),
        ("/_airssys/api", "reserved for airssys-web itself"),
        ("/_airssys/api/x", "reserved for airssys-web itself"),
        ("/_airssys/other", "reserved for airssys-web itself"),
    ],
)
def test_invalid_routes_say_why(route: str, why: str) -> None:
    with pytest.raises(InvalidName, match=re.escape(why)):
        validate_route(route)


_NUM = st.integers(0, 10**6).map(str)
_ALNUM = st.from_regex(r"[0-9A-Za-z-]{0,3}[A-Za-z-][0-9A-Za-z-]{0,3}", fullmatch=True)
_BUILD = st.from_regex(r"[0-9A-Za-z-]{1,5}", fullmatch=True)


@st.composite
def semvers(draw: st.DrawFn) -> str:
    core = ".".join(str(draw(st.integers(0, 3))) for _ in range(3))
    pre = draw(st.lists(st.one_of(_NUM, _ALNUM), max_size=3))
    build = draw(st.lists(_BUILD, max_size=2))
    return core + ("-" + ".".join(pre) if pre else "") + ("+" + ".".join(build) if build else "")


def reference_key(version: str) -> tuple[object, ...]:
    """SemVer 2.0.0 section 11, written out independently of the ``semver`` package."""
    core, _, _build = version.partition("+")
    core, dash, pre = core.partition("-")
    major, minor, patch = (int(x) for x in core.split("."))
    if not dash:
        return (major, minor, patch, (1,), version)
    ids = tuple((0, int(x), "") if x.isdigit() else (1, 0, x) for x in pre.split("."))
    return (major, minor, patch, (0, ids), version)


@given(st.lists(semvers(), min_size=2, max_size=8))
def test_semver_order_matches_the_spec(versions: list[str]) -> None:
    for v in versions:
        assert validate_version(v) == v
    assert sorted(versions, key=version_key) == sorted(versions, key=reference_key)


_OFFICIAL = re.compile(  # the regular expression published on semver.org, ASCII-only
    r"(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)"
    r"(?:-((?:0|[1-9][0-9]*|[0-9]*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9][0-9]*|[0-9]*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?"
)


@given(st.one_of(st.text(alphabet="0123456789.-+abZ\n ", max_size=16), st.text(max_size=12), semvers()))
def test_version_parse_agrees_with_the_official_regex(text: str) -> None:
    try:
        validate_version(text)
    except InvalidName:
        assert not _OFFICIAL.fullmatch(text)
    else:
        assert _OFFICIAL.fullmatch(text)


# -- blobs ---------------------------------------------------------------------------------------------


def test_blob_roundtrip_and_layout(reg: EmbeddedRegistry) -> None:
    sha = reg.put_blob(wasm(1))
    assert reg.blob_path(sha) == reg.root / "blobs" / sha[:2] / f"{sha}.wasm"
    assert reg.read_blob(sha) == wasm(1)
    assert reg.put_blob(wasm(1)) == sha  # idempotent
    assert [p.name for p in reg.blob_path(sha).parent.iterdir()] == [f"{sha}.wasm"]  # no temp files left
    assert reg.artifacts_dir.is_dir() and reg.artifacts_dir == reg.root / "artifacts"


def test_corrupt_blob_is_detected_on_read_and_repaired_by_put(reg: EmbeddedRegistry) -> None:
    sha = reg.put_blob(wasm(1))
    reg.blob_path(sha).write_bytes(wasm(2))
    with pytest.raises(RegistryError, match="corrupt"):
        reg.read_blob(sha)
    reg.put_blob(wasm(1))
    assert reg.read_blob(sha) == wasm(1)


def test_missing_and_malformed_blob_names(reg: EmbeddedRegistry) -> None:
    with pytest.raises(NotFound):
        reg.read_blob("0" * 64)
    for bad in ["", "abc", "A" * 64, "../" + "0" * 61]:
        with pytest.raises(InvalidName, match="64 lowercase hex"):
            reg.blob_path(bad)


# -- deploy ---------------------------------------------------------------------------------------------


def test_first_deploy_activates_and_lists(reg: EmbeddedRegistry) -> None:
    sha = reg.put_blob(wasm(1))
    dep = reg.deploy("hello", "1.0.0", sha256=sha, route="/hello", settings={"limits": {"memory": 1}})
    assert (dep.component, dep.route, dep.active_version, dep.sha256) == ("hello", "/hello", "1.0.0", sha)
    assert dep.previous_version is None and dep.settings == {"limits": {"memory": 1}}
    assert reg.active() == [dep]
    info = reg.get_component("hello")
    assert (info.name, info.route, info.active_version) == ("hello", "/hello", "1.0.0")
    assert reg.components() == [info]
    assert reg.get_version("hello", "1.0.0").sha256 == sha


def test_first_deploy_needs_a_route_and_a_stored_blob(reg: EmbeddedRegistry) -> None:
    with pytest.raises(InvalidName, match="give it a route"):
        reg.deploy("hello", "1.0.0", sha256=reg.put_blob(wasm(1)))
    with pytest.raises(NotFound, match="put_blob"):
        reg.deploy("hello", "1.0.0", sha256="0" * 64, route="/hello")
    assert reg.components() == [] and reg.change_token() == 0


@pytest.mark.parametrize(
    ("name", "version", "route"), [("Bad", "1.0.0", "/a"), ("ok", "1.0", "/a"), ("ok", "1.0.0", "/a/")]
)
def test_deploy_validates_everything_before_writing(reg: EmbeddedRegistry, name: str, version: str, route: str) -> None:
    with pytest.raises(InvalidName):
        reg.deploy(name, version, sha256=reg.put_blob(wasm(1)), route=route)
    assert reg.components() == []


def test_settings_must_be_json(reg: EmbeddedRegistry) -> None:
    sha = reg.put_blob(wasm(1))
    for bad in [{"x": object()}, {"x": float("nan")}, {1: "a"}, ["a"]]:
        with pytest.raises(CapabilityError):
            reg.deploy("a", "1.0.0", sha256=sha, route="/a", settings=bad)  # type: ignore[arg-type]


def test_versions_sort_by_semver(reg: EmbeddedRegistry) -> None:
    for i, v in enumerate(["1.10.0", "1.2.0", "1.2.0-rc.1", "1.9.0"]):
        deploy(reg, "a", v, i)
    assert [v.version for v in reg.versions("a")] == ["1.2.0-rc.1", "1.2.0", "1.9.0", "1.10.0"]
    with pytest.raises(NotFound):
        reg.versions("nope")


def test_redeploying_the_same_version_is_idempotent(reg: EmbeddedRegistry) -> None:
    deploy(reg, "a", "1.0.0", 1, settings={"b": 1, "a": 2})
    deploy(reg, "a", "1.1.0", 2)
    deploy(reg, "a", "1.1.0", 2)  # same content, already active
    assert reg.active()[0].previous_version == "1.0.0"
    deploy(reg, "a", "1.0.0", 1, settings={"a": 2, "b": 1})  # same settings in another order
    assert [v.version for v in reg.versions("a")] == ["1.0.0", "1.1.0"]
    assert (reg.active()[0].active_version, reg.active()[0].previous_version) == ("1.0.0", "1.1.0")
    assert [h.detail for h in reg.history("a")] == ["", "", "already active", ""]


def test_versions_are_immutable(reg: EmbeddedRegistry) -> None:
    deploy(reg, "a", "1.0.0", 1, settings={"x": 1})
    token = reg.change_token()
    with pytest.raises(VersionExists, match="sha256"):
        deploy(reg, "a", "1.0.0", 2, settings={"x": 1})
    with pytest.raises(VersionExists, match="settings"):
        deploy(reg, "a", "1.0.0", 1, settings={"x": 2})
    assert reg.change_token() == token and len(reg.history("a")) == 1
    assert reg.read_blob(reg.get_version("a", "1.0.0").sha256) == wasm(1)


def test_route_conflict_names_the_owner(reg: EmbeddedRegistry) -> None:
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
def test_a_nested_route_is_refused_unless_asked_for(reg: EmbeddedRegistry, route: str, message: str) -> None:
    deploy(reg, "adm", "1.0.0", 1, route="/adm")
    deploy(reg, "ab", "1.0.0", 2, route="/a/b")
    before = (reg.change_token(), reg.components(), reg.active(), reg.history())
    with pytest.raises(RouteConflict, match=re.escape(message)):
        deploy(reg, "sub", "1.0.0", 3, route=route)
    with pytest.raises(RouteConflict, match=re.escape(message)):
        reg.check_route("sub", route)
    with pytest.raises(RouteConflict, match=re.escape(message)):
        reg.add_version("sub", "1.0.0", sha256=reg.put_blob(wasm(3)), route=route)
    assert (reg.change_token(), reg.components(), reg.active(), reg.history()) == before  # nothing changed
    deploy(reg, "sub", "1.0.0", 3, route=route, allow_nested=True)
    assert reg.get_component("sub").nested and reg.get_deployment("sub").nested
    assert not reg.get_component("adm").nested


def test_unrelated_and_sibling_routes_are_not_nested(reg: EmbeddedRegistry) -> None:
    deploy(reg, "adm", "1.0.0", 1, route="/adm")
    deploy(reg, "admin", "1.0.0", 2, route="/admin")  # a sibling sharing a prefix of characters, not of segments
    deploy(reg, "other", "1.0.0", 3, route="/other/adm")
    assert not any(c.nested for c in reg.components())


def test_the_nested_permission_belongs_to_the_route_claim(reg: EmbeddedRegistry) -> None:
    deploy(reg, "adm", "1.0.0", 1, route="/adm")
    deploy(reg, "sub", "1.0.0", 2, route="/adm/sub", allow_nested=True)
    reg.deploy("sub", "1.1.0", sha256=reg.put_blob(wasm(3)))  # keeps its route and permission: no new claim
    deploy(reg, "adm", "1.1.0", 4)  # the outer component's updates (same route) are not refused either
    assert reg.get_component("sub").nested and reg.get_component("sub").route == "/adm/sub"
    with pytest.raises(RouteConflict, match="inside /adm"):
        deploy(reg, "sub", "1.2.0", 5, route="/adm/other")  # a move claims again
    deploy(reg, "sub", "1.2.0", 5, route="/elsewhere")
    assert not reg.get_component("sub").nested
    assert reg.history("sub")[-1].detail == "route /adm/sub -> /elsewhere"


def test_a_later_deploy_may_move_or_keep_the_route(reg: EmbeddedRegistry) -> None:
    deploy(reg, "a", "1.0.0", 1, route="/old")
    reg.deploy("a", "1.1.0", sha256=reg.put_blob(wasm(2)))  # route omitted: kept
    assert reg.get_component("a").route == "/old"
    deploy(reg, "a", "1.2.0", 3, route="/new")
    assert reg.active()[0].route == "/new" and reg.history("a")[-1].detail == "route /old -> /new"
    deploy(reg, "b", "1.0.0", 4, route="/old")  # the freed route can be claimed


# -- activate, rollback, history -----------------------------------------------------------------------


def test_activate(reg: EmbeddedRegistry) -> None:
    deploy(reg, "a", "1.0.0", 1)
    deploy(reg, "a", "2.0.0", 2)
    dep = reg.activate("a", "1.0.0", actor="alice")
    assert (dep.active_version, dep.previous_version, dep.sha256) == ("1.0.0", "2.0.0", reg.put_blob(wasm(1)))
    with pytest.raises(NotFound, match=r"no version 3\.0\.0"):
        reg.activate("a", "3.0.0")
    with pytest.raises(NotFound, match="no component named 'b'"):
        reg.activate("b", "1.0.0")


def test_rollback_walks_back_like_an_undo_stack(reg: EmbeddedRegistry) -> None:
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


def test_rollback_after_activating_an_old_version_returns_to_the_newer_one(reg: EmbeddedRegistry) -> None:
    deploy(reg, "a", "1.0.0", 1)
    deploy(reg, "a", "2.0.0", 2)
    reg.activate("a", "1.0.0")
    assert reg.rollback("a").active_version == "2.0.0"
    assert reg.rollback("a").active_version == "1.0.0"


def test_rollback_errors(reg: EmbeddedRegistry) -> None:
    with pytest.raises(NotFound, match="no component named"):
        reg.rollback("nope")
    deploy(reg, "a", "1.0.0", 1)
    with pytest.raises(NotFound, match=r"no version 9\.9\.9"):
        reg.rollback("a", "9.9.9")
    with pytest.raises(InvalidName):
        reg.rollback("a", "latest")


def test_history_records_every_activation_in_order(reg: EmbeddedRegistry) -> None:
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


# -- change polling, processes, lifecycle --------------------------------------------------------------


def test_change_token_moves_on_writes_only_and_across_instances(tmp_path: Path) -> None:
    with EmbeddedRegistry(tmp_path) as writer, EmbeddedRegistry(tmp_path) as watcher:
        before = watcher.change_token()
        watcher.active(), watcher.components(), watcher.put_blob(wasm(1))
        assert watcher.change_token() == before
        deploy(writer, "a", "1.0.0", 1)
        after = watcher.change_token()
        assert after != before and [d.active_version for d in watcher.active()] == ["1.0.0"]
        writer.rollback("a", "1.0.0")
        assert watcher.change_token() != after


def test_change_token_sees_another_process(tmp_path: Path) -> None:
    with EmbeddedRegistry(tmp_path) as reg:
        before = reg.change_token()
        child = run_child(
            "import sys; from airssys_web.lifecycle.registry import EmbeddedRegistry\n"
            "with EmbeddedRegistry(sys.argv[1]) as r:\n"
            "    r.deploy('p', '1.0.0', sha256=r.put_blob(b'from child'), route='/p', actor='child')\n",
            str(tmp_path),
        )
        assert child.wait(timeout=60) == 0
        assert reg.change_token() != before
        (dep,) = reg.active()
        assert dep.component == "p" and reg.read_blob(dep.sha256) == b"from child"
        assert reg.history("p")[0].actor == "child"


_CRASH_LOOP = """
import sys
from airssys_web.lifecycle.registry import EmbeddedRegistry
reg = EmbeddedRegistry(sys.argv[1])
rnd, i = int(sys.argv[2]), 0
while True:
    name = f"c{i % 3}"
    sha = reg.put_blob(b"\\0asm" + f"{rnd}.{i}".encode() * 4096)
    reg.deploy(name, f"{rnd}.0.{i}", sha256=sha, route=f"/{name}", settings={"i": i})
    if i % 4 == 3:
        reg.rollback(name)
    print(i, flush=True)
    i += 1
"""


def test_sigkill_mid_write_leaves_a_consistent_registry(tmp_path: Path) -> None:
    for rnd in range(1, 4):
        child = run_child(_CRASH_LOOP, str(tmp_path), str(rnd), stdout=subprocess.PIPE)
        assert child.stdout is not None
        for _ in range(10 * rnd):
            assert child.stdout.readline(), "crash-loop child died on its own"
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=60)
        child.stdout.close()
        with EmbeddedRegistry(tmp_path) as reg:
            assert reg.verify() == []
            history = reg.history()
            versions = [v for c in reg.components() for v in reg.versions(c.name)]
            assert len([h for h in history if h.action == "deploy"]) == len(versions) >= 10 * rnd
            assert reg.change_token() == len(history)  # every committed write bumped it exactly once
            for dep in reg.active():
                assert dep.active_version == [h for h in history if h.component == dep.component][-1].version


@pytest.mark.parametrize("shared_object", [False, True], ids=["own-registry-each", "one-registry"])
def test_concurrent_writers_stay_linear(tmp_path: Path, shared_object: bool) -> None:
    threads_n, ops = 4, 12
    with EmbeddedRegistry(tmp_path) as main:
        for i in range(4):
            deploy(main, "shared", f"1.0.{i}", i)
        errors: list[BaseException] = []
        barrier = threading.Barrier(threads_n)

        def work(t: int) -> None:
            reg = main if shared_object else EmbeddedRegistry(tmp_path)
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
        assert [h.id for h in history] == list(range(1, len(history) + 1))
        assert len(history) == 4 + 2 * threads_n * ops == main.change_token()
        shared = main.history("shared")
        for before, after in itertools.pairwise(shared):
            if after.version != before.version:
                assert after.previous_version == before.version
        assert main.get_component("shared").active_version == shared[-1].version
        assert main.verify() == []


def test_close_is_idempotent_and_final(tmp_path: Path) -> None:
    reg = EmbeddedRegistry(tmp_path)
    reg.close()
    reg.close()
    with pytest.raises(RegistryError, match="closed"):
        reg.change_token()


def test_schema_wal_and_reopen(tmp_path: Path) -> None:
    with EmbeddedRegistry(tmp_path) as reg:
        deploy(reg, "a", "1.0.0", 1)
    with EmbeddedRegistry(tmp_path) as reg:  # reopening migrates nothing and keeps the data
        assert reg.get_component("a").active_version == "1.0.0"
    db = sqlite3.connect(tmp_path / "registry.db")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.close()
    with pytest.raises(RegistryError, match="upgrade airssys-web"):
        EmbeddedRegistry(tmp_path)


def test_unusable_database_is_a_registry_error(tmp_path: Path) -> None:
    (tmp_path / "registry.db").write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(RegistryError, match="unusable"):
        EmbeddedRegistry(tmp_path)


def test_unwritable_root_is_a_registry_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(RegistryError, match="cannot create registry directory"):
        EmbeddedRegistry(tmp_path / "file" / "reg")


def test_verify_reports_missing_and_corrupt_blobs(reg: EmbeddedRegistry) -> None:
    deploy(reg, "a", "1.0.0", 1)
    deploy(reg, "b", "1.0.0", 2)
    assert reg.verify() == []
    reg.blob_path(reg.get_version("a", "1.0.0").sha256).unlink()
    reg.blob_path(reg.get_version("b", "1.0.0").sha256).write_bytes(b"junk")
    problems = reg.verify()
    assert len(problems) == 2 and any("corrupt" in p for p in problems) and any("not in" in p for p in problems)
