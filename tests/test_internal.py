"""Components calling components: ``fetch("http://NAME.airssys.internal/PATH")`` through a real server.

The caller is tests/guests/caller.wat: it fetches the URL in its request's query string, passing its method, headers
(a spoofed ``Host`` included) and body on, and answers the fetch response verbatim (or 502 with the fetch's error
in an ``error`` header). The callee is the echo guest of tests/guests/convert: it answers the method, path and
headers it received. Anything that is not a component address goes to a recording transport, never the network.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from conftest import GUESTS
from starlette.applications import Starlette
from support import wait_until

from airssys_web import AirssysHost, AirssysMiddleware, EmbeddedRegistry, LocalLifecycle, deploy
from airssys_web.capabilities.grants import Capability
from airssys_web.errors import CapabilityError
from airssys_web.guest.build import compile_wat
from airssys_web.lifecycle.api import DeployRequest
from airssys_web.lifecycle.internal import MAX_DEPTH, internal_name
from airssys_web.lifecycle.services import HostServices
from airssys_web.lifecycle.settings import VersionSettings

Server = Callable[..., AbstractContextManager[str]]
CALLER = compile_wat((GUESTS / "caller.wat").read_text())
ECHO = compile_wat((GUESTS / "convert" / "echo.wat").read_text())
SPIN = compile_wat((GUESTS / "spin.wat").read_text())


def grants(*names: str, **limits: object) -> VersionSettings:
    return VersionSettings.of(*(Capability.component(n) for n in names), **limits)  # type: ignore[arg-type]


@dataclass
class Site:
    url: str
    reg_dir: Path
    upstream: list[httpx.Request] = field(default_factory=list)

    def call(self, caller: str, url: str, **kw: object) -> httpx.Response:
        """Ask component ``caller`` (deployed at /``caller``) to fetch ``url``."""
        target = httpx.URL(f"{self.url}/{caller}", query=url.encode())
        return httpx.request("GET", target, timeout=30, **kw)  # type: ignore[arg-type]

    def served(self, caller: str, url: str) -> httpx.Response:
        """:meth:`call`, once the server serves ``caller`` (a deploy made meanwhile was picked up)."""
        seen: list[httpx.Response] = []
        wait_until(lambda: seen.append(self.call(caller, url)) or seen[-1].status_code != 404, 10,
                   f"{caller} to be served")
        return seen[-1]


@pytest.fixture
def site(tmp_path: Path, uvicorn_server: Server) -> Iterator[Site]:
    reg_dir = tmp_path / "reg"
    recorded: list[httpx.Request] = []

    def upstream(request: httpx.Request) -> httpx.Response:
        recorded.append(request)
        return httpx.Response(302, headers={"location": "http://callee.airssys.internal/secret"})

    services = HostServices(reg_dir, fetcher_options={
        "transport": httpx.MockTransport(upstream), "resolver": lambda host, port: ["93.184.215.14"]})
    with EmbeddedRegistry(reg_dir) as reg:
        deploy(reg, "callee", ECHO, version="1.0.0", route="/callee")
        deploy(reg, "caller", CALLER, version="1.0.0", route="/caller", settings=VersionSettings.of(
            Capability.component("callee"), Capability.network_outbound("https://example.com")))
        deploy(reg, "stranger", CALLER, version="1.0.0", route="/stranger")
    host = AirssysHost(reg_dir, poll_interval=0.05, services=services)
    try:
        with uvicorn_server(AirssysMiddleware(Starlette(), host=host)) as url:
            yield Site(url, reg_dir, recorded)
    finally:
        services.close()


def test_a_granted_component_is_called_in_process(site: Site) -> None:
    r = site.call("caller", "http://callee.airssys.internal/hello/there",
                  headers={"x-trace": "1", "x-airssys-route": "/forged", "host": "evil.example"})
    assert r.status_code == 200
    got = dict(r.headers.multi_items())
    assert (got["x-method"], got["x-path"], got["x-trace"]) == ("GET", "/hello/there", "1")  # PATH, as sent
    assert got["x-airssys-caller"] == "caller@1.0.0"  # set by the host, never by the caller
    assert "x-airssys-route" not in got and got.get("host") is None  # nothing the caller says picks the callee
    assert site.upstream == []  # no socket, no DNS


def test_without_the_grant_the_call_is_denied_naming_the_grant(site: Site) -> None:
    r = site.call("stranger", "http://callee.airssys.internal/")
    assert r.status_code == 502
    assert r.headers["error"] == ("denied: component callee is not granted to stranger; deploy stranger with "
                                  "--allow-component callee to let it call http://callee.airssys.internal/")


@pytest.mark.parametrize("url", [
    "http://stranger.airssys.internal/",  # a deployed component that is not granted
    "http://callee.airssys.internal.stranger.airssys.internal/",
    "https://callee.airssys.internal/",  # another scheme
    "http://callee.airssys.internal:8080/",  # another port
    "http://callee.airssys.internal./",  # a trailing dot
    "http://x@callee.airssys.internal/",  # user info
    "http://callee.airssys.internal@stranger.airssys.internal/",
    "http://airssys.internal/",
    "http://Bad_Name!.airssys.internal/",
])
def test_no_url_trick_reaches_an_ungranted_component(site: Site, url: str) -> None:
    r = site.call("caller", url, headers={"host": "callee.airssys.internal"})
    assert r.status_code == 502 and r.headers["error"].startswith("denied: "), (url, r.headers.get("error"))
    assert site.upstream == []


def test_a_redirect_to_a_component_is_not_followed(site: Site) -> None:
    """CVE-2024-32980's sibling: an upstream's redirect never becomes an internal call (nor any other request)."""
    r = site.call("caller", "https://example.com/go", headers={"host": "example.com"})  # passed on: must match
    assert (r.status_code, r.headers["location"]) == (302, "http://callee.airssys.internal/secret")
    assert [(u.headers["host"], u.url.path) for u in site.upstream] == [("example.com", "/go")]  # one request


def test_an_outbound_grant_cannot_name_the_internal_domain() -> None:
    for text in ("http://callee.airssys.internal", "http://*.airssys.internal", "*://airssys.internal:*"):
        with pytest.raises(CapabilityError, match="are granted by name: --allow-component"):
            Capability.network_outbound(text)
    assert internal_name("http://example.com/") is None and internal_name("http://a-b.airssys.internal/x") == "a-b"


def test_calls_nest_at_most_max_depth(site: Site) -> None:
    with EmbeddedRegistry(site.reg_dir) as reg:
        deploy(reg, "loop", CALLER, version="1.0.0", route="/loop", settings=grants("loop"))
    url = "http://loop.airssys.internal/"
    for _ in range(MAX_DEPTH + 2):
        url = f"http://loop.airssys.internal/?{url}"
    r = site.served("loop", url)
    assert r.status_code == 502 and f"at most {MAX_DEPTH} may nest" in r.headers["error"]


def test_one_deadline_covers_the_chain_of_calls(site: Site) -> None:
    with EmbeddedRegistry(site.reg_dir) as reg:
        deploy(reg, "slow", SPIN, version="1.0.0", route="/slow", settings=grants(timeout=30))
        deploy(reg, "impatient", CALLER, version="1.0.0", route="/impatient", settings=grants("slow", timeout=0.5))
    site.served("impatient", "http://slow.airssys.internal/")
    started = time.monotonic()
    r = site.call("impatient", "http://slow.airssys.internal/")
    assert r.status_code == 504, r.text
    assert time.monotonic() - started < 10  # the caller's 0.5 s bounded the callee, not the callee's own 30 s


def test_a_granted_component_that_is_not_deployed(site: Site) -> None:
    with LocalLifecycle(site.reg_dir) as life:
        change = life.deploy(DeployRequest("hopeful", CALLER, version="1.0.0", route="/hopeful",
                                           settings=grants("ghost")))
    assert change.warnings == ("hopeful may call component ghost (--allow-component ghost), which is not deployed: "
                               "its calls fail until ghost is deployed",)
    r = site.served("hopeful", "http://ghost.airssys.internal/")
    assert r.status_code == 502 and "component ghost is not served here" in r.headers["error"]
