"""airssys_web.build and the guests in tests/guests, checked through stock wasmtime-py (not our runtime).

Calling through plain ``wasmtime.component`` keeps these tests independent of the host: a guest that passes
here is a correct ``airssys:web/route`` component; what the host does with it is tested elsewhere.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import sysconfig
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import wasmtime
import wasmtime.component as wc
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airssys_web.build import (
    _HEAD_LINES,
    _tail,
    _toolchain_error,
    build_python_guest,
    compile_wat,
    python_guest_key,
    wat_response_component,
)
from airssys_web.cli import cli
from airssys_web.errors import BuildError, InvalidComponent

GUESTS = Path(__file__).resolve().parent / "guests"
WAT_GUESTS = sorted(path.stem for path in GUESTS.glob("*.wat"))
HANDLER = "airssys:web/handler@0.1.0"
ROUTE_IMPORTS = {"airssys:web/types@0.1.0", "airssys:web/outbound@0.1.0", "airssys:web/config@0.1.0",
                 "airssys:web/kv@0.1.0"}  # fmt: skip
MIB = 1 << 20


@dataclass
class Host:
    """Python stubs for the airssys:web imports, recording what the guest asked for."""

    config: dict[str, str] = field(default_factory=dict)
    kv: dict[str, bytes] = field(default_factory=dict)
    fetches: list[tuple[str, str]] = field(default_factory=list)

    def define(self, linker: wc.Linker, only: set[str] | None = None) -> None:
        # result<T, string> is lowered untagged by wasmtime-py: a str is the err case, anything else ok.
        def fetch(_store: Any, method: str, url: str, _headers: Any, _body: Any) -> str:
            self.fetches.append((method, url))
            return f"denied: {url} is not granted"

        funcs: dict[str, dict[str, Callable[..., Any]]] = {
            "airssys:web/config@0.1.0": {"get": lambda _s, key: self.config.get(key)},
            "airssys:web/outbound@0.1.0": {"fetch": fetch},
            "airssys:web/kv@0.1.0": {
                "get": lambda _s, key: self.kv.get(key),
                "set": lambda _s, key, value: self.kv.__setitem__(key, bytes(value)),
                "delete": lambda _s, key: self.kv.pop(key, None) and None,
            },
        }
        with linker.root() as root:
            for name, members in funcs.items():
                if only is not None and name not in only:
                    continue
                with root.add_instance(name) as instance:
                    for member, fn in members.items():
                        instance.add_func(member, fn)


class Guest:
    """One instance of a component in its own Store, called like the host would call it."""

    def __init__(self, engine: wasmtime.Engine, component: wc.Component, linker: wc.Linker) -> None:
        self.store = wasmtime.Store(engine)
        self.store.set_wasi(wasmtime.WasiConfig())
        self.store.set_epoch_deadline(1_000_000)
        instance = linker.instantiate(self.store, component)
        handler = instance.get_export_index(self.store, HANDLER)
        assert handler is not None
        func = instance.get_func(self.store, instance.get_export_index(self.store, "handle", handler))
        assert func is not None
        self.func = func

    def __call__(
        self, method: str = "GET", path: str = "/", query: str = "",
        headers: list[tuple[str, str]] | None = None, body: bytes = b"",
    ) -> tuple[int, list[tuple[str, str]], bytes]:  # fmt: skip
        req = SimpleNamespace(method=method, path=path, query=query, headers=headers or [], body=body)
        res = self.func(self.store, req)
        return res.status, [tuple(h) for h in res.headers], bytes(res.body)


@pytest.fixture(scope="module")
def engine() -> wasmtime.Engine:
    config = wasmtime.Config()
    config.epoch_interruption = True
    return wasmtime.Engine(config)


@pytest.fixture(scope="module")
def load(engine: wasmtime.Engine) -> Callable[..., Guest]:
    """``load(wasm, host=None, only=None)`` -> a fresh Guest with WASI and the given import stubs."""

    def make(wasm: bytes | wc.Component, host: Host | None = None, only: set[str] | None = None) -> Guest:
        component = wasm if isinstance(wasm, wc.Component) else wc.Component(engine, wasm)
        linker = wc.Linker(engine)
        linker.add_wasip2()
        (host or Host()).define(linker, only)
        return Guest(engine, component, linker)

    return make


# ----------------------------------------------------------------------------------------------- compile_wat


def test_compile_wat_returns_binary() -> None:
    assert compile_wat("(module)") == b"\0asm\x01\0\0\0"


def test_compile_wat_error_names_line_and_source() -> None:
    with pytest.raises(InvalidComponent) as caught:
        compile_wat('(module\n  (func (export "x")\n    (i32.ad)))')
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("invalid WAT at line 3, column 6: unknown operator")
    assert message.endswith("(i32.ad)))")


# ---------------------------------------------------------------------------------------------- WAT guests


@pytest.mark.parametrize("name", [n for n in WAT_GUESTS if n != "core_module"])
def test_wat_guest_is_a_component(name: str, wat_guest: Callable[[str], bytes], engine: wasmtime.Engine) -> None:
    component = wc.Component(engine, wat_guest(name))
    exports = set(component.type.exports(engine))
    assert exports == ({"acme:thing/other@1.0.0"} if name == "wrong_world" else {HANDLER})


def test_core_module_is_not_a_component(wat_guest: Callable[[str], bytes], engine: wasmtime.Engine) -> None:
    wasm = wat_guest("core_module")
    wasmtime.Module(engine, wasm)  # a valid core module...
    with pytest.raises(wasmtime.WasmtimeError, match="component parser"):
        wc.Component(engine, wasm)  # ...that is no component


def test_unknown_wat_guest_is_a_lookup_error(wat_guest: Callable[[str], bytes]) -> None:
    with pytest.raises(LookupError, match=r"known: .*hello"):
        wat_guest("nope")


def test_hello(wat_guest: Callable[[str], bytes], load: Callable[..., Guest]) -> None:
    assert load(wat_guest("hello"))() == (200, [("content-type", "text/plain; charset=utf-8")], b"hello from wat")


@pytest.mark.parametrize(
    ("method", "path", "query", "body"),
    [
        ("GET", "/", "", b""),
        ("POST", "/bin", "a=1&b=2", bytes(range(256)) * 4),
        ("PUT", "/h\u00e9llo/\u2603", "q=\u00fcber&x=\U0001f600", "gr\u00fc\u00dfe \U0001f600".encode()),
        ("PATCH", "/big", "", os.urandom(300_001)),  # grows the guest memory (starts at one 64 KiB page)
    ],
    ids=["empty", "binary", "non-ascii", "300KB"],
)
def test_echo(
    method: str, path: str, query: str, body: bytes, wat_guest: Callable[[str], bytes],
    load: Callable[..., Guest],
) -> None:  # fmt: skip
    status, headers, echoed = load(wat_guest("echo"))(method, path, query, [("a", "b")], body)
    assert status == 200
    assert headers == [("x-echo-path", path), ("x-echo-query", query), ("x-echo-method", method)]
    assert echoed == body


def test_instances_reuse_their_heap(wat_guest: Callable[[str], bytes], load: Callable[..., Guest]) -> None:
    """Requests totalling 3x the memory cap through one instance: the allocator resets after each call."""
    for name in ("hello", "echo"):
        guest = load(wat_guest(name))
        guest.store.set_limits(memory_size=256 * 1024)
        for i in range(12):
            body = bytes([i]) * (64 * 1024 if name == "hello" else 32 * 1024)
            assert guest("POST", f"/{i}", body=body)[0] == 200


def test_trap(wat_guest: Callable[[str], bytes], load: Callable[..., Guest]) -> None:
    with pytest.raises(wasmtime.WasmtimeError, match="unreachable"):
        load(wat_guest("trap"))()


def test_spin_is_stopped_by_the_epoch_deadline(
    wat_guest: Callable[[str], bytes], load: Callable[..., Guest], engine: wasmtime.Engine
) -> None:
    guest = load(wat_guest("spin"))
    guest.store.set_epoch_deadline(1)
    engine.increment_epoch()  # the deadline has passed before the call: the first loop check interrupts
    with pytest.raises(wasmtime.WasmtimeError, match="interrupt"):
        guest()


def test_grow_traps_at_the_memory_cap(wat_guest: Callable[[str], bytes], load: Callable[..., Guest]) -> None:
    guest = load(wat_guest("grow"))
    guest.store.set_limits(memory_size=16 * MIB)
    with pytest.raises(wasmtime.WasmtimeError, match="unreachable"):
        guest()


def test_bad_status_and_bad_header_reach_the_host_unchecked(
    wat_guest: Callable[[str], bytes], load: Callable[..., Guest]
) -> None:
    assert load(wat_guest("bad_status"))() == (700, [], b"bad status")
    assert load(wat_guest("bad_header"))() == (200, [("x bad\nheader", "v")], b"bad header")


@pytest.mark.parametrize(("config", "expected"), [({"greeting": "hi \u00e9"}, "hi \u00e9"), ({}, "none")])
def test_config_only_imports_a_subset(
    config: dict[str, str], expected: str, wat_guest: Callable[[str], bytes], engine: wasmtime.Engine,
    load: Callable[..., Guest],
) -> None:  # fmt: skip
    wasm = wat_guest("config_only")
    assert set(wc.Component(engine, wasm).type.imports(engine)) == {"airssys:web/config@0.1.0"}
    guest = load(wasm, Host(config=config), only={"airssys:web/config@0.1.0"})
    for _ in range(3):
        assert guest() == (200, [], expected.encode())


def test_unknown_import_is_unsatisfiable(
    wat_guest: Callable[[str], bytes], engine: wasmtime.Engine, load: Callable[..., Guest]
) -> None:
    wasm = wat_guest("unknown_import")
    component = wc.Component(engine, wasm)
    assert set(component.type.imports(engine)) == {"acme:thing/db@1.0.0"}
    with pytest.raises(wasmtime.WasmtimeError, match=re.escape("acme:thing/db@1.0.0")):
        load(component)
    linker = wc.Linker(engine)
    linker.define_unknown_imports_as_traps(component)
    assert Guest(engine, component, linker)() == (200, [], b"unknown import")


# ---------------------------------------------------------------------------------- wat_response_component


def test_wat_response_component(load: Callable[..., Guest]) -> None:
    wat = wat_response_component("h\u00e9llo", 201, [("content-type", "text/plain"), ("x-\u00e9", "\u2603")])
    guest = load(compile_wat(wat))
    for _ in range(3):
        assert guest(body=b"ignored") == (
            201, [("content-type", "text/plain"), ("x-\u00e9", "\u2603")], "h\u00e9llo".encode()
        )  # fmt: skip


@pytest.mark.parametrize("status", [-1, 65536])
def test_wat_response_component_rejects_non_u16_status(status: int) -> None:
    with pytest.raises(ValueError, match="u16"):
        wat_response_component("x", status)


_text = st.text(st.characters(exclude_categories=("Cs",)), max_size=40)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    body=st.binary(max_size=70_000),
    status=st.integers(0, 0xFFFF),
    headers=st.lists(st.tuples(_text, _text), max_size=5),
)
def test_wat_response_component_roundtrip(
    body: bytes, status: int, headers: list[tuple[str, str]], load: Callable[..., Guest]
) -> None:
    assert load(compile_wat(wat_response_component(body, status, headers)))() == (status, headers, body)


# -------------------------------------------------------------------------------------------- Python guests


def _write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def test_python_guest_key_tracks_sources_only(tmp_path: Path) -> None:
    src = _write(tmp_path / "g", {"app.py": "x = 1\n", "lib/util.py": "y = 2\n"})
    key = python_guest_key(src)
    _write(src, {"__pycache__/app.cpython-314.pyc": "junk", ".hidden": "x", "lib/util.pyc": "junk"})
    assert python_guest_key(src) == key
    (src / "lib/util.py").write_text("y = 3\n")
    assert python_guest_key(src) != key
    (src / "lib/util.py").write_text("y = 2\n")
    assert python_guest_key(src) == key
    (src / "lib/util.py").rename(src / "lib/other.py")
    assert python_guest_key(src) != key


def test_build_python_guest_needs_an_app_module(tmp_path: Path) -> None:
    with pytest.raises(BuildError, match=r"no app\.py"):
        build_python_guest(tmp_path, cache_dir=tmp_path / "cache")


@pytest.mark.slow
def test_build_python_guest_reports_the_toolchain_error(tmp_path: Path) -> None:
    src = _write(tmp_path / "broken", {"app.py": "def handle(:\n"})
    with pytest.raises(BuildError, match=r"(?s)componentize-py failed to build .*SyntaxError") as caught:
        build_python_guest(src, cache_dir=tmp_path / "cache")
    assert f'File "{src}/app.py", line 1' in str(caught.value)  # the user's path, not the guest's /0
    assert "backtrace" not in str(caught.value).lower()
    assert list((tmp_path / "cache").glob("*.wasm")) == []  # nothing published
    assert not (src / "__pycache__").exists()  # the build ran on a copy


@pytest.mark.slow
def test_a_python_guest_builds_with_the_project_venv_activated(tmp_path: Path) -> None:
    """`PATH=.venv/bin:$PATH airssys-web build`: componentize-py must not pick up the WIT that other installed
    packages ship (spin-sdk, a dev dependency, has a componentize-py.toml: 'Unable to resolve Some("route")')."""
    site_packages = Path(sysconfig.get_paths()["purelib"])
    assert list(site_packages.glob("*/componentize-py.toml")), "the clash this test is about needs spin-sdk"
    source = tmp_path / "py_echo"
    shutil.copytree(GUESTS / "py_echo", source)
    activated = {"PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
                 "VIRTUAL_ENV": sys.prefix, "AIRSSYS_WEB_CACHE": str(tmp_path / "cache")}  # no cached build
    result = CliRunner().invoke(cli, ["build", str(source)], env=activated)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"built {source / 'py_echo.wasm'} (python, ")


UNRESOLVED = ('Traceback (most recent call last):\n  File "<string>", line 1, in <module>\n'
              'AssertionError: Unable to resolve `Some("route")`.\nAvailable worlds: [\n'
              + "".join(f'    "acme:pkg{i}/world@0.{i}.0",\n' for i in range(170)) + "]\n")


def test_a_toolchain_error_keeps_its_cause_and_whole_lines() -> None:
    shown = _toolchain_error(UNRESOLVED + "\nStack backtrace:\n   0: rust frames\n")
    lines = shown.splitlines()
    assert lines[0] == 'Unable to resolve `Some("route")`.'  # the cause first, never cut away
    assert lines[_HEAD_LINES] == "... (131 lines left out) ..." and lines[-1] == "]"
    assert all(f"{line}\n" in UNRESOLVED for line in lines if "left out" not in line)  # whole lines only
    assert "backtrace" not in shown.lower() and "Traceback" not in shown
    short = "SyntaxError: invalid syntax\n" + "x" * 5000  # one long line stays whole
    assert _tail(short) == short


def test_py_echo_build_is_cached(py_echo_path: Path, tmp_path: Path) -> None:
    before = py_echo_path.stat()
    again = build_python_guest(GUESTS / "py_echo", cache_dir=py_echo_path.parent)
    assert again == py_echo_path
    after = again.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)  # not rebuilt or replaced
    copied = build_python_guest(GUESTS / "py_echo", cache_dir=py_echo_path.parent, out=tmp_path / "o/e.wasm")
    assert copied == tmp_path / "o/e.wasm"
    assert copied.read_bytes() == py_echo_path.read_bytes()
    assert py_echo_path.stat().st_mtime_ns == before.st_mtime_ns


@pytest.fixture(scope="module")
def py_echo_component(py_echo_wasm: bytes, engine: wasmtime.Engine) -> Iterator[wc.Component]:
    yield wc.Component(engine, py_echo_wasm)  # seconds to compile: once per module


def test_py_echo_imports_and_exports(py_echo_component: wc.Component, engine: wasmtime.Engine) -> None:
    imports = set(py_echo_component.type.imports(engine))
    assert {name for name in imports if name.startswith("airssys:")} == ROUTE_IMPORTS
    assert all(name.startswith(("airssys:web/", "wasi:")) for name in imports)
    assert set(py_echo_component.type.exports(engine)) == {HANDLER, "exports"}  # "exports": componentize-py's


def test_py_echo_answers_json(py_echo_component: wc.Component, load: Callable[..., Guest]) -> None:
    guest = load(py_echo_component, Host(config={"greeting": "hi"}))
    status, headers, body = guest("POST", "/x/\u00e9", "a=1&b=%20", [("x-a", "1"), ("x-a", "2")], b"\0\1\2")
    assert (status, headers) == (200, [("content-type", "application/json")])
    assert json.loads(body) == {
        "method": "POST", "path": "/x/\u00e9", "query": "a=1&b=%20", "headers": [["x-a", "1"], ["x-a", "2"]],
        "body_length": 3, "greeting": "hi",
    }  # fmt: skip
    assert json.loads(load(py_echo_component)()[2])["greeting"] is None


def test_py_echo_calls_imports(py_echo_component: wc.Component, load: Callable[..., Guest]) -> None:
    host = Host()
    guest = load(py_echo_component, host)
    assert guest(path="/fetch")[2] == b"denied: https://example.com/ is not granted"
    assert host.fetches == [("GET", "https://example.com/")]
    assert [guest(path="/kv")[2] for _ in range(2)] == [b"1", b"2"]
    assert host.kv == {"count": b"2"}


def test_py_echo_exception_traps(py_echo_component: wc.Component, load: Callable[..., Guest]) -> None:
    guest = load(py_echo_component)
    with pytest.raises(wasmtime.WasmtimeError):
        guest(path="/boom")
    with pytest.raises(wasmtime.WasmtimeError, match="cannot enter component instance"):
        guest()  # the trap poisoned the instance


# ---------------------------------------------------------------------------------------- example components

EXAMPLE = Path(__file__).resolve().parents[1] / "example_site" / "components"


def test_example_hello_wat(load: Callable[..., Guest]) -> None:
    guest = load(compile_wat((EXAMPLE / "hello_wat/hello.wat").read_text()))
    for _ in range(3):
        status, headers, body = guest(body=b"x" * 100_000)
        assert (status, headers) == (200, [("content-type", "text/plain; charset=utf-8")])
        assert body == b"Hello from a WebAssembly component written by hand in WAT.\n"


@pytest.mark.slow
def test_example_greeter_py(load: Callable[..., Guest], engine: wasmtime.Engine) -> None:
    wasm = build_python_guest(EXAMPLE / "greeter_py", cache_dir=GUESTS.parents[1] / ".cache" / "guests")
    component = wc.Component.from_file(engine, str(wasm))
    status, headers, body = load(component)(query="name=Ada&x=%3Cb%3E&empty=")
    assert (status, headers) == (200, [("content-type", "text/html; charset=utf-8")])
    page = body.decode()
    assert "<h1>Hello, Ada!</h1>" in page
    assert "<td><code>x</code></td><td>&lt;b&gt;</td>" in page
    guest = load(component, Host(config={"greeting": "Bonjour"}))
    status, headers, body = guest(headers=[("Accept", "application/json")])
    assert json.loads(body) == {"message": "Bonjour, world!", "query": []}
