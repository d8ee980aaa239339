"""``make run``'s deploy step: every example component builds, deploys once, and serves next to the native routes."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

import httpx
import pytest

from airssys_web import EmbeddedRegistry
from example_site.run import EXAMPLES, deploy_examples, make_site
from example_site.upstream import Upstream

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(shutil.which("npm") is None, reason="the JavaScript examples need node and npm")]
SECRET = "example-site-test-secret-" + "z" * 16


def test_examples_deploy_once_and_serve(tmp_path: Path,
                                        uvicorn_server: Callable[..., AbstractContextManager[str]]) -> None:
    with Upstream() as upstream:
        changed = deploy_examples(tmp_path, upstream.url)
        assert sorted(tag.split("@")[0] for tag in changed) == sorted(e.name for e in EXAMPLES)
        assert deploy_examples(tmp_path, upstream.url) == []  # unchanged sources and settings: nothing to do
        with EmbeddedRegistry(tmp_path) as reg:
            assert {d.route for d in reg.active()} == {e.route for e in EXAMPLES}
            assert reg.get_deployment("markdown-js").stages == ("guard-js",)
        with uvicorn_server(make_site(tmp_path, secret=SECRET)) as url, httpx.Client(base_url=url) as client:
            home = client.get("/")
            for example in EXAMPLES:
                assert f'href="{example.link.replace("&", "&amp;")}"' in home.text
            assert 'href="/_airssys/api/status"' in home.text  # the admin API is on: linked
            hello = client.get("/wasm/hello")
            assert hello.status_code == 200 and hello.headers["x-airssys-version"].startswith("hello-wat@1.0.0+")
            assert "Ada" in client.get("/wasm/greet", params={"name": "Ada"}).text
            created = client.post("/wasm/notes", json={"title": "first", "body": "kept in KV"})
            assert created.status_code == 201, created.text
            note = created.json()
            assert client.get(created.headers["location"]).json() == note
            assert client.get("/wasm/notes").json()["notes"][0]["id"] == note["id"]
            assert client.post("/wasm/notes", json={"title": ""}).status_code == 422
            assert client.delete(f"/wasm/notes/{note['id']}").status_code == 204
            rendered = client.post("/wasm/markdown", content="# Title\n\n*hi* <b>")
            assert rendered.text == "<h1>Title</h1>\n<p><em>hi</em> &lt;b&gt;</p>"
            assert rendered.headers["x-guarded-by"] == "guard-js"  # the stage in front of the route
            assert rendered.headers["x-airssys-stages"].startswith("guard-js@1.0.0+")
            too_big = client.post("/wasm/markdown", content="x" * 70_000)
            assert too_big.status_code == 413 and too_big.json()["size"] == 70_000
            forecast = client.get("/wasm/forecast", params={"city": "Oslo", "format": "json"})
            assert forecast.status_code == 200 and forecast.json()["city"] == "Oslo"
            denied = client.get("/wasm/forecast/denied")
            assert denied.status_code == 403 and denied.json()["denied"] is True
            assert client.get("/native/hello").text.startswith("Hello from a native Python route")
    with Upstream() as moved:  # the upstream came back on another port: only the component granted it changes
        assert [tag.split("@")[0] for tag in deploy_examples(tmp_path, moved.url)] == ["forecast-js"]
