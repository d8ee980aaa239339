"""The fast value path (airssys_web.runtime.convert) against wasmtime-py's stock conversions, on real guests.

Guests are WAT components in tests/guests/convert/: ``echo`` returns what it received (see its header comment).
"""

from __future__ import annotations

import gc
import resource
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import wasmtime
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from wasmtime.component import Component, Func, Linker

from airssys_web.runtime.convert import HandleCaller

GUESTS = Path(__file__).parent / "guests" / "convert"
HANDLER = "airssys:web/handler@0.1.0"
MiB = 1 << 20

Call = Callable[[str, str, str, list[tuple[str, str]], bytes], tuple[int, list[tuple[str, str]], bytes]]


@pytest.fixture(scope="module")
def engine() -> wasmtime.Engine:
    config = wasmtime.Config()
    config.epoch_interruption = True  # as in production; no ticker runs here, so the deadline never expires
    return wasmtime.Engine(config)


def _component(engine: wasmtime.Engine, name: str) -> Component:
    return Component(engine, wasmtime.wat2wasm((GUESTS / f"{name}.wat").read_text()))


@pytest.fixture(scope="module")
def echo(engine: wasmtime.Engine) -> Component:
    return _component(engine, "echo")


def instantiate(engine: wasmtime.Engine, component: Component, linker: Linker | None = None,
                export: tuple[str, ...] = (HANDLER, "handle")) -> tuple[wasmtime.Store, Func]:
    store = wasmtime.Store(engine)
    store.set_epoch_deadline(1 << 30)
    instance = (linker or Linker(engine)).instantiate(store, component)
    index = None
    for name in export:
        index = instance.get_export_index(store, name, index)
        assert index is not None, name
    func = instance.get_func(store, index)
    assert func is not None
    return store, func


@dataclass
class _Request:
    method: str
    path: str
    query: str
    headers: list[tuple[str, str]]
    body: bytes


def stock(store: wasmtime.Store, func: Func) -> Call:
    """wasmtime-py's generic path, the reference the fast path must match."""

    def call(method: str, path: str, query: str, headers: list[tuple[str, str]], body: bytes
             ) -> tuple[int, list[tuple[str, str]], bytes]:
        out = func(store, _Request(method, path, query, headers, body))
        return out.status, list(out.headers), bytes(out.body)

    return call


@pytest.fixture(scope="module")
def pair(engine: wasmtime.Engine, echo: Component) -> tuple[Call, Call]:
    """(stock, fast) callers on two instances of the echo guest."""
    return stock(*instantiate(engine, echo)), HandleCaller(*instantiate(engine, echo))


def expected_echo(method: str, path: str, query: str, headers: list[tuple[str, str]], body: bytes
                  ) -> tuple[int, list[tuple[str, str]], bytes]:
    status = (200 + 4099 * len(query.encode())) & 0xFFFF
    return status, [("x-method", method), ("x-path", path), ("x-query", query), *headers], body


text = st.text(max_size=40)
headers_st = st.lists(st.tuples(text, text), max_size=12)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(method=text, path=text, query=text, headers=headers_st, body=st.binary(max_size=3000))
def test_fast_handle_matches_stock(pair: tuple[Call, Call], method: str, path: str, query: str,
                                   headers: list[tuple[str, str]], body: bytes) -> None:
    slow, fast = pair
    got = fast(method, path, query, headers, body)
    assert got == slow(method, path, query, headers, body)
    assert got == expected_echo(method, path, query, headers, body)
    assert type(got[2]) is bytes and all(type(h) is tuple for h in got[1])


def test_huge_non_ascii_binary_and_many_headers_match_stock(pair: tuple[Call, Call]) -> None:
    slow, fast = pair
    body = bytes(range(256)) * (MiB // 256) + "ünïcødé ✓ 🐍".encode()
    headers = [(f"x-h{i}-ü", "v" * (i % 97) + "🐍") for i in range(400)]
    args = ("PÖST", "/päth/🐍", "q=✓&" + "x" * 5000, headers, body)
    got = fast(*args)
    assert got == expected_echo(*args)
    assert got == slow(*args)


@pytest.mark.parametrize("body", [bytearray(b"abc"), memoryview(b"xabcx")[1:4]])
def test_bytes_like_bodies_are_accepted(pair: tuple[Call, Call], body: Any) -> None:
    assert pair[1]("GET", "/", "", [], body)[2] == b"abc"


@pytest.mark.parametrize(("args", "field"), [
    ((None, "/", "", [], b""), "method must be a str"),
    (("GET", b"/", "", [], b""), "path must be a str"),
    (("GET", "/", "\ud800", [], b""), "query contains a lone surrogate"),
    (("GET", "/", "", "ab", b""), "headers must be a sequence"),
    (("GET", "/", "", [["a", "b"]], b""), r"headers\[0\] must be a \(name, value\) tuple"),
    (("GET", "/", "", [("a", "b", "c")], b""), r"headers\[0\] must be"),
    (("GET", "/", "", [("a", "b"), (1, "b")], b""), r"headers\[1\] name must be a str"),
    (("GET", "/", "", [("a", "\udfff")], b""), r"headers\[0\] value contains a lone surrogate"),
    (("GET", "/", "", [], "body"), "body must be bytes-like"),
    (("GET", "/", "", [], 12), "body must be bytes-like"),
])
def test_bad_input_is_rejected_before_lowering(pair: tuple[Call, Call], args: tuple[Any, ...],
                                               field: str) -> None:
    with pytest.raises(ValueError, match=field):
        pair[1](*args)
    assert pair[1]("GET", "/", "", [], b"ok")[2] == b"ok"  # the instance is still fine


def test_trap_raises_wasmtime_error_and_poisons_the_store(engine: wasmtime.Engine, echo: Component) -> None:
    outcomes = []
    for make in (stock, HandleCaller):
        call = make(*instantiate(engine, echo))
        with pytest.raises(wasmtime.WasmtimeError) as trap:
            call("TRAP", "/", "", [], b"")
        with pytest.raises(wasmtime.WasmtimeError) as after:
            call("GET", "/", "", [], b"")
        outcomes.append((type(trap.value), "unreachable" in str(trap.value), type(after.value), str(after.value)))
    assert outcomes[0] == outcomes[1]
    assert outcomes[1][1]


def test_wrong_signature_is_refused(engine: wasmtime.Engine) -> None:
    wat = """(component
      (core module $m (func (export "f") (param i32) (result i32) local.get 0))
      (core instance $i (instantiate $m))
      (func $f (param "x" u32) (result u32) (canon lift (core func $i "f")))
      (export "handle" (func $f)))"""
    store, func = instantiate(engine, Component(engine, wasmtime.wat2wasm(wat)), export=("handle",))
    with pytest.raises(ValueError, match=r"wrong signature: expected func\(req: record .* got func\(x: u32\) -> u32"):
        HandleCaller(store, func)


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="needs /proc to read the resident set size")
def test_no_leak_over_10k_calls(engine: wasmtime.Engine, echo: Component) -> None:
    call = HandleCaller(*instantiate(engine, echo))
    headers = [("content-type", "text/plain"), ("x-ü", "✓" * 50)]
    body = bytes(range(256)) * 4

    def run(n: int) -> Iterator[None]:
        for _ in range(n):
            assert call("POST", "/leak", "a=1", headers, body)[2] == body
            yield

    for _ in run(1000):
        pass
    gc.collect()
    before = _rss()
    for _ in run(10_000):
        pass
    gc.collect()
    # A leaked response (≥ 32 KiB of C values each) would add > 300 MiB; allow allocator noise only.
    assert _rss() - before < 24 * MiB
