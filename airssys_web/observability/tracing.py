"""Traces through ``opentelemetry-api`` only, as instrumentation libraries do: the application picks the SDK.

Spans: one per component request (``SERVER``: component, version, route, status; its parent is the caller's
``traceparent`` when the request carries one), one per pipeline element inside it, one per outbound fetch
(``CLIENT``: method and origin, never the path or query, which may carry secrets). The W3C ``traceparent`` (and
``tracestate``) of the fetch's span is added to the outgoing request at one place, the version's fetch function
(``lifecycle.services``), which every outbound request and every call of another component goes through.

No SDK configured, no cost: until a tracer provider is installed (``trace.set_tracer_provider``, or
``OTEL_PYTHON_TRACER_PROVIDER``), :meth:`Tracing.tracer` answers None after one module attribute read, and the
request path creates no span, no context and no header. (The API's own no-op tracer would still cost several
microseconds per span.) Worker threads see the request's span because guest calls run in a copy of the caller's
context (``runtime.dispatch``).
"""

from __future__ import annotations

from collections.abc import Iterator, MutableSequence, Sequence
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

from opentelemetry import context as otel_context
from opentelemetry import propagate
from opentelemetry import trace as _trace
from opentelemetry.propagators.textmap import Getter, Setter
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer

SCOPE = "airssys_web"


class _ASGIHeaders(Getter[Sequence[tuple[bytes, bytes]]]):
    """Reads propagation headers from an ASGI scope's header list (lower-case bytes)."""

    def get(self, carrier: Sequence[tuple[bytes, bytes]], key: str) -> list[str] | None:
        name = key.lower().encode("latin-1")
        values = [v.decode("latin-1") for k, v in carrier if k == name]
        return values or None

    def keys(self, carrier: Sequence[tuple[bytes, bytes]]) -> list[str]:
        return [k.decode("latin-1") for k, _ in carrier]


class _HeaderList(Setter[MutableSequence[tuple[str, str]]]):
    """Writes propagation headers into a list of ``(name, value)`` pairs, replacing any of the same name."""

    def set(self, carrier: MutableSequence[tuple[str, str]], key: str, value: str) -> None:
        carrier[:] = [(k, v) for k, v in carrier if k.lower() != key]
        carrier.append((key, value))


_GET = _ASGIHeaders()
_SET = _HeaderList()


class Tracing:
    """The airssys tracer of the installed provider, or None while there is none (the API's default proxy)."""

    __slots__ = ("_provider", "_tracer")

    def __init__(self) -> None:
        self._provider: object = None
        self._tracer: Tracer | None = None

    def tracer(self) -> Tracer | None:
        # opentelemetry-api keeps the provider in a module global, None until one is set: the cheapest check there
        # is (get_tracer_provider() reads the environment on every call). tests/test_tracing.py pins it.
        provider = _trace._TRACER_PROVIDER
        if provider is None:
            return None
        if provider is not self._provider:
            self._provider = provider
            self._tracer = provider.get_tracer(SCOPE)
        return self._tracer

    def resolve(self) -> None:
        """Load a provider named by ``OTEL_PYTHON_TRACER_PROVIDER``, if any (the API does so on first lookup)."""
        _trace.get_tracer_provider()

    # -- component requests (the middleware, on the event loop) ---------------------------------------------
    def start_request(self, tracer: Tracer, headers: Sequence[tuple[bytes, bytes]], method: str, path: str,
                      component: str, version: str, route: str) -> tuple[Span, object]:
        """Start the span of one component request and make it current; :meth:`end_request` ends it."""
        parent = propagate.extract(headers, getter=_GET)
        span = tracer.start_span(f"{method} {route}", context=parent, kind=SpanKind.SERVER, attributes={
            "http.request.method": method, "http.route": route, "url.path": path,
            "airssys.component": component, "airssys.version": version})
        token = otel_context.attach(_trace.set_span_in_context(span, parent))
        return span, token

    @staticmethod
    def end_request(span: Span, token: object, status: int, error: BaseException | None = None) -> None:
        span.set_attribute("http.response.status_code", status)
        if status >= 500:
            span.set_status(Status(StatusCode.ERROR, type(error).__name__ if error is not None else None))
        if error is not None:
            span.record_exception(error)
        span.end()
        otel_context.detach(token)  # type: ignore[arg-type]

    # -- pipeline elements and fetches (worker threads) -------------------------------------------------------
    @contextmanager
    def stage(self, tracer: Tracer, component: str, version: str, index: int, route: bool) -> Iterator[Span]:
        """The span of one element of a pipeline (a middleware stage, or the route at its end)."""
        role = "route" if route else "stage"
        with tracer.start_as_current_span(f"airssys {role} {component}", kind=SpanKind.INTERNAL, attributes={
                "airssys.component": component, "airssys.version": version, "airssys.stage": index,
                "airssys.role": role}) as span:
            yield span

    @contextmanager
    def fetch(self, tracer: Tracer, method: str, url: str, component: str, version: str) -> Iterator[Span]:
        """The span of one outbound fetch: its method and origin (never the path, query or headers)."""
        attributes: dict[str, Any] = {"http.request.method": method, "airssys.component": component,
                                      "airssys.version": version}
        try:
            parts = urlsplit(url)
            attributes["url.scheme"] = parts.scheme
            if parts.hostname:
                attributes["server.address"] = parts.hostname
            if parts.port:
                attributes["server.port"] = parts.port
        except ValueError:
            pass
        with tracer.start_as_current_span(f"{method} {attributes.get('server.address', '?')}",
                                          kind=SpanKind.CLIENT, attributes=attributes) as span:
            yield span

    def inject(self, headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
        """An outgoing request's headers with the current span's ``traceparent`` (and ``tracestate``), replacing
        any the guest set; ``headers`` themselves, untouched, without a provider."""
        if self.tracer() is None:
            return headers
        out = list(headers)
        propagate.inject(out, setter=_SET)
        return out


#: The process's tracing (opentelemetry's provider is process-wide too).
TRACING = Tracing()

__all__ = ["TRACING", "Tracing"]
