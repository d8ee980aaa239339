"""What the host gives a guest: the ``airssys:web`` imports and a WASI P2 context holding only its grants.

Every host function here runs on the worker thread that is executing the guest. They never raise into wasmtime:
failures become the ``err`` case the WIT contract defines, so a guest always gets an answer it can handle and no
Python exception crosses the FFI boundary. What a guest may reach is exactly what its :class:`HostContext`
holds: ``fetch`` goes through the version's :class:`~airssys_web.outbound.Fetcher` (none: every request is
denied), ``kv`` through its own namespace (none: ``err("kv not granted ...")``), ``config.get`` reads its config
and secrets, and WASI sees only its granted directories (no environment, arguments or sockets).
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import wasmtime
from wasmtime.component import Linker

from ..capabilities import REDACTED, FileAccess
from ..errors import CapabilityError, KVError, OutboundDenied, OutboundError
from ..kv import KVNamespace
from ..outbound import Fetcher, OutboundPolicy
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

KV_NOT_GRANTED = "kv not granted to this component (deploy it with --kv)"

guest_log = logging.getLogger("airssys_web.guest")
log = logging.getLogger("airssys_web.imports")


class _Denials:
    """Thread-safe counter of outbound denials that never reached a Fetcher (no grants at all)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.counts: Counter[str] = Counter()

    def add(self, kind: str) -> None:
        with self._lock:
            self.counts[kind] += 1


@dataclass(frozen=True)
class HostContext:
    """Everything a generation's host functions may touch; one per (component, version).

    ``fetcher`` performs granted requests (``fetch`` overrides it, for tests); ``kv`` is the component's namespace;
    ``files`` become WASI preopens; ``config`` holds config values and resolved secrets, whose values
    ``secret_values`` lists so guest log lines can be redacted. :meth:`close` releases the fetcher.
    """

    component: str
    version: str
    config: Mapping[str, str] = field(default_factory=dict, repr=False)  # holds secret values too
    fetch: FetchFn | None = None
    fetcher: Fetcher | None = None
    kv: KVNamespace | None = None
    files: tuple[FileAccess, ...] = ()
    secret_values: tuple[str, ...] = field(default=(), repr=False)
    fuel: bool = False  # instantiate on the fuel-metering engine
    _denials: _Denials = field(default_factory=_Denials, repr=False, compare=False)

    @property
    def tag(self) -> str:
        return f"{self.component}@{self.version}"

    @property
    def blocking_io(self) -> bool:
        """Whether a host function may block on I/O (outbound fetch, KV): such guests never run on the event loop."""
        return self.fetch is not None or self.fetcher is not None or self.kv is not None

    def outbound_denials(self) -> dict[str, int]:
        """Denied ``fetch`` calls so far, by kind (``not-granted``, ``blocked-address``, ``bad-url``, ...)."""
        counts = Counter(self._denials.counts)
        if self.fetcher is not None:
            counts.update(self.fetcher.denials)
        return dict(counts)

    def close(self) -> None:
        """Release what the context owns (the fetcher's connections); idempotent."""
        if self.fetcher is not None:
            self.fetcher.close()


def build_linker(ctx: HostContext) -> Linker:
    """A Linker with WASI P2 and the ``airssys:web`` imports bound to ``ctx``."""
    linker = Linker(get_engine(ctx.fuel))
    linker.add_wasip2()
    kv = _KVFunctions(ctx)
    with linker.root() as root:
        with root.add_instance(TYPES_INTERFACE):
            pass
        with root.add_instance(OUTBOUND_INTERFACE) as outbound:
            add_fast_func(outbound, "fetch", _make_fetch(ctx), "outbound.fetch")
        with root.add_instance(CONFIG_INTERFACE) as config:
            add_fast_func(config, "get", dict(ctx.config).get, "config.get")
        with root.add_instance(KV_INTERFACE) as kv_instance:
            add_fast_func(kv_instance, "get", kv.get, "kv.get")
            add_fast_func(kv_instance, "set", kv.set, "kv.set")
            add_fast_func(kv_instance, "delete", kv.delete, "kv.delete")
    return linker


Result = tuple[str, Any]
_DENY_ALL = OutboundPolicy()


def _make_fetch(ctx: HostContext) -> Callable[..., Result]:
    send = ctx.fetch or (ctx.fetcher.fetch if ctx.fetcher is not None else None)

    def fetch(method: str, url: str, headers: list[tuple[str, str]], body: bytes) -> Result:
        try:
            if send is None:  # nothing granted: the empty policy explains the denial (never connects)
                _DENY_ALL.check(url)
                raise OutboundDenied("no outbound hosts are granted to this component")
            return ("ok", send(method, url, list(headers), bytes(body)))
        except OutboundDenied as e:
            if send is None:
                kind = getattr(e, "kind", "not-granted")
                ctx._denials.add(kind)
                log.warning("%s: outbound fetch denied (%s): %s", ctx.tag, kind, e.reason)
            return ("err", str(e))
        except OutboundError as e:
            return ("err", f"error: {e}")
        except Exception as e:  # never let a Python exception cross into wasmtime
            log.exception("%s: outbound fetch failed unexpectedly", ctx.tag)
            return ("err", f"error: {type(e).__name__}")

    return fetch


class _KVFunctions:
    """The ``airssys:web/kv`` host functions for one context; errors become ``err`` strings."""

    def __init__(self, ctx: HostContext) -> None:
        self._ctx = ctx

    def _run(self, op: Callable[[KVNamespace], Any]) -> Result:
        ns = self._ctx.kv
        if ns is None:
            return ("err", KV_NOT_GRANTED)
        try:
            return ("ok", op(ns))
        except KVError as e:
            return ("err", str(e))
        except Exception as e:  # never let a Python exception cross into wasmtime
            log.exception("%s: kv failed unexpectedly", self._ctx.tag)
            return ("err", f"kv: internal error ({type(e).__name__})")

    def get(self, key: str) -> Result:
        return self._run(lambda ns: ns.get(key))

    def set(self, key: str, value: bytes) -> Result:
        return self._run(lambda ns: ns.set(key, bytes(value)))

    def delete(self, key: str) -> Result:
        return self._run(lambda ns: ns.delete(key))


def make_wasi_config(ctx: HostContext, stderr_tail: list[str] | None = None) -> wasmtime.WasiConfig:
    """WASI with only the granted directories (no env, args or sockets); stdout/stderr go to logging.

    Each granted directory is a preopen: read-only grants are opened with ``fs_mutable=False`` (wasmtime then
    allows only read operations on the directory and its files), and paths cannot escape it (``..`` and symlinks
    leading outside are refused by wasmtime). ``stderr_tail``, if given, receives the guest's stderr text so the
    caller can tell why a call failed (an out-of-memory report, for instance).
    """
    wasi = wasmtime.WasiConfig()
    wasi.stdout_custom = _log_writer(ctx, logging.INFO, "stdout")
    wasi.stderr_custom = _log_writer(ctx, logging.WARNING, "stderr", stderr_tail)
    for grant in ctx.files:
        try:
            wasi.preopen_dir(grant.host, grant.guest, grant.writable)
        except wasmtime.WasmtimeError:
            raise CapabilityError(f"{ctx.tag}: cannot open the granted directory {grant.host} "
                                  f"(for {grant.guest}); does it still exist?") from None
    return wasi


def _log_writer(ctx: HostContext, level: int, stream: str,
                tail: list[str] | None = None) -> Callable[[bytes], None]:
    tag = ctx.tag
    secrets = tuple(s for s in ctx.secret_values if len(s) >= 4)

    def write(data: bytes) -> None:
        text = data.decode("utf-8", "replace")
        for secret in secrets:  # a guest printing its own secret must not leak it into the host's logs
            text = text.replace(secret, REDACTED)
        if tail is not None:
            tail.append(text)
            if len(tail) > 64:
                del tail[:-32]
        for line in text.rstrip("\n").splitlines() or [""]:
            guest_log.log(level, "[%s %s] %s", tag, stream, line)

    return write
