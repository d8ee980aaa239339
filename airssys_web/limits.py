"""Per-version resource limits, as an immutable value object (validated once, stored with the version)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from .errors import CapabilityError

MiB = 1024 * 1024


@dataclass(frozen=True)
class Limits:
    """How much a component version may use.

    ``timeout`` is the per-request wall-clock deadline (enforced by epoch interruption, so a busy loop is stopped
    too); ``memory`` caps each instance's linear memory; ``min_instances`` are pre-warmed; ``max_instances`` bounds
    concurrency, a request waiting at most ``acquire_timeout`` seconds for a free instance before a 503;
    ``max_body`` bounds the request body (413 beyond it).
    """

    timeout: float = 30.0
    memory: int = 256 * MiB
    min_instances: int = 1
    max_instances: int = 16
    acquire_timeout: float = 5.0
    max_body: int = 10 * MiB

    def __post_init__(self) -> None:
        def bad(name: str, why: str) -> CapabilityError:
            return CapabilityError(f"invalid limit {name}={getattr(self, name)!r}: {why}")

        if not 0 < self.timeout <= 3600:
            raise bad("timeout", "must be between 0 and 3600 seconds")
        if not 64 * 1024 <= self.memory <= 16 * 1024 * MiB:
            raise bad("memory", "must be between 64 KiB and 16 GiB")
        if not 0 <= self.min_instances <= self.max_instances:
            raise bad("min_instances", f"must be between 0 and max_instances ({self.max_instances})")
        if not 1 <= self.max_instances <= 1024:
            raise bad("max_instances", "must be between 1 and 1024")
        if not 0 <= self.acquire_timeout <= 600:
            raise bad("acquire_timeout", "must be between 0 and 600 seconds")
        if not 0 <= self.max_body <= 1024 * MiB:
            raise bad("max_body", "must be between 0 and 1 GiB")

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
