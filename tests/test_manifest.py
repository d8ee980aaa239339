"""airssys.toml: schema, errors, and how deploy combines it with flags and the component's declared needs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support import text_component

from airssys_web.capabilities.grants import Capability, FileAccess
from airssys_web.capabilities.needs import Needs, embed_needs, read_needs
from airssys_web.errors import CapabilityError
from airssys_web.guest.build import build_component, wat_response_component
from airssys_web.lifecycle.deploy import deploy, plan_capabilities
from airssys_web.lifecycle.manifest import MANIFEST_NAME, embed_manifest_needs, find_manifest, load_manifest
from airssys_web.lifecycle.registry import EmbeddedRegistry
from airssys_web.lifecycle.settings import VersionSettings

FULL = """
[needs]
outbound = ["https://api.example.com"]
files = ["/data:ro"]
config = { greeting = "Hello", api_url = "" }
secrets = ["token"]
kv = true

[grants]
outbound = ["https://api.example.com"]
files = ["./data:/data:ro"]
config = { api_url = "https://api.example.com/v1" }
secrets = { token = { env = "TEST_TOKEN" } }
kv = { max_keys = 100 }

[limits]
timeout = 2.5
memory = "64MiB"
max_body = 1
fuel = 1_000_000
max_instances = 4
"""


def _write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "data").mkdir(exist_ok=True)
    path = tmp_path / MANIFEST_NAME
    path.write_text(text)
    return path


def test_full_manifest(tmp_path: Path) -> None:
    m = load_manifest(_write(tmp_path, FULL), environ={"TEST_TOKEN": "tok-value"})
    assert m.needs == Needs.from_dict({"outbound": ["https://api.example.com"], "files": ["/data:ro"],
                                       "config": {"greeting": "Hello", "api_url": ""}, "secrets": ["token"],
                                       "kv": True})
    assert m.grants.files == (FileAccess(str(tmp_path / "data"), "/data", False),)  # relative to the manifest
    assert m.grants.secrets["token"].value == "tok-value"
    assert m.grants.kv is not None and m.grants.kv.quota.max_keys == 100
    assert m.limits == {"timeout": 2.5, "memory": 64 << 20, "max_body": 1 << 20, "fuel": 1_000_000,
                        "max_instances": 4}


@pytest.mark.parametrize(("text", "message"), [
    ("[needs\n", "not valid TOML"),
    ("[network]\n", "unknown table"),
    ("needs = 1\n", r"\[needs\] must be a table"),
    ("[grants]\nhosts = []\n", "unknown key"),
    ("[grants]\noutbound = \"https://a.com\"\n", "must be a list of strings"),
    ("[grants]\nsecrets = { t = { env = \"NOPE_NOT_SET\" } }\n", "NOPE_NOT_SET.*not set"),
    ("[grants]\nsecrets = { t = 5 }\n", "must be"),
    ("[grants]\nkv = \"yes\"\n", "kv must be true"),
    ("[grants]\nconfig = { a = 1 }\n", "must be a string"),
    ("[limits]\nmemory = \"lots\"\n", "not a size"),
    ("[limits]\ntimeout = -1\n", "timeout"),
    ("[limits]\nthreads = 3\n", "unknown limit"),
    ("[needs]\nkv = 1\n", "must be true or false"),
])
def test_bad_manifests_name_the_file_and_problem(tmp_path: Path, text: str, message: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(CapabilityError, match=message) as info:
        load_manifest(path, environ={})
    assert str(path) in str(info.value)


def test_missing_manifest(tmp_path: Path) -> None:
    with pytest.raises(CapabilityError, match="does not exist"):
        load_manifest(tmp_path / "nope.toml")


def test_find_manifest_next_to_the_component(tmp_path: Path) -> None:
    wasm = tmp_path / "c.wasm"
    wasm.write_bytes(b"")
    assert find_manifest(wasm) is None
    path = _write(tmp_path, "")
    assert find_manifest(wasm) == path and find_manifest(tmp_path) == path


# -- deploy ----------------------------------------------------------------------------------------------------

@pytest.fixture
def registry(tmp_path: Path) -> EmbeddedRegistry:
    reg = EmbeddedRegistry(tmp_path / "reg")
    yield reg
    reg.close()


def test_deploy_reads_the_manifest_next_to_the_wasm(tmp_path: Path, registry: EmbeddedRegistry,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_TOKEN", "tok-value")
    _write(tmp_path, FULL)
    wasm = tmp_path / "c.wasm"
    wasm.write_bytes(text_component("m"))
    dep = deploy(registry, "c", wasm, version="1.0.0", route="/c", settings=VersionSettings.of(timeout=1.0))
    settings = dep.settings.to_json()
    assert settings["limits"]["timeout"] == 1.0 and settings["limits"]["memory"] == 64 << 20  # flag wins
    assert settings["config"] == {"api_url": "https://api.example.com/v1", "greeting": "Hello"}  # + the default
    assert set(settings["secrets"]["token"]) == {"ref"} and "tok-value" not in json.dumps(settings)
    assert settings["needs"]["kv"] is True


def test_deploy_refuses_undeclared_grants_to_be_missing(tmp_path: Path, registry: EmbeddedRegistry) -> None:
    wasm = embed_needs(text_component("needy"), Needs.from_dict({"kv": True, "outbound": ["https://a.example"]}))
    before = registry.change_token()
    with pytest.raises(CapabilityError, match=r"outbound https://a.example \(--allow-host https://a.example\); "
                                              r"kv kv \(--kv\)"):
        deploy(registry, "n", wasm, version="1.0.0", route="/n")
    assert registry.change_token() == before  # nothing changed
    declared = plan_capabilities(wasm, grant_declared_needs=True).settings  # what --grant-declared does
    dep = deploy(registry, "n", wasm, version="1.0.0", route="/n", settings=declared)
    assert dep.settings.to_json()["outbound"] == ["https://a.example"] and dep.settings.grants.kv is not None
    dep2 = deploy(registry, "n", wasm, version="1.0.1", route="/n",
                  settings=VersionSettings.of(Capability.kv(), Capability.network_outbound("https://*.example")))
    assert dep2.settings.to_json()["outbound"] == ["https://*.example"]


def test_manifest_directories_are_checked_at_deploy(tmp_path: Path, registry: EmbeddedRegistry) -> None:
    _write(tmp_path, "[grants]\nfiles = [\"./missing:/d\"]\n")
    wasm = tmp_path / "c.wasm"
    wasm.write_bytes(text_component("m3"))
    with pytest.raises(CapabilityError, match=f"{tmp_path}/missing is not an existing directory"):
        deploy(registry, "c", wasm, version="1.0.0", route="/c")


def test_manifest_can_be_disabled_or_named(tmp_path: Path, registry: EmbeddedRegistry) -> None:
    _write(tmp_path, "[grants]\nconfig = { a = \"from-manifest\" }\n")
    other = tmp_path / "other.toml"
    other.write_text("[grants]\nconfig = { a = \"from-other\" }\n")
    wasm = tmp_path / "c.wasm"
    wasm.write_bytes(text_component("m2"))
    assert not deploy(registry, "c", wasm, version="1.0.0", route="/c", manifest=False).settings.grants.config
    assert deploy(registry, "c", wasm, version="1.0.1", route="/c", manifest=other).settings.grants.config == {
        "a": "from-other"}


def test_build_embeds_the_declared_needs(tmp_path: Path) -> None:
    wasm = text_component("b")
    assert embed_manifest_needs(wasm, tmp_path) == wasm  # no manifest
    _write(tmp_path, "[grants]\nkv = true\n")
    assert embed_manifest_needs(wasm, tmp_path) == wasm  # no [needs]
    _write(tmp_path, FULL)  # its secrets come from an unset variable: irrelevant to the build
    tagged = embed_manifest_needs(wasm, tmp_path / "app.py")
    assert read_needs(tagged) == load_manifest(tmp_path / MANIFEST_NAME, environ={"TEST_TOKEN": "x"}).needs


def test_airssys_web_build_embeds_the_manifest_needs(tmp_path: Path) -> None:
    (tmp_path / "hello.wat").write_text(wat_response_component("built"))
    _write(tmp_path, '[needs]\nkv = true\noutbound = ["https://api.example.com"]\n')
    result = build_component(tmp_path / "hello.wat", out=tmp_path / "hello.wasm")
    assert read_needs(result.path.read_bytes()) == Needs.from_dict({"kv": True,
                                                                     "outbound": ["https://api.example.com"]})
