"""What the host gives a guest: a :class:`HostContext` per version, and the :class:`HostBridge` the native core
calls for the host functions that need policy.

The native core provides WASI (only the granted directories; no environment, arguments or sockets), config
values, stdio and, for wasi:http components, the HTTP types. What a guest may reach beyond that is exactly what
its HostContext holds: ``fetch`` - from ``airssys:web/outbound`` and from wasi:http's outgoing handlers alike -
goes through the version's :class:`~airssys_web.capabilities.outbound.Fetcher` (none: every request is denied), ``kv``
through its own namespace (none: ``err("kv not granted ...")``).
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..capabilities.grants import REDACTED, FileAccess
from ..capabilities.kv import KVNamespace
from ..capabilities.outbound import Fetcher, OutboundPolicy
from ..errors import KVError, OutboundDenied, OutboundError, OutboundTimeout

#: The contract: ``airssys-web.wit`` (the Rust bindings are generated from the same file at build time).
WIT_DIR = Path(__file__).resolve().parents[1] / "wit"
WIT_FILE = WIT_DIR / "airssys-web.wit"
PACKAGE = "airssys:web"
WIT_VERSION = "0.1.0"
HANDLER_INTERFACE = f"{PACKAGE}/handler@{WIT_VERSION}"
OUTBOUND_INTERFACE = f"{PACKAGE}/outbound@{WIT_VERSION}"
CONFIG_INTERFACE = f"{PACKAGE}/config@{WIT_VERSION}"
KV_INTERFACE = f"{PACKAGE}/kv@{WIT_VERSION}"
TYPES_INTERFACE = f"{PACKAGE}/types@{WIT_VERSION}"

#: Fetch implementation (tests): (method, url, headers, body) -> (status, headers, body); raises OutboundDenied/Error.
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


Result = tuple[str, Any]
_DENY_ALL = OutboundPolicy()


def _fetch_failure(exc: OutboundError) -> tuple[str, str]:
    """``(code, message)`` for a failed fetch: the code picks the wasi:http error-code, the message is what an
    ``airssys:web`` guest's ``err`` says."""
    text = str(exc)
    if isinstance(exc, OutboundTimeout) and "its deadline of" in text:
        return "deadline", f"error: {text}"  # the route's deadline: the call ends with a 504
    if "could not resolve" in text:
        return "dns", f"error: {text}"
    if isinstance(exc, OutboundTimeout):
        connecting = "timed out while connecting" in text or "could not connect" in text
        return ("connect-timeout" if connecting else "response-timeout"), f"error: {text}"
    if "could not connect" in text:
        return "refused", f"error: {text}"
    if "request body of" in text:
        return "request-too-large", f"error: {text}"
    if "response headers" in text and "cap" in text:
        return "headers-too-large", f"error: {text}"
    if "cap" in text and "answered" in text:
        return "response-too-large", f"error: {text}"
    return "error", f"error: {text}"


class HostBridge:
    """The Python side of a generation's host functions, called by the native core (with the GIL held).

    Only what needs policy crosses over: ``fetch`` (the outbound grants, for every world), the ``kv`` calls and
    the guest's output (logged, with secrets redacted). Nothing here raises into the guest: failures become the
    ``err`` cases the contract defines; a bug on our side is logged and answered as an internal error.
    """

    __slots__ = ("_ctx", "_kv", "_send", "_stderr", "_stdout")

    def __init__(self, ctx: HostContext) -> None:
        self._ctx = ctx
        self._send = ctx.fetch or (ctx.fetcher.fetch if ctx.fetcher is not None else None)
        self._kv = ctx.kv
        self._stdout = _log_writer(ctx, logging.INFO, "stdout")
        self._stderr = _log_writer(ctx, logging.WARNING, "stderr")

    def fetch(self, method: str, url: str, headers: list[tuple[str, str]], body: bytes, remaining: float
              ) -> tuple[int, list[tuple[str, str]], bytes] | tuple[str, str]:
        ctx, send = self._ctx, self._send
        try:
            if send is None:  # nothing granted: the empty policy explains the denial (never connects)
                _DENY_ALL.check(url)
                raise OutboundDenied("no outbound hosts are granted to this component")
            if ctx.fetch is None and ctx.fetcher is not None:  # the route's deadline bounds the whole fetch
                return ctx.fetcher.fetch(method, url, headers, body, deadline=remaining)
            return send(method, url, headers, body)
        except OutboundDenied as e:
            if send is None:
                kind = getattr(e, "kind", "not-granted")
                ctx._denials.add(kind)
                log.warning("%s: outbound fetch denied (%s): %s", ctx.tag, kind, e.reason)
            return "denied", str(e)
        except OutboundError as e:
            return _fetch_failure(e)
        except Exception as e:  # never let a Python exception cross into the guest
            log.exception("%s: outbound fetch failed unexpectedly", ctx.tag)
            return "error", f"error: {type(e).__name__}"

    def _kv_run(self, op: Callable[[KVNamespace], Any]) -> Result:
        ns = self._kv
        if ns is None:
            return ("err", KV_NOT_GRANTED)
        try:
            return ("ok", op(ns))
        except KVError as e:
            return ("err", str(e))
        except Exception as e:  # never let a Python exception cross into the guest
            log.exception("%s: kv failed unexpectedly", self._ctx.tag)
            return ("err", f"kv: internal error ({type(e).__name__})")

    def kv_get(self, key: str) -> Result:
        return self._kv_run(lambda ns: ns.get(key))

    def kv_set(self, key: str, value: bytes) -> Result:
        return self._kv_run(lambda ns: ns.set(key, value))

    def kv_delete(self, key: str) -> Result:
        return self._kv_run(lambda ns: ns.delete(key))

    def log(self, stream: str, text: str) -> None:
        (self._stdout if stream == "stdout" else self._stderr)(text)


def _log_writer(ctx: HostContext, level: int, stream: str) -> Callable[[bytes | str], None]:
    """A writer that logs a guest's output line by line under ``airssys_web.guest``, its secrets redacted."""
    tag = ctx.tag
    secrets = tuple(s for s in ctx.secret_values if len(s) >= 4)

    def write(data: bytes | str) -> None:
        text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
        for secret in secrets:  # a guest printing its own secret must not leak it into the host's logs
            text = text.replace(secret, REDACTED)
        for line in text.rstrip("\n").splitlines() or [""]:
            guest_log.log(level, "[%s %s] %s", tag, stream, line)

    return write
