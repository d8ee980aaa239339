"""airssys_web.guest.build and the guests in tests/guests, checked through the bare native runtime (no pool, no policy).

Calling through ``airssys_web._native`` with stub host functions keeps these tests independent of the host's
policy: a guest that passes here is a correct ``airssys:web/route`` component; what the host does with it is
tested elsewhere.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import sysconfig
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import runtime_for

from airssys_web import _native
from airssys_web.cli import cli
from airssys_web.errors import BuildError, InvalidComponent
from airssys_web.guest.build import (
    _HEAD_LINES,
    _tail,
    _toolchain_error,
    build_python_guest,
    compile_wat,
    python_guest_key,
    wat_response_component,
)

GUESTS = Path(__file__).resolve().parent / "guests"
WAT_GUESTS = sorted(path.stem for path in GUESTS.glob("*.wat"))
HANDLER = "airssys:web/handler@0.1.0"
ROUTE_IMPORTS = {"airssys:web/types@0.1.0", "airssys:web/outbound@0.1.0", "airssys:web/config@0.1.0",
                 "airssys:web/kv@0.1.0"}  # fmt: skip
MIB = 1 << 20


@dataclass
class Host:
    """Stub host functions for the airssys:web imports, recording what the guest asked for."""

    kv: dict[str, bytes] = field(default_factory=dict)
    fetches: list[tuple[str, str]] = field(default_factory=list)
    output: list[str] = field(default_factory=list)

    def fetch(self, method: str, url: str, _headers: Any, _body: bytes, _remaining: float,
              _depth: int = 0) -> tuple[str, str]:
        self.fetches.append((method, url))
        return "denied", f"denied: {url} is not granted"

    def kv_get(self, key: str) -> tuple[str, bytes | None]:
        return "ok", self.kv.get(key)

    def kv_set(self, key: str, value: bytes) -> tuple[str, None]:
        self.kv[key] = value
        return "ok", None

    def kv_delete(self, key: str) -> tuple[str, None]:
        self.kv.pop(key, None)
        return "ok", None

    def log(self, stream: str, text: str) -> None:
        self.output.append(text)


class Guest:
    """One instance of a component in its own Store, called like the host would call it."""

    def __init__(self, component: _native.Component, host: Host, config: dict[str, str], memory: int,
                 timeout: float) -> None:
        pre = _native.Pre(runtime_for().native, component, tag="guest@test", config=config, host=host, memory=memory,
                          timeout=timeout)
        self.instance = pre.instantiate()

    def __call__(
        self, method: str = "GET", path: str = "/", query: str = "",
        headers: list[tuple[str, str]] | None = None, body: bytes = b"",
    ) -> tuple[int, list[tuple[str, str]], bytes]:  # fmt: skip
        return self.instance.handle(method, path, query, headers or [], body)


def compile_component(wasm: bytes) -> _native.Component:
    return _native.Component.compile(runtime_for().native, wasm)


@pytest.fixture(scope="module")
def load() -> Callable[..., Guest]:
    """``load(wasm, host=None, config=None, memory=..., timeout=...)`` -> a fresh Guest with stub imports."""

    def make(wasm: bytes | _native.Component, host: Host | None = None, config: dict[str, str] | None = None,
             memory: int = 256 * MIB, timeout: float = 30.0) -> Guest:
        component = wasm if isinstance(wasm, _native.Component) else compile_component(wasm)
        return Guest(component, host or Host(), config or {}, memory, timeout)

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
def test_wat_guest_is_a_component(name: str, wat_guest: Callable[[str], bytes]) -> None:
    exports = set(compile_component(wat_guest(name)).exports())
    handler = HANDLER.replace("@0.1.0", "@0.1.1") if name == "stage" else HANDLER  # the stage is a 0.1.1 component
    assert exports == ({"acme:thing/other@1.0.0"} if name == "wrong_world" else {handler})


def test_core_module_is_not_a_component(wat_guest: Callable[[str], bytes]) -> None:
    wasm = wat_guest("core_module")
    assert wasm.startswith(b"\0asm\x01\0\0\0")  # a core module...
    with pytest.raises(_native.GuestFault, match="does not validate") as caught:
        compile_component(wasm)  # ...that is no component
    assert caught.value.kind == "invalid"


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
        ("PUT", "/h\u00e9llo/\u00fc", "q=\u00fcber&x=\u00ff", "gr\u00fc\u00dfe \U0001f600".encode()),
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
        guest = load(wat_guest(name), memory=256 * 1024)
        for i in range(12):
            body = bytes([i]) * (64 * 1024 if name == "hello" else 32 * 1024)
            assert guest("POST", f"/{i}", body=body)[0] == 200


@contextlib.contextmanager
def fault(kind: str, match: str) -> Iterator[None]:
    """Expect a GuestFault of ``kind`` whose message matches ``match``."""
    with pytest.raises(_native.GuestFault, match=match) as caught:
        yield
    assert caught.value.kind == kind, caught.value.kind


def test_trap(wat_guest: Callable[[str], bytes], load: Callable[..., Guest]) -> None:
    guest = load(wat_guest("trap"))
    with fault("trap", "unreachable"):
        guest()
    with fault("closed", "instance is closed"):
        guest()  # the trap poisoned the instance


def test_spin_is_stopped_by_the_epoch_deadline(wat_guest: Callable[[str], bytes], load: Callable[..., Guest]) -> None:
    guest = load(wat_guest("spin"), timeout=0.02)
    with fault("timeout", "exceeded its 0.02s deadline"):
        guest()


def test_grow_is_refused_at_the_memory_cap(wat_guest: Callable[[str], bytes], load: Callable[..., Guest]) -> None:
    guest = load(wat_guest("grow"), memory=16 * MIB)
    with fault("memory", r"hit its memory limit of 16 MiB \(a memory.grow was refused, then: .*unreachable"):
        guest()


def test_bad_status_and_bad_header_are_refused(wat_guest: Callable[[str], bytes], load: Callable[..., Guest]) -> None:
    with fault("bad-response", "invalid status 700"):
        load(wat_guest("bad_status"))()
    with fault("bad-response", "invalid header name"):
        load(wat_guest("bad_header"))()


@pytest.mark.parametrize(("config", "expected"), [({"greeting": "hi \u00e9"}, "hi \u00e9"), ({}, "none")])
def test_config_only_imports_a_subset(
    config: dict[str, str], expected: str, wat_guest: Callable[[str], bytes], load: Callable[..., Guest],
) -> None:  # fmt: skip
    wasm = wat_guest("config_only")
    assert set(compile_component(wasm).imports()) == {"airssys:web/config@0.1.0"}
    guest = load(wasm, config=config)
    for _ in range(3):
        assert guest() == (200, [], expected.encode())


def test_unknown_import_is_unsatisfiable(wat_guest: Callable[[str], bytes], load: Callable[..., Guest]) -> None:
    component = compile_component(wat_guest("unknown_import"))
    assert set(component.imports()) == {"acme:thing/db@1.0.0"}
    with fault("link", r"imports .*acme:thing/db@1.0.0.*which this host does not provide"):
        load(component)


# ---------------------------------------------------------------------------------- wat_response_component


def test_wat_response_component(load: Callable[..., Guest]) -> None:
    wat = wat_response_component("h\u00e9llo \u2603", 201, [("content-type", "text/plain"), ("x-e", "\u00e9")])
    guest = load(compile_wat(wat))
    for _ in range(3):
        assert guest(body=b"ignored") == (
            201, [("content-type", "text/plain"), ("x-e", "\u00e9")], "h\u00e9llo \u2603".encode()
        )  # fmt: skip


@pytest.mark.parametrize("status", [-1, 65536])
def test_wat_response_component_rejects_non_u16_status(status: int) -> None:
    with pytest.raises(ValueError, match="u16"):
        wat_response_component("x", status)


# What the host lets through: token names, latin-1 values without control characters (all else is a 502).
_name = st.text(st.sampled_from("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+-.^_`|~"),
                min_size=1, max_size=40)
_value = st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF, blacklist_characters="\x7f"), max_size=40)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    body=st.binary(max_size=70_000),
    status=st.integers(100, 599),
    headers=st.lists(st.tuples(_name, _value), max_size=5),
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
def py_echo_component(py_echo_wasm: bytes) -> Iterator[_native.Component]:
    yield compile_component(py_echo_wasm)  # seconds to compile: once per module


def test_py_echo_imports_and_exports(py_echo_component: _native.Component) -> None:
    imports = set(py_echo_component.imports())
    # componentize-py builds against the contract as it is now (0.1.1); the WAT guests keep 0.1.0 names
    assert {name for name in imports if name.startswith("airssys:")} == {
        name.replace("@0.1.0", "@0.1.1") for name in ROUTE_IMPORTS}
    assert all(name.startswith(("airssys:web/", "wasi:")) for name in imports)
    assert HANDLER.replace("@0.1.0", "@0.1.1") in set(py_echo_component.exports())  # and maybe exports of its own


def test_py_echo_answers_json(py_echo_component: _native.Component, load: Callable[..., Guest]) -> None:
    guest = load(py_echo_component, config={"greeting": "hi"})
    status, headers, body = guest("POST", "/x/\u00e9", "a=1&b=%20", [("x-a", "1"), ("x-a", "2")], b"\0\1\2")
    assert (status, headers) == (200, [("content-type", "application/json")])
    assert json.loads(body) == {
        "method": "POST", "path": "/x/\u00e9", "query": "a=1&b=%20", "headers": [["x-a", "1"], ["x-a", "2"]],
        "body_length": 3, "greeting": "hi",
    }  # fmt: skip
    assert json.loads(load(py_echo_component)()[2])["greeting"] is None


def test_py_echo_calls_imports(py_echo_component: _native.Component, load: Callable[..., Guest]) -> None:
    host = Host()
    guest = load(py_echo_component, host)
    assert guest(path="/fetch")[2] == b"denied: https://example.com/ is not granted"
    assert host.fetches == [("GET", "https://example.com/")]
    assert [guest(path="/kv")[2] for _ in range(2)] == [b"1", b"2"]
    assert host.kv == {"count": b"2"}


def test_py_echo_exception_traps(py_echo_component: _native.Component, load: Callable[..., Guest]) -> None:
    host = Host()
    guest = load(py_echo_component, host)
    with fault("trap", "trapped"):
        guest(path="/boom")
    assert any("Traceback" in text for text in host.output)  # what the guest printed reached the host's log
    with fault("closed", "instance is closed"):
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
def test_example_greeter_py(load: Callable[..., Guest]) -> None:
    wasm = build_python_guest(EXAMPLE / "greeter_py", cache_dir=GUESTS.parents[1] / ".cache" / "guests")
    component = compile_component(wasm.read_bytes())
    status, headers, body = load(component)(query="name=Ada&x=%3Cb%3E&empty=")
    assert (status, headers) == (200, [("content-type", "text/html; charset=utf-8")])
    page = body.decode()
    assert "<h1>Hello, Ada!</h1>" in page
    assert "<td><code>x</code></td><td>&lt;b&gt;</td>" in page
    guest = load(component, config={"greeting": "Bonjour"})
    status, headers, body = guest(headers=[("Accept", "application/json")])
    assert json.loads(body) == {"message": "Bonjour, world!", "query": []}
