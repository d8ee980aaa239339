"""Units as people write them: durations (``200ms``, ``2s``, ``1h``) and sizes (``64MiB``, ``512KiB``).

**Durations** - one grammar for every duration airssys-web takes: the ``--timeout`` and ``--ttl`` flags,
``serve --body-timeout``, the auto-rollback ``window=``, ``[limits] timeout`` in ``airssys.toml``, the limits in the
admin API's settings and ``Limits(timeout="200ms")`` in Python. A number (``int``/``float``) is taken as seconds.
Units are lower-case (``1m`` is a minute; there are no months), one number and one unit per duration.

**Sizes** - ``64MiB``, ``512KiB``, ``1GB``, ``100B``, or a bare number of a default unit (MiB for ``--memory``):
memory caps, body limits, KV quotas.
"""

from __future__ import annotations

import math
import re

from .errors import CapabilityError

__all__ = ["UNITS", "GiB", "KiB", "MiB", "format_duration", "format_size", "parse_duration", "parse_size"]

#: Seconds per unit.
UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION = re.compile(r"([0-9]+(?:\.[0-9]+)?)\s*(ms|s|m|h|d)?")
_EXAMPLES = "200ms, 2s, 1m, 1h or 7d (a bare number is seconds)"


def parse_duration(value: str | int | float, *, what: str = "duration", positive: bool = True,
                   maximum: float | None = None) -> float:
    """``"200ms"`` -> 0.2, ``"2s"``/``2``/``"2"`` -> 2.0, ``"1m"`` -> 60.0, ``"7d"`` -> 604800.0.

    ``what`` names the setting in the error (e.g. ``"--ttl"``). ``positive`` refuses zero; ``maximum`` (seconds)
    bounds the result. Anything else raises :class:`~airssys_web.errors.CapabilityError` saying what to write.
    """
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise CapabilityError(f"invalid {what} {value!r}: write a duration such as {_EXAMPLES}")
    if isinstance(value, str):
        m = _DURATION.fullmatch(value.strip())
        if m is None:
            raise CapabilityError(f"invalid {what} {value!r}: write a duration such as {_EXAMPLES}")
        seconds = float(m.group(1)) * UNITS[m.group(2) or "s"]
    else:
        seconds = float(value)
    if not math.isfinite(seconds) or seconds < 0 or (positive and seconds == 0):
        floor = "more than 0" if positive else "0 or more"
        raise CapabilityError(f"invalid {what} {value!r}: a duration must be {floor}, e.g. {_EXAMPLES}")
    if maximum is not None and seconds > maximum:
        raise CapabilityError(f"invalid {what} {value!r}: at most {format_duration(maximum)}")
    return seconds


def format_duration(seconds: float) -> str:
    """The shortest exact spelling :func:`parse_duration` reads back: ``0.2`` -> ``200ms``, ``3600`` -> ``1h``."""
    for unit in ("d", "h", "m", "s"):
        count = seconds / UNITS[unit]
        if count >= 1 and count == int(count):
            return f"{int(count)}{unit}"
    millis = round(seconds * 1000, 9)
    if seconds < 1 and millis == int(millis):
        return f"{int(millis)}ms"
    return f"{seconds:g}s"

# -- sizes ----------------------------------------------------------------------------------------------------

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB

_SIZE = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([KMG]i?B|B)?\s*", re.IGNORECASE)
_UNITS = {"b": 1, "kb": 1000, "kib": KiB, "mb": 1000**2, "mib": MiB, "gb": 1000**3, "gib": GiB}


def parse_size(value: str | int | float, *, default_unit: int = MiB, what: str = "size") -> int:
    """``"64MiB"``, ``"512KiB"``, ``"1GB"``, ``"100B"`` or a bare number of ``default_unit``s -> bytes."""
    if isinstance(value, bool):
        raise CapabilityError(f"{what} must be a size such as 64MiB, not {value!r}")
    if isinstance(value, int | float):
        number, unit = float(value), default_unit
    else:
        m = _SIZE.fullmatch(str(value))
        if not m:
            raise CapabilityError(f"{what} {value!r} is not a size; write e.g. 64MiB, 512KiB, 1GiB or 1048576B")
        number = float(m.group(1))
        unit = _UNITS[m.group(2).lower()] if m.group(2) else default_unit
    size = number * unit
    if size != int(size):
        raise CapabilityError(f"{what} {value!r} is not a whole number of bytes")
    return int(size)


def format_size(n: int) -> str:
    """``64 MiB``, ``512 KiB`` or ``100 B``: the largest binary unit that divides ``n``."""
    for unit, factor in (("GiB", GiB), ("MiB", MiB), ("KiB", KiB)):
        if n >= factor and n % factor == 0:
            return f"{n // factor} {unit}"
    return f"{n} B"
