"""airssys_web.observability.tracing: spans through opentelemetry-api, recorded by the SDK's in-memory exporter.

The SDK is installed as the global tracer provider for each test and removed afterwards (opentelemetry's own
tests reset the same globals), so the rest of the suite runs as an application without an SDK would: no spans.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from caps_support import generation, imports_guest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from opentelemetry.util._once import Once
from starlette.applications import Starlette
from support import make_generation, text_component

from airssys_web import AirssysMiddleware, EmbeddedRegistry, deploy
from airssys_web.capabilities.grants import Capability
from airssys_web.lifecycle.settings import VersionSettings
from airssys_web.observability.tracing import TRACING
from airssys_web.runtime.chain import Chain

Server = Callable[..., AbstractContextManager[str]]
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"


def _reset_globals() -> None:
    trace._TRACER_PROVIDER = None
    trace._TRACER_PROVIDER_SET_ONCE = Once()


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    _reset_globals()
    trace.set_tracer_provider(provider)
    yield exporter
    provider.shutdown()
    _reset_globals()


def named(exporter: InMemorySpanExporter, prefix: str) -> list[ReadableSpan]:
    return [s for s in exporter.get_finished_spans() if s.name.startswith(prefix)]


def test_no_provider_no_spans_no_headers() -> None:
    """Without an SDK nothing is created: not even the API's no-op spans, nor a copy of the headers."""
    _reset_globals()
    assert TRACING.tracer() is None
    headers = [("accept", "*/*")]
    assert TRACING.inject(headers) is headers


def test_a_component_request_is_a_server_span(tmp_path: Path, uvicorn_server: Server,
                                              spans: InMemorySpanExporter) -> None:
    reg = tmp_path / "reg"
    with EmbeddedRegistry(reg) as registry:
        deploy(registry, "hello", text_component("hi"), version="1.0.0", route="/hello")
    with uvicorn_server(AirssysMiddleware(Starlette(), registry=reg)) as url:
        traceparent = f"00-{TRACE_ID}-{PARENT_ID}-01"
        assert httpx.get(url + "/hello/x", headers={"traceparent": traceparent}).status_code == 200
    (span,) = named(spans, "GET /hello")
    assert span.kind is SpanKind.SERVER
    assert span.context is not None and format(span.context.trace_id, "032x") == TRACE_ID
    assert span.parent is not None and format(span.parent.span_id, "016x") == PARENT_ID
    assert span.attributes is not None
    assert dict(span.attributes) == {
        "http.request.method": "GET", "http.route": "/hello", "url.path": "/hello/x",
        "airssys.component": "hello", "airssys.version": "1.0.0", "http.response.status_code": 200}


def test_each_pipeline_element_is_a_child_span(wat_guest: Callable[[str], bytes],
                                               spans: InMemorySpanExporter) -> None:
    auth = make_generation(wat_guest("stage"), name="auth", config={"name": "auth"})
    route = make_generation(wat_guest("hello"), name="site")
    tracer = trace.get_tracer("test")
    with tracer.start_as_current_span("request") as root:
        assert Chain([auth], route).call("GET", "/", "", [], b"").status == 200
    (stage,) = named(spans, "airssys stage auth")
    (end,) = named(spans, "airssys route site")
    assert stage.parent is not None and stage.parent.span_id == root.get_span_context().span_id
    assert end.parent is not None and stage.context is not None and end.parent.span_id == stage.context.span_id
    assert stage.attributes is not None and stage.attributes["airssys.stage"] == 0
    assert stage.attributes["http.response.status_code"] == 200
    auth.close()
    route.close()


class _Recorder(BaseHTTPRequestHandler):
    seen: list[dict[str, str]] = []

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        _Recorder.seen.append({k.lower(): v for k, v in self.headers.items()})
        self.send_response(204)
        self.end_headers()


@pytest.fixture
def upstream() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    _Recorder.seen = []
    yield int(server.server_address[1])
    server.shutdown()
    server.server_close()
    thread.join()


def test_fetches_carry_traceparent(upstream: int, spans: InMemorySpanExporter) -> None:
    gen = generation(imports_guest(), {"outbound": [f"http://127.0.0.1:{upstream}"]}, name="caller")
    tracer = trace.get_tracer("test")
    with tracer.start_as_current_span("request") as root:
        assert gen.call("GET", f"http://127.0.0.1:{upstream}/secret/path?token=1").status == 204
    (fetch,) = named(spans, "GET 127.0.0.1")
    assert fetch.kind is SpanKind.CLIENT and fetch.context is not None
    assert fetch.parent is not None and fetch.parent.span_id == root.get_span_context().span_id
    assert fetch.attributes is not None and fetch.attributes["server.port"] == upstream
    assert not any("secret" in str(v) for v in fetch.attributes.values())  # never the path or query
    (headers,) = _Recorder.seen
    version, trace_id, parent_id, _ = headers["traceparent"].split("-")
    assert (version, trace_id, parent_id) == ("00", format(fetch.context.trace_id, "032x"),
                                              format(fetch.context.span_id, "016x"))
    gen.close()


def test_spans_cross_to_worker_threads(tmp_path: Path, uvicorn_server: Server, spans: InMemorySpanExporter) -> None:
    """A guest that may block runs on a worker thread; its fetch span is still a child of the request's span."""
    reg = tmp_path / "reg"
    with EmbeddedRegistry(reg) as registry:
        deploy(registry, "imp", imports_guest(), version="1.0.0", route="/imp",
               settings=VersionSettings.of(Capability.network_outbound("http://127.0.0.1:1")))  # never inline
    with uvicorn_server(AirssysMiddleware(Starlette(), registry=reg)) as url:
        httpx.get(url + "/imp/relative")  # fetch("/imp/relative"): refused (not an absolute URL), but traced
    (server,) = named(spans, "GET /imp")
    (fetch,) = [s for s in spans.get_finished_spans() if s.kind is SpanKind.CLIENT]
    assert server.context is not None and fetch.parent is not None
    assert fetch.parent.span_id == server.context.span_id
    assert fetch.attributes is not None and fetch.attributes["airssys.outbound.outcome"] == "denied"
