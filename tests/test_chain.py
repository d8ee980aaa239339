"""Pipelines at the runtime level: middleware stages in front of a route, each its own generation.

The stage is tests/guests/stage.wat (configured by its version's config: name, require, trap), or the same stage
written with the Python and JavaScript SDKs (py_stage/, js_stage/); the route is the echo guest of
tests/guests/convert (it answers the request's headers back, so the stages' work is visible).
"""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import GUEST_CACHE
from support import make_generation

from airssys_web.errors import GuestTimeout, GuestTrap
from airssys_web.guest.build import build_component, compile_wat
from airssys_web.runtime.chain import Chain
from airssys_web.runtime.generation import Generation
from airssys_web.runtime.limits import Limits

GUESTS = Path(__file__).parent / "guests"
ECHO = compile_wat((GUESTS / "convert" / "echo.wat").read_text())


@pytest.fixture
def made() -> Iterator[Callable[..., Generation]]:
    generations: list[Generation] = []

    def make(wasm: bytes, name: str, **kw: object) -> Generation:
        gen = make_generation(wasm, name=name, **kw)  # type: ignore[arg-type]
        generations.append(gen)
        return gen

    yield make
    for gen in generations:
        gen.close()


def stage(made: Callable[..., Generation], wat_guest: Callable[[str], bytes], name: str, **config: str) -> Generation:
    return made(wat_guest("stage"), name, config={"name": name, **config})


@pytest.fixture(scope="module", params=["wat", "python", "js"])
def stage_wasm(request: pytest.FixtureRequest, wat_guest: Callable[[str], bytes]) -> bytes:
    """The stage guest in each language (the SDK builds are cached under .cache/guests)."""
    if request.param == "wat":
        return wat_guest("stage")
    if request.param == "js" and (shutil.which("node") is None or shutil.which("npm") is None):
        pytest.skip("JavaScript guests need node and npm on PATH (apt-get install nodejs npm)")
    source = GUESTS / ("py_stage" if request.param == "python" else "js_stage")
    built = build_component(source, out=GUEST_CACHE / f"{source.name}.wasm", cache_dir=GUEST_CACHE)
    return built.path.read_bytes()


def values(headers: list[tuple[str, str]], name: str) -> list[str]:
    return [v for k, v in headers if k == name]


def test_stages_see_the_request_first_and_the_response_last(made: Callable[..., Generation],
                                                            wat_guest: Callable[[str], bytes]) -> None:
    route = made(ECHO, "route")
    chain = Chain([stage(made, wat_guest, "a"), stage(made, wat_guest, "b")], route)
    answer = chain.call("POST", "/x", "", [("x-client", "1")], b"body")
    assert answer.status == 200 and answer.body == b"body"
    assert values(answer.headers, "x-stages") == ["a", "b"]  # the route saw the headers a, then b, added
    assert values(answer.headers, "x-seen-by") == ["b", "a"]  # and the answer went back through b, then a
    assert values(answer.headers, "x-client") == ["1"]


def test_a_stage_may_answer_itself(made: Callable[..., Generation], wat_guest: Callable[[str], bytes]) -> None:
    route = made(ECHO, "route")
    chain = Chain([stage(made, wat_guest, "auth", require="authorization")], route)
    denied = chain.call("GET", "/", "", [], b"")
    assert (denied.status, denied.body) == (401, b"unauthorized by auth")
    assert route.requests == 0 and route.pool.created == 0  # the route was never called
    allowed = chain.call("GET", "/", "", [("authorization", "Bearer x")], b"")
    assert allowed.status == 200 and values(allowed.headers, "x-stages") == ["auth"]


def test_a_trapping_stage_fails_the_request_cleanly(made: Callable[..., Generation],
                                                     wat_guest: Callable[[str], bytes]) -> None:
    route = made(ECHO, "route")
    bad = stage(made, wat_guest, "bad", trap="1")
    chain = Chain([bad], route)
    with pytest.raises(GuestTrap, match=r"bad@1\.0\.0 trapped: .*unreachable"):
        chain.call("GET", "/", "", [], b"")
    assert bad.pool.discarded == 1 and bad.counts() == (1, 1)
    assert route.counts() == (0, 0)  # a stage's failure never counts against the route
    assert route.call("GET", "/", "", [], b"").status == 200  # nothing else is affected


def test_the_routes_failure_is_the_requests(made: Callable[..., Generation], wat_guest: Callable[[str], bytes]
                                            ) -> None:
    first, route = stage(made, wat_guest, "first"), made(wat_guest("trap"), "broken")
    chain = Chain([first], route)
    with pytest.raises(GuestTrap, match=r"broken@1\.0\.0 trapped"):  # the route's own error, named
        chain.call("GET", "/", "", [], b"")
    assert route.counts() == (1, 1) and first.counts() == (0, 0)
    assert first.pool.discarded == 1  # its store trapped in the host call: replaced, never reused


def test_one_deadline_covers_the_chain(made: Callable[..., Generation], wat_guest: Callable[[str], bytes]) -> None:
    first = made(wat_guest("stage"), "first", config={"name": "first"}, limits=Limits(timeout=0.3))
    spin = made(wat_guest("spin"), "spin", limits=Limits(timeout=30))
    started = time.monotonic()
    with pytest.raises(GuestTimeout, match=r"spin@1\.0\.0 exceeded its"):
        Chain([first], spin).call("GET", "/", "", [], b"")
    assert time.monotonic() - started < 10  # the stage's 0.3 s bounded the route, not the route's own 30 s


def test_a_chain_enters_and_leaves_every_generation(made: Callable[..., Generation],
                                                    wat_guest: Callable[[str], bytes]) -> None:
    a, route = stage(made, wat_guest, "a"), made(ECHO, "route")
    chain = Chain([a], route)
    assert chain.enter() and (a.in_flight, route.in_flight) == (1, 1)
    chain.leave()
    route.retire()  # a swap retired the route: the chain cannot be entered, and holds nothing
    assert not chain.enter() and (a.in_flight, route.in_flight) == (0, 0)


def test_handle_runs_the_chain_off_the_event_loop(made: Callable[..., Generation],
                                                   wat_guest: Callable[[str], bytes]) -> None:
    chain = Chain([stage(made, wat_guest, "a")], made(ECHO, "route"))
    answer = asyncio.run(chain.handle("GET", "/", "", [], b""))
    assert values(answer.headers, "x-seen-by") == ["a"]


def test_sdk_stages_pass_requests_on_and_rewrite_answers(made: Callable[..., Generation], stage_wasm: bytes) -> None:
    route = made(ECHO, "route")
    a = made(stage_wasm, "a", config={"name": "a"})
    b = made(stage_wasm, "b", config={"name": "b", "upper": "1"})
    answer = Chain([a, b], route).call("POST", "/x", "", [("x-client", "1")], b"body")
    assert answer.status == 200 and values(answer.headers, "x-path") == ["/x"]
    assert values(answer.headers, "x-stages") == ["a", "b"]  # the route saw what a, then b, added
    assert values(answer.headers, "x-seen-by") == ["b", "a"]  # the answer came back through b, then a
    if len(stage_wasm) > 100_000:  # the SDK stages (not the WAT one) also rewrite the body on the way back
        assert answer.body == b"BODY"


def test_sdk_stages_short_circuit(made: Callable[..., Generation], stage_wasm: bytes) -> None:
    route = made(ECHO, "route")
    auth = made(stage_wasm, "auth", config={"name": "auth", "require": "authorization"})
    chain = Chain([auth], route)
    denied = chain.call("GET", "/", "", [], b"")
    assert (denied.status, denied.body) == (401, b"unauthorized by auth")
    assert route.requests == 0  # the route was never called
    assert chain.call("GET", "/", "", [("authorization", "x")], b"").status == 200


def test_each_element_is_counted_under_its_own_version(made: Callable[..., Generation],
                                                       wat_guest: Callable[[str], bytes]) -> None:
    from test_metrics import scrape, total, value

    from airssys_web.observability.metrics import Metrics

    metrics = Metrics()
    auth, log = stage(made, wat_guest, "auth", require="authorization"), stage(made, wat_guest, "log")
    route = made(ECHO, "route")
    for gen in (auth, log, route):
        metrics.bind(gen)
    chain = Chain([log, auth], route)
    assert chain.stats is route.stats  # the middleware counts whole requests under the route's version
    assert chain.call("GET", "/", "", [("authorization", "x")], b"").status == 200
    assert chain.call("GET", "/", "", [], b"").status == 401  # auth answers itself: the route never runs
    trapping = Chain([stage(made, wat_guest, "bad", trap="1")], route)
    metrics.bind(trapping.stages[0])
    with pytest.raises(GuestTrap):
        trapping.call("GET", "/", "", [], b"")
    samples = scrape(metrics.render()[0].decode())
    assert value(samples, "airssys_stage_requests_total", component="log", version="1.0.0", status="200") == 1
    assert value(samples, "airssys_stage_requests_total", component="log", version="1.0.0", status="401") == 1
    assert value(samples, "airssys_stage_requests_total", component="auth", version="1.0.0", status="401") == 1
    assert value(samples, "airssys_stage_duration_seconds_count", component="auth", version="1.0.0") == 2
    assert value(samples, "airssys_guest_errors_total", component="bad", version="1.0.0", kind="trap") == 1
    assert value(samples, "airssys_stage_requests_total", component="bad", version="1.0.0", status="500") == 1
    assert total(samples, "airssys_stage_requests_total", component="route") == 0  # the route is not a stage
