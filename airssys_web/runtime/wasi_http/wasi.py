"""The WASI interfaces a ``wasi:http`` guest imports whose types mention ``wasi:io`` resources.

They must be defined by the same host that defines those resources (resource types cannot be mixed across
definers), so they are ours rather than wasmtime's ``add_wasip2()``: stdin is empty, stdout/stderr go to Python
logging (logger ``airssys_web.guest``, tagged ``NAME@VERSION``), the monotonic clock is real, and the file system
and sockets are there but grant nothing (no preopens, every socket call is ``access-denied``).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from wasmtime.component import EnumType, FuncType, ListType, OptionType, ResultType

from .codec import Trap
from .http import HttpSession
from .io import InputStream, LogSink, OutputStream, Pipe, Timer

guest_log = logging.getLogger("airssys_web.guest")

#: Resource types the stub interfaces own (they can never be created, but the types must exist).
STUB_RESOURCES: dict[str, dict[str, int]] = {
    "wasi:filesystem/types": {"descriptor": 30, "directory-entry-stream": 31},
    "wasi:sockets/network": {"network": 40},
    "wasi:sockets/tcp": {"tcp-socket": 41},
    "wasi:sockets/udp": {"udp-socket": 42, "incoming-datagram-stream": 43, "outgoing-datagram-stream": 44},
    "wasi:sockets/ip-name-lookup": {"resolve-address-stream": 45},
}
STUB_INTERFACES = frozenset({*STUB_RESOURCES, "wasi:filesystem/preopens", "wasi:sockets/instance-network",
                             "wasi:sockets/tcp-create-socket", "wasi:sockets/udp-create-socket"})
_DENIAL_CASES = ("access-denied", "access", "not-permitted", "unsupported")


class Network:
    """The (empty) ``wasi:sockets/network`` handle: it exists, and allows nothing."""

    RESOURCE_ID = 40


def _empty_stdin(session: HttpSession) -> InputStream:
    pipe = Pipe(threading.Condition(threading.RLock()), capacity=None)
    pipe.finish()
    return InputStream(session, pipe)


def _log_stream(level: int, stream: str) -> Any:
    def get(session: HttpSession) -> OutputStream:
        sinks: dict[str, LogSink] = session.__dict__.setdefault("log_sinks", {})
        sink = sinks.get(stream)
        if sink is None:
            sink = sinks[stream] = LogSink(guest_log, level, session.ctx.tag, stream,
                                           session.stderr if stream == "stderr" else None)
        return OutputStream(session, sink)
    return get


def _at(ns: int) -> float:
    return ns / 1e9


def wasi_functions() -> dict[str, dict[str, Any]]:
    return {
        "wasi:cli/stdin": {"get-stdin": _empty_stdin},
        "wasi:cli/stdout": {"get-stdout": _log_stream(logging.INFO, "stdout")},
        "wasi:cli/stderr": {"get-stderr": _log_stream(logging.WARNING, "stderr")},
        "wasi:clocks/monotonic-clock": {
            "now": lambda _s: time.monotonic_ns(),
            "resolution": lambda _s: 1,
            "subscribe-instant": lambda _s, when: Timer(_at(when)).pollable(),
            "subscribe-duration": lambda _s, d: Timer(time.monotonic() + _at(d)).pollable(),
        },
        "wasi:filesystem/preopens": {"get-directories": lambda _s: []},
        "wasi:filesystem/types": {"filesystem-error-code": lambda _s, _err: None},
        "wasi:sockets/instance-network": {"instance-network": lambda _s: Network()},
        "wasi:sockets/network": {"network-error-code": lambda _s, _err: None},
    }


def stub(iface: str, name: str, fty: FuncType) -> Any:
    """A denial for a file-system or socket function: its error case for "not allowed", else a trap."""
    result = fty.result
    if isinstance(result, ResultType) and isinstance(result.err, EnumType):
        names = result.err.names
        case = next((c for c in _DENIAL_CASES if c in names), None)
        if case is not None:
            return lambda _s, *_a: ("err", case)
    if isinstance(result, OptionType):
        return lambda _s, *_a: None
    if isinstance(result, ListType):
        return lambda _s, *_a: []

    def trap(_s: Any, *_a: Any) -> Any:
        raise Trap(f"{iface}#{name} is not available on this host (no files or sockets are granted)")
    return trap
