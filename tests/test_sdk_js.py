"""The JavaScript guest SDK (@airssys/guest) and its toolchain (componentize-qjs from npm, pinned, cached)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import GUEST_CACHE, GUESTS
from sdk_cases import check_one_build_at_two_routes, client, run_cases

from airssys_web.errors import BuildError, GuestTrap
from airssys_web.guest.build import build_component, detect_language
from airssys_web.guest.build_js import QJS_PACKAGE, build_js_guest, js_guest_key, qjs_version
from airssys_web.guest.sdk import JS_TOOLCHAIN
from airssys_web.guest.testing import ComponentClient

needs_npm = pytest.mark.skipif(shutil.which("npm") is None or shutil.which("node") is None,
                               reason="JavaScript guests need node and npm on PATH (apt-get install nodejs npm)")


@pytest.fixture(scope="module")
def js_sdk_wasm() -> bytes:
    if shutil.which("npm") is None or shutil.which("node") is None:
        pytest.skip("JavaScript guests need node and npm on PATH (apt-get install nodejs npm)")
    return build_js_guest(GUESTS / "js_sdk", cache_dir=GUEST_CACHE).read_bytes()


def test_the_toolchain_is_pinned_by_a_committed_lock_file() -> None:
    lock = json.loads((JS_TOOLCHAIN / "package-lock.json").read_text())
    manifest = json.loads((JS_TOOLCHAIN / "package.json").read_text())
    assert manifest["dependencies"][QJS_PACKAGE] == qjs_version() == lock["packages"][""]["dependencies"][QJS_PACKAGE]
    pinned = lock["packages"][f"node_modules/{QJS_PACKAGE}"]
    assert pinned["integrity"].startswith("sha512-")
    bindings = [k for k in lock["packages"] if "componentize-qjs-binding-linux-x64" in k]
    assert bindings and all(lock["packages"][k]["integrity"] for k in bindings)


def test_js_sources_are_detected_and_keyed(tmp_path: Path) -> None:
    (tmp_path / "app.js").write_text("export const handler = {};\n")
    assert detect_language(tmp_path) == "js"
    key = js_guest_key(tmp_path)
    (tmp_path / "test_app.py").write_text("# the author's tests are not build inputs\n")
    assert js_guest_key(tmp_path) == key
    (tmp_path / "lib.js").write_text("export const x = 1;\n")
    assert js_guest_key(tmp_path) != key
    (tmp_path / "app.py").write_text("")
    with pytest.raises(BuildError, match="looks like python and js at once; pass --lang"):
        detect_language(tmp_path)


@needs_npm
def test_one_build_serves_at_two_routes(tmp_path: Path) -> None:
    wasm = build_js_guest(GUESTS / "js_mount", cache_dir=GUEST_CACHE).read_bytes()
    check_one_build_at_two_routes(wasm, tmp_path / "reg")


@needs_npm
def test_sdk_behaviour_through_a_built_component(js_sdk_wasm: bytes) -> None:
    with client(js_sdk_wasm) as c:
        run_cases(c)
        utf8 = c.get("/sdk/utf8", params={"s": "héllo 😀"})  # the SDK's own UTF-8 codec, and a relative import
        assert utf8.text == "HÉLLO 😀!"


@needs_npm
def test_an_exception_in_a_route_traps_and_the_next_request_is_served(js_sdk_wasm: bytes) -> None:
    with ComponentClient(js_sdk_wasm) as c:
        with pytest.raises(GuestTrap):
            c.get("/sdk/boom")
        assert c.get("/sdk").text == "index"  # a fresh instance replaced the trapped one


@needs_npm
def test_a_syntax_error_is_reported_with_the_authors_path(tmp_path: Path) -> None:
    (tmp_path / "app.js").write_text("export const handler = {\n  handle(req) { return ; \n")
    with pytest.raises(BuildError) as info:
        build_component(tmp_path, cache_dir=tmp_path / "cache")
    message = str(info.value)
    assert message.startswith(f"componentize-qjs failed to build {tmp_path}")
    assert "airssys-build-" not in message  # the staging directory is not shown


@needs_npm
def test_a_missing_entry_point_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "main.js").write_text("")
    with pytest.raises(BuildError, match=r"has no app\.js; a JavaScript guest needs one exporting `handler`"):
        build_js_guest(tmp_path)


@needs_npm
def test_a_failed_probe_names_the_javascript_exception_not_the_memory_cap(js_sdk_wasm: bytes, tmp_path: Path) -> None:
    """Issue #20: a blue-green probe that hit a JavaScript exception blamed "(memory cap 32 MiB)". The error
    says the guest trapped; the memory cap is named only when a memory growth was refused."""
    from airssys_web import EmbeddedRegistry, deploy
    from airssys_web.errors import DeployError
    from airssys_web.lifecycle.api import DeployRequest, Plan
    from airssys_web.lifecycle.settings import VersionSettings
    from airssys_web.lifecycle.strategies import rollout_local

    with EmbeddedRegistry(tmp_path) as reg:
        settings = VersionSettings.of(memory=32 * 2**20)
        deploy(reg, "js", js_sdk_wasm, version="1.0.0", route="/sdk", settings=settings)
        plan = Plan.parse("blue-green", probe="/sdk/boom")
        with pytest.raises(DeployError) as info:
            rollout_local(reg, DeployRequest("js", js_sdk_wasm, version="2.0.0", settings=settings, plan=plan))
        message = str(info.value)
        assert "blue-green step 'probe' failed: GET /sdk/boom failed: js@2.0.0 trapped" in message
        assert "memory" not in message.lower() and "32" not in message
        assert reg.get_deployment("js").active_version == "1.0.0"
