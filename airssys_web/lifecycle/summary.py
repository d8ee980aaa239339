"""What ``list`` and ``status`` show about a version: its grants (secrets redacted) and its effective limits."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..capabilities.grants import Grants
from ..runtime.limits import Limits


def settings_summary(settings: Mapping[str, Any]) -> dict[str, Any]:
    """``{"grants": [...], "limits": {...}}`` for a version's stored settings."""
    grants = Grants.from_settings(settings)
    return {"grants": [f"{kind} {text}" for kind, text in grants.describe()],
            "limits": dict(Limits.from_dict(settings.get("limits")).describe())}


def summary_lines(summary: Mapping[str, Any]) -> list[str]:
    """:func:`settings_summary` as text lines."""
    grants = summary.get("grants") or []
    lines = [f"grants: {', '.join(grants)}" if grants else "grants: none (nothing outside the sandbox)"]
    limits = summary.get("limits") or {}
    if limits:
        lines.append("limits: " + ", ".join(f"{k} {v}" for k, v in limits.items()))
    return lines
