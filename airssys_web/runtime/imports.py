"""What the host gives a guest: a :class:`HostContext` per version, and the :class:`HostBridge` the native core
calls for the host functions that need policy.

The native core provides WASI (only the granted directories; no environment, arguments or sockets), config
values, stdio and, for wasi:http components, the HTTP types. What a guest may reach beyond that is exactly what
its HostContext holds, and the runtime knows policies only through the interfaces below: ``fetch`` - used by
``airssys:web/outbound`` and by wasi:http's outgoing handlers alike - is the version's outbound fetcher (none:
every request is denied, and ``explain_denial`` says why); ``kv`` is its own namespace (none: ``err("kv not
granted ...")``), which is also the store ``default`` of Spin's key-value interfaces, and ``kv_stores`` the further
store labels granted (any other label is refused, naming the flag that grants it). The lifecycle layer builds
contexts from a version's grants (``lifecycle.services``).
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from opentelemetry.trace import StatusCode

from ..errors import KVError, OutboundDenied, OutboundError, OutboundTimeout
from ..observability.stats import ALLOWED, DENIED, FAILED, RequestStats
from ..observability.tracing import TRACING

#: The contract: ``airssys-web.wit`` (the Rust bindings are generated from the same file at build time).
WIT_DIR = Path(__file__).resolve().parents[1] / "wit"
WIT_FILE = WIT_DIR / "airssys-web.wit"
PACKAGE = "airssys:web"
#: The contract's version. 0.1.1 added the ``middleware`` world; components built against 0.1.0 are served
#: unchanged (wasmtime links and finds 0.1.x names semver-compatibly).
WIT_VERSION = "0.1.1"
HANDLER_INTERFACE = f"{PACKAGE}/handler@{WIT_VERSION}"
OUTBOUND_INTERFACE = f"{PACKAGE}/outbound@{WIT_VERSION}"
CONFIG_INTERFACE = f"{PACKAGE}/config@{WIT_VERSION}"
KV_INTERFACE = f"{PACKAGE}/kv@{WIT_VERSION}"
TYPES_INTERFACE = f"{PACKAGE}/types@{WIT_VERSION}"

Headers = list[tuple[str, str]]


class Fetch(Protocol):
    """Sends one request on the guest's behalf: ``(status, headers, body)``. ``deadline`` is the time left (s) for
    the whole operation; ``depth`` the component-to-component calls this request already made. Raises
    OutboundDenied (nothing sent) or OutboundError (OutboundTimeout past a time)."""

    def __call__(self, method: str, url: str, headers: Headers, body: bytes, *, deadline: float | None = None,
                 depth: int = 0) -> tuple[int, Headers, bytes]: ...


class KVAccess(Protocol):
    """A component's key-value namespace; a refused operation raises KVError naming the limit."""

    def get(self, key: str) -> bytes | None: ...
    def set(self, key: str, value: bytes) -> None: ...
    def delete(self, key: str) -> None: ...
    def keys(self) -> list[str]: ...


class Preopen(Protocol):
    """A granted directory: ``host`` visible to the guest at ``guest``, writable or not."""

    @property
    def host(self) -> str: ...
    @property
    def guest(self) -> str: ...
    @property
    def writable(self) -> bool: ...


KV_NOT_GRANTED = "kv not granted to this component (deploy it with --kv)"
#: The store label of Spin's key-value interfaces that is the component's own namespace (``--kv``).
DEFAULT_STORE = "default"

guest_log = logging.getLogger("airssys_web.guest")
log = logging.getLogger("airssys_web.imports")


class _Denials:
    """Thread-safe counter of outbound denials that never reached a fetcher (no grants at all)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.counts: Counter[str] = Counter()

    def add(self, kind: str) -> None:
        with self._lock:
            self.counts[kind] += 1


@dataclass(frozen=True)
class HostContext:
    """Everything a generation's host functions may touch; one per (component, version).

    ``fetch`` performs granted requests; ``explain_denial(url)`` is the denial of a request when nothing is
    granted (its ``kind``, if any, is counted); ``kv`` is the component's namespace (the key-value store
    ``default``), ``kv_stores`` the other store labels granted, each its own namespace; ``files`` become WASI
    preopens; ``config`` holds config values and resolved secrets, whose values ``secret_values`` lists so guest
    log lines can be redacted (with ``redaction``). ``denials`` reports the fetcher's own denial counts;
    ``resources`` are released by :meth:`close` (the fetcher's connections).
    """

    component: str
    version: str
    config: Mapping[str, str] = field(default_factory=dict, repr=False)  # holds secret values too
    fetch: Fetch | None = None
    explain_denial: Callable[[str], OutboundDenied] | None = None
    kv: KVAccess | None = None
    kv_stores: Mapping[str, KVAccess] = field(default_factory=dict, repr=False)
    files: tuple[Preopen, ...] = ()
    secret_values: tuple[str, ...] = field(default=(), repr=False)
    redaction: str = "********"
    fuel: bool = False  # instantiate on the fuel-metering engine
    denials: Callable[[], Mapping[str, int]] | None = field(default=None, repr=False, compare=False)
    resources: tuple[Any, ...] = field(default=(), repr=False, compare=False)
    _denials: _Denials = field(default_factory=_Denials, repr=False, compare=False)

    @property
    def tag(self) -> str:
        return f"{self.component}@{self.version}"

    @property
    def blocking_io(self) -> bool:
        """Whether a host function may block on I/O (outbound fetch, KV): such guests never run on the event loop."""
        return self.fetch is not None or self.kv is not None or bool(self.kv_stores)

    def kv_store(self, label: str) -> KVAccess | None:
        """The namespace behind a key-value store label, or None when the label is not granted."""
        return self.kv if label == DEFAULT_STORE else self.kv_stores.get(label)

    def outbound_denials(self) -> dict[str, int]:
        """Denied ``fetch`` calls so far, by kind (``not-granted``, ``blocked-address``, ``bad-url``, ...)."""
        counts = Counter(self._denials.counts)
        if self.denials is not None:
            counts.update(self.denials())
        return dict(counts)

    def close(self) -> None:
        """Release what the context owns (the fetcher's connections); idempotent."""
        for resource in self.resources:
            resource.close()


Result = tuple[str, Any]
NOTHING_GRANTED = "no outbound hosts are granted to this component"


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
    ``err`` cases the contract defines; a bug on our side is logged and answered as an internal error. Every
    fetch is counted in ``stats`` by outcome (allowed, denied, error) and, with a tracer installed, gets a span.
    """

    __slots__ = ("_ctx", "_kv", "_send", "_stats", "_stderr", "_stdout")

    def __init__(self, ctx: HostContext, stats: RequestStats | None = None) -> None:
        self._ctx = ctx
        self._stats = stats if stats is not None else RequestStats()
        self._send = ctx.fetch
        self._kv = ctx.kv
        self._stdout = _log_writer(ctx, logging.INFO, "stdout")
        self._stderr = _log_writer(ctx, logging.WARNING, "stderr")

    def fetch(self, method: str, url: str, headers: list[tuple[str, str]], body: bytes, remaining: float,
              depth: int = 0) -> tuple[int, list[tuple[str, str]], bytes] | tuple[str, str]:
        tracer = TRACING.tracer()
        if tracer is None:
            return self._fetch(method, url, headers, body, remaining, depth)
        with TRACING.fetch(tracer, method, url, self._ctx.component, self._ctx.version) as span:
            result = self._fetch(method, url, headers, body, remaining, depth)
            if isinstance(result[0], int):
                span.set_attribute("http.response.status_code", result[0])
            else:
                span.set_attribute("airssys.outbound.outcome", result[0])
                span.set_status(StatusCode.ERROR, str(result[1])[:200])
            return result

    def _fetch(self, method: str, url: str, headers: list[tuple[str, str]], body: bytes, remaining: float,
               depth: int) -> tuple[int, list[tuple[str, str]], bytes] | tuple[str, str]:
        ctx, send, stats = self._ctx, self._send, self._stats
        try:
            if send is None:  # nothing granted: say why (a bad URL, or no grant), never connect
                denial = ctx.explain_denial(url) if ctx.explain_denial is not None else OutboundDenied(NOTHING_GRANTED)
                kind = getattr(denial, "kind", "not-granted")
                ctx._denials.add(kind)
                stats.fetched(DENIED)
                log.warning("%s: outbound fetch denied (%s): %s", ctx.tag, kind, denial.reason)
                return "denied", str(denial)
            answer = send(method, url, headers, body, deadline=remaining, depth=depth)  # the deadline bounds it all
        except OutboundDenied as e:
            stats.fetched(DENIED)
            return "denied", str(e)
        except OutboundError as e:
            stats.fetched(FAILED)
            return _fetch_failure(e)
        except Exception as e:  # never let a Python exception cross into the guest
            stats.fetched(FAILED)
            log.exception("%s: outbound fetch failed unexpectedly", ctx.tag)
            return "error", f"error: {type(e).__name__}"
        stats.fetched(ALLOWED)
        return answer

    def _kv_run(self, op: Callable[[KVAccess], Any], store: str | None = None) -> Result:
        """``op`` on a namespace: the component's own (``store`` None: ``airssys:web/kv``), or a store label's
        (Spin's key-value interfaces: a label that is not granted answers ``("denied", why)``)."""
        ns = self._kv if store is None else self._ctx.kv_store(store)
        if ns is None:
            return ("err", KV_NOT_GRANTED) if store is None else ("denied", self._store_denial(store))
        try:
            return ("ok", op(ns))
        except KVError as e:
            return ("err", str(e))
        except Exception as e:  # never let a Python exception cross into the guest
            log.exception("%s: kv failed unexpectedly", self._ctx.tag)
            return ("err", f"kv: internal error ({type(e).__name__})")

    def _store_denial(self, store: str) -> str:
        flag = "--kv" if store == DEFAULT_STORE else f"--kv-store {store}"
        return f"key-value store {store!r} is not granted to this component; deploy it with {flag}"

    def kv_get(self, key: str, store: str | None = None) -> Result:
        return self._kv_run(lambda ns: ns.get(key), store)

    def kv_set(self, key: str, value: bytes, store: str | None = None) -> Result:
        return self._kv_run(lambda ns: ns.set(key, value), store)

    def kv_delete(self, key: str, store: str | None = None) -> Result:
        return self._kv_run(lambda ns: ns.delete(key), store)

    def kv_keys(self, store: str = DEFAULT_STORE) -> Result:
        return self._kv_run(lambda ns: ns.keys(), store)

    def kv_open(self, store: str) -> Result:
        """Whether a Spin component may open the key-value store ``store``: ``("ok", None)``, or ``("denied",
        why)`` - logged, naming the flag that grants it (the guest only learns ``access-denied``)."""
        if self._ctx.kv_store(store) is not None:
            return ("ok", None)
        why = self._store_denial(store)
        log.warning("%s: %s", self._ctx.tag, why)
        return ("denied", why)

    def log(self, stream: str, text: str) -> None:
        (self._stdout if stream == "stdout" else self._stderr)(text)


def _log_writer(ctx: HostContext, level: int, stream: str) -> Callable[[bytes | str], None]:
    """A writer that logs a guest's output line by line under ``airssys_web.guest``, its secrets redacted."""
    tag, redaction = ctx.tag, ctx.redaction
    secrets = tuple(s for s in ctx.secret_values if len(s) >= 4)

    def write(data: bytes | str) -> None:
        text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
        for secret in secrets:  # a guest printing its own secret must not leak it into the host's logs
            text = text.replace(secret, redaction)
        for line in text.rstrip("\n").splitlines() or [""]:
            guest_log.log(level, "[%s %s] %s", tag, stream, line)

    return write
