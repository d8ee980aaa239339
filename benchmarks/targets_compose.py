"""C1 and C2 of issue #16: the added cost of one middleware stage and of one internal call, per request, side by
side with a bare route, in process (``bench_compose``). No target is set: the figures are reported with what they
are made of (the worker-thread hop a bare route avoids, and the guest work of the stage or of the call).
"""

from __future__ import annotations

from pathlib import Path

from . import bench_compose, bench_process
from .harness import Series
from .report import Report
from .targets_speed import per_repeat


def composition(report: Report, hello: bytes, workdir: Path, quick: bool) -> None:
    registry = bench_compose.make_compose_registry(workdir / "compose-registry", hello)
    res = bench_process.child("benchmarks.bench_compose", str(registry), "--repeats", "3" if quick else "7",
                              "--requests", "500" if quick else "2000")
    us: dict[str, list[float]] = res["asgi_us"]
    calls: dict[str, list[float]] = res["call_us"]
    bare = Series(us["bare"])
    hop = per_repeat(us["bare on a thread"], us["bare"], "-")
    parts = {}
    for pid, key, what in (("C1", "staged", "one middleware stage (a pipeline of one stage)"),
                           ("C2", "caller", "one internal call (`http://NAME.airssys.internal/`)")):
        added = per_repeat(us[key], us["bare"], "-")
        own = per_repeat(calls[key], calls["bare"], "-")
        parts[key] = (added, own)
        report.row(pid, f"in process: µs per request added by {what}, against the bare WAT route",
                   f"+{added.fmt(1, ' µs')}: {Series(us[key]).median:.1f} µs against {bare.median:.1f} µs",
                   "(reported)", None)
    rows = ["| route | what serves it | µs per request (ASGI) | µs per call from a plain thread (no ASGI) |",
            "|---|---|---|---|",
            f"| `/bare` | the small WAT guest alone (inline on the event loop) | {bare.fmt(1)} | "
            f"{Series(calls['bare']).fmt(1)} |",
            f"| `/bare`, `inline=False` | the same, every call on a worker thread | "
            f"{Series(us['bare on a thread']).fmt(1)} | - |",
            f"| `/staged` | the same guest behind one stage (tests/guests/stage.wat) | {Series(us['staged']).fmt(1)} "
            f"| {Series(calls['staged']).fmt(1)} (`Chain.call`) |",
            f"| `/caller` | tests/guests/caller.wat, one internal call to `bare` | {Series(us['caller']).fmt(1)} | "
            f"{Series(calls['caller']).fmt(1)} |", "",
            "| id | added per request (ASGI) | of which: the worker-thread hop | of which: the rest | the guest "
            "work alone (plain thread) |", "|---|---|---|---|---|"]
    for pid, key, label in (("C1", "staged", "one stage"), ("C2", "caller", "one internal call")):
        added, own = parts[key]
        if key == "staged":  # a chain of short stages runs inline, as the bare route does: no hop
            hop_text, rest = "none (the chain runs inline)", added
        else:
            hop_text, rest = hop.fmt(1, " µs"), per_repeat(us[key], us["bare on a thread"], "-")
        rows.append(f"| {pid}: {label} | {added.fmt(1, ' µs')} | {hop_text} | {rest.fmt(1, ' µs')} | "
                    f"{own.fmt(1, ' µs')} |")
    rows += ["", f"`python -m benchmarks.bench_compose REGISTRY`: the app `serve` runs, awaited with a prebuilt GET "
             f"scope (no socket, HTTP parser or uvicorn), {res['requests']:,} requests per route in each of "
             f"{res['repeats']} repeats of {res['chunks']} rounds (every route in turn; a repeat's value is the "
             "median of its rounds); differences per repeat, median (min to max). All three routes answer the small "
             "WAT guest's `Hello, world!`.", "",
             "**What the added cost is made of.** A chain of stages runs inline on the event loop as the bare "
             "route does, when each of its elements could (measured short, no grant that may block, a warm "
             "instance of each free; runtime/chain.py): what a stage adds is its guest work. A guest granted "
             "anything that may block (`--allow-component` grants a fetch) never runs on the event loop, so an "
             "internal call takes the worker-thread hop the bare route avoids (the hop: `/bare` with "
             "`inline=False` minus `/bare`: queue, thread wake-up, `call_soon_threadsafe`, loop wake-up), and "
             "its rest is guest work on that thread. The last column is the guest work alone (a plain thread, "
             "no ASGI). For the stage: its own "
             "instance's call (it appends a request header, calls its imported `handler`, appends a response "
             "header), where the host's `next` callback (Python, runtime/chain.py) checks the body limit and "
             "calls the route's guest, the request and the answer copied out of one sandbox and into the other. "
             "For the internal call: the caller's `outbound.fetch` host import, handled in Python "
             "(lifecycle/services.py, lifecycle/internal.py): the internal URL parsed and checked against the "
             "grant, headers filtered, the callee's active version looked up and entered, its guest called in "
             "the same thread, the request and the answer copied across both sandboxes. More stages or nested "
             "calls add their guest work each; an internal call's hop is paid once per request."]
    report.section("C1, C2: composition in process, one stage and one internal call against a bare route", *rows)
