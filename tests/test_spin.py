"""Spin components unchanged: a component written with the public spin-sdk 5.0.0 (tests/guests/spin_app, built in
the session with ``componentize-py -w spin:up/http-trigger@4.1.0``), deployed with the CLI from a ``spin.toml``
and served by a real uvicorn server: variables and key-value through the version's grants, outbound through the
one policy (other hosts: a recording transport; the network stays loopback), 1 MiB bodies, the imports the host
does not provide failing by name, a store nothing grants refused at run time, and a swap to an airssys:web
component under load.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from conftest import GUEST_CACHE, GUESTS, run_uvicorn
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from support import artifacts, text_component, wait_until
from test_outbound import fake_resolver

from airssys_web import AirssysMiddleware, EmbeddedRegistry, deploy
from airssys_web.capabilities.grants import Capability
from airssys_web.cli import cli
from airssys_web.lifecycle.host import AirssysHost
from airssys_web.lifecycle.services import HostServices
from airssys_web.lifecycle.settings import VersionSettings
from airssys_web.runtime.artifacts import sha256_hex

pytestmark = pytest.mark.slow
ARTIFACTS = GUEST_CACHE.parent / "spin-artifacts"
NAMES = {"api.example.com": ["93.184.215.14"], "other.example.com": ["93.184.215.15"]}
MANIFEST = """spin_manifest_version = 2

[application]
name = "demo"
version = "1.0.0"

[variables]
greeting = {{ default = "Hello" }}
token = {{ required = true, secret = true }}

[[trigger.http]]
route = "/spin/..."
component = "spin"

[component.spin]
source = "app.wasm"
allowed_outbound_hosts = ["https://api.example.com"]
key_value_stores = ["default", "cache"]
files = ["static/**"]
[component.spin.variables]
greeting = "{{{{ greeting }}}}, world"
token = "{{{{ token }}}}"
"""


SPIN_JS_TOOLS = ("@spinframework/build-tools@1.0.7", "@spinframework/wasi-http-proxy@1.0.1")


@pytest.fixture(scope="session")
def spin_js_wasm() -> bytes:
    """tests/guests/spin_js built with Spin's JavaScript build tool (``j2w``; npm install once, then offline)."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node/npm are not installed")
    root = GUEST_CACHE.parent / "spin-js"
    source = GUESTS / "spin_js" / "app.js"
    key = hashlib.sha256(" ".join(SPIN_JS_TOOLS).encode() + source.read_bytes()).hexdigest()[:24]
    out = root / f"spin_js-{key}.wasm"
    if not out.is_file():
        root.mkdir(parents=True, exist_ok=True)
        if not (root / "node_modules" / ".bin" / "j2w").is_file():
            (root / "package.json").write_text('{"name": "spin-js-guest", "type": "module", "private": true}')
            done = subprocess.run(["npm", "install", "--prefix", str(root), "--no-audit", "--no-fund",
                                   *SPIN_JS_TOOLS], capture_output=True, text=True, timeout=600)
            if done.returncode != 0:
                pytest.skip(f"npm could not install Spin's JS build tools: {done.stderr.strip()[-300:]}")
        staged = out.with_suffix(".tmp")
        copy = root / "src" / "app.js"  # j2w writes its byproducts beside the source: not into tests/
        copy.parent.mkdir(exist_ok=True)
        shutil.copy2(source, copy)
        subprocess.run([str(root / "node_modules" / ".bin" / "j2w"), "-i", str(copy), "-o", str(staged)],
                       cwd=root, check=True, capture_output=True, timeout=600)
        staged.replace(out)
    return out.read_bytes()


@pytest.fixture(scope="session")
def spin_wasm() -> bytes:
    pytest.importorskip("componentize_py", reason="componentize-py is not installed")
    pytest.importorskip("spin_sdk", reason="spin-sdk is not installed")
    from airssys_web.guest.build_spin import build_spin_guest
    return build_spin_guest(GUESTS / "spin_app", cache_dir=GUEST_CACHE).read_bytes()


def _with_artifact(reg_dir: Path, wasm: bytes) -> None:
    """Put the compiled artifact where deploy looks first (compiling the 24 MB guest takes ~10 s each time)."""
    sha = sha256_hex(wasm)
    artifacts(ARTIFACTS).get(sha, wasm)
    (reg_dir / "artifacts").mkdir(parents=True, exist_ok=True)
    for path in ARTIFACTS.glob(f"{sha}*"):
        shutil.copy2(path, reg_dir / "artifacts" / path.name)


class Recorder:
    """The outbound transport for every host but loopback: records what reached it, answers 200."""

    def __init__(self) -> None:
        self.urls: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        # the connection goes to the address the policy checked; the request names the host
        self.urls.append(f"{request.url.scheme}://{request.headers['host']}{request.url.raw_path.decode()}")
        return httpx.Response(200, text=f"upstream saw {request.url.path}")


@pytest.fixture(scope="module")
def app_dir(tmp_path_factory: pytest.TempPathFactory, spin_wasm: bytes) -> Path:
    root = tmp_path_factory.mktemp("spin-app")
    (root / "app.wasm").write_bytes(spin_wasm)
    (root / "static").mkdir()
    (root / "static" / "a.txt").write_text("a file")
    (root / "spin.toml").write_text(MANIFEST.format())
    return root


@pytest.fixture(scope="module")
def deployed(app_dir: Path, spin_wasm: bytes) -> tuple[Path, str]:
    """The app deployed with ``airssys-web spin deploy``, and the same .wasm without grants by ``deploy``."""
    reg_dir = app_dir / "registry"
    _with_artifact(reg_dir, spin_wasm)
    runner = CliRunner()
    spin = runner.invoke(cli, ["spin", "deploy", str(app_dir / "spin.toml"), "--registry", str(reg_dir)],
                         env={"SPIN_VARIABLE_TOKEN": "t0ken"})
    assert spin.exit_code == 0, spin.output
    plain = runner.invoke(cli, ["deploy", "bare", str(app_dir / "app.wasm"), "--route", "/bare", "--version",
                                "1.0.0", "--registry", str(reg_dir)])
    assert plain.exit_code == 0, plain.output
    return reg_dir, spin.output + plain.output


@pytest.fixture(scope="module")
def site(deployed: tuple[Path, str]) -> Iterator[tuple[str, Recorder]]:
    reg_dir, _ = deployed
    recorder = Recorder()
    services = HostServices(reg_dir, fetcher_options={"transport": httpx.MockTransport(recorder),
                                                      "resolver": fake_resolver(NAMES)})
    host = AirssysHost(reg_dir, poll_interval=0.05, services=services)

    async def home(request: object) -> PlainTextResponse:
        return PlainTextResponse("the app's own route")

    app = Starlette(routes=[Route("/", home)])
    app.add_middleware(AirssysMiddleware, host=host)
    with run_uvicorn(app) as url:
        yield url, recorder
    services.close()


@pytest.fixture
def url(site: tuple[str, Recorder]) -> str:
    return site[0]


def test_hello_world_served_unchanged(url: str) -> None:
    r = httpx.get(url + "/spin/hello")
    assert (r.status_code, r.text) == (200, "Hello from Python!")
    assert r.headers["x-airssys-version"] == "spin@1.0.0" and r.headers["content-type"] == "text/plain"
    assert httpx.get(url + "/").text == "the app's own route"


def test_the_cli_says_what_it_mapped_and_what_is_unavailable(deployed: tuple[Path, str]) -> None:
    reg_dir, output = deployed
    assert "spin at /spin" in output and "deployed spin@1.0.0 at /spin" in output
    assert "isolation request" in output  # a fresh instance per request, as Spin runs components
    assert "secret token=********" in output and "t0ken" not in output
    assert "unavailable (imports this host does not provide; calling one fails):" in output
    assert "spin:mysql@3.0.0 (mysql)" in output and "deployed bare@1.0.0 at /bare" in output
    assert "unavailable: imports this host does not provide (a call to one fails; the rest is served):" in output
    listed = CliRunner().invoke(cli, ["list", "--registry", str(reg_dir), "--json"])
    rows = {r["component"]: r for r in json.loads(listed.output)}
    assert "spin:mysql@3.0.0 (mysql)" in rows["spin"]["unavailable"]
    assert "wasi:keyvalue@0.2.0-draft2 (atomics)" in rows["bare"]["unavailable"]
    assert not any("spin:key-value" in u or "spin:variables" in u for u in rows["spin"]["unavailable"])


def test_variables_read_the_granted_config_and_secrets(url: str) -> None:
    assert httpx.get(url + "/spin/var", params={"name": "greeting"}).text == "Hello, world"
    assert httpx.get(url + "/spin/var", params={"name": "token"}).text == "t0ken"
    assert httpx.get(url + "/spin/config", params={"name": "greeting"}).text == "Hello, world"  # wasi:config
    r = httpx.get(url + "/spin/var", params={"name": "missing"})
    assert r.status_code == 404 and "Error_Undefined" in r.text and "--config missing=VALUE" in r.text
    r = httpx.get(url + "/bare/var", params={"name": "greeting"})  # nothing granted, nothing to read
    assert r.status_code == 404 and "Error_Undefined" in r.text


def test_key_value_is_the_version_namespace(url: str, deployed: tuple[Path, str]) -> None:
    kv = url + "/spin/kv"
    assert httpx.get(kv, params={"key": "k"}).status_code == 404
    assert httpx.put(kv, params={"key": "k"}, content=b"v1").status_code == 201
    assert httpx.get(kv, params={"key": "k"}).text == "v1"
    assert httpx.put(kv, params={"key": "k", "store": "cache"}, content=b"cached").status_code == 201
    assert httpx.get(kv, params={"key": "k", "store": "cache"}).text == "cached"
    assert httpx.get(url + "/spin/keys").text == "k"
    assert httpx.get(url + "/spin/wasi-kv", params={"key": "k"}).text == "v1"  # wasi:keyvalue: the same store
    assert httpx.put(url + "/spin/wasi-kv", params={"key": "w"}, content=b"x").status_code == 201
    assert httpx.get(url + "/spin/keys").text == "k\nw"
    assert httpx.delete(kv, params={"key": "k"}).status_code == 204
    assert httpx.get(kv, params={"key": "k"}).status_code == 404
    reg_dir, _ = deployed
    from airssys_web.capabilities.kv import SqliteKVStore
    store = SqliteKVStore(reg_dir / "kv.db")
    try:  # the namespaces the host chose: the component's, and its store "cache" beside it
        assert store.get("spin", "w") == b"x" and store.get("spin/cache", "k") == b"cached"
    finally:
        store.close()


def test_a_store_nothing_grants_is_refused_at_run_time(url: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "airssys_web")
    r = httpx.get(url + "/spin/kv", params={"key": "k", "store": "other"})
    assert (r.status_code, r.text) == (403, "Error_AccessDenied()")
    assert "key-value store 'other' is not granted to this component; deploy it with --kv-store other" in caplog.text
    r = httpx.get(url + "/bare/kv", params={"key": "k"})  # the same component deployed without --kv
    assert (r.status_code, r.text) == (403, "Error_AccessDenied()")
    assert "key-value store 'default' is not granted to this component; deploy it with --kv" in caplog.text
    assert httpx.get(url + "/bare/hello").text == "Hello from Python!"  # the server is healthy
    assert httpx.get(url + "/spin/hello").text == "Hello from Python!"


def test_outbound_goes_through_the_grants(site: tuple[str, Recorder]) -> None:
    url, recorder = site
    r = httpx.get(url + "/spin/fetch", params={"url": "https://api.example.com/v1?q=1"})
    assert (r.status_code, r.text) == (200, "upstream saw /v1")
    assert recorder.urls == ["https://api.example.com/v1?q=1"]
    r = httpx.get(url + "/spin/fetch", params={"url": "https://other.example.com/"})
    assert (r.status_code, r.text) == (502, "ErrorCode_HttpRequestDenied()")
    r = httpx.get(url + "/bare/fetch", params={"url": "https://api.example.com/"})  # no grant: nothing goes out
    assert (r.status_code, r.text) == (502, "ErrorCode_HttpRequestDenied()")
    assert recorder.urls == ["https://api.example.com/v1?q=1"]


def test_a_wasi_http_component_calls_a_granted_component_in_process(site: tuple[str, Recorder],
                                                                     deployed: tuple[Path, str]) -> None:
    """The internal calls of airssys:web components are every world's: Spin's ``http.send`` to
    ``http://NAME.airssys.internal/`` reaches component NAME in process when granted, and is refused like an
    ungranted host when not; nothing reaches the outbound transport either way."""
    url, recorder = site
    reg_dir, _ = deployed
    before = list(recorder.urls)
    with EmbeddedRegistry(reg_dir) as registry:
        deploy(registry, "greeter", text_component("hello from greeter"), version="1.0.0", route="/greeter")
        wasm = registry.blobs.read(registry.get_deployment("bare").sha256)
        deploy(registry, "caller", wasm, version="1.0.0", route="/caller",
               settings=VersionSettings.of(Capability.component("greeter")))
    wait_until(lambda: httpx.get(url + "/caller/hello").status_code == 200, 60, "the caller served")
    r = httpx.get(url + "/caller/fetch", params={"url": "http://greeter.airssys.internal/hi"}, timeout=30)
    assert (r.status_code, r.text) == (200, "hello from greeter")
    r = httpx.get(url + "/bare/fetch", params={"url": "http://greeter.airssys.internal/hi"})  # no grant
    assert (r.status_code, r.text) == (502, "ErrorCode_HttpRequestDenied()")
    r = httpx.get(url + "/caller/fetch", params={"url": "http://other.airssys.internal/"})  # granted: greeter only
    assert (r.status_code, r.text) == (502, "ErrorCode_HttpRequestDenied()")
    assert recorder.urls == before


def test_a_mebibyte_both_ways(url: str) -> None:
    body = bytes(range(256)) * 4096
    r = httpx.post(url + "/spin/echo", content=body, timeout=60)
    assert r.status_code == 200 and r.content == body


def test_an_interface_the_host_does_not_provide_fails_by_name(url: str, caplog: pytest.LogCaptureFixture) -> None:
    r = httpx.get(url + "/spin/mysql")
    assert r.status_code == 500 and set(r.json()) == {"error", "request_id"}
    assert "called spin:mysql/mysql@3.0.0#[static]connection.open: not provided by this host" in caplog.text
    assert httpx.get(url + "/spin/hello").text == "Hello from Python!"  # a new instance serves on


def test_spin_js_component(deployed: tuple[Path, str], url: str, spin_js_wasm: bytes) -> None:
    """Spin's JavaScript SDK (its HTTP part; wasi:http 0.2): built with j2w, served like the Python one. Its runtime
    answers one request per instance, as Spin runs it: a fresh instance per request (what `spin deploy` sets)."""
    reg_dir, _ = deployed
    with EmbeddedRegistry(reg_dir) as reg:
        deploy(reg, "spinjs", spin_js_wasm, version="1.0.0", route="/spinjs",
               settings=VersionSettings(limits={"isolation": "request"}))
    wait_until(lambda: httpx.get(url + "/spinjs/a").status_code == 200, 60, "the JS component serving")
    for path in ("/spinjs/a", "/spinjs/b", "/spinjs/c"):
        r = httpx.get(url + path)
        assert (r.text, r.headers["x-airssys-version"]) == (f"Hello from Spin JS at {path}", "spinjs@1.0.0")


def test_a_bad_manifest_changes_nothing(app_dir: Path, deployed: tuple[Path, str], url: str) -> None:
    """Every component is checked before the first deploy: an error names what to fix, the active version serves."""
    reg_dir, _ = deployed
    bad = app_dir / "bad.toml"
    bad.write_text(MANIFEST.format().replace('version = "1.0.0"', 'version = "2.0.0"')
                   + '[[trigger.http]]\nroute = "/more/..."\ncomponent = "more"\n'
                   + '[component.more]\nsource = "more.wasm"\n')
    result = CliRunner().invoke(cli, ["spin", "deploy", str(bad), "--registry", str(reg_dir)],
                                env={"SPIN_VARIABLE_TOKEN": "t0ken"})
    assert result.exit_code == 2
    assert "component more: source more.wasm does not exist; build it first with `spin build`" in result.output
    result = CliRunner().invoke(cli, ["spin", "deploy", str(app_dir / "spin.toml"), "--registry", str(reg_dir),
                                      "--version", "2.0.0"], env={})
    assert result.exit_code == 2 and "set SPIN_VARIABLE_TOKEN" in result.output
    assert httpx.get(url + "/spin/hello").headers["x-airssys-version"] == "spin@1.0.0"


def test_spin_deploy_through_a_server(app_dir: Path, spin_wasm: bytes, tmp_path: Path) -> None:
    """``--server``: the same plan, deployed through the admin API (the component is uploaded, checked there)."""
    from airssys_web.web.auth import TokenAuthority

    secret = "a-test-secret-of-enough-length"
    reg_dir = tmp_path / "reg"
    _with_artifact(reg_dir, spin_wasm)
    token, _ = TokenAuthority(secret).mint("deploy", 600)
    app = AirssysMiddleware(Starlette(), registry=reg_dir, secret=secret)
    with run_uvicorn(app) as server:
        result = CliRunner().invoke(cli, ["spin", "deploy", str(app_dir / "spin.toml"), "--server", server,
                                          "--token", token, "--json"], env={"SPIN_VARIABLE_TOKEN": "t0ken"})
        assert result.exit_code == 0, result.output
        report = json.loads(result.output)
        assert [d["deployment"]["component"] for d in report["deployed"]] == ["spin"]
        assert report["components"][0]["route"] == "/spin" and report["notes"] == []
        assert httpx.get(server + "/spin/var", params={"name": "token"}).text == "t0ken"
        listed = CliRunner().invoke(cli, ["list", "--server", server, "--token", token, "--json"])
        assert "spin:mysql@3.0.0 (mysql)" in json.loads(listed.output)[0]["unavailable"]  # from the admin API


def test_swap_from_spin_to_airssys_web_under_load(deployed: tuple[Path, str], url: str, spin_wasm: bytes) -> None:
    reg_dir, _ = deployed
    with EmbeddedRegistry(reg_dir) as reg:  # its artifact is in the registry already: nothing compiles
        deploy(reg, "swap", spin_wasm, version="1.0.0", route="/swap")
    seen: set[str] = set()
    failures: list[str] = []
    answered = [0]
    stop = threading.Event()

    def load() -> None:
        with httpx.Client(base_url=url, timeout=30) as client:
            while not stop.is_set():
                r = client.get("/swap/hello")
                version = r.headers.get("x-airssys-version")
                if r.status_code == 200 and version is not None:
                    seen.add(version)
                    answered[0] += 1
                elif not (r.status_code == 404 and not seen):  # a 404 only before 1.0.0 is picked up
                    failures.append(f"{r.status_code} {r.text[:80]}")

    threads = [threading.Thread(target=load) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        wait_until(lambda: "swap@1.0.0" in seen, 60, "the Spin version serving")
        with EmbeddedRegistry(reg_dir) as reg:
            deploy(reg, "swap", text_component("airssys:web now"), version="2.0.0", route="/swap")
        wait_until(lambda: "swap@2.0.0" in seen, 60, "the airssys:web version serving")
        after = answered[0]
        wait_until(lambda: answered[0] > after + 100, 30, "100 more requests after the swap")
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    assert failures == []
    assert seen == {"swap@1.0.0", "swap@2.0.0"}
    assert httpx.get(url + "/swap/hello").text == "airssys:web now"
