"""Capabilities: what a component version is granted. A component gets nothing it was not granted.

Six kinds, named like the seed's ``Capability::FileRead("/data")`` / ``Capability::NetworkOutbound(host)``::

    Capability.network_outbound("https://api.example.com")     outbound.fetch may reach this origin
    Capability.file_read("/srv/data", "/data")                  WASI preopen, read-only
    Capability.file_write("/srv/out", "/out")                   WASI preopen, read-write
    Capability.config("greeting", "hi")                         config.get("greeting") -> "hi"
    Capability.secret("api_token", "s3cr3t")                    like config, but never displayed or logged
    Capability.kv(max_total_bytes=16 * MiB)                     the component's own KV namespace, with quotas
    Capability.kv(stores=["cache"])                             ... and a store "cache" beside "default" (Spin labels)
    Capability.component("billing")                             fetch("http://billing.airssys.internal/...")

Every value is immutable and validated once, when it is made (or parsed from its CLI/manifest text with
:func:`parse_grant`), so a bad grant fails the deploy with one line naming it. :class:`Grants` is the set a
version holds; it round-trips through the version's settings JSON (``to_settings``/``from_settings``), where a
secret is kept only as a reference into the registry's secret store (:mod:`~airssys_web.capabilities.secrets`), so
no listing, log line or error message can ever show its value. The values, their text forms and their JSON form
live in one module because they change together.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Protocol

from ..errors import CapabilityError
from ..units import format_size
from .kv import KVQuota
from .outbound import INTERNAL_DOMAIN, AllowedHost, OutboundPolicy

__all__ = [
    "COMPONENT_NAME",
    "DEFAULT_STORE",
    "Capability",
    "ComponentCall",
    "ConfigValue",
    "FileAccess",
    "Grants",
    "KeyValue",
    "NetworkOutbound",
    "Secret",
    "SecretResolver",
    "check_store_label",
    "parse_file_grant",
    "parse_grant",
    "parse_pair",
]

_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,127}")
#: What a component name looks like (the registry's rule; a grant names a component by it).
COMPONENT_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
_MAX_VALUE = 64 * 1024
REDACTED = "********"
_SECRET_REF = re.compile(r"hmac-sha256:[0-9a-f]{64}")


class Capability:
    """Base of the grant values; the static constructors mirror the seed's ``Capability`` enum."""

    __slots__ = ()
    kind = ""

    @staticmethod
    def network_outbound(host: str) -> NetworkOutbound:
        """Allow ``outbound.fetch`` to an origin (Spin syntax: ``https://*.example.com``, ``http://127.0.0.1:*``)."""
        return NetworkOutbound(AllowedHost(host))

    @staticmethod
    def file_read(host_dir: str | Path, guest_dir: str | None = None) -> FileAccess:
        """Make ``host_dir`` readable at ``guest_dir`` (default: the same path) inside the guest."""
        return FileAccess.make(host_dir, guest_dir, writable=False)

    @staticmethod
    def file_write(host_dir: str | Path, guest_dir: str | None = None) -> FileAccess:
        """Make ``host_dir`` readable and writable at ``guest_dir`` (default: the same path)."""
        return FileAccess.make(host_dir, guest_dir, writable=True)

    @staticmethod
    def config(key: str, value: str) -> ConfigValue:
        return ConfigValue(key, value)

    @staticmethod
    def secret(key: str, value: str) -> Secret:
        return Secret(key, value)

    @staticmethod
    def component(name: str) -> ComponentCall:
        """Let ``outbound.fetch`` call component ``name`` in process at ``http://NAME.airssys.internal/PATH``."""
        return ComponentCall(name)

    @staticmethod
    def kv(quota: KVQuota | None = None, *, stores: Iterable[str] = (), **limits: int) -> KeyValue:
        """Grant a KV namespace; ``limits`` are :class:`~.kv.KVQuota` fields (``max_keys=100``); ``stores`` are
        store labels a Spin component may open besides ``default`` (each its own namespace, same quota)."""
        if quota is not None and limits:
            raise CapabilityError("give either a KVQuota or quota keywords, not both")
        return KeyValue(quota or KVQuota(**limits), tuple(stores))


@dataclass(frozen=True, slots=True)
class NetworkOutbound(Capability):
    host: AllowedHost
    kind = "outbound"

    def __str__(self) -> str:
        return str(self.host)


@dataclass(frozen=True, slots=True)
class ComponentCall(Capability):
    name: str
    kind = "component"

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not COMPONENT_NAME.fullmatch(self.name):
            raise CapabilityError(f"--allow-component {self.name!r}: not a component name (lowercase letters, "
                                  "digits, '-' and '_', starting with a letter or digit)")

    def __str__(self) -> str:
        return f"http://{self.name}.{INTERNAL_DOMAIN}/"


def check_guest_path(text: str) -> str:
    """A guest directory, normalised: absolute, no ``..``, ``:``, ``\\`` or control characters."""
    if not isinstance(text, str) or not text.startswith("/"):
        raise CapabilityError(f"guest directory {text!r} must be an absolute path such as /data")
    if any(c in text for c in ":\\\0") or any(ord(c) < 32 for c in text):
        raise CapabilityError(f"guest directory {text!r} may not contain ':', '\\' or control characters")
    if ".." in text.split("/"):
        raise CapabilityError(f"guest directory {text!r} may not contain '..'")
    return posixpath.normpath(text).replace("//", "/")


@dataclass(frozen=True, slots=True)
class FileAccess(Capability):
    """A host directory visible to the guest at ``guest`` (a WASI preopen); read-only unless ``writable``.

    ``host`` is kept as given (made absolute); :meth:`checked` resolves it and proves it is a directory.
    """

    host: str
    guest: str
    writable: bool = False
    kind = "file"

    @classmethod
    def make(cls, host: str | Path, guest: str | None, *, writable: bool) -> FileAccess:
        host_text = str(host)
        if not host_text or "\0" in host_text:
            raise CapabilityError(f"host directory {host_text!r} is empty or contains NUL")
        if guest is None and not host_text.startswith("/"):
            raise CapabilityError(f"file grant {host_text!r}: give the guest directory too, e.g. {host_text}:/data")
        return cls(host_text, check_guest_path(guest if guest is not None else host_text), writable)

    @property
    def mode(self) -> str:
        return "rw" if self.writable else "ro"

    def absolute(self, base: Path | None = None) -> FileAccess:
        """This grant with a relative ``host`` made absolute against ``base`` (default: the working directory).

        Existence is not checked here: the directory must exist where the version is stored and served, which
        for ``deploy --server`` is another machine; :meth:`checked` runs there.
        """
        path = Path(self.host).expanduser()
        return self if path.is_absolute() else FileAccess(str((base or Path.cwd()) / path), self.guest, self.writable)

    def checked(self, base: Path | None = None) -> FileAccess:
        """This grant with ``host`` resolved (relative paths against ``base``); the directory must exist."""
        path = Path(self.host).expanduser()
        if not path.is_absolute():
            path = (base or Path.cwd()) / path
        path = path.resolve()
        if not path.is_dir():
            raise CapabilityError(f"--allow-file {self.host}: {path} is not an existing directory")
        return FileAccess(str(path), self.guest, self.writable)

    def __str__(self) -> str:
        return f"{self.host}:{self.guest}:{self.mode}"


def _check_key(key: object, what: str) -> str:
    if not isinstance(key, str) or not _KEY.fullmatch(key):
        raise CapabilityError(f"{what} key {key!r} is invalid: use letters, digits, '_', '.', '-' "
                              "(starting with a letter or '_', at most 128 characters)")
    return key


def _check_value(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise CapabilityError(f"{what} must be a string, not {type(value).__name__}")
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError:
        raise CapabilityError(f"{what} is not valid UTF-8") from None
    if size > _MAX_VALUE:
        raise CapabilityError(f"{what} is {size} bytes; at most {_MAX_VALUE} are allowed")
    return value


@dataclass(frozen=True, slots=True)
class ConfigValue(Capability):
    key: str
    value: str
    kind = "config"

    def __post_init__(self) -> None:
        _check_key(self.key, "config")
        _check_value(self.value, f"config value of {self.key!r}")

    def __str__(self) -> str:
        return f"{self.key}={self.value}"


@dataclass(frozen=True, slots=True)
class Secret(Capability):
    """A config value that is never shown: ``repr``/``str`` redact it, settings keep only ``ref``.

    A secret read back from a version's settings has ``value=None`` and a ``ref`` that the host resolves through
    the registry's secret store when it builds the guest's context.
    """

    key: str
    value: str | None = field(default=None, repr=False)
    ref: str | None = None
    kind = "secret"

    def __post_init__(self) -> None:
        _check_key(self.key, "secret")
        if self.value is None and self.ref is None:
            raise CapabilityError(f"secret {self.key!r} has neither a value nor a stored reference")
        if self.ref is not None and not _SECRET_REF.fullmatch(self.ref):
            raise CapabilityError(f"secret {self.key!r} has a malformed stored reference")
        if self.value is not None:
            _check_value(self.value, f"secret {self.key!r}")

    def __str__(self) -> str:
        return f"{self.key}={REDACTED}"

    def __repr__(self) -> str:
        return f"Secret({self.key!r}, {REDACTED!r})"


DEFAULT_STORE = "default"
_STORE_LABEL = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")


def check_store_label(label: object) -> str:
    """A key-value store label (Spin's ``key_value_stores``): lower-case letters, digits, ``_`` and ``-``."""
    if not isinstance(label, str) or not _STORE_LABEL.fullmatch(label):
        raise CapabilityError(f"key-value store label {label!r} is invalid: use lower-case letters, digits, '_' and "
                              "'-' (starting with a letter or digit, at most 63 characters)")
    return label


@dataclass(frozen=True, slots=True)
class KeyValue(Capability):
    """The component's KV namespace (the store ``default``), and ``stores``: further store labels a Spin component
    may open, each a namespace of its own under the same quota. A label not named here is refused at run time.
    ``default=False`` leaves out the component's own namespace (a Spin component whose ``key_value_stores`` does
    not name ``default``)."""

    quota: KVQuota = field(default_factory=KVQuota)
    stores: tuple[str, ...] = ()
    default: bool = True
    kind = "kv"

    def __post_init__(self) -> None:
        labels = sorted({check_store_label(label) for label in self.stores} - {DEFAULT_STORE})
        object.__setattr__(self, "stores", tuple(labels))
        if not self.default and not labels:
            raise CapabilityError("a kv grant without the store 'default' must name another store")

    @property
    def labels(self) -> tuple[str, ...]:
        """Every store label granted, ``default`` first when it is."""
        return ((DEFAULT_STORE,) if self.default else ()) + self.stores

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, what: str = "kv") -> KeyValue:
        """Quotas and ``stores`` from a table (settings JSON, ``[grants] kv`` in airssys.toml)."""
        fields = dict(data)
        stores = fields.pop("stores", [])
        default = fields.pop("default", True)
        if isinstance(stores, str) or not isinstance(stores, list):
            raise CapabilityError(f"{what} 'stores' must be a list of store labels such as [\"cache\"]")
        if not isinstance(default, bool):
            raise CapabilityError(f"{what} 'default' must be true or false")
        return cls(KVQuota.from_dict(fields), tuple(stores), default)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = self.quota.to_dict()
        if self.stores:
            out["stores"] = list(self.stores)
        if not self.default:
            out["default"] = False
        return out

    def __str__(self) -> str:
        q = self.quota
        stores = f", stores {', '.join(self.labels)}" if self.labels != (DEFAULT_STORE,) else ""
        return (f"(keys <= {q.max_keys}, total <= {format_size(q.max_total_bytes)}, "
                f"value <= {format_size(q.max_value_bytes)}, key <= {q.max_key_bytes} B{stores})")


class SecretResolver(Protocol):
    """What :meth:`Grants.to_settings` needs to store secret values (see :class:`~.secrets.SecretStore`)."""

    def put(self, value: str) -> str: ...


# --- parsing the CLI / manifest text forms ----------------------------------------------------------------------

def parse_pair(text: str, option: str) -> tuple[str, str]:
    """``KEY=VALUE`` -> (key, value); the value may be empty and may contain '='."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise CapabilityError(f"{option} expects KEY=VALUE, got {text!r}")
    return key, value


def parse_file_grant(text: str) -> FileAccess:
    """``HOST_DIR[:GUEST_DIR][:ro|rw]`` (Docker's ``-v`` form); read-only by default."""
    if not isinstance(text, str) or not text:
        raise CapabilityError("--allow-file expects HOST_DIR:GUEST_DIR[:ro|rw], got an empty value")
    parts = text.split(":")
    writable = False
    if len(parts) > 1 and parts[-1] in ("ro", "rw"):
        writable = parts.pop() == "rw"
    if len(parts) > 2 or not parts[0]:
        raise CapabilityError(f"--allow-file expects HOST_DIR:GUEST_DIR[:ro|rw], got {text!r} "
                              "(host paths containing ':' are not supported)")
    guest = parts[1] if len(parts) == 2 else None
    return FileAccess.make(parts[0], guest, writable=writable)


def parse_grant(kind: str, text: str) -> Capability:
    """Parse one grant from its text form: kind is ``outbound``, ``file``, ``config`` or ``secret``."""
    if kind == "outbound":
        return Capability.network_outbound(text)
    if kind == "file":
        return parse_file_grant(text)
    if kind == "config":
        return ConfigValue(*parse_pair(text, "--config"))
    if kind == "secret":
        return Secret(*parse_pair(text, "--secret"))
    if kind == "component":
        return ComponentCall(text)
    raise CapabilityError(f"unknown grant kind {kind!r}; known: outbound, file, config, secret, component")


# --- the set a version holds ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Grants:
    """Everything one component version was granted; empty by default (deny all). Immutable.

    Build it with :meth:`of`; a later grant of the same config/secret key or guest directory replaces an earlier
    one (so CLI flags override a manifest). A key may not be both config and secret.
    """

    outbound: OutboundPolicy = field(default_factory=OutboundPolicy)
    files: tuple[FileAccess, ...] = ()
    config: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    secrets: Mapping[str, Secret] = field(default_factory=lambda: MappingProxyType({}))
    kv: KeyValue | None = None
    #: Components ``outbound.fetch`` may call in process (``http://NAME.airssys.internal/``), sorted.
    components: tuple[str, ...] = ()

    @classmethod
    def of(cls, *capabilities: Capability | Iterable[Capability]) -> Grants:
        hosts: dict[AllowedHost, None] = {}
        files: dict[str, FileAccess] = {}
        config: dict[str, str] = {}
        secrets: dict[str, Secret] = {}
        kv: KeyValue | None = None
        components: set[str] = set()
        for cap in _flatten(capabilities):
            if isinstance(cap, NetworkOutbound):
                hosts[cap.host] = None
            elif isinstance(cap, FileAccess):
                files[cap.guest] = cap
            elif isinstance(cap, ConfigValue):
                config[cap.key] = cap.value
                secrets.pop(cap.key, None)
            elif isinstance(cap, Secret):
                secrets[cap.key] = cap
                config.pop(cap.key, None)
            elif isinstance(cap, KeyValue):
                kv = cap
            elif isinstance(cap, ComponentCall):
                components.add(cap.name)
            else:
                raise CapabilityError(f"not a capability: {cap!r}")
        return cls(OutboundPolicy(hosts), tuple(files.values()), MappingProxyType(config),
                   MappingProxyType(secrets), kv, tuple(sorted(components)))

    def __iter__(self) -> Iterator[Capability]:
        yield from (NetworkOutbound(h) for h in self.outbound.grants)
        yield from self.files
        yield from (ConfigValue(k, v) for k, v in self.config.items())
        yield from self.secrets.values()
        if self.kv is not None:
            yield self.kv
        yield from (ComponentCall(n) for n in self.components)

    def __bool__(self) -> bool:
        return any(True for _ in self)

    def __add__(self, other: Grants) -> Grants:
        return Grants.of(self, other)

    # -- settings JSON ---------------------------------------------------------------------------------------
    def to_settings(self, secret_store: SecretResolver | None = None, *, reveal: bool = False) -> dict[str, Any]:
        """The JSON form stored with a version; secret values go to ``secret_store``, only references stay.

        ``reveal=True`` keeps secret values in clear instead: only for handing settings to the code that stores
        them (``deploy``, the admin API), never for display.
        """
        out: dict[str, Any] = {}
        if self.outbound.grants:
            out["outbound"] = [str(h) for h in self.outbound.grants]
        if self.files:
            out["files"] = [{"host": f.host, "guest": f.guest, "mode": f.mode} for f in self.files]
        if self.config:
            out["config"] = dict(self.config)
        if self.secrets:
            refs: dict[str, Any] = {}
            for key, secret in self.secrets.items():
                if secret.ref is not None and secret.value is None:
                    refs[key] = {"ref": secret.ref}
                elif reveal:
                    refs[key] = secret.value
                elif secret_store is None:
                    raise CapabilityError("secrets need a secret store (deploy into a registry to store them)")
                else:
                    assert secret.value is not None
                    refs[key] = {"ref": secret_store.put(secret.value)}
            out["secrets"] = refs
        if self.kv is not None:
            out["kv"] = self.kv.to_dict()
        if self.components:
            out["components"] = list(self.components)
        return out

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> Grants:
        """Read the grants back from a version's settings (or user-written settings: plain secret strings)."""
        caps: list[Capability] = []
        outbound = settings.get("outbound") or []
        if isinstance(outbound, str) or not isinstance(outbound, list):
            raise CapabilityError("settings 'outbound' must be a list of grants like 'https://api.example.com'")
        caps += [Capability.network_outbound(h) for h in outbound]
        for entry in _list_of(settings, "files", dict):
            mode = entry.get("mode", "ro")
            if mode not in ("ro", "rw") or set(entry) - {"host", "guest", "mode"} or "host" not in entry:
                raise CapabilityError(f"settings 'files' entry {entry!r} must be {{host, guest, mode: ro|rw}}")
            caps.append(FileAccess.make(entry["host"], entry.get("guest"), writable=mode == "rw"))
        caps += [ConfigValue(k, v) for k, v in _mapping(settings, "config").items()]
        for key, value in _mapping(settings, "secrets").items():
            if isinstance(value, Mapping) and set(value) == {"ref"} and isinstance(value["ref"], str):
                caps.append(Secret(key, ref=value["ref"]))
            else:
                caps.append(Secret(key, value))
        if "kv" in settings and settings["kv"] is not None and settings["kv"] is not False:
            table = settings["kv"]
            caps.append(KeyValue.from_dict({} if table is True else _as_dict(table, "kv"), what="settings 'kv'"))
        caps += [ComponentCall(n) for n in _list_of(settings, "components", str)]
        return cls.of(caps)

    # -- display ---------------------------------------------------------------------------------------------
    def describe(self) -> list[tuple[str, str]]:
        """``(kind, text)`` rows for ``list``/``status``; secrets are redacted."""
        return [(cap.kind, str(cap)) for cap in self]


def _flatten(items: Iterable[Capability | Iterable[Capability]]) -> Iterator[Capability]:
    for item in items:
        if isinstance(item, Capability):
            yield item
        elif isinstance(item, Grants):
            yield from item
        elif isinstance(item, Iterable) and not isinstance(item, str | bytes):
            yield from _flatten(item)
        else:
            raise CapabilityError(f"not a capability: {item!r}")


def _as_dict(value: object, what: str) -> dict[str, Any]:
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise CapabilityError(f"settings {what!r} must be a table of named values")
    return dict(value)


def _mapping(settings: Mapping[str, Any], key: str) -> dict[str, Any]:
    value = settings.get(key)
    return {} if value is None else _as_dict(value, key)


def _list_of(settings: Mapping[str, Any], key: str, item_type: type) -> list[Any]:
    value = settings.get(key) or []
    if not isinstance(value, list) or not all(isinstance(v, item_type) for v in value):
        raise CapabilityError(f"settings {key!r} must be a list")
    return value
