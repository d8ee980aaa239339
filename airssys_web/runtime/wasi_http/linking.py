"""Defining host functions and resources in a component linker, and calling a guest export, over the codec.

Each definition is one ctypes trampoline into a closure that lifts the arguments with converters compiled from the
import's type, calls the implementation with the instance's :class:`Session` (found by the store's context
pointer, which every callback receives) and lowers its result. Nothing here raises into wasmtime: a Python
exception becomes a trap whose message names the function, and the exception itself is chained to the error the
guest call raises on this thread.
"""

from __future__ import annotations

import ctypes
import itertools
import logging
import threading
from collections.abc import Callable
from typing import Any

from wasmtime import WasmtimeError
from wasmtime import _ffi as ffi
from wasmtime.component import FuncType, LinkerInstance, ResourceType

from .codec import (
    _ERR_PTR,
    _VAL,
    HandleTable,
    Scope,
    _func_call,
    _val_clone,
    address,
    compile_direct,
    compile_lift,
    compile_lower,
    new_state,
)

log = logging.getLogger("airssys_web.wasi_http")

Impl = Callable[..., Any]


class Session:
    """Per-Store host state: the handle table and what host functions need to reach (set by the slot)."""

    table: HandleTable
    scope: Scope | None = None  # what the Store's host calls convert with, one at a time (set by ``register``)

    def __init__(self) -> None:
        self.table = HandleTable()

    def dropped(self, obj: Any) -> None:
        """The guest dropped its last handle to ``obj``."""
        drop = getattr(obj, "drop", None)
        if drop is not None:
            drop()


_sessions: dict[int, Session] = {}
_local = threading.local()  # .exc: the exception a host function raised on this thread


def register(ctx: int, session: Session) -> None:
    session.scope = Scope(ctx, session.table, new_state())
    _sessions[ctx] = session


def unregister(ctx: int) -> None:
    session = _sessions.pop(ctx, None)
    if session is not None:
        session.table.close()


def _error(message: str) -> int:
    error = WasmtimeError(message)
    return int(ctypes.cast(error._consume(), ctypes.c_void_p).value or 0)


_callback_t = ctypes.CFUNCTYPE(ctypes.c_size_t, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p,
                               ctypes.c_size_t, ctypes.c_void_p, ctypes.c_size_t)
_finalizer_t = ctypes.CFUNCTYPE(None, ctypes.c_void_p)
_dtor_t = ctypes.CFUNCTYPE(ctypes.c_size_t, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_uint32)
_add_func = ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t, _callback_t,
                             ctypes.c_void_p, _finalizer_t)(("wasmtime_component_linker_instance_add_func", ffi.dll))
_add_resource = ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_void_p,
                                 _dtor_t, ctypes.c_void_p, _finalizer_t)(
    ("wasmtime_component_linker_instance_add_resource", ffi.dll))
_addressof = ctypes.addressof
_from_buffer = ctypes.c_char.from_buffer
_live: dict[int, Any] = {}  # definition id -> closure, alive until wasmtime drops the definition
_ids = itertools.count(1)


def define_func(instance: LinkerInstance, name: str, fty: FuncType, impl: Impl, label: str) -> None:
    """Define ``name`` with the type ``fty`` the component imports; ``impl(session, *args)`` does the work."""
    lifts = [compile_lift(t) for _, t in fty.params]
    result_t = fty.result
    lower = compile_lower(result_t) if result_t is not None else None
    direct = compile_direct(result_t) if result_t is not None else None
    nparams = len(lifts)
    nres = 0 if lower is None else 1
    sessions = _sessions

    lift0 = lifts[0] if lifts else None
    lift1 = lifts[1] if nparams > 1 else None

    def call(ctx: int, args: int, nargs: int, results: int, nresults: int) -> int:
        session = sessions.get(ctx)
        if session is None or nargs != nparams or nresults != nres:
            return _error(f"{label}: called outside an airssys-web request or with a mismatched signature")
        scope = session.scope
        if scope is None:  # pragma: no cover - register() sets it
            return _error(f"{label}: the session was never registered")
        try:
            if nparams == 0:
                value = impl(session)
            elif nparams == 1:
                value = impl(session, lift0(args, scope))  # type: ignore[misc]
            elif nparams == 2:
                value = impl(session, lift0(args, scope), lift1(args + _VAL, scope))  # type: ignore[misc]
            else:
                value = impl(session, *[lift(args + i * _VAL, scope) for i, lift in enumerate(lifts)])
            if lower is not None and (direct is None or not direct(value, results, scope)):
                buf = bytearray(_VAL)
                lower(value, buf, 0, scope)
                _val_clone(_addressof(_from_buffer(buf)), results)
            return 0
        except BaseException as e:  # nothing may unwind into wasmtime: the guest traps instead
            _local.exc = e
            lines = str(e).strip().splitlines()
            detail = f"{type(e).__name__}: {lines[0]}" if lines else type(e).__name__
            return _error(f"host function {label} failed: {detail}")
        finally:
            if scope.anys:
                scope.free()
            if scope.keep:
                scope.keep.clear()

    _register(_add_func, instance, name, call, _trampoline)


def define_resource(instance: LinkerInstance, name: str, rid: int) -> None:
    """Define resource type ``name`` as host resource ``rid``; dropping a handle calls the object's ``drop()``."""
    rtype = ResourceType.host(rid)
    sessions = _sessions

    def dtor(ctx: int, rep: int) -> int:
        session = sessions.get(ctx)
        if session is None:
            return 0
        table = session.table
        obj = table.pop(rep) if rep in table.objects else None
        if obj is not None:
            try:
                session.dropped(obj)
            except BaseException as e:
                _local.exc = e
                return _error(f"dropping {name} failed: {type(e).__name__}: {e}")
        return 0

    instance._assert_not_locked()
    key = next(_ids)
    _live[key] = (dtor, rtype)
    raw = name.encode()
    err = _add_resource(instance.ptr(), raw, len(raw), ctypes.cast(rtype.ptr(), ctypes.c_void_p), _dtor_trampoline,
                        key, _finalize)
    if err:
        _live.pop(key, None)
        raise WasmtimeError._from_ptr(ctypes.cast(err, _ERR_PTR))


def _register(adder: Any, instance: LinkerInstance, name: str, call: Any, trampoline: Any) -> None:
    instance._assert_not_locked()
    key = next(_ids)
    _live[key] = call
    raw = name.encode()
    err = adder(instance.ptr(), raw, len(raw), trampoline, key, _finalize)
    if err:
        _live.pop(key, None)
        raise WasmtimeError._from_ptr(ctypes.cast(err, _ERR_PTR))


def _dispatch(data: int, ctx: int, _ty: int, args: int, nargs: int, results: int, nresults: int) -> int:
    return _live[data](ctx, args, nargs, results, nresults)  # type: ignore[no-any-return]


def _dispatch_dtor(data: int, ctx: int, rep: int) -> int:
    return _live[data][0](ctx, rep)  # type: ignore[no-any-return]


def _forget(data: int) -> None:
    if _live is not None:  # may run during interpreter shutdown
        _live.pop(data, None)


_trampoline = _callback_t(_dispatch)
_dtor_trampoline = _dtor_t(_dispatch_dtor)
_finalize = _finalizer_t(_forget)


def call_export(func_addr: int, ctx: int, table: HandleTable, *resources: Any) -> None:
    """Call a guest export taking only ``own`` resources and returning nothing (``incoming-handler.handle``)."""
    scope = Scope(ctx, table)
    buf = bytearray(_VAL * len(resources))
    try:
        for i, obj in enumerate(resources):
            buf[i * _VAL] = 21  # resource
            ptr = scope.own(obj)
            buf[i * _VAL + 8: i * _VAL + 16] = ptr.to_bytes(8, "little")
        _local.exc = None
        err = _func_call(func_addr, ctx, address(buf), len(resources), None, 0)
        if err:
            error = WasmtimeError._from_ptr(ctypes.cast(err, _ERR_PTR))
            cause = getattr(_local, "exc", None)
            _local.exc = None
            if cause is not None and not isinstance(cause, Exception):
                raise cause from error
            raise error from cause
    finally:
        scope.free()
