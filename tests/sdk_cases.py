"""The SDK behaviour both guest SDKs must show: tests/guests/py_sdk and tests/guests/js_sdk answer these alike.

Each case is (method, path, request options, expected status, check of the httpx response). The component is
called through :class:`airssys_web.guest.testing.ComponentClient` with config ``greeting=hey``, KV, and an upstream mock
for the granted origin ``https://api.example.com``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from conftest import run_uvicorn
from starlette.applications import Starlette

from airssys_web import AirssysMiddleware, EmbeddedRegistry, deploy
from airssys_web.capabilities.grants import Capability
from airssys_web.guest.testing import ComponentClient

Check = Callable[[httpx.Response], object]
GRANTED = "https://api.example.com"


def upstream(request: httpx.Request) -> httpx.Response:
    """The granted origin: echoes what the guest sent (URL and one header)."""
    return httpx.Response(200, text=f"upstream saw {request.url} from={request.headers.get('x-from')}",
                          headers={"content-type": "text/plain"})


def client(wasm: bytes) -> ComponentClient:
    return ComponentClient(wasm, config={"greeting": "hey"}, kv=True, upstream=upstream,
                           grants=[Capability.network_outbound(GRANTED)], raise_guest_errors=False)


def _json(expected: Any) -> Check:
    def check(r: httpx.Response) -> None:
        assert r.headers["content-type"] == "application/json", r.headers
        assert r.json() == expected, r.text

    return check


def _that(predicate: Callable[[httpx.Response], bool]) -> Check:
    def check(r: httpx.Response) -> None:
        assert predicate(r), f"unexpected: {r.status_code} {dict(r.headers)} {r.content[:300]!r}"

    return check


def _text(expected: str, content_type: str = "text/plain; charset=utf-8") -> Check:
    def check(r: httpx.Response) -> None:
        assert r.headers.get("content-type") == content_type
        assert r.text == expected

    return check


CASES: list[tuple[str, str, dict[str, Any], int, Check]] = [
    ("GET", "/sdk", {}, 200, _text("index")),
    ("GET", "/sdk/items/42?t=a&t=b&x=%20y", {}, 200,
     _that(lambda r: r.json() == {"id": 42, "type": r.json()["type"], "q": {"t": "a", "x": " y"}, "tags": ["a", "b"]}
           and r.json()["type"] in ("int", "number"))),
    ("GET", "/sdk/items/abc", {}, 404, _json({"error": "no route matches GET /items/abc"})),
    ("POST", "/sdk/echo", {"content": b"\x00\xffbin", "headers": {"Content-Type": "app/x", "X-Mixed-Case": "V"}},
     201, _that(lambda r: r.content == b"\x00\xffbin" and r.headers["content-type"] == "app/x"
                and r.headers.get_list("x-seen") == ["V", "POST"])),
    ("GET", "/sdk/echo", {}, 405, _that(lambda r: r.headers["allow"] == "POST, PUT")),
    ("POST", "/sdk/json", {"json": {"a": [1, "é"]}}, 200, _json({"got": {"a": [1, "é"]}})),
    ("POST", "/sdk/json", {"content": b"{bad"}, 400,
     _that(lambda r: r.json()["error"].startswith("the request body is not valid JSON"))),
    ("GET", "/sdk/files/a/b/c.txt", {}, 203, _text("file a/b/c.txt")),
    ("GET", "/sdk/html", {}, 200,
     _that(lambda r: r.text == "<p>héllo</p>" and r.headers["x-extra"] == "1"
           and r.headers["content-type"] == "text/html; charset=utf-8")),
    ("GET", "/sdk/redirect", {}, 307, _that(lambda r: r.headers["location"] == "/sdk/")),
    ("GET", "/sdk/empty", {}, 204, _that(lambda r: r.content == b"")),
    ("HEAD", "/sdk", {}, 200, _that(lambda r: r.content == b"")),
    ("GET", "/sdk/teapot", {}, 418, _json({"error": "short and stout"})),
    ("GET", "/elsewhere", {}, 404, _json({"error": "/elsewhere is outside this component's prefix /sdk"})),
    ("GET", "/sdk", {"headers": {"x-airssys-route": "/other"}}, 200, _text("index")),  # prefix= overrides the host
    ("GET", "/sdk/config/greeting", {}, 200, _json({"value": "hey", "default": "hey", "present": True})),
    ("GET", "/sdk/config/unset", {}, 200, _json({"value": None, "default": "dflt", "present": False})),
    ("GET", f"/sdk/fetch?url={GRANTED}/x", {}, 200,
     _json({"status": 200, "body": f"upstream saw {GRANTED}/x from=guest", "type": "text/plain"})),
    ("GET", "/sdk/fetch?url=https://evil.example.com/x", {}, 403,
     _that(lambda r: r.text.startswith("denied: ") and "https://evil.example.com is not granted" in r.text)),
    ("PUT", "/sdk/kv/k1", {"json": {"v": [1, 2]}}, 201, _text("stored")),
    ("GET", "/sdk/kv/k1", {}, 200, _json({"v": [1, 2]})),
    ("DELETE", "/sdk/kv/k1", {}, 204, _that(lambda r: r.content == b"")),
    ("GET", "/sdk/kv/k1", {}, 404, _json({"error": "no key k1"})),
]


def run_cases(c: ComponentClient) -> None:
    """Run every case in order (the KV cases depend on each other)."""
    for method, path, options, status, check in CASES:
        r = c.request(method, path, **options)
        assert r.status_code == status, f"{method} {path}: {r.status_code} {r.text}"
        check(r)


def check_one_build_at_two_routes(wasm: bytes, registry: Path) -> None:
    """Deploy one build of tests/guests/{py,js}_mount (an App without a prefix) at two routes and call both through
    the middleware on a real server: each copy routes below its own route and links with it."""
    with EmbeddedRegistry(registry) as reg:
        deploy(reg, "one", wasm, version="1.0.0", route="/one")
        deploy(reg, "two", wasm, version="1.0.0", route="/deep/two")
    with run_uvicorn(AirssysMiddleware(Starlette(), registry=registry)) as url:
        assert httpx.get(url + "/one").json() == {"root_path": "/one", "route_path": "/", "seen": ["/one"]}
        assert httpx.get(url + "/deep/two/").json() == {"root_path": "/deep/two", "route_path": "/",
                                                        "seen": ["/deep/two"]}
        for route in ("/one", "/deep/two"):
            r = httpx.get(f"{url}{route}/items/3")
            assert r.status_code == 200, r.text
            assert r.json() == {"id": 3, "root_path": route, "link": f"{route}/items/3"}
        assert httpx.get(url + "/one/deep/two/items/3").status_code == 404  # routes are relative to the mount
