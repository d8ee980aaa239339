"""Targets R1 and R2 of the runtime-core issue: bodies through guests, over HTTP, checked byte for byte.

R1: a 1 MiB echo by the componentize-py guest against the native Starlette echo on the same server (target:
≤ max(10 ms, 2 x native)). R2: a 16 MiB echo and a 64 MiB response through the WAT, Python and JavaScript guests,
each answer verified by its sha256 (target: intact), with the native routes' times as the reference.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from .bench_http import Transfer, TransferResult, transfers
from .fixtures import Guests, MiB
from .harness import Series
from .report import Report

BLOCK = bytes(range(256))
#: label -> route prefix of the guests (and the native twin) that answer .../echo and .../big
GUEST_ROUTES = {"native": "/native", "WAT": "", "Python": "/py", "JavaScript": "/js"}


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _echo(label: str, body: bytes) -> Transfer:
    path = {"native": "/native-echo", "WAT": "/echo"}.get(label, GUEST_ROUTES[label] + "/echo")
    return Transfer(label, path, body, _sha(body))


def _big(label: str, n: int) -> Transfer:
    if label == "WAT":  # tests/guests/big.wat answers 64 MiB of "x", whatever is asked
        return Transfer(label, "/big", None, _sha(b"x" * n))
    path = "/native-big" if label == "native" else GUEST_ROUTES[label] + "/big"
    return Transfer(label, f"{path}?n={n}", None, _sha(BLOCK * (n // 256)))


def growth_per_response(wasm: bytes, artifacts: Path, *, responses: int = 50, size: int = MiB) -> float:
    """Bytes a pooled instance's linear memory grows by per ``size``-byte response (``.../big``), averaged over
    ``responses`` calls on one instance after one warm-up call (1 GiB cap, so the growth is never cut short)."""
    from airssys_web.runtime.artifacts import ArtifactCache, sha256_hex
    from airssys_web.runtime.engine import Runtime
    from airssys_web.runtime.generation import Generation
    from airssys_web.runtime.imports import HostContext
    from airssys_web.runtime.limits import Limits

    runtime = Runtime()
    component = ArtifactCache(artifacts, runtime).get(sha256_hex(wasm), wasm)
    gen = Generation(component, HostContext(component="growth", version="1.0.0"), Limits(memory=1024 * MiB),
                     runtime=runtime)
    slot = gen.pool.materialize(gen.pool.acquire_blocking(5))
    try:
        slot.call("GET", "/x/big", f"n={size}", [], b"")
        before = slot.native.memory_size or 0
        for _ in range(responses):
            slot.call("GET", "/x/big", f"n={size}", [], b"")
        return ((slot.native.memory_size or 0) - before) / responses
    finally:
        gen.pool.release(slot)
        gen.close()
        runtime.close()


def _ms(result: TransferResult) -> Series:
    return Series([v * 1e3 for v in result.seconds.values])


def bodies(report: Report, registry: Path, guests: Guests, quick: bool) -> None:
    artifacts = registry / "artifacts"
    labels = ["native", "WAT", "Python"] + (["JavaScript"] if guests.js is not None else [])
    one = BLOCK * (MiB // 256)
    r1 = transfers(registry, [_echo(x, one) for x in labels], repeats=3 if quick else 9)
    native, py = _ms(r1["native"]), _ms(r1["Python"])
    bound = max(10.0, 2 * native.median)
    report.row("R1", "1 MiB echo over HTTP, Python guest (componentize-py)",
               f"{py.fmt(1, ' ms')}; native {native.fmt(1, ' ms')}", f"≤ max(10 ms, 2 x native) = {bound:.1f} ms",
               r1["Python"].intact and py.median <= bound,
               "; ".join(r1["Python"].failures) or f"{py.median - native.median:.1f} ms more than the native echo")
    report.row("R1", "1 MiB echo, Python guest ÷ native (per repeat)",
               Series([a / b for a, b in zip(py.values, native.values, strict=True)]).fmt(2), "(reported)", None)

    big = 16 * MiB
    cases = [_echo(x, BLOCK * (big // 256)) for x in labels] + [_big(x, 64 * MiB) for x in labels]
    # the labels repeat between the two kinds of case: key them apart
    cases = [Transfer(f"{c.label} {'echo' if c.body is not None else 'big'}", c.path, c.body, c.expect)
             for c in cases]
    r2 = transfers(registry, cases, repeats=1 if quick else 3)
    for label in labels[1:]:
        echo, resp = r2[f"{label} echo"], r2[f"{label} big"]
        failures = echo.failures + resp.failures
        report.row("R2", f"16 MiB echo and 64 MiB response intact (sha256), {label} guest",
                   f"{_ms(echo).median:,.0f} ms and {_ms(resp).median:,.0f} ms" if not failures else "broken",
                   "intact", not failures, "; ".join(failures))
    if guests.js is None:
        report.notes.append(f"R2 without the JavaScript guest: {guests.js_missing}")
    growth = {"Python": growth_per_response(guests.python, artifacts)}
    if guests.js is not None:
        growth["JavaScript"] = growth_per_response(guests.js, artifacts)
    for label, grown in growth.items():
        report.row("R2", f"linear memory a pooled {label} instance keeps per 1 MiB response",
                   f"{grown / MiB:.2f} MiB", "(reported)", None)

    lines = ["| guest | 1 MiB echo | 16 MiB echo | 64 MiB response | answers checked (sha256) |",
             "|---|---|---|---|---|"]
    for label in labels:
        cells = [r1[label], r2[f"{label} echo"], r2[f"{label} big"]]
        ok = all(c.intact for c in cells)
        lines.append(f"| {label} | " + " | ".join(_ms(c).fmt(1, " ms") if c.seconds.values else "failed"
                                                   for c in cells) + f" | {'all intact' if ok else 'FAILED'} |")
    lines += ["", "Time per round trip over HTTP (httpx client, one request at a time, keep-alive) against one "
              "`airssys-web serve` process: the request body up and the answer back, read whole and hashed "
              "outside the timing; median (min to max) over repeats, the guests in turn within each repeat, "
              "after a warm-up round. Routes: `/native-echo` and `/native-big` (Starlette, benchmarks/apps.py), "
              "`/echo` and `/big` (tests/guests/echo.wat and big.wat, 64 MiB of `x`), `/py/echo`, `/py/big` "
              "(benchmarks/guests/py_hello), `/js/echo`, `/js/big` (benchmarks/guests/js_echo). The guests' "
              "routes allow 32 MiB request bodies; memory limits are the default 256 MiB, except 1 GiB for "
              "`/py`.", "",
              "**Why `/py` has 1 GiB.** A pooled componentize-py instance keeps about each response body it "
              f"returned in its linear memory: {growth['Python'] / MiB:.2f} MiB per 1 MiB response here (the "
              "JavaScript guest: "
              + (f"{growth['JavaScript'] / MiB:.2f} MiB" if "JavaScript" in growth else "not measured") + ", "
              "measured by `growth_per_response` in benchmarks/targets_bodies.py). Linear memory never shrinks, "
              "so under the default 256 MiB cap a pooled Python instance that has returned a 64 MiB response "
              "and a 16 MiB echo fails on its next 64 MiB response (a trap: 500, and the instance is replaced). "
              "wasmtime 48 runs the export's post-return itself (`TypedFunc::call`), so the growth "
              "is on the guest's side (componentize-py's lowering of the returned body)."]
    report.section("R1, R2: bodies through guests over HTTP", *lines)
