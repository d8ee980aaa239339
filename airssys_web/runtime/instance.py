"""One pre-instantiated guest: a Store of its own, an Instance, and its ``handle`` export.

This is the runtime boundary: every wasmtime error raised while instantiating or calling a guest is mapped here,
once, to the ``airssys_web.errors`` tree (:func:`map_guest_error`). A Store that trapped is poisoned (wasmtime
refuses to enter it again), so a slot that raised GuestTrap/GuestTimeout/GuestMemoryLimit marks itself
``poisoned`` and the pool discards it.

Limits are applied per Store: the epoch deadline before instantiation and before every call, the memory cap as a
store limiter (a ``memory.grow`` past it fails), and, for versions with a fuel limit, a fresh fuel budget before
every call (on the fuel-metering engine).
"""

from __future__ import annotations

import ctypes
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import wasmtime
from wasmtime import _ffi as ffi
from wasmtime.component import Component, Linker, Record

from ..errors import (
    AirssysError,
    BadGuestResponse,
    GuestError,
    GuestMemoryLimit,
    GuestTimeout,
    GuestTrap,
    InvalidComponent,
)
from ..limits import Limits, format_size
from .engine import deadline_ticks, get_engine
from .imports import HANDLER_INTERFACE, HostContext, make_wasi_config
from .shims import install as _install_shims

_install_shims()

Headers = list[tuple[str, str]]
HandleFn = Callable[[str, str, str, Sequence[tuple[str, str]], bytes], tuple[int, Headers, bytes]]

_INSTANTIATE_FUEL = 1 << 62
_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_BAD_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
# Response headers already found valid (guests answer with the same few again and again): a set lookup instead of
# two regular expressions and an encode per header. Bounded; emptied when full; only ever holds valid pairs, so
# the memo changes no verdict.
_VALID_HEADERS: set[tuple[str, str]] = set()
_VALID_HEADERS_MAX = 4096
_VALID_HEADER_SIZE = 256
# Store.set_epoch_deadline without wasmtime-py's wrapper and pointer conversion (the store's context address is
# fixed for its life): our own prototype, taking plain ints.
_set_epoch_deadline = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_uint64)(
    ("wasmtime_context_set_epoch_deadline", ffi.dll))


@dataclass(frozen=True, slots=True)
class GuestResponse:
    status: int
    headers: Headers
    body: bytes


def stock_caller(store: wasmtime.Store, func: wasmtime.component.Func) -> HandleFn:
    """The generic wasmtime-py path (slow: re-reads types every call): the fallback when the fast path is
    unavailable, and the reference that tests hold the fast path to."""

    def call(method: str, path: str, query: str, headers: Sequence[tuple[str, str]], body: bytes
             ) -> tuple[int, Headers, bytes]:
        req = Record()
        req.method, req.path, req.query, req.headers, req.body = method, path, query, list(headers), body
        out = func(store, req)
        return out.status, list(out.headers), bytes(out.body)

    return call


def _make_caller(store: wasmtime.Store, func: wasmtime.component.Func) -> HandleFn:
    try:
        from .convert import HandleCaller
    except ImportError:  # pragma: no cover - the fast path ships with the package
        return stock_caller(store, func)
    caller: HandleFn = HandleCaller(store, func)
    return caller


# wasmtime's Display text of each trap code we treat specially (wasmtime::Trap; stable across releases).
_TRAP = re.compile(r"wasm trap: ([^\n]+)")
_INTERRUPT = "interrupt"
_OUT_OF_FUEL = "all fuel consumed by WebAssembly"
_STACK = "call stack exhausted"
_ALLOCATION = "allocation size too large"
# What common guest toolchains print when an allocation fails after memory.grow was refused: CPython
# (MemoryError), Rust std ("memory allocation of N bytes failed"), Go/TinyGo, JS engines and C runtimes.
_OOM_REPORT = re.compile(r"MemoryError|memory allocation of \d+ bytes failed|out of memory|Cannot allocate memory"
                         r"|OutOfMemory|allocation failed", re.IGNORECASE)
_MIN_MEMORY = re.compile(r"memory minimum size of (\d+) pages exceeds memory limits")


def map_guest_error(exc: BaseException, ctx: HostContext, limits: Limits | float,
                    stderr: Sequence[str] = ()) -> GuestError:
    """Translate a wasmtime failure during a guest call into our tree (the one place this happens).

    The trap kind comes from wasmtime's trap text (``wasm trap: <code>``): an interrupt is the epoch deadline
    (504), exhausted fuel the fuel budget (504), and a trap after the guest reported an allocation failure on
    stderr (``stderr``: what it wrote during this call) is the memory cap (500, "memory limit"). wasmtime's store
    limiter makes ``memory.grow`` return -1 rather than trap, so a guest that traps *silently* after a refused
    grow cannot be told apart from any other trap; it is reported as a trap, with the cap, to help the reader.
    """
    if not isinstance(limits, Limits):
        limits = Limits(timeout=limits)
    text = str(exc)
    kw: dict[str, Any] = {"component": ctx.component, "version": ctx.version}
    found = _TRAP.search(text)
    trap = found.group(1).strip() if found else ""
    if trap == _INTERRUPT:
        return GuestTimeout(f"{ctx.tag} exceeded its {limits.timeout:g}s deadline", **kw)
    if trap == _OUT_OF_FUEL:
        return GuestTimeout(f"{ctx.tag} ran out of fuel (its budget is {limits.fuel or 0:,} per request)", **kw)
    if "fuel allocated for hostcalls" in text:
        # wasmtime caps one host<->guest copy at 128 MiB of C-API values: list<u8> costs 48 bytes per byte,
        # so a guest response body above ~2.6 MiB cannot be lifted. Not the guest's bug, but its answer is unusable.
        return BadGuestResponse(f"{ctx.tag} answered with a body too large to copy out of the guest "
                                f"(wasmtime limits a single copy to about 2.6 MiB of list<u8>)", **kw)
    cap = format_size(limits.memory)
    report = _OOM_REPORT.search("".join(stderr))
    if trap == _ALLOCATION or report is not None:
        why = f"the guest reported {report.group(0)!r}" if report is not None else trap
        return GuestMemoryLimit(f"{ctx.tag} hit its memory limit of {cap} ({why})", **kw)
    if trap == _STACK:
        return GuestTrap(f"{ctx.tag} trapped: stack overflow (call stack exhausted; unbounded recursion?)", **kw)
    cause = exc.__cause__
    if cause is not None and not isinstance(cause, wasmtime.WasmtimeError):
        # A host function raised (a bug on our side, not the guest's): say which error, for the log reader.
        return GuestTrap(f"{ctx.tag} trapped in a host function: {type(cause).__name__}: {cause}", **kw)
    return GuestTrap(f"{ctx.tag} trapped: {trap or _first_line(text)} (memory cap {cap})", **kw)


def _first_line(text: str) -> str:
    text = text.strip()
    return text.splitlines()[0] if text else "unknown error"


def validate_response(status: int, headers: Headers, ctx: HostContext) -> None:
    if not 100 <= status <= 599:
        raise BadGuestResponse(f"{ctx.tag} answered with invalid status {status} (must be 100-599)",
                               component=ctx.component, version=ctx.version)
    valid = _VALID_HEADERS
    for header in headers:
        if header not in valid:
            _validate_header(header, ctx)


def _validate_header(header: tuple[str, str], ctx: HostContext) -> None:
    name, value = header
    kw = {"component": ctx.component, "version": ctx.version}
    if not _TOKEN.match(name):
        raise BadGuestResponse(f"{ctx.tag} answered with an invalid header name {name!r}", **kw)
    if _BAD_VALUE.search(value):
        raise BadGuestResponse(f"{ctx.tag} answered with a control character in header {name!r}", **kw)
    try:
        value.encode("latin-1")
    except UnicodeEncodeError:
        raise BadGuestResponse(
            f"{ctx.tag} answered with a non-latin-1 value in header {name!r}", **kw) from None
    if len(name) + len(value) <= _VALID_HEADER_SIZE:  # short ones only: the memo stays small (~1 MiB at most)
        if len(_VALID_HEADERS) >= _VALID_HEADERS_MAX:
            _VALID_HEADERS.clear()
        _VALID_HEADERS.add(header)


class Slot:
    """A ready guest instance. Not thread-safe: the pool hands a slot to one caller at a time."""

    def __init__(self, component: Component, linker: Linker, ctx: HostContext, limits: Limits) -> None:
        self.ctx = ctx
        self.limits = limits
        self.poisoned = False
        self.calls = 0
        self._ticks = deadline_ticks(limits.timeout)
        self._stderr: list[str] = []
        store = new_store(ctx, limits, self._ticks, self._stderr)
        try:
            instance = linker.instantiate(store, component)
        except wasmtime.WasmtimeError as e:
            raise instantiation_error(e, ctx, limits, self._stderr) from None
        iface = instance.get_export_index(store, HANDLER_INTERFACE)
        func_idx = instance.get_export_index(store, "handle", iface) if iface is not None else None
        func = instance.get_func(store, func_idx) if func_idx is not None else None
        if func is None:
            raise InvalidComponent(f"{ctx.tag} does not export {HANDLER_INTERFACE}#handle")
        self._store: wasmtime.Store | None = store
        self._context = ctypes.cast(store._context(), ctypes.c_void_p).value  # valid while self._store lives
        self._fuel = limits.fuel if ctx.fuel else None
        self._call = _make_caller(store, func)

    def call(self, method: str, path: str, query: str, headers: Sequence[tuple[str, str]], body: bytes
             ) -> GuestResponse:
        store = self._store
        if store is None or self.poisoned:
            raise GuestTrap(f"{self.ctx.tag}: instance is closed", component=self.ctx.component,
                            version=self.ctx.version)
        _set_epoch_deadline(self._context, self._ticks)  # store.set_epoch_deadline(self._ticks), ~0.3 µs faster
        if self._fuel is not None:
            store.set_fuel(self._fuel)
        self._stderr.clear()
        self.calls += 1
        try:
            status, rheaders, rbody = self._call(method, path, query, headers, body)
        except AirssysError:
            raise
        except (wasmtime.WasmtimeError, wasmtime.Trap) as e:
            self.poisoned = True
            raise map_guest_error(e, self.ctx, self.limits, self._stderr) from None
        validate_response(status, rheaders, self.ctx)
        return GuestResponse(status, rheaders, rbody)

    def close(self) -> None:
        """Release the Store (idempotent)."""
        self._store = None
        self.poisoned = True


def new_store(ctx: HostContext, limits: Limits, ticks: int, stderr: list[str]) -> wasmtime.Store:
    """A Store for one guest instance, ready to instantiate: memory cap, WASI (stderr collected in ``stderr``),
    epoch deadline, and for a fuel-metered version a fuel budget for start-up only (the deadline bounds it; the
    per-request budget is set before each call)."""
    store = wasmtime.Store(get_engine(ctx.fuel))
    store.set_limits(memory_size=limits.memory)
    store.set_wasi(make_wasi_config(ctx, stderr))
    store.set_epoch_deadline(ticks)
    if ctx.fuel:
        store.set_fuel(_INSTANTIATE_FUEL)
    return store


def instantiation_error(e: wasmtime.WasmtimeError, ctx: HostContext, limits: Limits, stderr: list[str]
                        ) -> AirssysError:
    """Ours for a failed instantiation: a trap in start-up code, a start-up memory over the cap, a missing import."""
    text = str(e)
    if "wasm trap" in text or "wasm backtrace" in text:
        return map_guest_error(e, ctx, limits, stderr)
    if mm := _MIN_MEMORY.search(text):
        return InvalidComponent(
            f"{ctx.tag} needs {format_size(int(mm.group(1)) * 65536)} of linear memory at start, more than its "
            f"memory limit of {format_size(limits.memory)}; deploy it with a larger --memory")
    return InvalidComponent(f"{ctx.tag} cannot be instantiated: {_describe_link_error(text)}")


def _describe_link_error(text: str) -> str:
    m = re.search(r"component imports (\w+) `([^`]+)`", text)
    if m:
        return (f"it imports {m.group(1)} `{m.group(2)}`, which this host does not provide "
                "(provided: airssys:web/{outbound,config,kv,types}@0.1.0 and WASI 0.2)")
    return _first_line(text)
