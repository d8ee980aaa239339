"""Durations as people write them: ``200ms``, ``2s``, ``1.5m``, ``1h``, ``7d``; a bare number is seconds.

This is the one grammar for every duration airssys-web takes: the ``--timeout`` and ``--ttl`` flags,
``serve --body-timeout``, the auto-rollback ``window=``, ``[limits] timeout`` in ``airssys.toml``, the limits in the
admin API's settings and ``Limits(timeout="200ms")`` in Python. A number (``int``/``float``) is taken as seconds.
Units are lower-case (``1m`` is a minute; there are no months), one number and one unit per duration.
"""

from __future__ import annotations

import math
import re

from .errors import CapabilityError

__all__ = ["UNITS", "format_duration", "parse_duration"]

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
