"""The rules every registry applies: component names, SemVer versions and their order, routes, blob digests."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from airssys_web.errors import InvalidName
from airssys_web.lifecycle.registry import (
    validate_name,
    validate_route,
    validate_sha256,
    validate_version,
    version_key,
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


@pytest.mark.parametrize("bad", ["", "abc", "A" * 64, "../" + "0" * 61, "0" * 63 + "g"])
def test_malformed_digests_are_refused(bad: str) -> None:
    with pytest.raises(InvalidName, match="64 lowercase hex"):
        validate_sha256(bad)
