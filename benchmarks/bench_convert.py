"""Per-call cost of wasmtime-py's stock conversions vs airssys_web.runtime.convert (no assertions).

    .venv/bin/python benchmarks/bench_convert.py [--quick]

Uses the echo guest of tests/guests/convert/echo.wat (it returns the request's headers and body, plus three
headers of its own). "floor" is ``wasmtime_component_func_call`` alone with a prebuilt request and the result
freed unread: what wasmtime's C API itself costs (its per-element ``Val`` conversions included). "host
overhead" is a path's time above that floor; the issue's target is fast/stock overhead <= 0.12. A second table
times the host imports (tests/guests/convert/imports.wat) registered with ``add_func`` vs ``add_fast_func``.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import wasmtime
from wasmtime.component import Component, Func, Linker, Record

from airssys_web.runtime import convert

GUESTS = Path(__file__).resolve().parents[1] / "tests" / "guests" / "convert"
ECHO = GUESTS / "echo.wat"
IMPORTS = GUESTS / "imports.wat"
HEADERS = [("host", "example.test"), ("user-agent", "bench/1.0"), ("accept", "*/*")]


@dataclass
class _Request:
    method: str
    path: str
    query: str
    headers: list[tuple[str, str]]
    body: bytes


def _instance(engine: wasmtime.Engine, component: Component, linker: Linker | None = None
              ) -> tuple[wasmtime.Store, Func]:
    store = wasmtime.Store(engine)
    store.set_epoch_deadline(1 << 30)
    instance = (linker or Linker(engine)).instantiate(store, component)
    iface = instance.get_export_index(store, "airssys:web/handler@0.1.0")
    func = instance.get_func(store, instance.get_export_index(store, "handle", iface))
    assert func is not None
    return store, func


def _per_call(fn: Callable[[], object], budget: float, min_runs: int) -> float:
    """Best-of-batches seconds per call, spending about ``budget`` seconds."""
    fn()  # warm up
    best, spent, runs = float("inf"), 0.0, 0
    batch = 1
    while runs < min_runs or spent < budget:
        start = time.perf_counter()
        for _ in range(batch):
            fn()
        took = time.perf_counter() - start
        best = min(best, took / batch)
        spent += took
        runs += 1
        if took < 0.05:
            batch *= 2
    return best


def handle_rows(budget: float, *, sizes: tuple[tuple[str, int], ...] = (("trivial", 0), ("64 KiB", 64 << 10),
                                                                        ("1 MiB", 1 << 20)),
                skip_stock_from: int | None = None) -> list[tuple[str, float, float, float]]:
    """(label, floor, stock, fast) seconds per ``handle()`` call for each body size (stock is NaN when skipped).

    ``python -m benchmarks`` uses this for P2 (host overhead ratio) and for P3's in-process breakdown.
    """
    config = wasmtime.Config()
    config.epoch_interruption = True
    engine = wasmtime.Engine(config)
    component = Component(engine, wasmtime.wat2wasm(ECHO.read_text()))
    stock_store, stock_func = _instance(engine, component)
    fast_store, fast_func = _instance(engine, component)
    fast = convert.HandleCaller(fast_store, fast_func)
    rows = []
    for label, size in sizes:
        body = bytes(range(256)) * (size // 256)
        headers = HEADERS if size else []
        req = _Request("GET", "/bench", "q=1", headers, body)
        buf, base = convert._lower_request("GET", "/bench", "q=1", headers, body)

        def floor(buf: bytearray = buf, base: int = base) -> None:
            err = convert._func_call(fast._func_addr, fast_store._context(), base + 32, 1, base, 1)
            assert not err
            convert._val_delete(base)

        t_floor = _per_call(floor, budget, 3)
        t_fast = _per_call(lambda: fast("GET", "/bench", "q=1", headers, body), budget, 3)  # noqa: B023
        if skip_stock_from is not None and size >= skip_stock_from:
            t_stock = float("nan")
        else:
            t_stock = _per_call(lambda: stock_func(stock_store, req), budget, 2)  # noqa: B023
        rows.append((label, t_floor, t_stock, t_fast))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller time budget, skip the stock 1 MiB run")
    args = parser.parse_args()
    budget = 0.3 if args.quick else 1.5

    print(f"{'case':<10}{'floor':>12}{'stock':>12}{'fast':>12}{'fast/stock':>12}{'overhead ratio':>16}")
    for label, t_floor, t_stock, t_fast in handle_rows(budget, skip_stock_from=(1 << 20) if args.quick else None):
        ratio = t_fast / t_stock
        overhead = (t_fast - t_floor) / (t_stock - t_floor)
        print(f"{label:<10}{_fmt(t_floor):>12}{_fmt(t_stock):>12}{_fmt(t_fast):>12}{ratio:>12.3f}{overhead:>16.3f}")
    config = wasmtime.Config()
    config.epoch_interruption = True
    imports_table(wasmtime.Engine(config), budget)


def _import_linker(engine: wasmtime.Engine, *, fast: bool, fetch_body: bytes) -> Linker:
    """config.get and outbound.fetch (which echoes its arguments back, with a body of its own)."""
    answers: dict[str, Any] = {
        "config.get": lambda key: "value-of-" + key,
        "outbound.fetch": lambda method, url, headers, body: ("ok", (200, headers, fetch_body)),
        "kv.get": lambda key: ("ok", None), "kv.set": lambda key, value: ("ok", None),
        "kv.delete": lambda key: ("ok", None),
    }

    def stock(signature: str) -> Callable[..., Any]:
        def func(_store: Any, *args: Any) -> Any:
            answer = answers[signature](*args)
            if signature == "config.get":
                return answer
            value = answer[1]
            if signature == "outbound.fetch":
                rec = Record()
                rec.status, rec.headers, rec.body = value
                return rec
            return value

        return func

    linker = Linker(engine)
    with linker.root() as root:
        for iface, funcs in (("outbound", ("fetch",)), ("config", ("get",)), ("kv", ("get", "set", "delete"))):
            with root.add_instance(f"airssys:web/{iface}@0.1.0") as inst:
                for name in funcs:
                    signature = "outbound.fetch" if iface == "outbound" else f"{iface}.{name}"
                    if fast:
                        convert.add_fast_func(inst, name, answers[signature], signature)
                    else:
                        inst.add_func(name, stock(signature))
    return linker


def imports_table(engine: wasmtime.Engine, budget: float) -> None:
    """Host-import cost: the same guest and fast handle() call, with stock vs fast host functions."""
    component = Component(engine, wasmtime.wat2wasm(IMPORTS.read_text()))
    print(f"\n{'host import':<22}{'stock add_func':>16}{'add_fast_func':>16}{'fast/stock':>12}")
    for label, method, size in (("config.get", "@c", 0), ("outbound.fetch", "GET", 0),
                                ("outbound.fetch 64 KiB", "POST", 64 << 10)):
        body = bytes(range(256)) * (size // 256)
        headers = HEADERS if size else []
        times = []
        for fast in (False, True):
            call = convert.HandleCaller(*_instance(
                engine, component, _import_linker(engine, fast=fast, fetch_body=body)))
            times.append(_per_call(lambda: call(method, "/key", "", headers, body), budget, 3))  # noqa: B023
        print(f"{label:<22}{_fmt(times[0]):>16}{_fmt(times[1]):>16}{times[1] / times[0]:>12.3f}")


def _fmt(seconds: float) -> str:
    if seconds != seconds:
        return "skipped"
    return f"{seconds * 1e6:.1f} µs" if seconds < 1e-3 else f"{seconds * 1e3:.2f} ms"


if __name__ == "__main__":
    main()
