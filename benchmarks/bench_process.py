"""Per-process measurements, each in a fresh interpreter: server boot (P5) and memory per pooled instance (R6).

    python -m benchmarks.bench_process boot REGISTRY      # prints JSON
    python -m benchmarks.bench_process memory WASM ARTIFACTS N     # prints JSON

A fresh interpreter per measurement, because both are about a process's state: what boot costs from nothing,
and how much memory instances add to a process that holds nothing else.
"""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from .harness import REPO, free_port, serve_command, wait_ready


def child(module: str, *args: str) -> dict[str, Any]:
    """Run ``python -m module *args`` in a fresh interpreter; its last line of output is JSON."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p))
    done = subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, cwd=REPO, env=env,
                          timeout=1200)
    if done.returncode != 0:
        raise RuntimeError(f"{module} {' '.join(args)} failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


# -- P5: boot ------------------------------------------------------------------------------------------------------

def boot_in_process(registry: str) -> dict[str, Any]:
    """Import, then load and warm every active deployment (what the lifespan startup does), counting compiles."""
    started = time.perf_counter()
    from airssys_web.lifecycle.host import AirssysHost

    imported = time.perf_counter()
    host = AirssysHost(registry)
    host.start(watch=False)
    booted = time.perf_counter()
    result = {"import_s": imported - started, "host_start_s": booted - imported,
              "generations": len(host.generations()), "compilations": host.artifacts.compilations}
    host.close()
    return result


def measure_boot(registry: Path, repeats: int = 3) -> dict[str, Any]:
    """Host start in fresh interpreters, and ``serve`` from exec to its first 200 on a component route."""
    runs = [child("benchmarks.bench_process", "boot", str(registry)) for _ in range(repeats)]
    serve_times = []
    for _ in range(repeats):
        port = free_port()
        env = dict(os.environ, PYTHONPATH=str(REPO))
        env.pop("AIRSSYS_SECRET", None)
        proc = subprocess.Popen(serve_command(registry, port, app=None), env=env, cwd=REPO,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            serve_times.append(wait_ready(f"http://127.0.0.1:{port}/c0", proc, 120))
        finally:
            proc.terminate()
            proc.wait(30)
    return {"runs": runs, "serve_first_response_s": serve_times}


# -- R6: memory per pooled instance -------------------------------------------------------------------------------

#: the ``/proc/self/smaps_rollup`` fields read, in KiB
FIELDS = ("Rss", "Pss", "Private_Clean", "Private_Dirty")


def _memory_kib() -> dict[str, int]:
    """This process's memory in KiB: resident (Rss), proportional (Pss), private clean and dirty pages, and USS
    (private clean + dirty: what no other mapping shares)."""
    out = dict.fromkeys(FIELDS, 0)
    for line in Path("/proc/self/smaps_rollup").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in out:
            out[key] = int(rest.split()[0])
    out["Uss"] = out["Private_Clean"] + out["Private_Dirty"]
    return out


def memory_in_process(wasm_path: str, artifacts: str, count: int) -> dict[str, Any]:
    """Memory a pool adds per instance: after warming ``count`` instances, and after each served one request.

    The component is loaded from the registry's compiled artifacts, as a server loads it. One instance is made
    and called first, so one-time costs (mapping the code, the linker, the first Store) are not counted."""
    from airssys_web.runtime.artifacts import ArtifactCache, sha256_hex
    from airssys_web.runtime.engine import Runtime
    from airssys_web.runtime.generation import Generation
    from airssys_web.runtime.imports import HostContext
    from airssys_web.runtime.limits import Limits

    wasm = Path(wasm_path).read_bytes()
    runtime = Runtime()
    component = ArtifactCache(artifacts, runtime).get(sha256_hex(wasm), wasm)
    limits = Limits(min_instances=0, max_instances=count + 1)
    gen = Generation(component, HostContext(component="m", version="1.0.0"), limits, runtime=runtime)
    gen.pool.grow_ahead = 0
    gen.pool.warm(1)
    first = gen.pool.try_acquire()
    assert first is not None
    first.call("GET", "/", "", [("host", "bench")], b"")
    gen.pool.release(first)
    gc.collect()
    base = _memory_kib()
    gen.pool.warm(count)
    gc.collect()
    warmed = _memory_kib()
    slots = [gen.pool.try_acquire() for _ in range(gen.pool.idle)]
    held = [s for s in slots if s is not None]
    for s in held:
        s.call("GET", "/", "", [("host", "bench")], b"")
    linear = held[-1].native.memory_size or 0
    for s in held:
        gen.pool.release(s)
    gc.collect()
    called = _memory_kib()
    gen.close()
    runtime.close()
    keys = ("Rss", "Pss", "Uss", "Private_Dirty")
    return {"count": count, "fresh": {k: (warmed[k] - base[k]) / count for k in keys},
            "after_a_call": {k: (called[k] - base[k]) / count for k in keys},
            "linear_memory_kib": linear / 1024, "wasm_kib": len(wasm) / 1024}


def measure_memory(wasm: bytes, artifacts: Path, count: int, workdir: Path, name: str) -> dict[str, Any]:
    path = workdir / f"{name}.wasm"
    path.write_bytes(wasm)
    return child("benchmarks.bench_process", "memory", str(path), str(artifacts), str(count))


# -- the served app without a server (bench_asgi, in its own interpreter) --------------------------------------

def measure_asgi(registry: Path, *, repeats: int, requests: int) -> dict[str, Any]:
    return child("benchmarks.bench_asgi", str(registry), "--repeats", str(repeats), "--requests", str(requests))


if __name__ == "__main__":
    command = sys.argv[1]
    if command == "boot":
        out = boot_in_process(sys.argv[2])
    elif command == "memory":
        out = memory_in_process(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    else:
        raise SystemExit(f"unknown command {command!r}: use boot or memory")
    print(json.dumps(out))
