"""A pooled ``wasi:http`` instance: a Store of its own, its session, and ``incoming-handler.handle``.

It is a :class:`~airssys_web.runtime.instance.Slot` (the pool and generations treat both worlds alike) whose
``call`` serves a buffered request, and whose ``serve`` runs one :class:`Exchange` - what the streaming ASGI path
uses. Errors are mapped exactly like the ``airssys:web`` slot's, by the same function.
"""

from __future__ import annotations

import ctypes
import time
from collections.abc import Sequence

import wasmtime
from wasmtime.component import Component, Linker

from ...errors import AirssysError, BadGuestResponse, GuestTrap, InvalidComponent
from ...limits import Limits
from ..engine import deadline_ticks, get_engine
from ..imports import HostContext
from ..instance import GuestResponse, Slot, instantiation_error, map_guest_error, new_store, validate_response
from .codec import _quick, context_address
from .error_codes import describe, status_for
from .http import Exchange, HttpSession, IncomingRequest, ResponseOutparam
from .linking import call_export, register, unregister

HANDLER_PREFIX = "wasi:http/incoming-handler@0.2."
# Store.set_epoch_deadline, without wasmtime-py's wrapper (it looks the context up and drops the GIL each time)
_set_epoch_deadline = _quick("wasmtime_context_set_epoch_deadline", None, ctypes.c_void_p, ctypes.c_uint64)


def handler_export(names: Sequence[str]) -> str | None:
    """The ``wasi:http/incoming-handler@0.2.x`` export among ``names``, if there is one."""
    return next((n for n in sorted(names) if n.startswith(HANDLER_PREFIX)), None)


class WasiHttpSlot(Slot):
    """A ready ``wasi:http/proxy`` instance. Not thread-safe: the pool hands it to one caller at a time."""

    def __init__(self, component: Component, linker: Linker, ctx: HostContext, limits: Limits) -> None:
        self.ctx = ctx
        self.limits = limits
        self.poisoned = False
        self.calls = 0
        self._ticks = deadline_ticks(limits.timeout)
        engine = get_engine(ctx.fuel)
        export = handler_export(list(component.type.exports(engine)))
        if export is None:
            raise InvalidComponent(f"{ctx.tag} does not export wasi:http/incoming-handler@0.2.x")
        self.session = HttpSession(ctx)
        store = new_store(ctx, limits, self._ticks, self.session.stderr)
        self._ctx_addr = context_address(store)
        register(self._ctx_addr, self.session)
        try:
            instance = linker.instantiate(store, component)
        except wasmtime.WasmtimeError as e:
            unregister(self._ctx_addr)
            raise instantiation_error(e, ctx, limits, self.session.stderr) from None
        iface = instance.get_export_index(store, export)
        idx = instance.get_export_index(store, "handle", iface) if iface is not None else None
        func = instance.get_func(store, idx) if idx is not None else None
        if func is None:
            unregister(self._ctx_addr)
            raise InvalidComponent(f"{ctx.tag} does not export {export}#handle")
        self._store: wasmtime.Store | None = store
        self._fuel = limits.fuel if ctx.fuel else None
        self._func = func
        self._func_addr = ctypes.addressof(func._func)

    def serve(self, exchange: Exchange) -> None:
        """Run ``handle`` for ``exchange`` to its end; raises a GuestError if the guest failed."""
        store = self._store
        if store is None or self.poisoned:
            exchange.finish(None)
            raise GuestTrap(f"{self.ctx.tag}: instance is closed", component=self.ctx.component,
                            version=self.ctx.version)
        _set_epoch_deadline(self._ctx_addr, self._ticks)
        if self._fuel is not None:
            store.set_fuel(self._fuel)
        self.calls += 1
        session = self.session
        session.stderr.clear()
        session.begin(exchange, time.monotonic() + self.limits.timeout)
        failure: BaseException | None = None
        try:
            call_export(self._func_addr, self._ctx_addr, session.table, IncomingRequest(session, exchange),
                        ResponseOutparam(exchange))
        except AirssysError as e:
            failure = e
            raise
        except (wasmtime.WasmtimeError, wasmtime.Trap) as e:
            self.poisoned = True
            failure = map_guest_error(e, self.ctx, self.limits, session.stderr)
            raise failure from None
        finally:
            exchange.finish(failure)
            session.exchange = None

    def call(self, method: str, path: str, query: str, headers: Sequence[tuple[str, str]], body: bytes
             ) -> GuestResponse:
        """Serve a buffered request (the whole body in, the whole response out)."""
        target = path + ("?" + query if query else "")
        entries = [(k.lower(), v.encode("latin-1")) for k, v in headers]
        authority = next((v for k, v in headers if k.lower() == "host"), None)
        exchange = Exchange(method, target, entries, authority=authority, streaming=False)
        with exchange.cond:
            exchange.body.put(bytes(body))
            exchange.body.finish()
        self.serve(exchange)
        return buffered_response(exchange, self.ctx)

    def close(self) -> None:
        if self._store is not None:
            unregister(self._ctx_addr)
        self._store = None
        self.poisoned = True


def buffered_response(exchange: Exchange, ctx: HostContext) -> GuestResponse:
    """The complete answer of a finished exchange, or the GuestError that stands for its failure."""
    kw = {"component": ctx.component, "version": ctx.version}
    with exchange.cond:
        if exchange.error_code is not None:
            code = exchange.error_code
            error = BadGuestResponse(f"{ctx.tag} answered with error-code {describe(code)}", **kw)
            error.status = status_for(code)
            raise error
        pipe = exchange.response_pipe
        if exchange.status is None or pipe is None:
            raise BadGuestResponse(f"{ctx.tag} returned without setting a response", **kw)
        if not pipe.eof or pipe.error is not None:
            why = pipe.error.message if pipe.error is not None else "the body was never finished"
            raise GuestTrap(f"{ctx.tag} sent an incomplete response body: {why}", **kw)
        body = pipe.take_all()
        headers = [(k, v.decode("latin-1")) for k, v in exchange.response_headers]
    validate_response(exchange.status, headers, ctx)
    return GuestResponse(exchange.status, headers, body)


__all__ = ["HANDLER_PREFIX", "WasiHttpSlot", "buffered_response", "handler_export"]
