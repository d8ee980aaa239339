"""Reading a Spin app manifest as a plan of deploys: what maps onto our grants, what is left out (and said), and
what refuses the whole deploy. Table-driven; no component is compiled here (tests/test_spin.py serves real ones)."""

from __future__ import annotations

from pathlib import Path

import pytest

from airssys_web.capabilities.grants import ConfigValue, FileAccess, KeyValue, Secret
from airssys_web.errors import InvalidManifest
from airssys_web.lifecycle.spin_manifest import SpinApp, load_spin_manifest

HEAD = """spin_manifest_version = 2
[application]
name = "demo"
version = "1.2.3"
"""


def app_of(tmp_path: Path, body: str, *, base: str | None = None, environ: dict[str, str] | None = None) -> SpinApp:
    (tmp_path / "app.wasm").write_bytes(b"\0asm")
    (tmp_path / "static" / "css").mkdir(parents=True, exist_ok=True)
    manifest = tmp_path / "spin.toml"
    manifest.write_text(HEAD + body)
    return load_spin_manifest(manifest, base=base, environ=environ or {})


def one(tmp_path: Path, component: str, *, route: str = "/demo/...", extra: str = "", **kw: object) -> SpinApp:
    body = f'[[trigger.http]]\nroute = "{route}"\ncomponent = "demo"\n{extra}\n[component.demo]\nsource = "app.wasm"\n'
    return app_of(tmp_path, body + component, **kw)  # type: ignore[arg-type]


def test_a_minimal_app(tmp_path: Path) -> None:
    app = one(tmp_path, "")
    assert (app.name, app.version, app.notes) == ("demo", "1.2.3", ())
    [c] = app.components
    assert (c.name, c.route, c.wasm, c.notes) == ("demo", "/demo", tmp_path / "app.wasm", ())
    assert not c.grants


@pytest.mark.parametrize(("route", "base", "mounted", "noted"), [
    ("/demo/...", None, "/demo", False),
    ("/api/v1/...", None, "/api/v1", False),
    ("/demo", None, "/demo", True),  # exact in Spin: a prefix here, said so
    ("/users/:id", None, "/users", True),
    ("/users/:id/...", None, "/users", True),
    ("/...", "/app", "/app", False),
    ("/demo/...", "/app", "/app/demo", False),
])
def test_routes(tmp_path: Path, route: str, base: str | None, mounted: str, noted: bool) -> None:
    [c] = one(tmp_path, "", route=route, base=base).components
    assert c.route == mounted
    assert bool(c.notes) == noted


def test_the_whole_app_route_needs_a_base(tmp_path: Path) -> None:
    with pytest.raises(InvalidManifest, match=r"routed at /\.\.\., the whole app; mount it under a prefix with --base"):
        one(tmp_path, "", route="/...")


def test_outbound_hosts(tmp_path: Path) -> None:
    [c] = one(tmp_path, 'allowed_outbound_hosts = ["https://api.example.com", "https://*.example.org:8443", '
                        '"http://self", "redis://cache:6379", "https://{{ host }}"]',
              extra='[variables]\nhost = { default = "templated.example.com" }\n').components
    assert [str(h) for h in c.grants.outbound.grants] == [
        "https://api.example.com", "https://*.example.org:8443", "https://templated.example.com"]
    assert any("http://self (the app itself)" in n for n in c.notes)
    assert any("redis://cache:6379" in n and "scheme 'redis' is not supported" in n for n in c.notes)


@pytest.mark.parametrize(("stores", "default", "extra"), [
    ('["default"]', True, ()),
    ('["default", "cache"]', True, ("cache",)),
    ('["cache"]', False, ("cache",)),  # never wider than asked: no 'default' when the manifest names none
])
def test_key_value_stores(tmp_path: Path, stores: str, default: bool, extra: tuple[str, ...]) -> None:
    [c] = one(tmp_path, f"key_value_stores = {stores}").components
    assert c.grants.kv == KeyValue(stores=extra, default=default)


def test_variables(tmp_path: Path) -> None:
    variables = ('[variables]\ngreeting = { default = "Hello" }\nname = { default = "you" }\n'
                 'token = { required = true, secret = true }\n')
    component = ('[component.demo.variables]\nmessage = "{{ greeting }}, {{name}}!"\nplain = "fixed"\n'
                 'api_key = "Bearer {{ token }}"\n')
    [c] = app_of(tmp_path, '[[trigger.http]]\nroute = "/demo/..."\ncomponent = "demo"\n' + variables
                 + '[component.demo]\nsource = "app.wasm"\n' + component,
                 environ={"SPIN_VARIABLE_TOKEN": "s3cret", "SPIN_VARIABLE_NAME": "env"}).components
    assert dict(c.grants.config) == {"message": "Hello, env!", "plain": "fixed"}
    assert c.grants.secrets["api_key"] == Secret("api_key", "Bearer s3cret")
    assert "s3cret" not in repr(c.grants.secrets["api_key"])


@pytest.mark.parametrize(("variables", "template", "message"), [
    ("token = { required = true }", "{{ token }}", "required and has no value: set SPIN_VARIABLE_TOKEN"),
    ("", "{{ nowhere }}", r"uses \{\{ nowhere \}\}, which \[variables\] does not define"),
])
def test_unresolvable_variables_refuse_the_deploy(tmp_path: Path, variables: str, template: str,
                                                  message: str) -> None:
    body = (f'[variables]\n{variables}\n[[trigger.http]]\nroute = "/d/..."\ncomponent = "demo"\n'
            f'[component.demo]\nsource = "app.wasm"\n[component.demo.variables]\nv = "{template}"\n')
    with pytest.raises(InvalidManifest, match=message):
        app_of(tmp_path, body)


@pytest.mark.parametrize(("files", "granted", "left_out"), [
    ('["static/**"]', [("static", "/static")], 0),
    ('["static"]', [("static", "/static")], 0),
    ('[{ source = "static/css", destination = "/css" }]', [("static/css", "/css")], 0),
    ('["static/*.css", "app.wasm", "missing/**"]', [], 3),  # globs and single files: never a wider directory
])
def test_files(tmp_path: Path, files: str, granted: list[tuple[str, str]], left_out: int) -> None:
    [c] = one(tmp_path, f"files = {files}").components
    assert list(c.grants.files) == [FileAccess(str(tmp_path / h), g) for h, g in granted]
    assert len(c.notes) == left_out


def test_excluded_files_grant_no_files(tmp_path: Path) -> None:
    [c] = one(tmp_path, 'files = ["static/**"]\nexclude_files = ["static/secret.txt"]').components
    assert not c.grants.files
    assert any("exclude_files" in n for n in c.notes)


def test_what_is_left_out_is_said(tmp_path: Path) -> None:
    body = """
[[trigger.http]]
route = "/web/..."
component = "web"
[[trigger.http]]
route = "/again/..."
component = "web"
[[trigger.http]]
route = { private = true }
component = "internal"
[[trigger.redis]]
channel = "jobs"
component = "worker"
[component.web]
source = "app.wasm"
environment = { A = "b" }
sqlite_databases = ["default"]
[component.internal]
source = "app.wasm"
[component.worker]
source = "app.wasm"
[component.orphan]
source = "app.wasm"
"""
    app = app_of(tmp_path, body)
    assert [c.name for c in app.components] == ["web"]
    [web] = app.components
    assert any("environment is not mapped" in n for n in web.notes)
    assert any("SQLite is not provided by this host" in n for n in web.notes)
    notes = " | ".join(app.notes)
    for said in ("trigger redis (worker) is not supported", "component internal has a private route",
                 "component web is also routed at /again/...", "component orphan has no HTTP route"):
        assert said in notes


@pytest.mark.parametrize(("body", "message"), [
    ("spin_manifest_version = 1\n", "only version 2 is supported"),
    ("spin_manifest_version = 2\n[application]\nname = 'x'\n", "no HTTP component to deploy"),
    ("spin_manifest_version = 2\n[application\n", "is not valid TOML"),
    ("spin_manifest_version = 2\n[application]\nname = 'x'\n[[trigger.http]]\nroute = '/a/...'\ncomponent = 'b'\n",
     "names component 'b', which \\[component\\] does not define"),
    ("spin_manifest_version = 2\n[application]\nname = 'x'\n[[trigger.http]]\nroute = '/a/...'\ncomponent = 'b'\n"
     "[component.b]\nsource = 'b.wasm'\n[component.b.build]\ncommand = 'make'\n",
     r"source b.wasm does not exist; build it first with `spin build` \(its build command: make\)"),
    ("spin_manifest_version = 2\n[application]\nname = 'x'\n[[trigger.http]]\nroute = '/a/...'\ncomponent = 'b'\n"
     "[component.b]\nsource = { url = 'https://example.com/b.wasm', digest = 'sha256:00' }\n",
     "a remote source .* is not fetched"),
    ("spin_manifest_version = 2\n[application]\nname = 'x'\n[[trigger.http]]\nroute = '/a/...'\ncomponent = 'b'\n"
     "[component.b]\nsource = 'app.wasm'\nkey_value_stores = ['Bad Label']\n", "store label 'Bad Label' is invalid"),
])
def test_bad_manifests_say_what_is_wrong(tmp_path: Path, body: str, message: str) -> None:
    (tmp_path / "app.wasm").write_bytes(b"\0asm")
    (tmp_path / "spin.toml").write_text(body)
    with pytest.raises(InvalidManifest, match=message):
        load_spin_manifest(tmp_path / "spin.toml", environ={})


def test_a_missing_manifest(tmp_path: Path) -> None:
    with pytest.raises(InvalidManifest, match="does not exist"):
        load_spin_manifest(tmp_path / "spin.toml")


def test_secret_and_config_values_are_ordinary_grants(tmp_path: Path) -> None:
    [c] = one(tmp_path, '[component.demo.variables]\nx = "1"').components
    assert list(c.grants) == [ConfigValue("x", "1")]
