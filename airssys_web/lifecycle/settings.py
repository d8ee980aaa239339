"""A version's settings as one immutable value: what it is granted, its limits, and what it declares it needs.

Settings belong to a version: they are stored with it in the registry, shown by ``list``/``status``, restored by a
rollback, and sent to a server's admin API. Their JSON form (``to_json``/``from_json``) is the one registries have
always stored, so existing registries load unchanged::

    {"limits": {"timeout": 2.5},                    the limits given (seconds, bytes); the rest are defaults
     "outbound": ["https://api.example.com"],       grants: see airssys_web.capabilities.grants
     "files": [{"host": "/srv", "guest": "/data", "mode": "ro"}],
     "config": {"greeting": "hi"},
     "secrets": {"token": {"ref": "hmac-sha256:..."}},    only a reference once stored; a value when sent to deploy
     "kv": {"max_keys": 1000, ...},
     "needs": {"outbound": [...], "kv": true}}       what the component declares

Every key is optional: ``{}`` is a version granted nothing, with the default limits.

A limit remembers whether it was given: only given limits are stored (a version keeps the defaults of whichever
airssys-web serves it), and :meth:`VersionSettings.merged` lets a given limit win over an earlier one, never a
default one (the manifest's ``timeout`` survives flags that set only ``--memory``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ..capabilities.grants import Capability, Grants, SecretResolver
from ..capabilities.needs import Needs
from ..errors import CapabilityError
from ..runtime.limits import Limits

__all__ = ["VersionSettings", "union_needs"]

_KEYS = ("limits", "outbound", "files", "config", "secrets", "kv", "needs")
_DEFAULTS = Limits()


@dataclass(frozen=True, init=False, repr=False)
class VersionSettings:
    """Grants, limits and declared needs of one version. Immutable; validated when made.

    ``limits`` may be a :class:`Limits` (its non-default fields count as given) or a mapping of the limits given,
    in the stored form (bytes; seconds or a duration such as ``"200ms"``). ``VersionSettings.of(*capabilities,
    **limits)`` is the short form: ``VersionSettings.of(Capability.kv(), timeout="2s")``.
    """

    grants: Grants
    limits: Limits
    needs: Needs | None
    #: The names of the limits that were given (the stored ones).
    given_limits: frozenset[str]

    def __init__(self, grants: Grants | Iterable[Capability] = (), limits: Limits | Mapping[str, Any] | None = None,
                 needs: Needs | None = None) -> None:
        if isinstance(limits, Limits):
            value = limits
            given = frozenset(k for k, v in limits.to_dict().items() if v != getattr(_DEFAULTS, k))
        else:
            if limits is not None and not isinstance(limits, Mapping):
                raise CapabilityError("settings 'limits' must be a table such as {\"timeout\": 5}")
            canonical = Limits.canonical(dict(limits or {}))
            value, given = Limits.from_dict(canonical), frozenset(canonical)
        if needs is not None and not isinstance(needs, Needs):
            raise CapabilityError(f"needs must be a Needs value, not {type(needs).__name__}")
        object.__setattr__(self, "grants", grants if isinstance(grants, Grants) else Grants.of(grants))
        object.__setattr__(self, "limits", value)
        object.__setattr__(self, "needs", needs)
        object.__setattr__(self, "given_limits", given)

    @classmethod
    def of(cls, *capabilities: Capability | Iterable[Capability], needs: Needs | None = None,
           **limits: Any) -> VersionSettings:
        """Settings from grant values and limits given by name: ``of(Capability.kv(), timeout="2s")``."""
        return cls(Grants.of(*capabilities), limits, needs)

    # -- the stored JSON form ----------------------------------------------------------------------------------
    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> VersionSettings:
        """Parse the stored form (or one a person wrote: plain secret values, durations as text); a mistake raises
        CapabilityError naming the key."""
        if data is None:
            return cls()
        if not isinstance(data, Mapping) or not all(isinstance(k, str) for k in data):
            raise CapabilityError("settings must be a JSON object such as {\"limits\": {\"timeout\": 5}}")
        unknown = sorted(set(data) - set(_KEYS))
        if unknown:
            raise CapabilityError(f"unknown settings key(s) {', '.join(unknown)}; known: {', '.join(sorted(_KEYS))}")
        raw_needs = data.get("needs")
        needs = Needs.from_dict(raw_needs, source="settings 'needs'") if raw_needs is not None else None
        return cls(Grants.from_settings(data), data.get("limits") or {}, needs)

    def to_json(self, *, reveal_secrets: bool = False) -> dict[str, Any]:
        """The stored form. A secret still held as a value (before :meth:`with_secrets_stored`) raises
        CapabilityError unless ``reveal_secrets``, which only the code handing settings to a deploy may ask for."""
        out: dict[str, Any] = {}
        if self.given_limits:
            out["limits"] = {name: getattr(self.limits, name) for name in sorted(self.given_limits)}
        out.update(self.grants.to_settings(reveal=reveal_secrets))
        if self.needs is not None:
            out["needs"] = self.needs.to_dict()
        return out

    def json_text(self) -> str:
        """The canonical text the registry stores: equal settings give equal text, so a redeploy of the same
        version with the same settings is recognised as such."""
        return json.dumps(self.to_json(), sort_keys=True, separators=(",", ":"), allow_nan=False)

    # -- deriving new values -----------------------------------------------------------------------------------
    def merged(self, later: VersionSettings) -> VersionSettings:
        """``later`` on top of these settings: its grants replace grants of the same key or directory, its given
        limits win, and the declared needs are the union of both."""
        limits = {**self._given(), **later._given()}
        return VersionSettings(Grants.of(self.grants, later.grants), limits, union_needs(self.needs, later.needs))

    def replace(self, *, grants: Grants | None = None, needs: Needs | None = None) -> VersionSettings:
        """The same settings with other grants or needs (the given limits stay given)."""
        return VersionSettings(self.grants if grants is None else grants, self._given(),
                               self.needs if needs is None else needs)

    def with_secrets_stored(self, store: SecretResolver | None) -> VersionSettings:
        """Secret values moved into ``store``, only their references kept: the settings a registry may store.
        Without a store a secret value raises CapabilityError."""
        return self.replace(grants=Grants.from_settings(self.grants.to_settings(store)))

    def _given(self) -> dict[str, Any]:
        return {name: getattr(self.limits, name) for name in sorted(self.given_limits)}

    def __repr__(self) -> str:  # secrets redacted, limits as given
        grants = [f"{kind} {text}" for kind, text in self.grants.describe()]
        needs = None if self.needs is None else self.needs.to_dict()
        return f"VersionSettings(grants={grants!r}, limits={self._given()!r}, needs={needs!r})"

    # -- display -----------------------------------------------------------------------------------------------
    def summary_lines(self) -> list[str]:
        """``grants: ...`` and ``limits: ...`` lines for ``status`` (secrets redacted)."""
        grants = [f"{kind} {text}" for kind, text in self.grants.describe()]
        limits = ", ".join(f"{k} {v}" for k, v in self.limits.describe())
        return [f"grants: {', '.join(grants)}" if grants else "grants: none (nothing outside the sandbox)",
                f"limits: {limits}"]


def union_needs(*needs: Needs | None) -> Needs | None:
    """Everything any of ``needs`` declares (``None`` when none declares anything)."""
    present = [n for n in needs if n is not None]
    if not present:
        return None
    out = present[0]
    for n in present[1:]:
        out = out | n
    return out
