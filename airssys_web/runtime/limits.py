"""Per-version resource limits, as an immutable value object (validated once, stored with the version)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from ..errors import CapabilityError
from ..units import GiB, KiB, MiB, format_size, parse_duration, parse_size

#: The limits that are durations (seconds; text such as ``"200ms"`` is accepted).
DURATIONS = ("timeout", "acquire_timeout")



#: ``pooled``: instances are reused (one request at a time each); ``request``: a fresh instance per request.
ISOLATIONS = ("pooled", "request")


@dataclass(frozen=True)
class Limits:
    """How much a component version may use.

    ``timeout`` is the per-request wall-clock deadline (enforced by epoch interruption, so a busy loop is stopped
    too); ``memory`` caps each linear memory of an instance (a guest's ``memory.grow`` past it fails);
    ``fuel``, when set, is a per-request budget of wasm instructions (deterministic, unlike the deadline; versions
    with fuel run on a second, fuel-metering engine); ``min_instances`` are pre-warmed; ``max_instances`` bounds
    concurrency, a request waiting at most ``acquire_timeout`` seconds for a free instance before a 503;
    ``max_body`` bounds the request body (413 beyond it). ``isolation`` is ``"pooled"`` (instances are reused,
    one request at a time each) or ``"request"`` (every request gets a fresh instance, so nothing a request leaves
    in memory can reach the next one).

    The two durations may be given as text (``Limits(timeout="200ms")``, ``Limits.from_dict({"timeout": "2s"})``;
    see :mod:`airssys_web.units`); they are stored as seconds.
    """

    timeout: float = 30.0
    memory: int = 256 * MiB
    min_instances: int = 1
    max_instances: int = 16
    acquire_timeout: float = 5.0
    max_body: int = 10 * MiB
    fuel: int | None = None
    isolation: str = "pooled"

    def __post_init__(self) -> None:
        def bad(name: str, why: str) -> CapabilityError:
            return CapabilityError(f"invalid limit {name}={getattr(self, name)!r}: {why}")

        for name in DURATIONS:
            if isinstance(getattr(self, name), str):
                object.__setattr__(self, name, parse_duration(getattr(self, name), what=f"limit {name}",
                                                              positive=False))

        for name in ("memory", "min_instances", "max_instances", "max_body"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise bad(name, "must be a whole number")
        for name in ("timeout", "acquire_timeout"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or isinstance(value, bool) or value != value:
                raise bad(name, "must be a number of seconds")
        if not 0 < self.timeout <= 3600:
            raise bad("timeout", "must be between 0 and 3600 seconds")
        if not 64 * KiB <= self.memory <= 4 * GiB:
            raise bad("memory", "must be between 64 KiB and 4 GiB (the most a 32-bit wasm memory can hold)")
        if not 1 <= self.max_instances <= 1024:
            raise bad("max_instances", "must be between 1 and 1024")
        if not 0 <= self.min_instances <= self.max_instances:
            raise bad("min_instances", f"must be between 0 and max_instances ({self.max_instances})")
        if not 0 <= self.acquire_timeout <= 600:
            raise bad("acquire_timeout", "must be between 0 and 600 seconds")
        if not 0 <= self.max_body <= 1 * GiB:
            raise bad("max_body", "must be between 0 and 1 GiB")
        if self.fuel is not None and (not isinstance(self.fuel, int) or isinstance(self.fuel, bool)
                                      or not 1 <= self.fuel <= 1 << 62):
            raise bad("fuel", "must be a whole number of instructions from 1 to 2**62 (or unset)")
        if self.isolation not in ISOLATIONS:
            raise bad("isolation", f"must be one of {', '.join(ISOLATIONS)}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Limits:
        data = dict(data or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise CapabilityError(f"unknown limit(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        return cls(**data)

    @classmethod
    def canonical(cls, data: dict[str, Any] | None) -> dict[str, Any]:
        """``data`` with its durations in seconds (``{"timeout": "200ms"}`` -> ``{"timeout": 0.2}``), validated: the
        form settings are stored in, so equal limits give equal settings however they were spelt."""
        out = dict(data or {})
        for name in DURATIONS:
            if isinstance(out.get(name), str):
                out[name] = parse_duration(out[name], what=f"limit {name}", positive=False)
        cls.from_dict(out)
        return out

    @classmethod
    def from_user(cls, data: dict[str, Any] | None) -> dict[str, Any]:
        """Normalise limits written by a person (manifest, CLI): ``memory`` and ``max_body`` are sizes with a unit
        (``"64MiB"``) or a bare number of MiB; ``timeout`` a duration (``"200ms"``, ``"2s"``, a number of seconds).
        Returns the canonical dict (bytes, seconds; validated) for the settings."""
        out = dict(data or {})
        for name in ("memory", "max_body"):
            if name in out:
                out[name] = parse_size(out[name], what=name)
        return cls.canonical(out)

    def describe(self) -> list[tuple[str, str]]:
        """``(name, value)`` rows for ``status``."""
        return [
            ("timeout", f"{self.timeout:g} s"),
            ("memory", format_size(self.memory)),
            ("fuel", "off" if self.fuel is None else f"{self.fuel:,}"),
            ("instances", f"{self.min_instances}..{self.max_instances} (wait <= {self.acquire_timeout:g} s)"),
            ("max_body", format_size(self.max_body)),
            ("isolation", self.isolation),
        ]

