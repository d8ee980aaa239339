"""``make run``'s deploy step: the example components build, deploy once, and serve next to the native routes."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

import httpx
import pytest

from airssys_web import AirssysMiddleware, EmbeddedRegistry
from example_site.app import app
from example_site.run import EXAMPLES, deploy_examples

pytestmark = pytest.mark.slow


def test_examples_deploy_once_and_serve(tmp_path: Path,
                                        uvicorn_server: Callable[..., AbstractContextManager[str]]) -> None:
    changed = deploy_examples(tmp_path)
    assert sorted(tag.split("@")[0] for tag in changed) == sorted(e.name for e in EXAMPLES)
    assert deploy_examples(tmp_path) == []  # unchanged sources are not redeployed
    with EmbeddedRegistry(tmp_path) as reg:
        assert {d.route for d in reg.active()} == {e.route for e in EXAMPLES}
    with uvicorn_server(AirssysMiddleware(app, registry=tmp_path)) as url:
        hello = httpx.get(url + "/wasm/hello")
        assert hello.status_code == 200 and hello.headers["x-airssys-version"].startswith("hello-wat@1.0.0+")
        greet = httpx.get(url + "/wasm/greet", params={"name": "Ada"})
        assert greet.status_code == 200 and "Ada" in greet.text
        assert httpx.get(url + "/native/hello").text.startswith("Hello from a native Python route")
