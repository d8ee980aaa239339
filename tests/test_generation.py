"""Generations: one linked component, its instances, and the isolation modes (pooled vs a fresh instance each)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

import httpx
import pytest
from support import make_generation

from airssys_web import AirssysMiddleware, EmbeddedRegistry, deploy
from airssys_web.errors import CapabilityError
from airssys_web.lifecycle.settings import VersionSettings
from airssys_web.runtime.dispatch import Dispatcher
from airssys_web.runtime.limits import Limits


def test_pooled_instances_keep_their_state_between_requests(wat_guest: Callable[[str], bytes]) -> None:
    gen = make_generation(wat_guest("counter"), limits=Limits(max_instances=1))
    try:
        assert [gen.call("GET", "/").body for _ in range(3)] == [b"1", b"2", b"3"]
        assert gen.pool.created == 1
    finally:
        gen.close()


def test_request_isolation_gives_every_request_a_fresh_instance(wat_guest: Callable[[str], bytes]) -> None:
    gen = make_generation(wat_guest("counter"), limits=Limits(isolation="request", max_instances=2))
    try:
        gen.warm()  # a trial instance proves it starts, and is dropped
        assert gen.pool.size == 0 and gen.pool.idle == 0
        assert [gen.call("GET", "/").body for _ in range(5)] == [b"1"] * 5
        assert gen.pool.size == 0  # nothing is kept between requests
    finally:
        gen.close()


def test_request_isolation_on_the_event_loop_and_on_threads(wat_guest: Callable[[str], bytes]) -> None:
    """Past the inline policy's warm-up the calls run inline on the loop; every one still gets a fresh instance."""
    dispatcher = Dispatcher(4)
    gen = make_generation(wat_guest("counter"), limits=Limits(isolation="request", max_instances=4),
                          dispatcher=dispatcher)

    async def run() -> list[bytes]:
        bodies = []
        for _ in range(40):
            bodies.append((await gen.handle("GET", "/", "", [], b"")).body)
        bodies += [r.body for r in await asyncio.gather(*(gen.handle("GET", "/", "", [], b"") for _ in range(8)))]
        return bodies

    try:
        assert asyncio.run(run()) == [b"1"] * 48
        assert gen.inline.inline_calls > 0  # the inline path was taken, and isolated too
        assert gen.pool.size == 0
    finally:
        gen.close()
        dispatcher.close()


def test_isolation_is_validated() -> None:
    with pytest.raises(CapabilityError, match=r"isolation.*pooled, request"):
        Limits(isolation="shared")
    assert Limits.from_user({"isolation": "request"}) == {"isolation": "request"}


def test_request_isolation_through_a_server(tmp_path: Path, wat_guest: Callable[[str], bytes],
                                            uvicorn_server: Callable[..., AbstractContextManager[str]]) -> None:
    from starlette.applications import Starlette

    with EmbeddedRegistry(tmp_path / "reg") as reg:
        deploy(reg, "fresh", wat_guest("counter"), version="1.0.0", route="/fresh",
               settings=VersionSettings.of(isolation="request"))
        deploy(reg, "pooled", wat_guest("counter"), version="1.0.0", route="/pooled",
               settings=VersionSettings.of(max_instances=1))
    app = AirssysMiddleware(Starlette(), registry=tmp_path / "reg")
    with uvicorn_server(app) as url, httpx.Client(base_url=url) as client:
        assert {client.get("/fresh").text for _ in range(30)} == {"1"}
        assert [client.get("/pooled").text for _ in range(3)] == ["1", "2", "3"]
