"""The process-wide wasmtime Engine and the epoch ticker that enforces deadlines.

One Engine per process: compiled artifacts are only valid for the Engine configuration that produced them, so the
configuration lives here and its fingerprint keys the on-disk compile cache.
"""

from __future__ import annotations

import hashlib
import threading
from importlib.metadata import version as _dist_version

import wasmtime

#: Wall-clock length of one epoch tick. Deadlines are rounded up to whole ticks.
TICK_SECONDS = 0.005

_ENGINE_SETTINGS: dict[str, object] = {
    "epoch_interruption": True,
    "cranelift_opt_level": "speed",
}

_lock = threading.Lock()
_engines: dict[bool, wasmtime.Engine] = {}
_tickers: dict[bool, EpochTicker] = {}


def wasmtime_version() -> str:
    return _dist_version("wasmtime")


def _settings(fuel: bool) -> dict[str, object]:
    return {**_ENGINE_SETTINGS, "consume_fuel": True} if fuel else _ENGINE_SETTINGS


def engine_fingerprint(fuel: bool = False) -> str:
    """Identify the (wasmtime version, Engine config) pair that serialized artifacts depend on."""
    text = wasmtime_version() + ";" + ";".join(f"{k}={v}" for k, v in sorted(_settings(fuel).items()))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _make_engine(fuel: bool) -> wasmtime.Engine:
    config = wasmtime.Config()
    config.epoch_interruption = True
    config.cranelift_opt_level = "speed"
    if fuel:
        config.consume_fuel = True
    return wasmtime.Engine(config)


def get_engine(fuel: bool = False) -> wasmtime.Engine:
    """Return the shared Engine, creating it (and starting its epoch ticker) on first use.

    ``fuel=True`` selects a second Engine whose code counts instructions (``Config.consume_fuel``), for versions
    deployed with a fuel limit. It is separate because metering slows every guest it compiles, and compiled
    artifacts are only valid for the configuration that produced them (so its fingerprint differs); components,
    linkers and stores of one engine never mix with the other's. Both engines use epoch deadlines.
    """
    engine = _engines.get(fuel)
    if engine is None:
        with _lock:
            engine = _engines.get(fuel)
            if engine is None:
                engine = _make_engine(fuel)
                ticker = EpochTicker(engine)
                ticker.start()
                _tickers[fuel] = ticker
                _engines[fuel] = engine
    return engine


def deadline_ticks(seconds: float) -> int:
    """Convert a timeout into the epoch delta for ``Store.set_epoch_deadline`` (always at least 1 tick)."""
    return max(1, int(seconds / TICK_SECONDS + 0.999999)) + 1


class EpochTicker:
    """A daemon thread that advances the engine epoch every ``TICK_SECONDS``.

    Deadlines are "ticks after now"; a guest busy-looping past its deadline traps with "wasm trap: interrupt" at
    the next tick, so the achieved deadline is within one tick of the configured one.
    """

    def __init__(self, engine: wasmtime.Engine, interval: float = TICK_SECONDS) -> None:
        self._engine = engine
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="airssys-epoch", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self._engine.increment_epoch()

    def close(self) -> None:
        self._stop.set()
