"""What running the server costs beyond one request: memory per instance (R6), boot (P5), 2 workers ÷ 1 (P6),
the event loop under a CPU-bound guest, swaps, and what capabilities cost a call.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from . import bench_capabilities, bench_http, bench_process, bench_swap
from .fixtures import Guests
from .harness import Series, WrkResult
from .report import Report


def memory(report: Report, guests: Guests, artifacts: Path, workdir: Path, quick: bool) -> None:
    """R6: private memory a pool adds per instance, after each instance served one request."""
    runs = 1 if quick else 3
    cases = [("small WAT guest", guests.hello, "hello", 50 if quick else 200, 64.0),
             ("componentize-py guest", guests.python, "python", 5 if quick else 20, 1024.0)]
    lines = ["| guest | instances | private dirty / instance, fresh | private dirty / instance after one request "
             "each | PSS / instance after | USS / instance after | RSS / instance after | linear memory of one "
             "instance |", "|---|---|---|---|---|---|---|---|"]
    for label, wasm, name, count, bound in cases:
        res = [bench_process.measure_memory(wasm, artifacts, count, workdir, name) for _ in range(runs)]

        def col(when: str, key: str, res: list[dict[str, Any]] = res) -> Series:
            return Series([r[when][key] for r in res])

        private = col("after_a_call", "Private_Dirty")
        linear = res[0]["linear_memory_kib"]
        report.row("R6", f"private memory per pooled instance after a request (private dirty pages), {label}",
                   private.fmt(0, " KiB"), f"≤ {bound:g} KiB" if bound < 1024 else "≤ 1 MiB",
                   private.median <= bound,
                   f"each instance writes {private.median:,.0f} KiB of pages (of its {linear / 1024:,.1f} MiB of "
                   f"linear memory; {col('fresh', 'Private_Dirty').median:,.0f} KiB of them before its first "
                   "request)")
        lines.append(f"| {label} | {count} | {col('fresh', 'Private_Dirty').fmt(0, ' KiB')} | "
                     f"{private.fmt(0, ' KiB')} | {col('after_a_call', 'Pss').fmt(0, ' KiB')} | "
                     f"{col('after_a_call', 'Uss').fmt(0, ' KiB')} | {col('after_a_call', 'Rss').fmt(0, ' KiB')} | "
                     f"{linear / 1024:,.1f} MiB |")
    lines += ["", f"`python -m benchmarks.bench_process memory` in a fresh interpreter, {runs} run(s) per guest: "
              "the growth of the process's memory (`/proc/self/smaps_rollup`) while a pool warms N more "
              "instances, divided by N, then again after each of them served one request. The component is "
              "loaded from the registry's compiled artifact, as a server loads it, and one instance was made and "
              "called first, so one-time costs (mapping the code, the linker) are not counted. Linear memories "
              "come from the pooling allocator and start from the component's memory image, mapped "
              "copy-on-write: a page becomes the instance's own only when written.", "",
              "**Which column is the target's.** The pages an instance wrote are private dirty pages; that is "
              "what each instance adds, and it equals the PSS growth (the physical memory the process gained). "
              "The USS growth (private clean + dirty) undercounts it: pages of the memory image that only the "
              "first instance had read were private to it, and count as shared once more instances map them "
              "(so for a few instances the USS growth can even be negative). The RSS growth counts each "
              "instance's mapping of the shared image pages again, though they are in memory once."]
    report.section("R6: memory per pooled instance", *lines)


def boot(report: Report, guests: Guests, workdir: Path, quick: bool) -> None:
    """P5: boot with 10 deployed components, from their compiled artifacts."""
    from airssys_web.guest.build import compile_wat, wat_response_component
    from airssys_web.lifecycle.deploy import deploy
    from airssys_web.lifecycle.registry import EmbeddedRegistry

    reg = workdir / "boot-registry"
    with EmbeddedRegistry(reg) as registry:
        for i in range(9):
            deploy(registry, f"c{i}", compile_wat(wat_response_component(f"component {i}\n")), version="1.0.0",
                   route=f"/c{i}")
        deploy(registry, "c9", guests.python, version="1.0.0", route="/c9")
    res = bench_process.measure_boot(reg, repeats=2 if quick else 5)
    starts = Series([r["host_start_s"] for r in res["runs"]])
    compiles = sum(r["compilations"] for r in res["runs"])
    gens = {r["generations"] for r in res["runs"]}
    report.row("P5", "boot with 10 deployed components (load + warm), compiled artifacts on disk",
               f"{Series([v * 1e3 for v in starts.values]).fmt(0, ' ms')}, {compiles} compilations", "≤ 1 s, none",
               starts.median <= 1.0 and compiles == 0 and gens == {10},
               f"{compiles} compilations, {gens} generations")
    report.section(
        "P5: server boot with 10 deployed components",
        "| measure | median (min to max) |", "|---|---|",
        f"| `AirssysHost.start()`: load 10 artifacts from disk, build 10 generations, warm one instance each "
        f"| {starts.fmt(3, ' s')} |",
        f"| `import airssys_web` before it | {Series([r['import_s'] for r in res['runs']]).fmt(3, ' s')} |",
        f"| `airssys-web serve` from exec to its first 200 from a component route | "
        f"{Series(res['serve_first_response_s']).fmt(3, ' s')} |",
        f"| compilations during boot (`ArtifactCache.compilations`, summed over runs) | {compiles} |",
        "",
        f"Nine small WAT components and the componentize-py guest ({len(guests.python) / 1e6:.0f} MB of wasm, "
        "the slow one to load and instantiate), deployed first (deploy compiles and stores the artifacts), then "
        "booted in fresh interpreters.")


def workers(report: Report, wrk: str, registry: Path, s: bench_http.Settings) -> None:
    """P6: rps of one server with 2 workers ÷ one with 1 worker, both running, measured in turn."""
    one, two, command = bench_http.workers_scaling(wrk, registry, s)
    ratio = Series([b / a for a, b in zip(one.rps.values, two.rps.values, strict=True)])
    cores = os.cpu_count() or 1
    used = two.server_cpu.median + two.wrk_cpu.median
    report.row("P6", "rps with 2 workers ÷ rps with 1 worker (small guest)", ratio.fmt(2), "≥ 1.7",
               ratio.median >= 1.7,
               f"with 2 workers the server used {two.server_cpu.median:.0%} of a core and wrk "
               f"{two.wrk_cpu.median:.0%}: {used:.0%} of the {cores} cores' {cores:.0%}; the rest went to other "
               "work on the machine")
    report.section(
        "P6: 2 workers ÷ 1 worker",
        "| workers | rps | server CPU (share of a core) | wrk CPU |", "|---|---|---|---|",
        *(f"| {n} | {st.rps.fmt()} | {st.server_cpu.fmt(2)} | {st.wrk_cpu.fmt(2)} |"
          for n, st in ((1, one), (2, two))), "",
        f"`{command}` against `airssys-web serve --workers 1` and `--workers 2`, both started before the first "
        "run and measured in turn within each repeat (ratios per repeat). Each worker has a listening socket of "
        "its own in one `SO_REUSEPORT` group, so the kernel spreads wrk's connections evenly. CPU shares are "
        "measured (`/proc` for the server and its workers, `getrusage` for wrk). "
        + (f"This machine has {cores} cores, and wrk, the registry watchers and anything else running share "
           "them with the two server processes, so the ratio is bounded by the CPU left over, not by the "
           "server alone." if cores <= 2 else ""))


def stall(report: Report, wrk: str, registry: Path, s: bench_http.Settings) -> None:
    """The event loop is not held by a CPU-bound guest: a native route's latency while /busy is saturated."""
    res = bench_http.stall(wrk, registry, s)

    def med(results: list[WrkResult], attr: str) -> float:
        return bench_http.median([getattr(r, attr) for r in results])

    a99, b99 = med(res.alone, "p99_ms"), med(res.loaded, "p99_ms")
    report.row("STALL", "native route p99 while a CPU-bound guest is saturated (median of runs)",
               f"{b99:.2f} ms (alone {a99:.2f} ms)", "flat", None)
    report.section(
        "No event-loop stall: a native route while a CPU-bound guest is saturated",
        "| native route (median of runs) | rps | p50 | p99 |", "|---|---|---|---|",
        f"| alone | {med(res.alone, 'rps'):,.0f} | {med(res.alone, 'p50_ms'):.2f} ms | {a99:.2f} ms |",
        f"| while `/busy` is saturated ({med(res.busy, 'rps'):,.0f} rps of ~4 ms guest calls, 8 connections "
        f"queueing for its one instance) | {med(res.loaded, 'rps'):,.0f} | {med(res.loaded, 'p50_ms'):.2f} ms | "
        f"{b99:.2f} ms |",
        "",
        f"{len(res.alone)} alternating pairs. Native: `{res.native_command}`; load: `{res.busy_command}`, "
        "concurrently. A guest call that runs long never runs on the event loop (the inline policy only inlines "
        "calls measured well below 1 ms), so the native route keeps answering. The busy route has one instance, "
        "so guest code keeps one core busy and the other is left to the event loop and the two wrk processes; "
        "what remains of the rise is that sharing. `tests/test_dispatch.py` checks the same property "
        "functionally.")


def swap(report: Report, quick: bool) -> None:
    res = bench_swap.measure(swaps=5 if quick else 20, seconds=2 if quick else 5)
    report.row("SWAP", "blue-green swap, admin answer (median)", f"{res.median_swap_s * 1e3:.0f} ms", "≤ 200 ms",
               res.median_swap_s <= 0.2, "see the Swap section")
    report.row("SWAP", "client p99 during swaps ÷ steady p99", f"{res.p99_ratio:.2f}", "≤ 2", res.p99_ratio <= 2,
               f"p99 {res.p99_swaps_s * 1e3:.1f} ms during swaps against {res.p99_steady_s * 1e3:.1f} ms steady: "
               "each swap validates, loads and warms a version on the same 2 cores as the clients")
    report.section("Swap (benchmarks/bench_swap.py)", *res.lines, "",
                   "A real server process, tiny WAT components, precompiled (see the script's docstring).")


def capabilities(report: Report, quick: bool) -> None:
    lines = bench_capabilities.measure(300 if quick else 2000)
    report.section("Capabilities (benchmarks/bench_capabilities.py)", *lines, "",
                   "In-process `Generation.call`, one thread, p50 and p99 of single calls (see the script's "
                   "docstring). A call includes the host function it names.")
