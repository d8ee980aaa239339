"""What the layers around the runtime add to a request: observability (OBS, issue #17: target ≤ 2 µs) and the
WSGI adapter (W1, issue #18: reported). Both come from main's benchmarks (bench_observability, bench_wsgi), on
this report's rows, each side by side with what it wraps in one run.
"""

from __future__ import annotations

from pathlib import Path

from . import bench_http
from .harness import Series
from .report import Report


def observability(report: Report, registry: Path, quick: bool) -> None:
    from .bench_observability import run

    r = run(str(registry), quick)
    report.row("OBS", "in process: observability's added time per request (request id, counters, log context)",
               f"{r['added_us']:.2f} µs ({r['observed_us']:.2f} - {r['baseline_us']:.2f})", "≤ 2 µs",
               r["added_us"] <= 2.0,
               f"best batch against best batch (the median of {r['rounds']} alternating pairs: "
               f"{r['added_median_us']:.2f} µs); what is added is a request id (made or checked), per-generation "
               "counters and a log context variable on every request, a few µs on a shared machine")
    report.section(
        "OBS: what metrics, logs and traces add to a request (benchmarks/bench_observability.py)",
        "| request path (small WAT guest, in process, no HTTP server) | µs per request, best batch |", "|---|---|",
        f"| before #17 (`_serve` without request id, counters, log context) | {r['baseline_us']:.2f} |",
        f"| as served now (no OpenTelemetry SDK installed) | {r['observed_us']:.2f} |",
        f"| added, best batch against best batch | **{r['added_us']:.2f}** |",
        f"| added, median of the {r['rounds']} alternating pairs | {r['added_median_us']:.2f} |",
        f"| with an OpenTelemetry SDK tracer provider (a span per request, no exporter) | {r['traced_us']:.2f} |",
        "",
        f"{r['rounds']} rounds of {r['batch']} requests per app, the two apps alternating, over the same registry; "
        f"{r['inline_share']:.0%} of the guest calls ran inline. Every request was counted: "
        f"{'yes' if r['counted'] else 'NO'}. The request path only bumps plain per-generation counters (a list "
        "index, a `bisect`), sets one context variable and checks whether a tracer provider is installed; "
        "Prometheus label children are filled from those counters when scraped (and once a second per worker "
        "with `--workers`), so multiprocess mode adds nothing per request. The median of pairs is the noisier "
        "figure on a shared machine (other work shows in single rounds); best against best is the cost itself.")


def wsgi(report: Report, wrk: str | None, registry: Path, s: bench_http.Settings) -> None:
    """The WSGI adapter (AirssysWSGIMiddleware) against the ASGI middleware it runs: benchmarks/bench_wsgi.py."""
    from . import bench_wsgi

    res = bench_wsgi.measure_in_process(registry)
    asgi, wsgi_, native = (Series(res[k]) for k in ("asgi_us", "wsgi_us", "wsgi_native_us"))
    added = Series([w - a for w, a in zip(res["wsgi_us"], res["asgi_us"], strict=True)])
    report.row("W1", "in process: µs per component request, WSGI adapter - ASGI middleware",
               f"{added.fmt(1, ' µs')}", "(reported)", None)
    lines = ["| path (in process, no HTTP server) | µs per request, median (min to max) |", "|---|---|",
             f"| `/wasm` through `AirssysMiddleware` (awaited on an event loop) | {asgi.fmt(1)} |",
             f"| `/wasm` through `AirssysWSGIMiddleware` (called from a plain thread) | {wsgi_.fmt(1)} |",
             f"| the difference, per round: the hop to the adapter's loop thread and back | {added.fmt(1)} |",
             f"| `/native`, a WSGI route the adapter passes to the app | {native.fmt(1)} |", "",
             f"{len(added.values)} alternating rounds of 2,000 requests each, in one fresh interpreter; each "
             "round gives one difference. The adapter hands a component request to the core on its own loop "
             "thread and waits for the answer: two thread wake-ups per request (`call_soon_threadsafe`, a queue), "
             "the floor of any WSGI-to-asyncio bridge, and what an app's own routes never pay."]
    if wrk is not None:
        comp = bench_wsgi.compare_over_http(wrk, registry, s)
        ratio, cost = comp.ratio("/wasm", "/native"), comp.added_us("/wasm", "/native")
        report.row("W1", "waitress: wasm route rps ÷ native WSGI route rps, small guest", ratio.fmt(3),
                   "(reported)", None)
        report.row("W1", "waitress: added cost per request (1/rps_wasm - 1/rps_native)", cost.fmt(1, " µs"),
                   "(reported)", None)
        r = comp.routes
        lines += ["", "| route (waitress, 4 threads) | rps, median (min to max) | server CPU |", "|---|---|---|",
                  f"| `/native` (a WSGI function) | {r['/native'].rps.fmt()} | {r['/native'].server_cpu.median:.0%} |",
                  f"| `/wasm` (small WAT guest) | {r['/wasm'].rps.fmt()} | {r['/wasm'].server_cpu.median:.0%} |", "",
                  f"{s.repeats} runs of `{comp.command}` per route, alternating, after a {s.warmup:g} s warm-up "
                  "each; one `python -m waitress --threads=4 benchmarks.bench_wsgi:wsgi_app` process. Socket errors "
                  f"or non-2xx answers: {sum(x.errors for x in r.values())}."]
    report.section("W1: the WSGI adapter (benchmarks/bench_wsgi.py)", *lines)
