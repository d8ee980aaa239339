"""Declared needs: what a component says it requires (the seed's ``required_capabilities()``).

A component declares its needs in the ``[needs]`` table of an ``airssys.toml`` next to it, or in a custom
section named ``airssys-web:needs`` that ``airssys-web build`` embeds in the ``.wasm`` (:func:`embed_needs`,
:func:`read_needs`). Both use the same JSON/TOML shape::

    outbound = ["https://api.example.com"]        # origins it fetches (grant syntax)
    files    = ["/data:ro", "/out:rw"]            # guest directories it opens
    config   = ["api_url"]  or  {greeting = "Hello", api_url = ""}   # keys it reads (a string value = default)
    secrets  = ["api_token"]
    kv       = true

:func:`check_needs` lines the declaration up with the grants: a need nothing grants is *missing* (the deploy
fails naming it, unless ``--grant-declared``), a grant nothing needs is *unused* (reported, not an error). Imports
of a wasi:http component that the host does not provide (Spin's MySQL, Redis, ...; ``runtime.platform``) are rows
too, *unavailable*: not an error, the component deploys and a call to one of them fails.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

from ..errors import CapabilityError, InvalidComponent
from .grants import (
    REDACTED,
    Capability,
    ConfigValue,
    FileAccess,
    Grants,
    KeyValue,
    NetworkOutbound,
    Secret,
    check_guest_path,
)
from .outbound import AllowedHost

SECTION_NAME = "airssys-web:needs"


class MalformedBinary(InvalidComponent):
    """The bytes are not a well-formed sequence of WebAssembly sections."""

_HEADER = b"\x00asm"
_MAX_SECTION = 64 * 1024


@dataclass(frozen=True)
class Needs:
    """A component's declaration. ``config`` maps each key to its default, or None when it must be granted."""

    outbound: tuple[AllowedHost, ...] = ()
    files: tuple[tuple[str, bool], ...] = ()  # (guest directory, writable)
    config: Mapping[str, str | None] = field(default_factory=lambda: MappingProxyType({}))
    secrets: tuple[str, ...] = ()
    kv: bool = False

    def __bool__(self) -> bool:
        return bool(self.outbound or self.files or self.config or self.secrets or self.kv)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str = "needs") -> Needs:
        if not isinstance(data, Mapping):
            raise CapabilityError(f"{source} must be a table")
        unknown = sorted(set(data) - {"outbound", "files", "config", "secrets", "kv"})
        if unknown:
            raise CapabilityError(f"{source}: unknown key(s) {', '.join(unknown)}; "
                                  "known: outbound, files, config, secrets, kv")
        try:
            outbound = tuple(dict.fromkeys(AllowedHost(h) for h in _strings(data, "outbound", source)))
            files: dict[str, bool] = {}
            for item in _strings(data, "files", source):
                path, _, mode = item.rpartition(":") if item.endswith((":ro", ":rw")) else (item, "", "ro")
                guest = check_guest_path(path)
                files[guest] = files.get(guest, False) or mode == "rw"
            config_raw = data.get("config", [])
            config: dict[str, str | None]
            if isinstance(config_raw, Mapping):
                config = {k: (v if v != "" else None) for k, v in config_raw.items()}
                for k, v in config.items():
                    if v is not None:
                        ConfigValue(k, v)
            else:
                config = dict.fromkeys(_strings(data, "config", source))
            for key in config:
                ConfigValue(key, "")  # validates the key
            secrets = tuple(dict.fromkeys(_strings(data, "secrets", source)))
            for key in secrets:
                Capability.secret(key, "")
            kv = data.get("kv", False)
            if not isinstance(kv, bool):
                raise CapabilityError(f"{source}: 'kv' must be true or false")
        except CapabilityError as exc:
            raise CapabilityError(f"{source}: {exc}") from None
        return cls(outbound, tuple(files.items()), MappingProxyType(config), secrets, kv)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.outbound:
            out["outbound"] = [str(h) for h in self.outbound]
        if self.files:
            out["files"] = [f"{g}:{'rw' if w else 'ro'}" for g, w in self.files]
        if self.config:
            out["config"] = {k: (v if v is not None else "") for k, v in self.config.items()}
        if self.secrets:
            out["secrets"] = list(self.secrets)
        if self.kv:
            out["kv"] = True
        return out

    def __or__(self, other: Needs) -> Needs:
        """Union of two declarations (manifest and embedded section)."""
        return Needs.from_dict(_merge(self.to_dict(), other.to_dict()))


def _merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    out = dict(a)
    for key, value in b.items():
        if key == "config":
            out[key] = {**out.get(key, {}), **value}
        elif key == "kv":
            out[key] = out.get(key, False) or value
        else:
            out[key] = list(dict.fromkeys([*out.get(key, []), *value]))
    return out


def _strings(data: Mapping[str, Any], key: str, source: str) -> list[str]:
    value = data.get(key, [])
    if isinstance(value, str) or not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise CapabilityError(f"{source}: {key!r} must be a list of strings")
    return value


# --- comparing needs with grants ------------------------------------------------------------------------------

Status = Literal["granted", "narrowed", "default", "missing", "unused", "undeclared", "unavailable"]


@dataclass(frozen=True, slots=True)
class NeedRow:
    """One line of the needs-vs-grants table ``deploy`` prints."""

    kind: str
    need: str  # "" for an unused grant
    grant: str  # "" when nothing grants the need
    status: Status


@dataclass(frozen=True)
class NeedsCheck:
    declared: bool
    rows: tuple[NeedRow, ...]

    @property
    def missing(self) -> list[NeedRow]:
        return [r for r in self.rows if r.status == "missing"]

    @property
    def unused(self) -> list[NeedRow]:
        return [r for r in self.rows if r.status == "unused"]

    @property
    def unavailable(self) -> list[NeedRow]:
        """Imports the host does not provide (kind ``import``): linked to fail when called."""
        return [r for r in self.rows if r.status == "unavailable"]

    def raise_for_missing(self) -> None:
        """CapabilityError naming every declared need nothing grants, with the flag that would grant it."""
        if self.missing:
            items = "; ".join(f"{r.kind} {r.need} ({_hint(r)})" for r in self.missing)
            raise CapabilityError(f"the component declares needs that were not granted: {items}; grant them, or "
                                  "pass --grant-declared to grant exactly what is declared")

    def to_json(self) -> list[dict[str, str]]:
        return [{"kind": r.kind, "need": r.need, "grant": r.grant, "status": r.status} for r in self.rows]


def _hint(row: NeedRow) -> str:
    need = row.need
    return {
        "outbound": f"--allow-host {need}",
        "file": f"--allow-file HOST_DIR:{need.rsplit(':', 1)[0]}:{need.rsplit(':', 1)[-1]}",
        "config": f"--config {need}=VALUE",
        "secret": f"--secret {need}=VALUE",
        "kv": "--kv",
    }.get(row.kind, "")


def covers(grant: AllowedHost, need: AllowedHost) -> bool:
    """Whether every URL ``need`` admits is admitted by ``grant`` too."""
    if grant.scheme is not None and grant.scheme != need.scheme:
        return False
    if grant.ports is not None and (need.ports is None or not grant.ports[0] <= need.ports[0]
                                    or not need.ports[1] <= grant.ports[1]):
        return False
    if grant.kind == "any":
        return True
    if grant.kind == "suffix":
        return need.kind in ("name", "suffix") and need.host.endswith(grant.host)
    if grant.kind == "name":
        return need.kind == "name" and need.host == grant.host
    if need.kind in ("ip", "cidr") and grant.network is not None and need.network is not None:
        return grant.network.version == need.network.version and need.network.subnet_of(grant.network)  # type: ignore[arg-type]
    return False


def check_needs(needs: Needs | None, grants: Grants, *, unavailable: Iterable[str] = ()) -> NeedsCheck:
    """Line up declared needs with grants (see the module docstring); ``needs=None``: nothing was declared.
    ``unavailable``: the imports the host does not provide (as ``runtime.platform.group_interfaces`` words them)."""
    missing_imports = tuple(NeedRow("import", name, "", "unavailable") for name in unavailable)
    if needs is None:
        return NeedsCheck(False, tuple(NeedRow(k, "", t, "undeclared") for k, t in grants.describe())
                          + missing_imports)
    rows: list[NeedRow] = []
    used_hosts: set[AllowedHost] = set()
    for need in needs.outbound:
        full = [g for g in grants.outbound.grants if covers(g, need)]
        part = [g for g in grants.outbound.grants if covers(need, g)]
        used_hosts.update(full or part)
        status: Status = "granted" if full else "narrowed" if part else "missing"
        rows.append(NeedRow("outbound", str(need), ", ".join(str(g) for g in full or part), status))
    files = {f.guest: f for f in grants.files}
    for guest, writable in needs.files:
        f = files.get(guest)
        ok = f is not None and (f.writable or not writable)
        rows.append(NeedRow("file", f"{guest}:{'rw' if writable else 'ro'}", str(f) if f else "",
                            "granted" if ok else "missing"))
    for key, default in needs.config.items():
        if key in grants.config:
            rows.append(NeedRow("config", key, f"{key}={grants.config[key]}", "granted"))
        elif key in grants.secrets:
            rows.append(NeedRow("config", key, f"{key}={REDACTED}", "granted"))
        else:
            rows.append(NeedRow("config", key, f"{key}={default} (default)" if default is not None else "",
                                "default" if default is not None else "missing"))
    for key in needs.secrets:
        ok = key in grants.secrets or key in grants.config
        rows.append(NeedRow("secret", key, f"{key}={REDACTED}" if ok else "", "granted" if ok else "missing"))
    if needs.kv:
        rows.append(NeedRow("kv", "kv", str(grants.kv) if grants.kv else "", "granted" if grants.kv else "missing"))
    needed_files = {g for g, _ in needs.files}
    needed_keys = set(needs.config) | set(needs.secrets)
    for cap in grants:
        if isinstance(cap, NetworkOutbound):
            unused = cap.host not in used_hosts
        elif isinstance(cap, FileAccess):
            unused = cap.guest not in needed_files
        elif isinstance(cap, ConfigValue | Secret):
            unused = cap.key not in needed_keys
        else:
            unused = isinstance(cap, KeyValue) and not needs.kv
        if unused:
            rows.append(NeedRow(cap.kind, "", str(cap), "unused"))
    return NeedsCheck(True, tuple(rows) + missing_imports)


def grant_declared(needs: Needs, grants: Grants) -> Grants:
    """``--grant-declared``: add what the declaration names and the host can supply on its own.

    Outbound origins, KV and config defaults are added. Directories, secrets and config keys without a default
    need a value only the operator has, so they stay missing (and :meth:`NeedsCheck.raise_for_missing` says how
    to grant them).
    """
    extra: list[Capability] = [Capability.network_outbound(str(h)) for h in needs.outbound
                               if not any(covers(g, h) for g in grants.outbound.grants)]
    if needs.kv and grants.kv is None:
        extra.append(Capability.kv())
    return Grants.of(grants, extra)


def with_defaults(needs: Needs | None, grants: Grants) -> Grants:
    """Grants plus the declared config defaults for keys nothing else sets (a default is not a privilege)."""
    if needs is None:
        return grants
    defaults = [ConfigValue(k, v) for k, v in needs.config.items()
                if v is not None and k not in grants.config and k not in grants.secrets]
    return Grants.of(defaults, grants) if defaults else grants


# --- the custom section ---------------------------------------------------------------------------------------

def _leb128(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _read_leb128(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data) or shift > 28:
            raise MalformedBinary("malformed WebAssembly binary: bad section size")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return result, pos


def iter_sections(wasm: bytes) -> list[tuple[int, int, int]]:
    """Top-level sections of a module or component: ``(id, payload_start, payload_end)``."""
    if len(wasm) < 8 or wasm[:4] != _HEADER:
        raise MalformedBinary("not a WebAssembly binary (it does not start with \\0asm)")
    sections = []
    pos = 8
    while pos < len(wasm):
        section_id = wasm[pos]
        size, start = _read_leb128(wasm, pos + 1)
        end = start + size
        if end > len(wasm):
            raise MalformedBinary("malformed WebAssembly binary: a section runs past the end of the file")
        sections.append((section_id, start, end))
        pos = end
    return sections


def _custom_name(wasm: bytes, start: int, end: int) -> tuple[str, int]:
    length, pos = _read_leb128(wasm, start)
    if pos + length > end:
        raise MalformedBinary("malformed WebAssembly binary: bad custom section name")
    return wasm[pos:pos + length].decode("utf-8", "replace"), pos + length


def read_custom_section(wasm: bytes, name: str) -> bytes | None:
    """The payload of the last top-level custom section called ``name``, or None."""
    found = None
    for section_id, start, end in iter_sections(wasm):
        if section_id == 0:
            got, data_start = _custom_name(wasm, start, end)
            if got == name:
                found = wasm[data_start:end]
    return found


def write_custom_section(wasm: bytes, name: str, payload: bytes) -> bytes:
    """``wasm`` with its top-level custom sections called ``name`` replaced by one holding ``payload``.

    Custom sections may appear anywhere and do not affect validation or semantics, so appending is safe.
    """
    kept = bytearray(wasm[:8])
    for section_id, start, end in iter_sections(wasm):
        if section_id == 0 and _custom_name(wasm, start, end)[0] == name:
            continue
        header_start = start - 1 - len(_leb128(end - start))
        kept += wasm[header_start:end]
    raw_name = name.encode("utf-8")
    body = _leb128(len(raw_name)) + raw_name + payload
    return bytes(kept + b"\x00" + _leb128(len(body)) + body)


def embed_needs(wasm: bytes, needs: Needs) -> bytes:
    """``wasm`` carrying ``needs`` in its ``airssys-web:needs`` section (what ``airssys-web build`` calls)."""
    payload = json.dumps({"version": 1, **needs.to_dict()}, sort_keys=True, separators=(",", ":")).encode()
    return write_custom_section(wasm, SECTION_NAME, payload)


def read_needs(wasm: bytes, *, lenient: bool = False) -> Needs | None:
    """The needs embedded in ``wasm``, or None when it has no ``airssys-web:needs`` section.

    ``lenient``: a binary that is not even well-formed has no needs (the compiler then says what is wrong with it);
    a malformed needs section is always an error.
    """
    try:
        payload = read_custom_section(wasm, SECTION_NAME)
    except MalformedBinary:
        if lenient:
            return None
        raise
    if payload is None:
        return None
    if len(payload) > _MAX_SECTION:
        raise InvalidComponent(f"the {SECTION_NAME} section is larger than {_MAX_SECTION} bytes")
    try:
        data = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidComponent(f"the {SECTION_NAME} section is not valid JSON: {exc}") from None
    if not isinstance(data, dict) or data.pop("version", None) != 1:
        raise InvalidComponent(f"the {SECTION_NAME} section has an unsupported format (expected version 1)")
    try:
        return Needs.from_dict(data, source=f"the {SECTION_NAME} section")
    except CapabilityError as exc:
        raise InvalidComponent(str(exc)) from None
