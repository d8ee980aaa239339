"""How long the Rust extension takes to build: the first build (an empty target directory) and warm rebuilds.

    python -m benchmarks --build-times        # measures, then rewrites the "Build" block of BENCHMARKS.md

Not part of an ordinary ``make bench``: the first build takes 8 to 15 minutes on a 2-core machine and would
compete for the cores with every other measurement. What it times, from the repository root:

1. the **first build**: ``cargo build --release --features extension-module`` with ``CARGO_TARGET_DIR`` set to a
   new, empty temporary directory (every dependency, wasmtime and cranelift included, is compiled; crate sources
   come from cargo's download cache, so the time is compilation, not network);
2. a **no-op rebuild**: the same command again, nothing changed;
3. a **rebuild after an edit** of the extension's own crate (``src/lib.rs`` touched): only our crate recompiles,
   which is what a developer waits for after changing ``src/``. The file's mtime is restored afterwards, so
   ``make`` does not think the extension changed.

The temporary target directory is deleted afterwards. Wall time and the CPU time of cargo and its children are
both reported: their ratio is how many cores the build kept busy.
"""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from .harness import REPO

COMMAND = ["cargo", "build", "--release", "--features", "extension-module"]


@dataclass(frozen=True)
class BuildTime:
    what: str
    wall_s: float
    cpu_s: float


def _timed(what: str, target: Path) -> BuildTime:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(COMMAND, cwd=REPO, env=dict(os.environ, CARGO_TARGET_DIR=str(target)),
                          capture_output=True, text=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(COMMAND)} failed:\n{done.stderr[-3000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    print(f"  {what}: {wall:.1f} s wall, {cpu:.1f} s CPU", flush=True)
    return BuildTime(what, wall, cpu)


def measure(directory: Path | None = None) -> list[BuildTime]:
    """The three builds above, in a fresh target directory (``directory``, default: a temporary one)."""
    target = Path(directory or tempfile.mkdtemp(prefix="airssys-cold-target-"))
    if target.exists() and any(target.iterdir()):
        raise RuntimeError(f"{target} is not empty: the first build needs an empty target directory")
    lib = REPO / "src" / "lib.rs"
    stat = lib.stat()
    print(f"building the extension from scratch in {target} (8 to 15 minutes on 2 cores) ...", flush=True)
    try:
        first = _timed("first build (empty target directory)", target)
        noop = _timed("rebuild, nothing changed", target)
        lib.touch()
        edited = _timed("rebuild after an edit of src/lib.rs", target)
    finally:
        os.utime(lib, ns=(stat.st_atime_ns, stat.st_mtime_ns))
        shutil.rmtree(target, ignore_errors=True)
    return [first, noop, edited]


def section(times: list[BuildTime], host: str, date: str) -> list[str]:
    """The Markdown of the "Build" block."""
    rustc = subprocess.run(["rustc", "--version"], capture_output=True, text=True).stdout.strip()
    lines = ["## Build", "",
             f"Measured once by `python -m benchmarks --build-times` on {date}, not in every `make bench`: {host}; "
             f"{rustc}. Other work may have shared the cores, as in every figure of this file.", "",
             "| build of the Rust extension (`airssys_web._native`) | wall time | CPU time (cargo and rustc) |",
             "|---|---|---|"]
    lines += [f"| {t.what} | {_minutes(t.wall_s)} | {_minutes(t.cpu_s)} |" for t in times]
    lines += ["", f"Each is `{' '.join(COMMAND)}` from the repository root with `CARGO_TARGET_DIR` set to a new "
              "temporary directory (deleted afterwards); crate sources came from cargo's download cache, so the "
              "first build is compilation only (wasmtime, cranelift, wasmtime-wasi(-http), tokio, pyo3 and our "
              "crate). `make` keeps the target directory in `~/.cache/airssys-web/target`, shared by every "
              "clone on the machine, so only a machine's very first `make run` or `make test` pays the first "
              "build; after an edit of `src/` it pays the last row (plus `pip install -e`, which packages the "
              "library)."]
    return lines


def _minutes(seconds: float) -> str:
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min ({seconds:,.0f} s)"
