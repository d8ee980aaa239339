"""The example site's native routes (its component routes are built and called in test_build.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import AbstractContextManager

import httpx
import pytest

from example_site.app import app


def get(path: str) -> httpx.Response:
    async def fetch() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://example.test") as client:
            return await client.get(path)

    return asyncio.run(fetch())


def test_home_links_every_route() -> None:
    page = get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    for href in ("/native/hello", "/native/time", "/wasm/hello", "/wasm/greet?name=Ada"):
        assert f'href="{href}' in page.text


def test_native_routes() -> None:
    assert get("/native/hello").text.startswith("Hello from a native Python route")
    now = get("/native/time").json()
    assert now["served_by"] == "python"
    assert now["utc"].endswith("+00:00")


def test_served_over_loopback(uvicorn_server: Callable[..., AbstractContextManager[str]]) -> None:
    with uvicorn_server(app) as url:
        assert url.startswith("http://127.0.0.1:")
        assert httpx.get(f"{url}/native/hello").status_code == 200
    with pytest.raises(httpx.ConnectError):  # stopped: the port no longer answers
        httpx.get(f"{url}/native/hello", timeout=5)
