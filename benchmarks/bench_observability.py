"""OBS: what observability (issue #17) adds to a request, side by side in one run (target: at most 2 µs).

    python -m benchmarks.bench_observability REGISTRY     # prints JSON

Two ASGI apps over the same registry, called directly in one process (no sockets: the difference would drown in
uvicorn's ~150 µs): the middleware as ``serve`` runs it, and the same middleware with ``_serve`` as it was before
#17 (no request id, no counters, no log context, no tracing check). Batches of requests to the small WAT guest
alternate between the two; the difference of the best batches is the cost per request. A third app has an
OpenTelemetry SDK tracer provider installed (spans created and dropped, no exporter), for the record.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import MutableMapping
from typing import Any

from starlette.applications import Starlette
from starlette.types import Receive, Scope, Send

from airssys_web.errors import AirssysError, GuestError
from airssys_web.lifecycle.host import AirssysHost
from airssys_web.runtime.chain import Servable
from airssys_web.web.errors import send_error
from airssys_web.web.middleware import ROUTE_HEADER, AirssysMiddleware

from .harness import REPO


class Unobserved(AirssysMiddleware):
    """The request path as it was before observability: the baseline (on the targets of today's middleware: a
    generation, or a chain of pipeline stages)."""

    async def _serve(self, gen: Servable, route: str, scope: Scope, receive: Receive, send: Send,
                     set_cookie: bytes | None) -> None:
        extra: list[tuple[bytes, bytes]] = list(gen.version_headers) if self.version_header else []
        if set_cookie is not None:
            extra.append((b"set-cookie", set_cookie))
        raw_headers = [h for h in scope["headers"] if h[0] != ROUTE_HEADER]
        raw_headers.append((ROUTE_HEADER, route.encode("latin-1")))
        try:
            status = await gen.serve(dict(scope, headers=raw_headers), receive, send, extra,
                                     body_timeout=self.body_timeout)
        except AirssysError as e:
            gen.outcome(e.status, e)
            await send_error(send, e, extra, request_id="x" if isinstance(e, GuestError) else None)
            return
        gen.outcome(status)


def measure(registry: str, rounds: int = 31, batch: int = 1000) -> dict[str, Any]:
    observed = AirssysMiddleware(Starlette(), host=AirssysHost(registry))
    baseline = Unobserved(Starlette(), host=AirssysHost(registry))  # only the request path differs

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: MutableMapping[str, Any]) -> None:
        pass

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
             "path": "/wasm", "raw_path": b"/wasm", "query_string": b"", "root_path": "",
             "headers": [(b"host", b"127.0.0.1:8000"), (b"user-agent", b"wrk"), (b"accept", b"*/*")],
             "client": ("127.0.0.1", 40000), "server": ("127.0.0.1", 8000)}
    out: dict[str, Any] = {"batch": batch, "rounds": rounds}

    async def time_batch(app: AirssysMiddleware) -> float:
        started = time.perf_counter()
        for _ in range(batch):
            await app(dict(scope), receive, send)
        return (time.perf_counter() - started) / batch

    async def main() -> None:
        for app in (observed, baseline):
            await asyncio.to_thread(app.host.start, watch=False)
            for _ in range(3):  # warm: instances, the inline policy
                await time_batch(app)
        base, obs = [], []
        for i in range(rounds):
            order = (baseline, observed) if i % 2 == 0 else (observed, baseline)
            for app in order:
                (base if app is baseline else obs).append(await time_batch(app))
        out["baseline_us"] = min(base) * 1e6
        out["observed_us"] = min(obs) * 1e6
        out["added_us"] = out["observed_us"] - out["baseline_us"]
        out["added_median_us"] = statistics.median(o - b for o, b in zip(obs, base, strict=True)) * 1e6
        gen = observed.host.generations()["hello"]
        out["inline_share"] = gen.inline.inline_calls / max(1, gen.requests)
        counted = sum(gen.stats.statuses)
        out["counted"] = counted == gen.requests  # every request was counted
        # With an SDK tracer provider (no exporter): a span per request, for the record.
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider

        trace.set_tracer_provider(TracerProvider())
        traced = min([await time_batch(observed) for _ in range(3)])
        out["traced_us"] = traced * 1e6
        for app in (observed, baseline):
            app.host.close()

    asyncio.run(main())
    return out


def run(registry: str, quick: bool = False) -> dict[str, Any]:
    """:func:`measure` in a fresh interpreter (a tracer provider, once installed, stays for the process)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p))
    env.pop("AIRSSYS_SECRET", None)
    args = [sys.executable, "-m", "benchmarks.bench_observability", registry] + (["9"] if quick else [])
    done = subprocess.run(args, capture_output=True, text=True, cwd=REPO, env=env, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"bench_observability failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


if __name__ == "__main__":
    print(json.dumps(measure(sys.argv[1], *(int(a) for a in sys.argv[2:3]))))
