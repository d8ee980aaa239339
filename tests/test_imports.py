"""What a guest gets from the host without grants: config values; fetch and kv answered with the WIT err case."""

from __future__ import annotations

from pathlib import Path

import pytest
from support import make_generation

from airssys_web.build import compile_wat
from airssys_web.errors import GuestTrap
from airssys_web.runtime.imports import KV_NOT_GRANTED

IMPORTS_GUEST = Path(__file__).parent / "guests" / "convert" / "imports.wat"


def _gen(config: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    return make_generation(compile_wat(IMPORTS_GUEST.read_text()), name="imp", config=config)


def test_config_get_returns_granted_values_only() -> None:
    gen = _gen({"greeting": "hej"})
    r = gen.call("@c", "greeting")
    assert (r.status, r.headers) == (200, [("value", "hej")])
    assert gen.call("@c", "missing").status == 404
    gen.close()


def test_fetch_is_denied_without_grants() -> None:
    gen = _gen()
    r = gen.call("GET", "https://example.com/")
    assert r.status == 502
    assert r.headers[0][0] == "error" and r.headers[0][1].startswith("denied: ")
    gen.close()


def test_kv_answers_not_granted() -> None:
    gen = _gen()
    for method in ("@g", "@s", "@d"):
        r = gen.call(method, "key", body=b"v")
        assert (r.status, r.headers) == (500, [("error", KV_NOT_GRANTED)]), method
    assert gen.pool.discarded == 0  # an err result is an answer, not a trap
    gen.close()


def test_a_failing_host_function_is_named_in_the_trap(monkeypatch: pytest.MonkeyPatch) -> None:
    """A host function that raises is our bug: the guest traps and the log names the Python error."""
    from wasmtime.component import Linker

    from airssys_web.runtime import generation, imports
    from airssys_web.runtime.convert import add_fast_func

    def broken_linker(ctx: imports.HostContext) -> Linker:
        linker = Linker(imports.get_engine())
        linker.add_wasip2()
        with linker.root() as root:
            with root.add_instance(imports.CONFIG_INTERFACE) as config:
                add_fast_func(config, "get", lambda key: {}[key], "config.get")  # raises KeyError
            with root.add_instance(imports.OUTBOUND_INTERFACE) as outbound:
                add_fast_func(outbound, "fetch", lambda *a: ("err", "x"), "outbound.fetch")
            with root.add_instance(imports.KV_INTERFACE) as kv:
                for name in ("get", "set", "delete"):
                    add_fast_func(kv, name, lambda *a: ("err", "x"), f"kv.{name}")
        return linker

    monkeypatch.setattr(generation, "build_linker", broken_linker)
    gen = _gen()
    with pytest.raises(GuestTrap, match="trapped in a host function: KeyError"):
        gen.call("@c", "missing-key")
    gen.close()
