"""Converters between wasmtime's C component values and plain Python values, compiled once per function type.

wasmtime-py's ``add_func`` re-reads a host function's type tree on every call and converts ``list<u8>`` one
Python object per byte; a ``wasi:http`` request makes a dozen or more host calls, so that cost dominates. Here the
types of every import a component declares are read once, when its linker is built, and compiled into small
closures that read arguments straight out of the C value tree. Results made only of primitives and own handles
(most of them: constructors, ``result<own<...>>``, an ok without payload) are written straight into wasmtime's
result slot, which takes them over (:func:`compile_direct`); others are built in Python-owned memory and handed
over with one deep copy (``wasmtime_component_val_clone``). Byte lists are copied with strided slices. Handles
reuse freed reps, so their ``resource_host`` objects are made once (:class:`HandleTable`), and the short C calls
keep the GIL. The C layout is the one ``runtime.convert`` documents (and checks at import): a 32-byte
``wasmtime_component_val_t`` with its payload at offset 8.

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
_at = (ctypes.c_char * _VAL).from_address  # a 32-byte view of C memory: reads and writes without a C call
_memory = ctypes.pythonapi.PyMemoryView_FromMemory
_memory.restype = ctypes.py_object
_memory.argtypes = [ctypes.c_void_p, ctypes.c_ssize_t, ctypes.c_int]
_PYBUF_READ = 0x100
_VP = ctypes.c_void_p


def _cfunc(name: str, restype: Any, *argtypes: Any) -> Any:
    return ctypes.CFUNCTYPE(restype, *argtypes)((name, ffi.dll))


def _quick(name: str, restype: Any, *argtypes: Any) -> Any:
    """A C function that returns at once and never calls back: called *holding* the GIL. ctypes otherwise drops
    and retakes it around every call, and a dozen of these per request, each a chance for another thread to
    take over, cost more than the calls themselves when the loop and workers contend for the GIL."""
    return ctypes.PYFUNCTYPE(restype, *argtypes)((name, ffi.dll))


_val_new = _quick("wasmtime_component_val_new", _VP, _VP)  # moves a value into a new Rust box
_func_call = _cfunc("wasmtime_component_func_call", _VP, _VP, _VP, _VP, ctypes.c_size_t, _VP, ctypes.c_size_t)
_val_clone = _quick("wasmtime_component_val_clone", None, _VP, _VP)
_any_to_host = _quick("wasmtime_component_resource_any_to_host", _VP, _VP, _VP, _VP)
_any_delete = _quick("wasmtime_component_resource_any_delete", None, _VP)
_host_new = _quick("wasmtime_component_resource_host_new", _VP, ctypes.c_bool, ctypes.c_uint32, ctypes.c_uint32)
_host_to_any = _quick("wasmtime_component_resource_host_to_any", _VP, _VP, _VP, _VP)
_host_rep = _quick("wasmtime_component_resource_host_rep", ctypes.c_uint32, _VP)
_host_delete = _quick("wasmtime_component_resource_host_delete", None, _VP)
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
    """The host objects a guest holds handles to, by ``rep`` (one table per Store).

    A freed rep is used again for the same resource type (last freed, first), so the ``resource_host`` object that
    names (rep, type) is made once and kept: handing out a handle then takes one C call instead of three.
    """

    __slots__ = ("_free", "_hosts", "_next", "objects")

    def __init__(self) -> None:
        self.objects: dict[int, Any] = {}
        self._next = 0
        self._free: dict[int, list[int]] = {}  # resource id -> reps free for it
        self._hosts: dict[int, tuple[int, int]] = {}  # rep -> (resource id, resource_host pointer)

    def add(self, obj: Any) -> int:
        """Store ``obj`` (whose class names its ``RESOURCE_ID``) under a rep free for its resource type."""
        objects = self.objects
        free = self._free.get(type(obj).RESOURCE_ID)
        while free:
            rep = free.pop()
            if rep not in objects:
                objects[rep] = obj
                return rep
        rep = self._next = (self._next + 1) & 0xFFFFFFFF or 1
        while rep in objects:  # after 2**32 handles: skip reps still in use
            rep = self._next = (self._next + 1) & 0xFFFFFFFF or 1
        objects[rep] = obj
        return rep

    def pop(self, rep: int) -> Any:
        """Remove and return the object of ``rep`` (KeyError if there is none); the rep may be used again."""
        obj = self.objects.pop(rep)
        rid = type(obj).RESOURCE_ID
        free = self._free.get(rid)
        if free is None:
            free = self._free[rid] = []
        free.append(rep)
        return obj

    def host(self, rep: int, rid: int) -> int:
        """The ``resource_host`` pointer for an own handle of (``rep``, ``rid``), made once per pair."""
        cached = self._hosts.get(rep)
        if cached is not None:
            if cached[0] == rid:
                return cached[1]
            _host_delete(cached[1])
        host: int = _host_new(True, rep, rid)
        self._hosts[rep] = (rid, host)
        return host

    def close(self) -> None:
        """Free the kept ``resource_host`` objects (the Store is gone or going)."""
        hosts, self._hosts = self._hosts, {}
        for _rid, host in hosts.values():
            _host_delete(host)

    def __del__(self) -> None:
        if _host_delete is not None:  # None during interpreter shutdown
            self.close()


class Scope:
    """Memory and handles made while converting one call's values; freed when the call is done.

    ``state`` is the C memory its conversions use (see :func:`new_state`): the calling thread's by default. A
    scope kept by a Store's session for all its host calls has its own, as the Store moves between threads.
    """

    __slots__ = ("anys", "ctx", "keep", "out", "out_addr", "scratch", "table")

    def __init__(self, ctx: int, table: HandleTable, state: State | None = None) -> None:
        self.ctx = ctx
        self.table = table
        self.keep: list[bytearray] = []
        self.anys: list[int] = []
        self.out, self.out_addr, self.scratch = state or _out()

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
        """A new ``own`` handle (a ``resource_any`` pointer) for ``obj``, deleted with the scope."""
        ptr = self.give(obj)
        self.anys.append(ptr)
        return ptr

    def give(self, obj: Any) -> int:
        """A new ``own`` handle for ``obj`` (whose class names its resource id) that the caller must hand on."""
        table = self.table
        err = _host_to_any(self.ctx, table.host(table.add(obj), type(obj).RESOURCE_ID), self.out_addr)
        if err:
            raise WasmtimeError._from_ptr(ctypes.cast(err, _ERR_PTR))
        return self.out.value or 0


State = tuple[ctypes.c_void_p, int, int]
_outs = threading.local()


def new_state() -> State:
    """C memory for conversions: a pointer-sized out parameter (its object and address) and a 32-byte scratch
    value (its address). Conversions never nest, but ctypes releases the GIL in every C call: two threads never
    share one."""
    buf = ctypes.create_string_buffer(16 + _VAL)
    base = ctypes.addressof(buf)
    return ctypes.c_void_p.from_buffer(buf), base, base + 16  # the c_void_p keeps ``buf`` alive


def _out() -> State:
    """The calling thread's :func:`new_state`."""
    try:
        return _outs.value  # type: ignore[no-any-return]
    except AttributeError:
        _outs.value = new_state()
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
        unpack = prim[1].unpack_from

        def lift_prim(addr: int, _s: Scope) -> Any:
            return unpack(_at(addr))[1]
        return lift_prim
    if isinstance(ty, ct.Char):
        return lambda addr, _s: chr(_PRIMS[ct.U32][1].unpack_from(_at(addr))[1])
    if isinstance(ty, ct.String):
        def lift_str(addr: int, _s: Scope) -> str:
            _k, n, p = _SEQ.unpack_from(_at(addr))
            return _string_at(p, n).decode() if n else ""
        return lift_str
    if isinstance(ty, ct.ListType):
        element = ty.element
        if isinstance(element, ct.U8):
            def lift_bytes(addr: int, _s: Scope) -> bytes:
                _k, n, p = _SEQ.unpack_from(_at(addr))
                if not n:
                    return b""
                view: memoryview = _memory(p, n * _VAL, _PYBUF_READ)
                return view[8::_VAL].tobytes()
            return lift_bytes
        elem = compile_lift(element)

        def lift_list(addr: int, s: Scope) -> list[Any]:
            _k, n, p = _SEQ.unpack_from(_at(addr))
            return [elem(p + i * _VAL, s) for i in range(n)]
        return lift_list
    if isinstance(ty, ct.TupleType):
        elems = [compile_lift(t) for t in ty.elements]

        def lift_tuple(addr: int, s: Scope) -> tuple[Any, ...]:
            _k, _n, p = _SEQ.unpack_from(_at(addr))
            return tuple(f(p + i * _VAL, s) for i, f in enumerate(elems))
        return lift_tuple
    if isinstance(ty, ct.RecordType):
        fields = [(name, compile_lift(t)) for name, t in ty.fields]

        def lift_record(addr: int, s: Scope) -> dict[str, Any]:
            _k, _n, p = _SEQ.unpack_from(_at(addr))
            return {name: f(p + i * _ENTRY + 16, s) for i, (name, f) in enumerate(fields)}
        return lift_record
    if isinstance(ty, ct.VariantType):
        cases = {name: (compile_lift(t) if t is not None else None) for name, t in ty.cases}

        def lift_variant(addr: int, s: Scope) -> tuple[str, Any]:
            _k, n, p, payload = _VARIANT.unpack_from(_at(addr))
            name = _string_at(p, n).decode()
            f = cases[name]
            return name, (f(payload, s) if f is not None and payload else None)
        return lift_variant
    if isinstance(ty, ct.EnumType):
        def lift_enum(addr: int, _s: Scope) -> str:
            _k, n, p = _SEQ.unpack_from(_at(addr))
            return _string_at(p, n).decode()
        return lift_enum
    if isinstance(ty, ct.OptionType):
        inner = compile_lift(ty.payload)

        def lift_option(addr: int, s: Scope) -> Any:
            p = _PTR.unpack_from(_at(addr))[1]
            return inner(p, s) if p else None
        return lift_option
    if isinstance(ty, ct.ResultType):
        ok_t, err_t = ty.ok, ty.err
        ok = compile_lift(ok_t) if ok_t is not None else None
        err = compile_lift(err_t) if err_t is not None else None

        def lift_result(addr: int, s: Scope) -> tuple[str, Any]:
            _k, is_ok, p = _RESULT.unpack_from(_at(addr))
            f = ok if is_ok else err
            return ("ok" if is_ok else "err"), (f(p, s) if f is not None and p else None)
        return lift_result
    if isinstance(ty, ct.FlagsType):
        def lift_flags(addr: int, _s: Scope) -> frozenset[str]:
            _k, n, p = _SEQ.unpack_from(_at(addr))
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
    err = _any_to_host(s.ctx, _PTR.unpack_from(_at(addr))[1], s.out_addr)
    if err:
        raise WasmtimeError._from_ptr(ctypes.cast(err, _ERR_PTR))
    host = s.out.value
    rep: int = _host_rep(host)
    _host_delete(host)
    return rep


def _lift_own(addr: int, s: Scope) -> Any:
    rep = _rep_of(addr, s)
    try:
        return s.table.pop(rep)
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


# -- direct lowering: a result written straight into wasmtime's slot, which then owns it ---------------------------

Direct = Callable[[Any, int, Scope], bool]
_Put = Callable[[Any, int, Scope], None]


def _payload_writer(ty: Any) -> _Put | None:
    """A writer into C memory for values that hold no pointer into Python memory (primitives, own handles)."""
    prim = _PRIMS.get(type(ty))
    if prim is not None:
        kind, st = prim
        pack = st.pack_into

        def put_prim(v: Any, addr: int, _s: Scope) -> None:
            pack(_at(addr), 0, kind, v)
        return put_prim
    if isinstance(ty, ct.OwnType):
        def put_own(v: Any, addr: int, s: Scope) -> None:
            _PTR.pack_into(_at(addr), 0, K_RESOURCE, s.give(v))
        return put_own
    return None


def compile_direct(ty: Any) -> Direct | None:
    """A writer of values of ``ty`` straight into wasmtime's result slot, for those that hold only primitives and
    own handles (a constructor's ``own<fields>``, ``result<own<outgoing-body>>``, the ok of ``result<_,
    stream-error>``): wasmtime takes them over as they are, with no deep copy and nothing to free afterwards.

    It returns False, having done nothing, for a value it cannot write (an ``err`` whose payload is a variant, a
    malformed result); :func:`compile_lower` handles those, errors included. None if no value of ``ty`` qualifies.
    """
    put = _payload_writer(ty)
    if put is not None:
        flat = put

        def direct_flat(v: Any, addr: int, s: Scope) -> bool:
            flat(v, addr, s)
            return True
        return direct_flat
    if not isinstance(ty, ct.ResultType):
        return None
    ok_t, err_t = ty.ok, ty.err
    ok_put = _payload_writer(ok_t) if ok_t is not None else None
    err_put = _payload_writer(err_t) if err_t is not None else None
    ok_direct = ok_t is None or ok_put is not None
    err_direct = err_t is None or err_put is not None
    if not (ok_direct or err_direct):
        return None

    def direct_result(v: Any, addr: int, s: Scope) -> bool:
        if type(v) is not tuple or len(v) != 2:
            return False
        tag, payload = v
        if tag == "ok" and ok_direct:
            is_ok, f = True, ok_put
        elif tag == "err" and err_direct:
            is_ok, f = False, err_put
        else:
            return False
        box = 0
        if f is not None:
            scratch = s.scratch
            f(payload, scratch, s)  # raises (a bad value) before anything is allocated
            box = _val_new(scratch)  # moves it into a Rust box, leaving a bool behind
        _RESULT.pack_into(_at(addr), 0, K_RESULT, is_ok, box)
        return True
    return direct_result


_kinds_cache = b""


def _u8_kinds(n: int) -> memoryview:
    global _kinds_cache
    if len(_kinds_cache) < n:
        _kinds_cache = bytes([K_U8]) * max(n, 2 * len(_kinds_cache), 4096)
    return memoryview(_kinds_cache)[:n]
