"""What the host gives a guest: the ``airssys:web`` imports and a WASI P2 context with nothing granted.

Every host function here runs on the worker thread that is executing the guest. They never raise into wasmtime:
failures become the ``err`` case the WIT contract defines, so a guest always gets an answer it can handle and no
Python exception crosses the FFI boundary.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import wasmtime
from wasmtime.component import Linker

from .convert import add_fast_func
from .engine import get_engine

PACKAGE = "airssys:web"
WIT_VERSION = "0.1.0"
HANDLER_INTERFACE = f"{PACKAGE}/handler@{WIT_VERSION}"
OUTBOUND_INTERFACE = f"{PACKAGE}/outbound@{WIT_VERSION}"
CONFIG_INTERFACE = f"{PACKAGE}/config@{WIT_VERSION}"
KV_INTERFACE = f"{PACKAGE}/kv@{WIT_VERSION}"
TYPES_INTERFACE = f"{PACKAGE}/types@{WIT_VERSION}"

#: Fetch implementation: (method, url, headers, body) -> (status, headers, body); raises OutboundDenied/Error.
FetchFn = Callable[[str, str, list[tuple[str, str]], bytes], tuple[int, list[tuple[str, str]], bytes]]

guest_log = logging.getLogger("airssys_web.guest")
log = logging.getLogger("airssys_web.imports")


@dataclass(frozen=True)
class HostContext:
    """Everything a generation's host functions may touch; one per (component, version)."""

    component: str
    version: str
    config: Mapping[str, str] = field(default_factory=dict)
    fetch: FetchFn | None = None

    @property
    def tag(self) -> str:
        return f"{self.component}@{self.version}"


def build_linker(ctx: HostContext) -> Linker:
    """A Linker with WASI P2 and the ``airssys:web`` imports bound to ``ctx``."""
    linker = Linker(get_engine())
    linker.add_wasip2()
    with linker.root() as root:
        with root.add_instance(TYPES_INTERFACE):
            pass
        with root.add_instance(OUTBOUND_INTERFACE) as outbound:
            add_fast_func(outbound, "fetch", _make_fetch(ctx), "outbound.fetch")
        with root.add_instance(CONFIG_INTERFACE) as config:
            add_fast_func(config, "get", dict(ctx.config).get, "config.get")
        with root.add_instance(KV_INTERFACE) as kv:
            add_fast_func(kv, "get", _kv_denied, "kv.get")
            add_fast_func(kv, "set", _kv_denied, "kv.set")
            add_fast_func(kv, "delete", _kv_denied, "kv.delete")
    return linker


Result = tuple[str, Any]


def _make_fetch(ctx: HostContext) -> Callable[..., Result]:
    from ..errors import OutboundDenied, OutboundError

    def fetch(method: str, url: str, headers: list[tuple[str, str]], body: bytes) -> Result:
        if ctx.fetch is None:
            log.info("%s: outbound fetch denied (no outbound hosts granted)", ctx.tag)
            return ("err", "denied: no outbound hosts granted to this component")
        try:
            return ("ok", ctx.fetch(method, url, list(headers), bytes(body)))
        except OutboundDenied as e:
            log.info("%s: outbound fetch %s", ctx.tag, e)
            return ("err", str(e))
        except OutboundError as e:
            return ("err", f"error: {e}")
        except Exception as e:  # never let a Python exception cross into wasmtime
            log.exception("%s: outbound fetch failed unexpectedly", ctx.tag)
            return ("err", f"error: {type(e).__name__}")

    return fetch


def _kv_denied(*_args: Any) -> Result:
    return ("err", "kv not granted")


def make_wasi_config(ctx: HostContext) -> wasmtime.WasiConfig:
    """WASI with nothing granted (no env, args, preopens or sockets); stdout/stderr go to logging."""
    wasi = wasmtime.WasiConfig()
    wasi.stdout_custom = _log_writer(ctx, logging.INFO, "stdout")
    wasi.stderr_custom = _log_writer(ctx, logging.WARNING, "stderr")
    return wasi


def _log_writer(ctx: HostContext, level: int, stream: str) -> Callable[[bytes], None]:
    tag = ctx.tag

    def write(data: bytes) -> None:
        text = data.decode("utf-8", "replace").rstrip("\n")
        for line in text.splitlines() or [""]:
            guest_log.log(level, "[%s %s] %s", tag, stream, line)

    return write
