"""Converters between wasmtime's C component values and plain Python values, compiled once per function type.

wasmtime-py's ``add_func`` re-reads a host function's type tree on every call and converts ``list<u8>`` one
Python object per byte; a ``wasi:http`` request makes a dozen or more host calls, so that cost dominates. Here the
types of every import a component declares are read once, when its linker is built, and compiled into small
closures that read arguments straight out of the C value tree and build results in Python-owned memory, handed to
wasmtime with one deep copy (``wasmtime_component_val_clone``). Byte lists are copied with strided slices. The C
layout is the one ``runtime.convert`` documents (and checks at import): a 32-byte ``wasmtime_component_val_t``
with its payload at offset 8.

Python values: ``bool``/``int``/``float``/``str`` as is; ``list<u8>`` is ``bytes``; other lists ``list``;
tuples ``tuple``; records ``dict``; variants ``(case, payload)`` (``payload`` None when the case has none);
enums ``str``; options ``None`` or the value; results ``("ok", value)`` / ``("err", value)``; flags a set of
names; ``own``/``borrow`` handles the host object they stand for (see :class:`HandleTable`).
"""

from __future__ import annotations

import ctypes
import struct
import threading
from collections.abc import Callable
from typing import Any

import wasmtime
from wasmtime import WasmtimeError
from wasmtime import _ffi as ffi
from wasmtime.component import _types as ct

from .. import convert as _layout  # noqa: F401  (its import-time check guards the layout used below)

_VAL = 32
_ENTRY = 48
(K_BOOL, K_S8, K_U8, K_S16, K_U16, K_S32, K_U32, K_S64, K_U64, K_F32, K_F64, K_CHAR, K_STRING, K_LIST, K_RECORD,
 K_TUPLE, K_VARIANT, K_ENUM, K_OPTION, K_RESULT, K_FLAGS, K_RESOURCE) = range(22)

_SEQ = struct.Struct("<B7xQQ8x")  # string / list / tuple / record / enum / flags: kind, size, pointer
_VARIANT = struct.Struct("<B7xQQQ")  # kind, discriminant size, discriminant pointer, payload pointer
_PTR = struct.Struct("<B7xQ16x")  # option / resource: kind, pointer
_RESULT = struct.Struct("<B7x?7xQ8x")  # kind, is_ok, payload pointer
_NAME = struct.Struct("<QQ")
_PRIMS: dict[type, tuple[int, struct.Struct]] = {
    ct.Bool: (K_BOOL, struct.Struct("<B7x?23x")), ct.S8: (K_S8, struct.Struct("<B7xb23x")),
    ct.U8: (K_U8, struct.Struct("<B7xB23x")), ct.S16: (K_S16, struct.Struct("<B7xh22x")),
    ct.U16: (K_U16, struct.Struct("<B7xH22x")), ct.S32: (K_S32, struct.Struct("<B7xi20x")),
    ct.U32: (K_U32, struct.Struct("<B7xI20x")), ct.S64: (K_S64, struct.Struct("<B7xq16x")),
    ct.U64: (K_U64, struct.Struct("<B7xQ16x")), ct.F32: (K_F32, struct.Struct("<B7xf20x")),
    ct.F64: (K_F64, struct.Struct("<B7xd16x")),
}

_string_at = ctypes.string_at
_memory = ctypes.pythonapi.PyMemoryView_FromMemory
_memory.restype = ctypes.py_object
_memory.argtypes = [ctypes.c_void_p, ctypes.c_ssize_t, ctypes.c_int]
_PYBUF_READ = 0x100
_VP = ctypes.c_void_p


def _cfunc(name: str, restype: Any, *argtypes: Any) -> Any:
    return ctypes.CFUNCTYPE(restype, *argtypes)((name, ffi.dll))


_func_call = _cfunc("wasmtime_component_func_call", _VP, _VP, _VP, _VP, ctypes.c_size_t, _VP, ctypes.c_size_t)
_val_clone = _cfunc("wasmtime_component_val_clone", None, _VP, _VP)
_any_to_host = _cfunc("wasmtime_component_resource_any_to_host", _VP, _VP, _VP, _VP)
_any_delete = _cfunc("wasmtime_component_resource_any_delete", None, _VP)
_host_new = _cfunc("wasmtime_component_resource_host_new", _VP, ctypes.c_bool, ctypes.c_uint32, ctypes.c_uint32)
_host_to_any = _cfunc("wasmtime_component_resource_host_to_any", _VP, _VP, _VP, _VP)
_host_rep = _cfunc("wasmtime_component_resource_host_rep", ctypes.c_uint32, _VP)
_host_delete = _cfunc("wasmtime_component_resource_host_delete", None, _VP)
_ERR_PTR = ctypes.POINTER(ffi.wasmtime_error_t)

_EMPTY = ctypes.create_string_buffer(8)  # a valid, non-null address for empty strings and lists
_EMPTY_ADDR = ctypes.addressof(_EMPTY)


def address(buf: bytearray) -> int:
    """Address of a bytearray's storage (stable while its size does not change; we never resize)."""
    return ctypes.addressof(ctypes.c_char.from_buffer(buf)) if buf else _EMPTY_ADDR


def context_address(store: wasmtime.Store) -> int:
    """The ``wasmtime_context_t *`` of a store, as host callbacks receive it."""
    return ctypes.cast(store._context(), ctypes.c_void_p).value or 0


class Trap(Exception):
    """Raised by a host function to trap the guest (misuse of the API that the WIT gives no error case for)."""


class HandleTable:
    """The host objects a guest holds handles to, by ``rep`` (one table per Store)."""

    __slots__ = ("_next", "objects")

    def __init__(self) -> None:
        self.objects: dict[int, Any] = {}
        self._next = 0

    def add(self, obj: Any) -> int:
        rep = self._next = (self._next + 1) & 0xFFFFFFFF or 1
        while rep in self.objects:  # after 2**32 handles: skip reps still in use
            rep = self._next = (self._next + 1) & 0xFFFFFFFF or 1
        self.objects[rep] = obj
        return rep


class Scope:
    """Memory and handles made while converting one call's values; freed when the call is done."""

    __slots__ = ("anys", "ctx", "keep", "out", "table")

    def __init__(self, ctx: int, table: HandleTable) -> None:
        self.ctx = ctx
        self.table = table
        self.keep: list[bytearray] = []
        self.anys: list[int] = []
        self.out = _out()

    def alloc(self, size: int) -> tuple[bytearray, int]:
        buf = bytearray(size)
        self.keep.append(buf)
        return buf, address(buf)

    def free(self) -> None:
        if self.anys:
            for any_ptr in self.anys:
                _any_delete(any_ptr)
            self.anys.clear()

    def own(self, obj: Any) -> int:
        """A new ``own`` handle (a ``resource_any`` pointer) for ``obj``, whose class names its resource id."""
        host = _host_new(True, self.table.add(obj), type(obj).RESOURCE_ID)
        out, out_addr = self.out
        err = _host_to_any(self.ctx, host, out_addr)
        _host_delete(host)
        if err:
            raise WasmtimeError._from_ptr(ctypes.cast(err, _ERR_PTR))
        ptr: int = out.value or 0
        self.anys.append(ptr)
        return ptr


_outs = threading.local()


def _out() -> tuple[ctypes.c_void_p, int]:
    """A per-thread pointer-sized out parameter (its object and address): C calls here never nest."""
    try:
        return _outs.value  # type: ignore[no-any-return]
    except AttributeError:
        out = ctypes.c_void_p()
        _outs.value = (out, ctypes.addressof(out))
        return _outs.value  # type: ignore[no-any-return]


Lift = Callable[[int, Scope], Any]
Lower = Callable[[Any, bytearray, int, Scope], None]


class _NameTable:
    """UTF-8 names kept alive at fixed addresses (variant cases, enum values, record fields, flags)."""

    def __init__(self, names: list[str]) -> None:
        encoded = [n.encode() for n in names]
        self._buf = ctypes.create_string_buffer(b"".join(encoded) or b"\0")
        base = ctypes.addressof(self._buf)
        self.spans: dict[str, tuple[int, int]] = {}
        for name, raw in zip(names, encoded, strict=True):
            self.spans[name] = (len(raw), base)
            base += len(raw)


# -- lifting (C -> Python): arguments are Rust-owned and read in place --------------------------------------------

def compile_lift(ty: Any) -> Lift:
    """A reader for values of component type ``ty`` (a wasmtime-py ``ValType``)."""
    prim = _PRIMS.get(type(ty))
    if prim is not None:
        unpack = prim[1].unpack

        def lift_prim(addr: int, _s: Scope) -> Any:
            return unpack(_string_at(addr, _VAL))[1]
        return lift_prim
    if isinstance(ty, ct.Char):
        return lambda addr, _s: chr(_PRIMS[ct.U32][1].unpack(_string_at(addr, _VAL))[1])
    if isinstance(ty, ct.String):
        def lift_str(addr: int, _s: Scope) -> str:
            _k, n, p = _SEQ.unpack(_string_at(addr, _VAL))
            return _string_at(p, n).decode() if n else ""
        return lift_str
    if isinstance(ty, ct.ListType):
        element = ty.element
        if isinstance(element, ct.U8):
            def lift_bytes(addr: int, _s: Scope) -> bytes:
                _k, n, p = _SEQ.unpack(_string_at(addr, _VAL))
                if not n:
                    return b""
                view: memoryview = _memory(p, n * _VAL, _PYBUF_READ)
                return view[8::_VAL].tobytes()
            return lift_bytes
        elem = compile_lift(element)

        def lift_list(addr: int, s: Scope) -> list[Any]:
            _k, n, p = _SEQ.unpack(_string_at(addr, _VAL))
            return [elem(p + i * _VAL, s) for i in range(n)]
        return lift_list
    if isinstance(ty, ct.TupleType):
        elems = [compile_lift(t) for t in ty.elements]

        def lift_tuple(addr: int, s: Scope) -> tuple[Any, ...]:
            _k, _n, p = _SEQ.unpack(_string_at(addr, _VAL))
            return tuple(f(p + i * _VAL, s) for i, f in enumerate(elems))
        return lift_tuple
    if isinstance(ty, ct.RecordType):
        fields = [(name, compile_lift(t)) for name, t in ty.fields]

        def lift_record(addr: int, s: Scope) -> dict[str, Any]:
            _k, _n, p = _SEQ.unpack(_string_at(addr, _VAL))
            return {name: f(p + i * _ENTRY + 16, s) for i, (name, f) in enumerate(fields)}
        return lift_record
    if isinstance(ty, ct.VariantType):
        cases = {name: (compile_lift(t) if t is not None else None) for name, t in ty.cases}

        def lift_variant(addr: int, s: Scope) -> tuple[str, Any]:
            _k, n, p, payload = _VARIANT.unpack(_string_at(addr, _VAL))
            name = _string_at(p, n).decode()
            f = cases[name]
            return name, (f(payload, s) if f is not None and payload else None)
        return lift_variant
    if isinstance(ty, ct.EnumType):
        def lift_enum(addr: int, _s: Scope) -> str:
            _k, n, p = _SEQ.unpack(_string_at(addr, _VAL))
            return _string_at(p, n).decode()
        return lift_enum
    if isinstance(ty, ct.OptionType):
        inner = compile_lift(ty.payload)

        def lift_option(addr: int, s: Scope) -> Any:
            p = _PTR.unpack(_string_at(addr, _VAL))[1]
            return inner(p, s) if p else None
        return lift_option
    if isinstance(ty, ct.ResultType):
        ok_t, err_t = ty.ok, ty.err
        ok = compile_lift(ok_t) if ok_t is not None else None
        err = compile_lift(err_t) if err_t is not None else None

        def lift_result(addr: int, s: Scope) -> tuple[str, Any]:
            _k, is_ok, p = _RESULT.unpack(_string_at(addr, _VAL))
            f = ok if is_ok else err
            return ("ok" if is_ok else "err"), (f(p, s) if f is not None and p else None)
        return lift_result
    if isinstance(ty, ct.FlagsType):
        def lift_flags(addr: int, _s: Scope) -> frozenset[str]:
            _k, n, p = _SEQ.unpack(_string_at(addr, _VAL))
            out = []
            for i in range(n):
                size, data = _NAME.unpack(_string_at(p + 16 * i, 16))
                out.append(_string_at(data, size).decode())
            return frozenset(out)
        return lift_flags
    if isinstance(ty, (ct.OwnType, ct.BorrowType)):
        return _lift_own if isinstance(ty, ct.OwnType) else _lift_borrow
    raise TypeError(f"unsupported component type {type(ty).__name__} in a host import")


def _rep_of(addr: int, s: Scope) -> int:
    """Release the handle at ``addr`` to the host (required for borrows before the call returns) -> its rep."""
    out, out_addr = s.out
    err = _any_to_host(s.ctx, _PTR.unpack(_string_at(addr, _VAL))[1], out_addr)
    if err:
        raise WasmtimeError._from_ptr(ctypes.cast(err, _ERR_PTR))
    host = out.value
    rep: int = _host_rep(host)
    _host_delete(host)
    return rep


def _lift_own(addr: int, s: Scope) -> Any:
    rep = _rep_of(addr, s)
    try:
        return s.table.objects.pop(rep)
    except KeyError:
        raise Trap(f"unknown resource handle {rep}") from None


def _lift_borrow(addr: int, s: Scope) -> Any:
    rep = _rep_of(addr, s)
    try:
        return s.table.objects[rep]
    except KeyError:
        raise Trap(f"unknown resource handle {rep}") from None


# -- lowering (Python -> C): results are built in Python memory, then deep-copied by wasmtime ------------------------

def compile_lower(ty: Any) -> Lower:
    """A writer of values of component type ``ty`` into a 32-byte slot at ``buf[off:]``."""
    prim = _PRIMS.get(type(ty))
    if prim is not None:
        kind, st = prim
        pack = st.pack_into

        def lower_prim(v: Any, buf: bytearray, off: int, _s: Scope) -> None:
            pack(buf, off, kind, v)
        return lower_prim
    if isinstance(ty, ct.Char):
        return lambda v, buf, off, _s: _PRIMS[ct.U32][1].pack_into(buf, off, K_CHAR, ord(v))
    if isinstance(ty, ct.String):
        def lower_str(v: str, buf: bytearray, off: int, s: Scope) -> None:
            data = bytearray(v.encode())
            s.keep.append(data)
            _SEQ.pack_into(buf, off, K_STRING, len(data), address(data))
        return lower_str
    if isinstance(ty, ct.ListType):
        element = ty.element
        if isinstance(element, ct.U8):
            def lower_bytes(v: bytes, buf: bytearray, off: int, s: Scope) -> None:
                n = len(v)
                child, base = s.alloc(n * _VAL)
                if n:
                    child[0::_VAL] = _u8_kinds(n)
                    child[8::_VAL] = v
                _SEQ.pack_into(buf, off, K_LIST, n, base)
            return lower_bytes
        elem = compile_lower(element)

        def lower_list(v: list[Any], buf: bytearray, off: int, s: Scope) -> None:
            n = len(v)
            child, base = s.alloc(n * _VAL)
            for i, item in enumerate(v):
                elem(item, child, i * _VAL, s)
            _SEQ.pack_into(buf, off, K_LIST, n, base)
        return lower_list
    if isinstance(ty, ct.TupleType):
        elems = [compile_lower(t) for t in ty.elements]

        def lower_tuple(v: tuple[Any, ...], buf: bytearray, off: int, s: Scope) -> None:
            child, base = s.alloc(len(elems) * _VAL)
            for i, (f, item) in enumerate(zip(elems, v, strict=True)):
                f(item, child, i * _VAL, s)
            _SEQ.pack_into(buf, off, K_TUPLE, len(elems), base)
        return lower_tuple
    if isinstance(ty, ct.RecordType):
        fields = [(name, compile_lower(t)) for name, t in ty.fields]
        names = _NameTable([name for name, _ in fields])

        def lower_record(v: dict[str, Any], buf: bytearray, off: int, s: Scope) -> None:
            child, base = s.alloc(len(fields) * _ENTRY)
            for i, (name, f) in enumerate(fields):
                _NAME.pack_into(child, i * _ENTRY, *names.spans[name])
                f(v.get(name), child, i * _ENTRY + 16, s)
            _SEQ.pack_into(buf, off, K_RECORD, len(fields), base)
        lower_record.names = names  # type: ignore[attr-defined]  # keeps the names alive
        return lower_record
    if isinstance(ty, ct.VariantType):
        cases = {name: (compile_lower(t) if t is not None else None) for name, t in ty.cases}
        vnames = _NameTable(list(cases))

        def lower_variant(v: Any, buf: bytearray, off: int, s: Scope) -> None:
            name, payload = (v, None) if isinstance(v, str) else v
            try:
                f = cases[name]
            except KeyError:
                raise ValueError(f"variant has no case {name!r} (cases: {', '.join(cases)})") from None
            p = 0
            if f is not None:
                child, p = s.alloc(_VAL)
                f(payload, child, 0, s)
            _VARIANT.pack_into(buf, off, K_VARIANT, *vnames.spans[name], p)
        lower_variant.names = vnames  # type: ignore[attr-defined]
        return lower_variant
    if isinstance(ty, ct.EnumType):
        enames = _NameTable(ty.names)

        def lower_enum(v: str, buf: bytearray, off: int, _s: Scope) -> None:
            _SEQ.pack_into(buf, off, K_ENUM, *enames.spans[v])
        lower_enum.names = enames  # type: ignore[attr-defined]
        return lower_enum
    if isinstance(ty, ct.OptionType):
        inner = compile_lower(ty.payload)

        def lower_option(v: Any, buf: bytearray, off: int, s: Scope) -> None:
            p = 0
            if v is not None:
                child, p = s.alloc(_VAL)
                inner(v, child, 0, s)
            _PTR.pack_into(buf, off, K_OPTION, p)
        return lower_option
    if isinstance(ty, ct.ResultType):
        ok_t, err_t = ty.ok, ty.err
        ok = compile_lower(ok_t) if ok_t is not None else None
        err = compile_lower(err_t) if err_t is not None else None

        def lower_result(v: tuple[str, Any], buf: bytearray, off: int, s: Scope) -> None:
            tag, payload = v
            is_ok = tag == "ok"
            if not is_ok and tag != "err":
                raise ValueError(f"a result must be ('ok', value) or ('err', value), not {v!r:.60}")
            f = ok if is_ok else err
            p = 0
            if f is not None:
                child, p = s.alloc(_VAL)
                f(payload, child, 0, s)
            _RESULT.pack_into(buf, off, K_RESULT, is_ok, p)
        return lower_result
    if isinstance(ty, ct.FlagsType):
        fnames = _NameTable(ty.names)

        def lower_flags(v: Any, buf: bytearray, off: int, s: Scope) -> None:
            items = list(v)
            child, base = s.alloc(16 * len(items))
            for i, name in enumerate(items):
                _NAME.pack_into(child, 16 * i, *fnames.spans[name])
            _SEQ.pack_into(buf, off, K_FLAGS, len(items), base)
        lower_flags.names = fnames  # type: ignore[attr-defined]
        return lower_flags
    if isinstance(ty, ct.OwnType):
        def lower_own(v: Any, buf: bytearray, off: int, s: Scope) -> None:
            _PTR.pack_into(buf, off, K_RESOURCE, s.own(v))
        return lower_own
    raise TypeError(f"unsupported component type {type(ty).__name__} in a host import's result")


_kinds_cache = b""


def _u8_kinds(n: int) -> memoryview:
    global _kinds_cache
    if len(_kinds_cache) < n:
        _kinds_cache = bytes([K_U8]) * max(n, 2 * len(_kinds_cache), 4096)
    return memoryview(_kinds_cache)[:n]
