"""Deploy validation: every bad input is refused with a clear message and changes nothing."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from support import text_component

from airssys_web.errors import DeployError, InvalidComponent, InvalidName, RouteConflict, VersionExists
from airssys_web.lifecycle.deploy import deploy
from airssys_web.lifecycle.registry import EmbeddedRegistry


@pytest.fixture
def registry(tmp_path: Path) -> EmbeddedRegistry:
    reg = EmbeddedRegistry(tmp_path / "reg")
    deploy(reg, "hello", text_component("v1"), version="1.0.0", route="/hello")
    yield reg
    reg.close()


def _state(reg: EmbeddedRegistry) -> tuple[object, ...]:
    versions = tuple(v for c in reg.components() for v in reg.versions(c.name))
    return tuple(reg.active()), tuple(reg.components()), versions, len(reg.history())


def test_deploy_activates_and_stores_artifact(registry: EmbeddedRegistry) -> None:
    (dep,) = registry.active()
    assert (dep.component, dep.active_version, dep.route) == ("hello", "1.0.0", "/hello")
    assert list(registry.artifacts_dir.glob(f"{dep.sha256}-*.cwasm")), "deploy must compile before returning"


BAD_BYTES = {
    "empty file": (b"", "not a WebAssembly file"),
    "text file": (b"hello world, not wasm", "not a WebAssembly file"),
    "truncated component": (b"\x00asm\x0d\x00\x01\x00\x01", "does not validate"),
}


@pytest.mark.parametrize("label", sorted(BAD_BYTES))
def test_bad_bytes_refused(registry: EmbeddedRegistry, label: str) -> None:
    data, message = BAD_BYTES[label]
    before = _state(registry)
    with pytest.raises(InvalidComponent, match=message):
        deploy(registry, "hello", data, version="2.0.0", route="/hello")
    assert _state(registry) == before


@pytest.mark.parametrize(("guest", "message"), [
    ("core_module", "core WebAssembly module, not a component"),
    ("wrong_world", "does not export airssys:web/handler@0.1.1"),
    ("unknown_import", "acme:thing/db@1.0.0"),
])
def test_wrong_components_refused(registry: EmbeddedRegistry, wat_guest: Callable[[str], bytes], guest: str,
                                  message: str) -> None:
    before = _state(registry)
    with pytest.raises(InvalidComponent, match=message):
        deploy(registry, "hello", wat_guest(guest), version="2.0.0", route="/hello")
    assert _state(registry) == before


def test_subset_of_imports_is_accepted(registry: EmbeddedRegistry, wat_guest: Callable[[str], bytes]) -> None:
    dep = deploy(registry, "cfg", wat_guest("config_only"), version="0.1.0", route="/cfg")
    assert dep.route == "/cfg"


@pytest.mark.parametrize(("kwargs", "exc", "message"), [
    ({"name": "bad/name"}, InvalidName, "name"),
    ({"name": "../up"}, InvalidName, "name"),
    ({"name": "has space"}, InvalidName, "name"),
    ({"version": "1.0"}, InvalidName, "SemVer"),
    ({"version": "v1.0.0"}, InvalidName, "SemVer"),
    ({"route": "no-slash"}, InvalidName, "route"),
    ({"route": "/a/../b"}, InvalidName, "route"),
])
def test_bad_names_refused_before_compiling(registry: EmbeddedRegistry, kwargs: dict[str, str],
                                            exc: type[DeployError], message: str) -> None:
    args = {"name": "hello", "version": "2.0.0", "route": "/hello"} | kwargs
    before = _state(registry)
    with pytest.raises(exc, match=message):
        deploy(registry, args["name"], text_component("x"), version=args["version"], route=args["route"])
    assert _state(registry) == before


def test_route_owned_by_another_component(registry: EmbeddedRegistry) -> None:
    before = _state(registry)
    with pytest.raises(RouteConflict, match="hello"):
        deploy(registry, "other", text_component("o"), version="1.0.0", route="/hello")
    assert _state(registry) == before


def test_same_version_different_content(registry: EmbeddedRegistry) -> None:
    with pytest.raises(VersionExists):
        deploy(registry, "hello", text_component("v1 but different"), version="1.0.0", route="/hello")


def test_missing_file(registry: EmbeddedRegistry, tmp_path: Path) -> None:
    with pytest.raises(InvalidComponent, match="file not found"):
        deploy(registry, "hello", tmp_path / "nope.wasm", version="2.0.0", route="/hello")
