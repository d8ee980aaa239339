"""``airssys.toml``: a component's declared needs, and the grants and limits to deploy it with.

``deploy`` reads the ``airssys.toml`` in the directory of the ``.wasm`` (or the file ``--manifest`` names).
Every table is optional; flags given to ``deploy`` are applied on top of it. The schema::

    [component]
    kind = "middleware"          # what `build` makes: "route" (the default) or a middleware stage

    [needs]                      # what the component requires (see airssys_web.capabilities.needs)
    outbound = ["https://api.example.com"]
    files = ["/data:ro"]
    config = { greeting = "Hello", api_url = "" }   # a default, or "" when the operator must set it
    secrets = ["api_token"]
    kv = true

    [grants]                     # what the operator grants: the deploy flags, as TOML
    outbound = ["https://api.example.com"]          # --allow-host
    components = ["billing"]                        # --allow-component: http://billing.airssys.internal/
    files = ["./data:/data:ro"]                     # --allow-file; a relative host dir is relative to this file
    config = { greeting = "Hi" }                    # --config
    secrets = { api_token = { env = "API_TOKEN" } } # --secret; read from the deployer's environment
    kv = true                                       # --kv, or a table of quotas: { max_total_bytes = 1048576 }
                                                    # and Spin store labels: { stores = ["cache"] }

    [limits]                     # the limit flags
    timeout = 2.5                # seconds
    memory = "64MiB"             # a size, or a bare number of MiB
    fuel = 500_000_000
    min_instances = 1
    max_instances = 8
    max_body = "1MiB"

Secrets should not be written into the file itself: ``{ env = "NAME" }`` reads them when ``deploy`` runs (a plain
string works too, for local experiments).
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..capabilities.grants import Capability, Grants, KeyValue, Secret, parse_file_grant
from ..capabilities.needs import Needs, embed_needs
from ..errors import CapabilityError
from ..runtime.limits import Limits
from .settings import VersionSettings

MANIFEST_NAME = "airssys.toml"
_TABLES = {"component", "needs", "grants", "limits"}
KINDS = ("route", "middleware")
_GRANT_KEYS = {"outbound", "components", "files", "config", "secrets", "kv"}


@dataclass(frozen=True)
class Manifest:
    path: Path | None = None
    needs: Needs | None = None
    grants: Grants = field(default_factory=Grants)
    limits: dict[str, Any] = field(default_factory=dict)  # canonical (bytes), validated
    kind: str | None = None  # [component] kind: what `build` makes

    @property
    def settings(self) -> VersionSettings:
        """What the manifest grants, limits and declares, as the settings a deploy starts from."""
        return VersionSettings(self.grants, self.limits, self.needs)


def find_manifest(component: str | Path) -> Path | None:
    """The ``airssys.toml`` next to ``component`` (a ``.wasm`` file or a guest source directory), if any."""
    path = Path(component)
    candidate = (path if path.is_dir() else path.parent) / MANIFEST_NAME
    return candidate if candidate.is_file() else None


def _read_toml(path: Path) -> dict[str, Any]:
    """The manifest's TOML; CapabilityError names the file when it is missing or not TOML."""
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CapabilityError(f"manifest {path} does not exist") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise CapabilityError(f"manifest {path} is not valid TOML: {exc}") from None


def load_manifest(path: str | Path, *, environ: dict[str, str] | None = None) -> Manifest:
    """Read and validate a manifest; CapabilityError names the file and what is wrong."""
    path = Path(path)
    data = _read_toml(path)
    try:
        return parse_manifest(data, base=path.parent, environ=environ, path=path)
    except CapabilityError as exc:
        raise CapabilityError(f"manifest {path}: {exc}") from None


def parse_manifest(data: dict[str, Any], *, base: Path, environ: dict[str, str] | None = None,
                   path: Path | None = None) -> Manifest:
    unknown = sorted(set(data) - _TABLES)
    if unknown:
        raise CapabilityError(f"unknown table(s) {', '.join(unknown)}; known: component, needs, grants, limits")
    for name in _TABLES & set(data):
        if not isinstance(data[name], dict):
            raise CapabilityError(f"[{name}] must be a table")
    needs = Needs.from_dict(data["needs"], source="[needs]") if "needs" in data else None
    grants = _grants(data.get("grants", {}), base, os.environ if environ is None else environ)
    limits = Limits.from_user(data.get("limits"))
    return Manifest(path, needs, grants, limits, _kind(data.get("component", {})))


def _kind(table: dict[str, Any]) -> str | None:
    unknown = sorted(set(table) - {"kind"})
    if unknown:
        raise CapabilityError(f"[component]: unknown key(s) {', '.join(unknown)}; known: kind")
    kind = table.get("kind")
    if kind is not None and kind not in KINDS:
        raise CapabilityError(f"[component] kind must be one of {', '.join(repr(k) for k in KINDS)}, got {kind!r}")
    return kind


def manifest_kind(source: str | Path) -> str | None:
    """The ``[component] kind`` of the ``airssys.toml`` next to ``source`` (what ``build`` makes), if it says."""
    path = find_manifest(source)
    if path is None:
        return None
    data = _read_toml(path)
    table = data.get("component", {})
    if not isinstance(table, dict):
        raise CapabilityError(f"manifest {path}: [component] must be a table")
    try:
        return _kind(table)
    except CapabilityError as exc:
        raise CapabilityError(f"manifest {path}: {exc}") from None


def _grants(table: dict[str, Any], base: Path, environ: os._Environ[str] | dict[str, str]) -> Grants:
    unknown = sorted(set(table) - _GRANT_KEYS)
    if unknown:
        raise CapabilityError(f"[grants]: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(_GRANT_KEYS))}")
    caps: list[Capability] = []
    for key in ("outbound", "components", "files"):
        value = table.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise CapabilityError(f"[grants] {key} must be a list of strings")
        if key == "outbound":
            caps += [Capability.network_outbound(v) for v in value]
        elif key == "components":
            caps += [Capability.component(v) for v in value]
        else:
            caps += [parse_file_grant(v).absolute(base) for v in value]
    config = table.get("config", {})
    if not isinstance(config, dict):
        raise CapabilityError("[grants] config must be a table of KEY = \"value\"")
    caps += [Capability.config(k, v) for k, v in config.items()]
    secrets = table.get("secrets", {})
    if not isinstance(secrets, dict):
        raise CapabilityError("[grants] secrets must be a table of KEY = { env = \"NAME\" }")
    for key, value in secrets.items():
        if isinstance(value, dict) and set(value) == {"env"} and isinstance(value["env"], str):
            if value["env"] not in environ:
                raise CapabilityError(f"secret {key!r} reads environment variable {value['env']!r}, which is not set")
            caps.append(Secret(key, environ[value["env"]]))
        elif isinstance(value, str):
            caps.append(Secret(key, value))
        else:
            raise CapabilityError(f"[grants] secret {key!r} must be {{ env = \"NAME\" }} or a string")
    kv = table.get("kv", False)
    if kv is True:
        caps.append(KeyValue())
    elif isinstance(kv, dict):
        caps.append(KeyValue.from_dict(kv, what="[grants] kv"))
    elif kv is not False:
        raise CapabilityError("[grants] kv must be true, false or a table of quotas")
    return Grants.of(caps)


def embed_manifest_needs(wasm: bytes, source: str | Path) -> bytes:
    """``wasm`` carrying the ``[needs]`` of the ``airssys.toml`` next to ``source`` (a guest source directory or
    file) in its ``airssys-web:needs`` section; unchanged when there is no manifest or no ``[needs]`` table.
    What ``airssys-web build`` calls, so the component declares its needs wherever it is deployed from (grants
    and limits stay out of the binary: they are the operator's)."""
    path = find_manifest(source)
    if path is None:
        return wasm
    data = _read_toml(path)
    if "needs" not in data:
        return wasm
    return embed_needs(wasm, Needs.from_dict(data["needs"], source=f"manifest {path} [needs]"))
