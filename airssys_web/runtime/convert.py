"""A fast, exactly-equivalent value path for ``airssys:web/handler#handle`` and the ``airssys:web`` host imports.

wasmtime-py's generic ``Func.__call__`` re-reads the component types on every call and converts ``list<u8>``
one Python object per byte (~140 µs for a trivial request, ~1 s per MiB). Our signatures are fixed by the WIT
contract, so we check the types once and then write the C-API value trees (``wasmtime_component_val_t``) directly:

* Parameters are *borrowed* by ``wasmtime_component_func_call`` (``const wasmtime_component_val_t *args``; Rust
  only reads them to build its own ``Val``\\ s), so the whole request tree lives in one Python ``bytearray`` that
  we lay out ourselves: no C allocation, nothing to free, ``list<u8>`` filled by two strided slice assignments.
* Results are owned by us once the call returns: we read them with ``struct``/``string_at`` and strided
  ``memoryview`` slices, then free them with ``wasmtime_component_val_delete`` exactly once.
* Host-import arguments are Rust-owned and read in place (value kinds are checked before any pointer is
  followed, since a guest may import a name with another signature). Results must be Rust-owned (wasmtime drops
  them), so they are built the same way in Python memory and handed over with one ``wasmtime_component_val_clone``
  (a deep copy by Rust's allocator).

It is one module because every function in it depends on the same C layout and must change together.

The layouts below are those of wasmtime 50's C API (64-bit); they are checked against wasmtime-py's ctypes
declarations at import, and an ``ImportError`` makes callers fall back to the stock path.
"""

from __future__ import annotations

import ctypes
import struct
import sys
import threading
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import wasmtime
from wasmtime import WasmtimeError
from wasmtime import _ffi as ffi
from wasmtime.component import _types as ct

Headers = list[tuple[str, str]]

# --- C layout (wasmtime_component_val_t is {uint8 kind; union of} with the union at offset 8) -------------------
_VAL = 32  # sizeof(wasmtime_component_val_t)
_ENTRY = 48  # sizeof(wasmtime_component_valrecord_entry_t): wasm_name_t name; val
if (ctypes.sizeof(ffi.wasmtime_component_val_t) != _VAL
        or ctypes.sizeof(ffi.wasmtime_component_valrecord_entry) != _ENTRY
        or ffi.wasmtime_component_val_t.of.offset != 8
        or ffi.wasmtime_component_valresult_t.val.offset != 8):  # pragma: no cover - other wasmtime builds
    raise ImportError("wasmtime's component value layout differs from what airssys_web.runtime.convert expects")

_U8, _U16, _STRING, _LIST, _RECORD, _TUPLE, _OPTION, _RESULT = 2, 4, 12, 13, 14, 15, 18, 19
_SEQ = struct.Struct("<B7xQQ8x")  # a string/list/record/tuple value: kind, size, data pointer
_PAIR = struct.Struct("<B7xQQ8xB7xQQ8x")  # tuple<string, string> elements
_RESULTV = struct.Struct("<B7x?7xQ8x")  # result: kind, is_ok, payload pointer (or 0)
_OPTIONV = struct.Struct("<B7xQ16x")  # option: kind, payload pointer (or 0)
_REQUEST = struct.Struct("<B7xQQ8x" + "QQB7xQQ8x" * 5)  # the request value and its 5 record entries
_RESPONSE = struct.Struct("<16xB7xH22x" + "16xB7xQQ8x" * 2)  # the 3 entries of a response record
_RESP_ENTRIES = struct.Struct("<QQB7xH22x" + "QQB7xQQ8x" * 2)  # the same, for writing (with names)

_NAMES = ctypes.create_string_buffer(b"methodpathqueryheadersbodystatus")  # record field names, kept alive
_NA = ctypes.addressof(_NAMES)
_N_METHOD, _N_PATH, _N_QUERY, _N_HEADERS, _N_BODY, _N_STATUS = _NA, _NA + 6, _NA + 10, _NA + 15, _NA + 22, _NA + 26

_ERR_PTR = ctypes.POINTER(ffi.wasmtime_error_t)
# Our own prototypes (plain ints in and out, the GIL released like every CDLL call); wasmtime-py's are untouched.
_func_call = ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t,
                              ctypes.c_void_p, ctypes.c_size_t)(("wasmtime_component_func_call", ffi.dll))
_val_delete = ctypes.CFUNCTYPE(None, ctypes.c_void_p)(("wasmtime_component_val_delete", ffi.dll))
_val_clone = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p)(("wasmtime_component_val_clone", ffi.dll))
_from_memory = ctypes.pythonapi.PyMemoryView_FromMemory
_from_memory.restype = ctypes.py_object
_from_memory.argtypes = [ctypes.c_void_p, ctypes.c_ssize_t, ctypes.c_int]
_PYBUF_READ = 0x100
# A read-only view of the whole address space: ``_MEM[p:p + n]`` reads what ``ctypes.string_at(p, n)`` reads, and
# ``S.unpack_from(_MEM, p)`` unpacks in place, without a foreign call each (~3x cheaper; results are read with
# ~5 such reads per call). Like ``string_at`` it trusts the pointer: we only follow pointers wasmtime gave us.
_MEM: memoryview = _from_memory(0, sys.maxsize, _PYBUF_READ)
# A request up to this size is written into its HandleCaller's own buffer (see _Spare), reused call after call.
_REUSE = 8 * 1024

_host = threading.local()  # .exc: the Python exception a fast host function raised on this thread, if any


def _address(buf: bytearray) -> int:
    """Address of a bytearray's storage (stable while its size does not change; we never resize)."""
    return ctypes.addressof(ctypes.c_char.from_buffer(buf))


_kinds_view = memoryview(bytes([_U8]) * 4096)


def _u8_kinds(n: int) -> memoryview:
    """``n`` kind bytes for ``list<u8>`` elements (one shared, grow-only constant)."""
    global _kinds_view
    if len(_kinds_view) < n:
        _kinds_view = memoryview(bytes([_U8]) * max(n, 2 * len(_kinds_view)))
    return _kinds_view[:n]


# --- Python -> C ----------------------------------------------------------------------------------------------

def _encode(value: object, what: str) -> bytes:
    if type(value) is not str and not isinstance(value, str):
        raise ValueError(f"{what} must be a str, not {type(value).__name__}")
    try:
        return value.encode()
    except UnicodeEncodeError:
        raise ValueError(f"{what} contains a lone surrogate code point; pass valid Unicode text") from None


def _encode_headers(headers: object, what: str) -> list[bytes]:
    """Flatten ``[(name, value), ...]`` into ``[name0, value0, name1, ...]`` as UTF-8, validating each item.

    The common case (a list of tuples of two exact ``str``) takes a loop without per-item error labels: building
    them eagerly cost ~1 µs per header. Anything else goes through the checked loop, which names what is wrong.
    """
    if type(headers) is list:
        flat: list[bytes] = []
        append = flat.append
        try:
            for item in headers:
                if type(item) is not tuple or len(item) != 2:
                    break
                name, value = item
                if type(name) is not str or type(value) is not str:
                    break
                append(name.encode())
                append(value.encode())
            else:
                return flat
        except UnicodeEncodeError:
            pass
    return _encode_headers_checked(headers, what)


def _encode_headers_checked(headers: object, what: str) -> list[bytes]:
    if isinstance(headers, (str, bytes, bytearray)) or not isinstance(headers, Sequence):
        raise ValueError(f"{what} must be a sequence of (name, value) tuples, not {type(headers).__name__}")
    flat: list[bytes] = []
    for i, item in enumerate(headers):
        if not isinstance(item, tuple) or len(item) != 2:
            raise ValueError(f"{what}[{i}] must be a (name, value) tuple of two str, not {item!r:.60}")
        flat.append(_encode(item[0], f"{what}[{i}] name"))
        flat.append(_encode(item[1], f"{what}[{i}] value"))
    return flat


def _as_bytes(body: object, what: str) -> bytes:
    if type(body) is bytes:
        return body
    try:
        return memoryview(body).tobytes()  # type: ignore[arg-type]
    except TypeError:
        raise ValueError(f"{what} must be bytes-like (bytes, bytearray, memoryview), not {type(body).__name__}"
                         ) from None


@lru_cache(maxsize=64)
def _headers_struct(h: int) -> struct.Struct:
    return struct.Struct("<" + "B7xQQ8x" * h + "B7xQQ8xB7xQQ8x" * h)


def _headers_size(flat: list[bytes]) -> int:
    return len(flat) * 48  # per header: one tuple value and two string values


def _write_headers(buf: bytearray, base: int, off: int, flat: list[bytes], sptr: int) -> int:
    """Write ``list<tuple<string,string>>`` elements at ``off`` (strings already at ``sptr``); return new sptr."""
    h = len(flat) >> 1
    pairs = base + off + h * _VAL
    args: list[int] = []
    for i in range(h):
        args += (_TUPLE, 2, pairs + 64 * i)
    for s in flat:
        n = len(s)
        args += (_STRING, n, sptr)
        sptr += n
    _headers_struct(h).pack_into(buf, off, *args)
    return sptr


def _write_u8_list(buf: bytearray, off: int, data: bytes) -> None:
    n = len(data)
    if n:
        end = off + n * _VAL
        buf[off:end:_VAL] = _u8_kinds(n)
        buf[off + 8:end:_VAL] = data


class _Spare:
    """A caller's reusable request buffer, and the sizes of the request whose value tree it holds.

    The value tree depends only on the sizes (string lengths, header count, body length) and the buffer's address,
    so a request shaped like the last one only needs its bytes copied in.
    """

    __slots__ = ("base", "buf", "shape")

    def __init__(self) -> None:
        self.buf = bytearray()
        self.base = 0
        self.shape: tuple[int, ...] | None = None


def _lower_request(method: object, path: object, query: object, headers: object, body: object,
                   spare: _Spare | None = None) -> tuple[bytearray, int]:
    """The request record as one buffer: [result slot][request value][5 entries][headers][body][strings].

    With ``spare``, a request of up to ``_REUSE`` bytes is written into its buffer (allocated once), and the value
    tree is not rewritten when the request has the same sizes as the last one written there.
    """
    m, p, q = _encode(method, "method"), _encode(path, "path"), _encode(query, "query")
    flat = _encode_headers(headers, "headers")
    data = _as_bytes(body, "body")
    n = len(data)
    lm, lp, lq = len(m), len(p), len(q)
    off_h = _VAL * 2 + _ENTRY * 5
    off_b = off_h + _headers_size(flat)
    off_s = off_b + n * _VAL
    strings = b"".join([m, p, q, *flat])
    end = off_s + len(strings)
    shape = None
    if spare is not None and end <= _REUSE:
        shape = (lm, lp, lq, n, *map(len, flat))
        if shape == spare.shape:
            buf, base = spare.buf, spare.base
            if n:
                buf[off_b + 8:off_s:_VAL] = data
            buf[off_s:end] = strings
            return buf, base
        if len(spare.buf) < end:
            spare.buf = bytearray(max(end, 512))
            spare.base = _address(spare.buf)
        spare.shape = None  # until the new tree is complete
        buf, base = spare.buf, spare.base
    else:
        buf = bytearray(end)
        base = _address(buf)
    s = base + off_s
    _REQUEST.pack_into(
        buf, _VAL, _RECORD, 5, base + 2 * _VAL,
        6, _N_METHOD, _STRING, lm, s,
        4, _N_PATH, _STRING, lp, s + lm,
        5, _N_QUERY, _STRING, lq, s + lm + lp,
        7, _N_HEADERS, _LIST, len(flat) >> 1, base + off_h,
        4, _N_BODY, _LIST, n, base + off_b)
    if flat:
        _write_headers(buf, base, off_h, flat, s + lm + lp + lq)
    _write_u8_list(buf, off_b, data)
    buf[off_s:end] = strings  # the same length: never resizes a spare buffer
    if shape is not None:
        spare.shape = shape  # type: ignore[union-attr]
    return buf, base


# --- C -> Python ----------------------------------------------------------------------------------------------

def _lift_headers(n: int, ptr: int) -> Headers:
    if not n:
        return []
    out: Headers = []
    mem, pair_unpack = _MEM, _PAIR.unpack_from
    for kind, size, pair in _SEQ.iter_unpack(mem[ptr:ptr + n * _VAL]):
        if kind != _TUPLE or size != 2:
            raise TypeError("expected list<tuple<string, string>>")
        k1, l1, p1, k2, l2, p2 = pair_unpack(mem, pair)
        if k1 != _STRING or k2 != _STRING:
            raise TypeError("expected list<tuple<string, string>>")
        out.append((mem[p1:p1 + l1].tobytes().decode() if l1 else "",
                    mem[p2:p2 + l2].tobytes().decode() if l2 else ""))
    return out


def _lift_bytes(n: int, ptr: int) -> bytes:
    if not n:
        return b""
    end = ptr + n * _VAL
    if _MEM[ptr:end:_VAL] != (_kinds_view[:n] if n <= len(_kinds_view) else _u8_kinds(n)):
        raise TypeError("expected list<u8>")
    return _MEM[ptr + 8:end:_VAL].tobytes()


def _lift_string(kind: int, n: int, ptr: int) -> str:
    if kind != _STRING:
        raise TypeError("expected string")
    return _MEM[ptr:ptr + n].tobytes().decode() if n else ""


def _raise_call_error(err: int) -> None:
    """Raise the call's WasmtimeError, chained to the exception a fast host function raised on this thread."""
    error = WasmtimeError._from_ptr(ctypes.cast(err, _ERR_PTR))
    cause = getattr(_host, "exc", None)
    _host.exc = None
    if cause is None:
        raise error
    if not isinstance(cause, Exception):  # KeyboardInterrupt, SystemExit: not the guest's fault, keep them
        raise cause from error
    raise error from cause


# --- the handle() export --------------------------------------------------------------------------------------

_HEADERS_T = "list<tuple<string, string>>"
_EXPECTED = (f"func(req: record {{ method: string, path: string, query: string, headers: {_HEADERS_T}, "
             f"body: list<u8> }}) -> record {{ status: u16, headers: {_HEADERS_T}, body: list<u8> }}")


def _describe(ty: Any) -> str:
    """A WIT-like spelling of a wasmtime-py component type, used once to check the export's signature."""
    if isinstance(ty, ct.RecordType):
        return "record { " + ", ".join(f"{n}: {_describe(t)}" for n, t in ty.fields) + " }"
    if isinstance(ty, ct.ListType):
        return f"list<{_describe(ty.element)}>"
    if isinstance(ty, ct.TupleType):
        return "tuple<" + ", ".join(_describe(t) for t in ty.elements) + ">"
    return type(ty).__name__.lower().replace("type", "") or "?"


def describe_func(store: wasmtime.Store, func: wasmtime.component.Func) -> str:
    """The signature of a component function, spelled like WIT (``func(a: string) -> u16``)."""
    fty = func.type(store)
    params = ", ".join(f"{n}: {_describe(t)}" for n, t in fty.params)
    result = fty.result
    return f"func({params})" + (f" -> {_describe(result)}" if result is not None else "")


class HandleCaller:
    """Calls ``airssys:web/handler@0.1.0#handle`` of one instance, ~10x cheaper than ``Func.__call__``.

    ``caller(method, path, query, headers, body) -> (status, headers, body)``. Inputs are validated first (a
    ``ValueError`` names the bad field); a trap raises wasmtime's own ``WasmtimeError`` unchanged (chained to the
    Python exception when a fast host function raised). Like the Store it wraps, it must not be used from two
    threads at once; the caller sets the epoch deadline.
    """

    __slots__ = ("_func", "_func_addr", "_spare", "_store")

    def __init__(self, store: wasmtime.Store, func: wasmtime.component.Func) -> None:
        got = describe_func(store, func)
        if got != _EXPECTED:
            raise ValueError(f"handle() has the wrong signature: expected {_EXPECTED}, got {got}; "
                             "build the component against airssys:web/route@0.1.0")
        self._store = store
        self._func = func  # keeps the wasmtime_component_func_t alive at _func_addr
        self._func_addr = ctypes.addressof(func._func)
        self._spare = _Spare()

    def __call__(self, method: str, path: str, query: str, headers: Sequence[tuple[str, str]], body: bytes
                 ) -> tuple[int, Headers, bytes]:
        buf, base = _lower_request(method, path, query, headers, body, self._spare)
        _host.exc = None
        err = _func_call(self._func_addr, self._store._context(), base + _VAL, 1, base, 1)
        if err:
            _raise_call_error(err)
        try:
            _kind, _n, rec = _SEQ.unpack_from(buf, 0)
            _k0, status, _k1, hn, hp, _k2, bn, bp = _RESPONSE.unpack_from(_MEM, rec)
            return status, _lift_headers(hn, hp), _lift_bytes(bn, bp)
        finally:
            _val_delete(base)


# --- host imports -----------------------------------------------------------------------------------------------
#
# Python-side representation (documented in add_fast_func):  string -> str, list<u8> -> bytes,
# headers -> list[tuple[str, str]], option<T> -> T | None, result<T, string> -> ("ok", T) | ("err", str)
# (T is None for result<_, string>), response -> (status, headers, body).

SIGNATURES = ("outbound.fetch", "config.get", "kv.get", "kv.set", "kv.delete")

_ARGS = {n: struct.Struct("<" + "B7xQQ8x" * n) for n in (1, 2, 4)}
_callback_t = ctypes.CFUNCTYPE(ctypes.c_size_t, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p,
                               ctypes.c_size_t, ctypes.c_void_p, ctypes.c_size_t)
_finalizer_t = ctypes.CFUNCTYPE(None, ctypes.c_void_p)
_add_func = ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t, _callback_t,
                             ctypes.c_void_p, _finalizer_t)(("wasmtime_component_linker_instance_add_func", ffi.dll))
_live: dict[int, Any] = {}  # data pointer -> callback closure, alive until wasmtime drops the definition
_next_id = iter(range(1, 1 << 62))


def _lift_args(args: int, nargs: int, expected: str) -> tuple[Any, ...]:
    """The host function's arguments as Python values, checking the C value kinds before following pointers."""
    if expected == "outbound.fetch":
        k1, l1, p1, k2, l2, p2, k3, hn, hp, k4, bn, bp = _ARGS[4].unpack_from(_MEM, args)
        if k3 != _LIST or k4 != _LIST:
            raise TypeError("expected (string, string, headers, list<u8>)")
        return _lift_string(k1, l1, p1), _lift_string(k2, l2, p2), _lift_headers(hn, hp), _lift_bytes(bn, bp)
    if expected == "kv.set":
        k1, l1, p1, k2, n, p = _ARGS[2].unpack_from(_MEM, args)
        if k2 != _LIST:
            raise TypeError("expected (string, list<u8>)")
        return _lift_string(k1, l1, p1), _lift_bytes(n, p)
    return (_lift_string(*_ARGS[1].unpack_from(_MEM, args)),)


def _result(value: object, what: str) -> tuple[bool, Any]:
    if type(value) is not tuple or len(value) != 2 or value[0] not in ("ok", "err"):
        raise ValueError(f"{what} must return ('ok', value) or ('err', message), not {value!r:.80}")
    return value[0] == "ok", value[1]


def _lower_string_at(buf: bytearray, base: int, off: int, data: bytes) -> None:
    """A string value at ``off`` whose bytes follow it directly."""
    _SEQ.pack_into(buf, off, _STRING, len(data), base + off + _VAL)
    buf[off + _VAL:] = data


def _lower_result(value: object, expected: str) -> tuple[bytearray, int]:
    """The Python return value as a C value tree in one buffer (to be deep-copied by wasmtime)."""
    what = f"{expected}()"
    if expected == "config.get":
        if value is None:
            buf, base = _alloc(_VAL)
            _OPTIONV.pack_into(buf, 0, _OPTION, 0)
            return buf, base
        data = _encode(value, f"{what} result")
        buf, base = _alloc(2 * _VAL + len(data))
        _OPTIONV.pack_into(buf, 0, _OPTION, base + _VAL)
        _lower_string_at(buf, base, _VAL, data)
        return buf, base
    ok, payload = _result(value, what)
    if not ok:
        data = _encode(payload, f"{what} error message")
        buf, base = _alloc(2 * _VAL + len(data))
        _RESULTV.pack_into(buf, 0, _RESULT, False, base + _VAL)
        _lower_string_at(buf, base, _VAL, data)
        return buf, base
    if expected in ("kv.set", "kv.delete"):
        if payload is not None:
            raise ValueError(f"{what} must return ('ok', None) on success, not ('ok', {payload!r:.60})")
        buf, base = _alloc(_VAL)
        _RESULTV.pack_into(buf, 0, _RESULT, True, 0)
        return buf, base
    if expected == "kv.get":
        if payload is None:
            buf, base = _alloc(2 * _VAL)
            _RESULTV.pack_into(buf, 0, _RESULT, True, base + _VAL)
            _OPTIONV.pack_into(buf, _VAL, _OPTION, 0)
            return buf, base
        data = _as_bytes(payload, f"{what} value")
        buf, base = _alloc((3 + len(data)) * _VAL)
        _RESULTV.pack_into(buf, 0, _RESULT, True, base + _VAL)
        _OPTIONV.pack_into(buf, _VAL, _OPTION, base + 2 * _VAL)
        _SEQ.pack_into(buf, 2 * _VAL, _LIST, len(data), base + 3 * _VAL)
        _write_u8_list(buf, 3 * _VAL, data)
        return buf, base
    return _lower_response(payload, what)


def _lower_response(payload: object, what: str) -> tuple[bytearray, int]:
    if type(payload) is not tuple or len(payload) != 3:
        raise ValueError(f"{what} must return ('ok', (status, headers, body)), not ('ok', {payload!r:.60})")
    status, headers, body = payload
    if type(status) is not int or not 0 <= status <= 0xFFFF:
        raise ValueError(f"{what} response status must be an int in 0..65535, not {status!r:.20}")
    flat = _encode_headers(headers, f"{what} response headers")
    data = _as_bytes(body, f"{what} response body")
    off_h = 2 * _VAL + 3 * _ENTRY
    off_b = off_h + _headers_size(flat)
    off_s = off_b + len(data) * _VAL
    strings = b"".join(flat)
    buf, base = _alloc(off_s + len(strings))
    _RESULTV.pack_into(buf, 0, _RESULT, True, base + _VAL)
    _SEQ.pack_into(buf, _VAL, _RECORD, 3, base + 2 * _VAL)
    _RESP_ENTRIES.pack_into(buf, 2 * _VAL, 6, _N_STATUS, _U16, status,
                            7, _N_HEADERS, _LIST, len(flat) >> 1, base + off_h,
                            4, _N_BODY, _LIST, len(data), base + off_b)
    if flat:
        _write_headers(buf, base, off_h, flat, base + off_s)
    _write_u8_list(buf, off_b, data)
    buf[off_s:] = strings
    return buf, base


def _alloc(size: int) -> tuple[bytearray, int]:
    buf = bytearray(size)
    return buf, _address(buf)


def add_fast_func(instance: wasmtime.component.LinkerInstance, name: str, func: Any, signature: str) -> None:
    """Define host function ``name`` in a linker instance, converting values for one ``airssys:web`` import.

    ``signature`` is one of ``SIGNATURES``; ``func`` receives and returns plain Python values (no store):

    * ``outbound.fetch(method: str, url: str, headers: list[tuple[str, str]], body: bytes)``
      -> ``("ok", (status, headers, body))`` | ``("err", message)``
    * ``config.get(key: str)`` -> ``str | None``
    * ``kv.get(key: str)`` -> ``("ok", bytes | None)`` | ``("err", message)``
    * ``kv.set(key: str, value: bytes)`` / ``kv.delete(key: str)`` -> ``("ok", None)`` | ``("err", message)``

    If ``func`` raises (or returns something malformed), the guest traps with a ``WasmtimeError``; the Python
    exception is kept per thread and chained as ``__cause__`` when a ``HandleCaller`` call raises. For any other
    signature use wasmtime-py's ``LinkerInstance.add_func``.
    """
    if signature not in SIGNATURES:
        raise ValueError(f"unknown fast signature {signature!r}; use one of {', '.join(SIGNATURES)} "
                         "or LinkerInstance.add_func")
    nargs = {"outbound.fetch": 4, "kv.set": 2}.get(signature, 1)

    def call(args: int, n_args: int, results: int, n_results: int) -> int:
        try:
            if n_args != nargs or n_results != 1:
                raise TypeError(f"the guest imports {name} with {n_args} parameters and {n_results} results")
            buf, base = _lower_result(func(*_lift_args(args, nargs, signature)), signature)
            _val_clone(base, results)
            del buf
            return 0
        except BaseException as e:  # nothing may unwind into wasmtime; the guest traps instead
            _host.exc = e
            lines = str(e).strip().splitlines()
            detail = f"{type(e).__name__}: {lines[0]}" if lines else type(e).__name__
            error = WasmtimeError(f"host function {name} ({signature}) raised {detail}")
            return int(ctypes.cast(error._consume(), ctypes.c_void_p).value or 0)

    instance._assert_not_locked()
    key = next(_next_id)
    _live[key] = call
    raw = name.encode()
    err = _add_func(instance.ptr(), raw, len(raw), _trampoline, key, _finalize)
    if err:
        _live.pop(key, None)
        raise WasmtimeError._from_ptr(ctypes.cast(err, _ERR_PTR))


def _dispatch(data: int, _ctx: int, _ty: int, args: int, nargs: int, results: int, nresults: int) -> int:
    return _live[data](args, nargs, results, nresults)  # type: ignore[no-any-return]


def _forget(data: int) -> None:
    if _live is not None:  # may run during interpreter shutdown
        _live.pop(data, None)


_trampoline = _callback_t(_dispatch)
_finalize = _finalizer_t(_forget)
