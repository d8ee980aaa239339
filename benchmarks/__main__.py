"""``make bench`` = ``python -m benchmarks``: the runtime-core targets, side by side in one run, into BENCHMARKS.md.

    python -m benchmarks [--quick] [--only R1,R4] [--output BENCHMARKS.md]
    python -m benchmarks --build-times          # the Rust extension's build times instead (8 to 15 minutes)

Only the ``perf`` block of BENCHMARKS.md (between its markers) is rewritten, and ``--build-times`` rewrites only the
``build`` block; the rest of the file stays. Ids: R1 to R7 (the runtime-core issue's targets), C1 and C2 (what one
middleware stage and one internal call add, issue #16), P5 (boot), P6 (2 workers ÷ 1), STALL (the event loop under
a CPU-bound guest), SWAP (bench_swap), CAPS (bench_capabilities), OBS (what observability adds, issue #17) and W1
(the WSGI adapter, issue #18).
Nothing here asserts a timing: a missed target is reported with what limits it, never raised.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from . import (
    bench_build,
    bench_http,
    bench_process,
    targets_adapters,
    targets_bodies,
    targets_compose,
    targets_ops,
    targets_speed,
)
from .fixtures import Guests, build_guests, make_registry
from .harness import REPO, Series, ensure_wrk, wrk_version
from .report import Report, host, machine, write_block

#: the routes one server serves for R4, R5 and R7, measured in turn within each repeat
HTTP_ROUTES = ["/native", "/wasm", "/wasm-fresh", "/py", "/py-fresh", "/wasi"]


@dataclass
class Run:
    """What the steps of one run share: the report, the guests and their registry, and the in-process results
    that the HTTP step quotes (it explains its ratios with them)."""

    report: Report
    quick: bool
    guests: Guests
    registry: Path
    workdir: Path
    wrk: str | None
    settings: bench_http.Settings
    asgi: dict[str, Any] | None = None
    wasi: dict[str, list[float]] | None = None
    fresh: dict[str, Series] | None = None

    @property
    def artifacts(self) -> Path:
        return self.registry / "artifacts"

    # -- the steps ---------------------------------------------------------------------------------------------
    def in_process(self) -> None:
        self.asgi = bench_process.measure_asgi(self.registry, repeats=3 if self.quick else 7,
                                               requests=500 if self.quick else 2000)
        self.wasi = bench_process.child("benchmarks.bench_wasi_http", "--json", "--repeats",
                                        "3" if self.quick else "5", "--requests", "1000" if self.quick else "5000")
        self.fresh = targets_speed.in_process(self.report, self.asgi, self.wasi)

    def composition(self) -> None:
        targets_compose.composition(self.report, self.guests.hello, self.workdir, self.quick)

    def over_http(self) -> None:
        assert self.wrk is not None
        comp = bench_http.compare_routes(self.wrk, self.registry, HTTP_ROUTES, self.settings)
        targets_speed.over_http(self.report, comp, self.settings, self.fresh, self.asgi,
                                self.wasi["serve"] if self.wasi else None)

    def bodies(self) -> None:
        targets_bodies.bodies(self.report, self.registry, self.guests, self.quick)

    def memory(self) -> None:
        targets_ops.memory(self.report, self.guests, self.artifacts, self.workdir, self.quick)

    def boot(self) -> None:
        targets_ops.boot(self.report, self.guests, self.workdir, self.quick)

    def workers(self) -> None:
        assert self.wrk is not None
        targets_ops.workers(self.report, self.wrk, self.registry, self.settings)

    def stall(self) -> None:
        assert self.wrk is not None
        targets_ops.stall(self.report, self.wrk, self.registry, self.settings)

    def swap(self) -> None:
        targets_ops.swap(self.report, self.quick)

    def capabilities(self) -> None:
        targets_ops.capabilities(self.report, self.quick)

    def observability(self) -> None:
        targets_adapters.observability(self.report, self.registry, self.quick)

    def wsgi(self) -> None:
        targets_adapters.wsgi(self.report, self.wrk, self.registry, self.settings)

    def steps(self) -> list[tuple[set[str], bool, Callable[[], None]]]:
        """(ids it reports, needs wrk, step), in running order: in process first, its results feed the HTTP
        step's explanations."""
        return [({"R3", "R5", "R7"}, False, self.in_process), ({"C1", "C2"}, False, self.composition),
                ({"R4", "R5", "R7"}, True, self.over_http),
                ({"R1", "R2"}, False, self.bodies), ({"R6"}, False, self.memory), ({"P5"}, False, self.boot),
                ({"P6"}, True, self.workers), ({"STALL"}, True, self.stall), ({"SWAP"}, False, self.swap),
                ({"CAPS"}, False, self.capabilities), ({"OBS"}, False, self.observability),
                ({"W1"}, False, self.wsgi)]


def perf_block(report: Report, started: float, wrk: str | None, quick: bool) -> list[str]:
    took = time.monotonic() - started
    return ["## Performance (the runtime-core targets)", "",
            f"Generated by `make bench` on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC in {took / 60:.1f} min"
            + (" (`--quick`: fewer and shorter runs, a smoke test)" if quick else "") + ". Machine:", "",
            *machine(), f"- load generator: {wrk_version(wrk) if wrk else 'wrk not available'}", "",
            *report.table(), "", *(f"- {n}" for n in report.notes), *([""] if report.notes else []),
            *report.details,
            "Reproduce: `make bench` (or `.venv/bin/python -m benchmarks [--quick] [--only R1,R4]`)."]


def build_times(output: Path) -> None:
    times = bench_build.measure()
    write_block(output, "build", bench_build.section(times, host(), f"{datetime.now(UTC):%Y-%m-%d}"))
    print(f"wrote the build block of {output}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer and shorter runs (a ~2-minute smoke test)")
    parser.add_argument("--only", default="", help="comma-separated ids, e.g. R1,R4 (default: all)")
    parser.add_argument("--output", type=Path, default=REPO / "BENCHMARKS.md")
    parser.add_argument("--build-times", action="store_true",
                        help="measure the Rust extension's first build and rebuilds instead (8 to 15 minutes)")
    args = parser.parse_args()
    if args.build_times:
        build_times(args.output)
        return
    only = {x.strip().upper() for x in args.only.split(",") if x.strip()}
    started = time.monotonic()
    report = Report()
    wrk = ensure_wrk(report.notes)
    print("building the benchmark guests (componentize-py and -qjs builds are cached in .cache/guests) ...",
          flush=True)
    guests = build_guests()
    with tempfile.TemporaryDirectory(prefix="airssys-bench-") as tmp:
        workdir = Path(tmp)
        run = Run(report, args.quick, guests, make_registry(workdir / "registry", guests), workdir, wrk,
                  bench_http.Settings(seconds=2, repeats=2, warmup=1) if args.quick else bench_http.Settings())
        for ids, needs_wrk, step in run.steps():
            if only and not ids & only:
                continue
            if needs_wrk and wrk is None:
                report.row("/".join(sorted(ids)), "skipped: wrk is not available", "-", "-", None)
                continue
            step()
    write_block(args.output, "perf", perf_block(report, started, wrk, args.quick))
    print(f"\nwrote {args.output} ({(time.monotonic() - started) / 60:.1f} min)")


if __name__ == "__main__":
    main()
