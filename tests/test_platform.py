"""The imports a wasi:http component has that this host does not provide, read from the binary without compiling:
the native core's own rule (``_native.provided``) on the names of the top-level import section."""

from __future__ import annotations

import pytest

from airssys_web import _native
from airssys_web.guest.build import compile_wat
from airssys_web.runtime.platform import group_interfaces, interface_names, unavailable_imports

# A component that only declares imports and exports (nothing is compiled here): a Spin-like import list.
SPIN_LIKE = """(component
  (import "wasi:cli/environment@0.2.9" (instance))
  (import "wasi:http/types@0.3.0" (instance))
  (import "wasi:http/types@0.3.0-rc-2026-03-15" (instance))
  (import "spin:variables/variables@3.0.0" (instance))
  (import "spin:mysql/mysql@3.0.0" (instance))
  (import "fermyon:spin/mysql@2.0.0" (instance))
  (import "fermyon:spin/redis@2.0.0" (instance))
  (import "wasi:keyvalue/atomics@0.2.0-draft2" (instance))
  (import "a-function" (func))
  (instance $handler)
  (export "wasi:http/handler@0.3.0" (instance $handler))
)"""


def test_names_of_a_component() -> None:
    names = interface_names(compile_wat(SPIN_LIKE))
    assert names is not None
    imports, exports = names
    assert imports[0] == "wasi:cli/environment@0.2.9" and "a-function" not in imports  # instances only
    assert exports == ["wasi:http/handler@0.3.0"]


def test_unavailable_imports_of_a_wasi_http_component() -> None:
    assert unavailable_imports(compile_wat(SPIN_LIKE)) == (
        "fermyon:spin/mysql@2.0.0", "fermyon:spin/redis@2.0.0", "spin:mysql/mysql@3.0.0",
        "wasi:http/types@0.3.0-rc-2026-03-15", "wasi:keyvalue/atomics@0.2.0-draft2")


def test_an_airssys_web_component_has_none() -> None:
    """Its contract names every import it may have: one the host lacks refuses the deploy instead."""
    wasm = compile_wat(SPIN_LIKE.replace("wasi:http/handler@0.3.0", "airssys:web/handler@0.1.0"))
    assert unavailable_imports(wasm) == ()


@pytest.mark.parametrize("data", [b"", b"\0asm\x01\0\0\0", b"\0asm\x0d\0\x01\0\x0a\xff", b"not wasm at all"])
def test_what_it_cannot_read_is_none(data: bytes) -> None:
    assert interface_names(data) is None
    assert unavailable_imports(data) == ()


def test_grouped_by_package() -> None:
    assert group_interfaces(unavailable_imports(compile_wat(SPIN_LIKE))) == [
        "fermyon:spin@2.0.0 (mysql, redis)", "spin:mysql@3.0.0 (mysql)",
        "wasi:http@0.3.0-rc-2026-03-15 (types)", "wasi:keyvalue@0.2.0-draft2 (atomics)"]


@pytest.mark.parametrize(("name", "provided"), [
    ("wasi:http/types@0.2.0", True),
    ("wasi:http/types@0.2.12", True),
    ("wasi:http/client@0.3.0", True),
    ("spin:key-value/key-value@3.0.0", True),
    ("fermyon:spin/key-value@2.0.0", True),
    ("wasi:config/store@0.2.0-draft-2024-09-27", True),
    ("wasi:keyvalue/store@0.2.0-draft2", True),
    ("wasi:http/client@0.3.0-rc-2026-03-15", False),  # a pre-release name only matches itself
    ("spin:sqlite/sqlite@3.1.0", False),
    ("fermyon:spin/llm@2.0.0", False),
    ("wasi:otel/tracing@0.2.0-rc.2", False),
])
def test_the_native_rule(name: str, provided: bool) -> None:
    assert _native.provided(name) is provided
