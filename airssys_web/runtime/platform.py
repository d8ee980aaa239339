"""What a wasi:http component imports that this host does not provide, read from its binary without compiling it.

A Spin (or other wasi:http) SDK imports its platform's whole world - MySQL, Postgres, Redis, MQTT, LLM, SQLite,
the pre-release names of WASI 0.3 - whether the guest calls them or not. The native core links each import it does
not provide so that a call fails with ``called <interface>#<function>: not provided by this host`` (the request
answers 500, the instance is replaced, the generation goes on serving); ``deploy`` and ``list`` show those imports
as *unavailable*. Which imports those are is the native core's own rule (``_native.provided``), applied here to the
import names of the binary's top-level import section, so a listing needs no compiled artifact. An
``airssys:web`` component imports only what its contract names, so an import the host lacks refuses its deploy
instead: it has no unavailable imports.
"""

from __future__ import annotations

from collections.abc import Iterable

from .. import _native
from .worlds import WASI_HTTP_WORLD, world_of_exports

__all__ = ["group_interfaces", "interface_names", "unavailable_imports"]

_COMPONENT = b"\x00asm\x0d\x00\x01\x00"
_IMPORT_SECTION = 10
_EXPORT_SECTION = 11
_INSTANCE = 0x05


class _Reader:
    """Just enough of the component binary format to read top-level import and export names."""

    __slots__ = ("data", "pos")

    def __init__(self, data: bytes, pos: int = 0) -> None:
        self.data = data
        self.pos = pos

    def byte(self) -> int:
        if self.pos >= len(self.data):
            raise ValueError("truncated")
        b = self.data[self.pos]
        self.pos += 1
        return b

    def uleb(self) -> int:
        result = shift = 0
        while True:
            b = self.byte()
            result |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                return result
            if shift > 35:
                raise ValueError("bad LEB128")

    def sleb(self) -> None:
        while self.byte() & 0x80:
            pass

    def name(self) -> str:
        if self.byte() not in (0x00, 0x01):  # the plain and the (older) interface-name forms
            raise ValueError("unknown name form")
        n = self.uleb()
        text = self.data[self.pos:self.pos + n]
        self.pos += n
        return text.decode("utf-8")

    def externdesc(self) -> int:
        """Skip an ``externdesc``; its kind (0x05: an instance)."""
        kind = self.byte()
        if kind == 0x00:  # core module: 0x11 typeidx
            self.byte()
            self.uleb()
        elif kind in (0x01, 0x04, 0x05):  # func, component, instance: typeidx
            self.uleb()
        elif kind == 0x02:  # value: eq valueidx | valtype
            if self.byte() == 0x00:
                self.uleb()
            else:
                self.sleb()
        elif kind == 0x03:  # type: eq typeidx | sub resource
            if self.byte() == 0x00:
                self.uleb()
        else:
            raise ValueError("unknown extern kind")
        return kind


def interface_names(wasm: bytes) -> tuple[list[str], list[str]] | None:
    """The instance imports and the exports of a component's top level, or None when ``wasm`` is not a component
    this reader understands (the compiler then has the last word)."""
    if not wasm.startswith(_COMPONENT):
        return None
    imports: list[str] = []
    exports: list[str] = []
    r = _Reader(wasm, len(_COMPONENT))
    try:
        while r.pos < len(wasm):
            section = r.byte()
            size = r.uleb()
            end = r.pos + size
            if end > len(wasm):
                return None
            if section == _IMPORT_SECTION:
                s = _Reader(wasm[:end], r.pos)
                for _ in range(s.uleb()):
                    name = s.name()
                    if s.externdesc() == _INSTANCE:
                        imports.append(name)
            elif section == _EXPORT_SECTION:
                s = _Reader(wasm[:end], r.pos)
                for _ in range(s.uleb()):
                    exports.append(s.name())
                    if s.byte() == 0x00:  # sort: a core sort takes one more byte
                        s.byte()
                    s.uleb()
                    if s.byte() == 0x01:  # an optional ascribed type
                        s.externdesc()
            r.pos = end
    except (ValueError, UnicodeDecodeError):
        return None
    return imports, exports


def unavailable_imports(wasm: bytes) -> tuple[str, ...]:
    """The imports of a wasi:http component this host does not provide (sorted; linked to fail when called)."""
    names = interface_names(wasm)
    if names is None or world_of_exports(names[1]) != WASI_HTTP_WORLD:
        return ()
    return tuple(sorted(n for n in set(names[0]) if not _native.provided(n)))


def group_interfaces(names: Iterable[str]) -> list[str]:
    """``["spin:mysql@3.0.0 (mysql)", "fermyon:spin@2.0.0 (llm, mqtt)"]``: one entry per package and version."""
    packages: dict[str, list[str]] = {}
    for name in sorted(names):
        path, _, version = name.partition("@")
        package, _, interface = path.partition("/")
        packages.setdefault(f"{package}@{version}" if version else package, []).append(interface or path)
    return [f"{package} ({', '.join(interfaces)})" for package, interfaces in sorted(packages.items())]
