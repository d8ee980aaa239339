"""Targets R3, R4, R5 and R7 of the runtime-core issue: per-request cost in process and rps over HTTP.

Each function turns one measurement (``bench_asgi`` in process, ``bench_http.compare_routes`` over HTTP) into rows
of the report and a section. Differences and ratios are computed per repeat (both sides measured back to back in
that repeat) and reported as median (min to max). A missed target's reason is built from the measured figures.
"""

from __future__ import annotations

from typing import Any

from .bench_http import Comparison
from .harness import Series
from .report import Report

#: route -> what serves it, for the tables
SERVED = {
    "/native": "native Starlette route (benchmarks/apps.py)",
    "/wasm": "small WAT guest, pooled",
    "/wasm-fresh": "small WAT guest, `isolation=\"request\"`",
    "/py": "Python guest (componentize-py), pooled",
    "/py-fresh": "Python guest, `isolation=\"request\"`",
    "/js": "JavaScript guest (componentize-qjs), pooled",
    "/wasi": "WAT wasi:http guest (tests/guests/wasi_http/hello.wat), pooled",
    "/extism": "Extism plugin (Python SDK) in an async Starlette route",
    "/wasm no-inline": "small WAT guest, every call on a worker thread (`serve --no-inline`)",
}


def per_repeat(a: list[float], b: list[float], op: str) -> Series:
    """``a - b`` or ``a / b`` for each repeat."""
    return Series([x - y if op == "-" else x / y for x, y in zip(a, b, strict=True)])


# -- in process ------------------------------------------------------------------------------------------------

def in_process(report: Report, asgi: dict[str, Any], wasi: dict[str, list[float]]) -> dict[str, Series]:
    """R3 and the in-process half of R5 (and R7's in-process figures); returns the fresh-instance costs."""
    us: dict[str, list[float]] = asgi["asgi_us"]
    calls: dict[str, list[float]] = asgi["call_us"]
    med = {r: Series(v).median for r, v in us.items()}
    added = per_repeat(us["/wasm"], us["/native"], "-")
    extism = per_repeat(us["/extism"], us["/wasm"], "/")
    pooled_call = Series(calls["pooled"])
    report.row("R3", "in process: µs per request, wasm route - native route (trivial guest)",
               added.fmt(1, " µs"), "≤ 4 µs", added.median <= 4,
               f"one call of the trivial guest (`Generation.call`) costs {pooled_call.median:.1f} µs; the native "
               f"route's whole request {med['/native']:.1f} µs")
    report.row("R3", "in process: Extism-plugin route µs ÷ wasm route µs", extism.fmt(2), "≥ 4",
               extism.median >= 4,
               f"the Extism route costs {med['/extism']:.1f} µs per request, the wasm route {med['/wasm']:.1f} µs")
    fresh = {"small": per_repeat(calls["fresh"], calls["pooled"], "-"),
             "python": per_repeat(calls["py_fresh"], calls["py_pooled"], "-")}
    for key, label, bound in (("small", "small WAT guest", 20.0), ("python", "componentize-py guest", 300.0)):
        b = asgi["breakdown"][key]
        why = (f"per fresh request: instantiate {b['instantiate_us']:,.0f} µs, the call {b['call_us']:,.0f} µs "
               f"({b['call_faults']:,.0f} page faults; a warm call: {b['warm_call_us']:,.0f} µs, "
               f"{b['warm_call_faults']:,.0f} faults), drop {b['drop_us']:,.0f} µs "
               f"({b['drop_faults'] + b['instantiate_faults']:,.0f} faults in instantiate + drop)")
        report.row("R5", f"cost of a fresh instance, in process ({label}): request - pooled, per call",
                   fresh[key].fmt(1, " µs"), f"≤ {bound:g} µs", fresh[key].median <= bound, why)
    for pooled, isolated, label in (("/wasm", "/wasm-fresh", "small WAT guest"),
                                    ("/py", "/py-fresh", "componentize-py guest")):
        report.row("R5", f"in process: µs per request, pooled and with request isolation ({label})",
                   f"pooled {Series(us[pooled]).fmt(1)}, request {Series(us[isolated]).fmt(1)}", "(reported)",
                   None)
    if "/wasi" in us:
        report.row("R7", "in process: µs per request, wasi:http route - native route",
                   per_repeat(us["/wasi"], us["/native"], "-").fmt(1, " µs"), "(reported)", None)

    rows = ["| route | served by | µs per request | share of guest calls run inline |", "|---|---|---|---|"]
    inline = asgi["inline_share"]
    for route, values in us.items():
        share = inline.get(route)
        rows.append(f"| `{route.split()[0]}` | {SERVED[route]} | {Series(values).fmt(1)} | "
                    f"{'-' if share is None else f'{share:.0%}'} |")
    hop = per_repeat(us["/wasm no-inline"], us["/wasm"], "-")
    bd = asgi["breakdown"]
    lines = [*rows, "",
             f"`python -m benchmarks.bench_asgi REGISTRY`: the ASGI app `serve` runs (`build_app(registry, "
             f"\"benchmarks.apps:app\")`), awaited directly with a prebuilt GET scope, so no socket, HTTP parser or "
             f"uvicorn is involved; {asgi['requests']:,} requests per route (a tenth of that for `/py-fresh`) in each "
             f"of {asgi['repeats']} repeats, made of {asgi['chunks']} rounds of every route in turn whose median is "
             "the repeat's value (a burst of other work spoils one round, not the repeat); median (min to max) "
             "over repeats. "
             f"The thread hop that measured-short calls avoid by running inline: {hop.fmt(1, ' µs')} per request "
             "(one request at a time, so this is its latency: queue, thread wake-up, `call_soon_threadsafe`, loop "
             "wake-up)."
             + (" A fresh componentize-py instance takes about a millisecond, longer than the inline policy's "
                "budget, so `/py-fresh` calls run on worker threads and pay that hop too."
                if inline.get("/py-fresh", 1.0) < 0.5 else ""), "",
             "**Request isolation in process** (`Generation.call` from a plain thread, no ASGI around it; the same "
             "build deployed twice, the second with `isolation=\"request\"`):", "",
             "| guest | pooled: µs per call | request isolation: µs per call | fresh instance (difference) |",
             "|---|---|---|---|",
             f"| small WAT guest | {Series(calls['pooled']).fmt(1)} | {Series(calls['fresh']).fmt(1)} | "
             f"{fresh['small'].fmt(1)} |",
             f"| componentize-py guest | {Series(calls['py_pooled']).fmt(1)} | {Series(calls['py_fresh']).fmt(1)} | "
             f"{fresh['python'].fmt(1)} |", "",
             "Where a fresh request's time goes (means over "
             "consecutive fresh requests; minor page faults counted with `getrusage`):", "",
             "| guest | instantiate | the call | drop the instance | a warm pooled call, for comparison |",
             "|---|---|---|---|---|"]
    for key, label in (("small", "small WAT guest"), ("python", "componentize-py guest")):
        b = bd[key]
        lines.append(" | ".join([f"| {label}", *(f"{b[p + '_us']:,.1f} µs, {b[p + '_faults']:,.0f} faults"
                                                  for p in ("instantiate", "call", "drop", "warm_call"))]) + " |")
    if wasi:
        serve, bridge = Series(wasi["serve"]), Series(wasi["asgi"])
        lines += ["", "**wasi:http in process** (`python -m benchmarks.bench_wasi_http`): one request of the WAT "
                  f"wasi:http guest through `Slot.native.serve` (a buffered exchange, the guest and the wasi:http "
                  f"host only) costs {serve.fmt(1, ' µs')}; through `serve_asgi` (the bridge the middleware uses, "
                  f"inline) {bridge.fmt(1, ' µs')}."]
    report.section("R3, R5, R7 in process: the served app without an HTTP server", *lines)
    return fresh


# -- over HTTP -------------------------------------------------------------------------------------------------

def over_http(report: Report, comp: Comparison, settings: Any, fresh: dict[str, Series] | None,
              asgi: dict[str, Any] | None, serve: list[float] | None) -> None:
    """R4, R7 and the HTTP half of R5, from one server with every route, measured in turn in each repeat.

    ``fresh``, ``asgi`` and ``serve`` (the wasi:http guest call's µs) come from the in-process step when it ran:
    they explain the ratios."""
    r = comp.routes
    native_us = 1e6 / r["/native"].rps.median
    ratio = comp.ratio("/wasm", "/native")
    in_proc = ""
    if asgi is not None:
        m = {k: Series(v).median for k, v in asgi["asgi_us"].items()}
        in_proc = (f"; in process the wasm route costs {m['/wasm'] - m['/native']:+.1f} µs against the native "
                   "route's")
    report.row("R4", "over HTTP: wasm route rps ÷ native route rps (trivial guest)", ratio.fmt(3), "≥ 0.95",
               ratio.median >= 0.95,
               f"at the native route's rps a request takes {native_us:.0f} µs (1/rps), so 0.95 leaves "
               f"{native_us / 0.95 - native_us:.0f} µs; the wasm route added "
               f"{comp.added_us('/wasm', '/native').median:.0f} µs per request{in_proc}")
    if "/wasi" in r:
        wasi = comp.ratio("/wasi", "/native")
        allowed = native_us / 0.85 - native_us
        added = comp.added_us("/wasi", "/native").median
        extra = ""
        if asgi is not None and serve is not None:
            m = {k: Series(v).median for k, v in asgi["asgi_us"].items()}
            in_proc = m["/wasi"] - m["/native"]
            extra = (f", {added / in_proc:.1f}x what it adds in process ({in_proc:.0f} µs; there one wasi:http "
                     f"guest call, `Slot.native.serve`, costs {Series(serve).median:.1f} µs against "
                     f"{asgi['breakdown']['small']['warm_call_us']:.1f} µs for a trivial airssys:web call)")
        report.row("R7", "over HTTP: wasi:http route rps ÷ native route rps", wasi.fmt(3), "≥ 0.85",
                   wasi.median >= 0.85,
                   f"0.85 allows {allowed:.0f} µs per request; the wasi:http route added {added:.0f} µs{extra}")
    for pooled, isolated, label in (("/wasm", "/wasm-fresh", "small WAT guest"),
                                    ("/py", "/py-fresh", "componentize-py guest")):
        if isolated in r:
            per = {p: Series([1e6 / x for x in r[p].rps.values]).median for p in (pooled, isolated)}
            report.row("R5", f"over HTTP: rps with request isolation ÷ pooled ({label})",
                       f"{comp.ratio(isolated, pooled).fmt(3)}; µs per request (1/rps): pooled {per[pooled]:,.0f}, "
                       f"request {per[isolated]:,.0f}", "(reported)", None)
    lines = ["| route | served by | rps | 1/rps (µs) | server CPU (share of a core) | wrk CPU |",
             "|---|---|---|---|---|---|"]
    for path, st in r.items():
        per = Series([1e6 / x for x in st.rps.values])
        lines.append(f"| `{path}` | {SERVED[path]} | {st.rps.fmt()} | {per.fmt(1)} | "
                     f"{st.server_cpu.median:.0%} | {st.wrk_cpu.median:.0%} |")
    errors = sum(x.errors for x in r.values())
    lines += ["", f"Each route: {settings.repeats} runs of `{comp.command}` (1 wrk thread, {settings.connections} "
              f"connections, {settings.seconds:g} s), the routes in turn within each repeat, after a "
              f"{settings.warmup:g} s warm-up each; median (min to max) over repeats. One `airssys-web serve "
              "--app benchmarks.apps:app` process (1 uvicorn worker) serves every route; its one event loop is the "
              "bottleneck, so 1/rps is about what one request costs it. Ratios are per repeat. Socket errors or "
              f"non-2xx answers: {errors}."]
    if fresh is not None and "/py-fresh" in r:
        lines += ["", *isolation_advice(comp, fresh, asgi)]
    report.section("R4, R5, R7 over HTTP: one server, wasm routes next to the native route", *lines)


def isolation_advice(comp: Comparison, fresh: dict[str, Series], asgi: dict[str, Any] | None) -> list[str]:
    """Both isolation modes side by side, per request, for the choice of the default (and which default the
    figures support, and why, written from them)."""
    small = comp.ratio("/wasm-fresh", "/wasm").median
    py = comp.ratio("/py-fresh", "/py").median
    cheap = fresh["small"].median <= 20 and fresh["python"].median <= 300 and min(small, py) >= 0.95
    verdict = ("the figures support making `request` the default: a fresh instance costs little for both "
               "kinds of guest" if cheap else
               "the figures support keeping `pooled` the default, with `request` opt-in per component "
               "(`deploy --isolation request`) where nothing a request leaves in memory may reach the next")
    r = comp.routes

    def per(path: str) -> str:
        return Series([1e6 / x for x in r[path].rps.values]).fmt(0)

    def proc(path: str) -> str:
        return Series(asgi["asgi_us"][path]).fmt(1) if asgi is not None and path in asgi["asgi_us"] else "-"

    rows = ["**Default isolation: both modes side by side, µs per request** (median (min to max); in process: the "
            "ASGI app without a server, from the in-process section; over HTTP: 1/rps of this section's runs):", "",
            "| guest | pooled, in process | request, in process | pooled, over HTTP | request, over HTTP | "
            "request keeps, of the pooled rps |", "|---|---|---|---|---|---|"]
    for pooled, isolated, label, ratio in (("/wasm", "/wasm-fresh", "small WAT guest", small),
                                           ("/py", "/py-fresh", "componentize-py guest", py)):
        rows.append(f"| {label} | {proc(pooled)} | {proc(isolated)} | {per(pooled)} | {per(isolated)} | "
                    f"{ratio:.0%} |")
    return [*rows, "", f"In process a fresh instance costs {fresh['small'].median:.1f} µs (small WAT guest) and "
            f"{fresh['python'].median:,.0f} µs (componentize-py guest) more than a pooled call. So {verdict}."]
