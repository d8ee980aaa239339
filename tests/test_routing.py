from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from airssys_web.routing import RouteTable, route_matches


def test_prefix_owns_subpaths_but_not_siblings() -> None:
    assert route_matches("/hello", "/hello")
    assert route_matches("/hello", "/hello/")
    assert route_matches("/hello", "/hello/anything/deep")
    assert not route_matches("/hello", "/helloworld")
    assert not route_matches("/hello", "/hell")
    assert not route_matches("/hello", "/")


def test_longest_route_wins() -> None:
    table = RouteTable({"/api": "api", "/api/admin": "admin"})
    assert table.match("/api/users") == "api"
    assert table.match("/api/admin") == "admin"
    assert table.match("/api/admin/x") == "admin"
    assert table.match("/api/administrator") == "api"
    assert table.match("/other") is None


def test_root_route_owns_everything() -> None:
    table = RouteTable({"/": "root", "/a": "a"})
    assert table.match("/a/b") == "a"
    assert table.match("/zzz") == "root"


segment = st.text(alphabet="abcxyz-_", min_size=1, max_size=4)


@given(st.lists(segment, min_size=1, max_size=3), st.lists(segment, max_size=3))
def test_match_agrees_with_definition(route_parts: list[str], extra: list[str]) -> None:
    route = "/" + "/".join(route_parts)
    path = route + "".join("/" + p for p in extra)
    table = RouteTable({route: route})
    assert table.match(path) == route
    assert table.match(route + "x") is None
