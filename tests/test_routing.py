from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route

from airssys_web.lifecycle.routing import RouteTable, app_routes, route_matches, shadow_warning, shadowed_paths


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


def test_match_route_names_the_route_that_matched() -> None:
    table = RouteTable({"/api": "api", "/api/admin": "admin"})
    assert table.match_route("/api/admin/x") == ("/api/admin", "admin")
    assert table.match_route("/api") == ("/api", "api")
    assert table.match_route("/api/users") == ("/api", "api")
    assert table.match_route("/other") is None


async def _endpoint(request: Request) -> PlainTextResponse:  # pragma: no cover - never called
    return PlainTextResponse("")


class _Layer:
    """A middleware layer that stores the app it wraps as ``app``, like Starlette's own."""

    def __init__(self, app: object) -> None:
        self.app = app


def test_app_routes_are_found_below_middleware_layers() -> None:
    app = Starlette(routes=[Route("/adm/users", _endpoint)])
    assert app_routes(app) is app.routes
    assert app_routes(_Layer(_Layer(app))) is app.routes
    assert app_routes(_Layer(_Layer(app.router))) is app.router.routes
    assert app_routes(_Layer(None)) is None and app_routes(object()) is None
    looped = _Layer(None)
    looped.app = looped
    assert app_routes(looped) is None


@pytest.mark.parametrize(("route", "shadowed"), [
    ("/adm", ["/adm/users", "/adm/{id:int}", "/{page}", "/{path:path}"]),
    ("/adm/users", ["/adm/users", "/{path:path}"]),
    ("/static/css", ["/static", "/{path:path}"]),
    ("/static", ["/{page}", "/static", "/{path:path}"]),
    ("/x/y", ["/{path:path}"]),
])
def test_shadowed_paths(route: str, shadowed: list[str]) -> None:
    routes = [Route("/", _endpoint), Route("/adm/users", _endpoint), Route("/adm/{id:int}", _endpoint),
              Route("/admin", _endpoint), Route("/{page}", _endpoint), Mount("/static", routes=[]),
              Route("/{path:path}", _endpoint)]
    assert shadowed_paths(route, routes) == shadowed


def test_shadow_warning_names_both_sides() -> None:
    text = shadow_warning("adm", "/adm", ["/adm/users"])
    assert text.startswith("route /adm of component adm shadows the app's own route /adm/users: requests there "
                           "now go to adm")
