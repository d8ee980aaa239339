"""Shared click options for grants and limits (``deploy``, ``update``), parsed once into value objects.

Use ``@capability_options`` (all of them) or ``@grant_options`` / ``@limit_options`` on a command, then
``opts = CapabilityOptions.pop_from(kwargs)`` in its body (with ``**kwargs: Any`` in the signature) to take the
parsed grants and limits out. A bad value raises CapabilityError with a one-line message naming the option.

Declaring the options needs click only: the grant values are imported when a command parses them, so ``--help``
imports nothing else.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from ...errors import CapabilityError
from ...runtime.limits import ISOLATIONS

if TYPE_CHECKING:
    from ...capabilities.grants import Grants
    from ...capabilities.kv import KVQuota

F = TypeVar("F", bound=Callable[..., Any])

_GRANT_PARAMS = ("allow_host", "allow_component", "allow_file", "config", "secret", "kv", "kv_quota", "kv_store")
_LIMIT_PARAMS = ("timeout", "memory", "fuel", "min_instances", "max_instances", "max_body", "isolation")
_OTHER_PARAMS = ("manifest", "grant_declared")


def _stack(f: F, *decorators: Callable[[F], F]) -> F:
    for decorator in reversed(decorators):
        f = decorator(f)
    return f


def grant_options(f: F) -> F:
    """``--allow-host``, ``--allow-component``, ``--allow-file``, ``--config``, ``--secret``, ``--kv``,
    ``--kv-quota``, ``--kv-store``."""
    return _stack(
        f,
        click.option("--allow-host", "allow_host", multiple=True, metavar="ORIGIN",
                     help="Let outbound.fetch reach ORIGIN, e.g. https://api.example.com, https://*.example.com, "
                          "http://127.0.0.1:8080 (repeatable; none: deny all)."),
        click.option("--allow-component", "allow_component", multiple=True, metavar="NAME",
                     help="Let outbound.fetch call component NAME in process at http://NAME.airssys.internal/PATH "
                          "(repeatable)."),
        click.option("--allow-file", "allow_file", multiple=True, metavar="HOST_DIR:GUEST_DIR[:ro|rw]",
                     help="Make HOST_DIR visible to the guest at GUEST_DIR, read-only unless :rw (repeatable)."),
        click.option("--config", "config", multiple=True, metavar="KEY=VALUE",
                     help="A value the guest reads with config.get (repeatable)."),
        click.option("--secret", "secret", multiple=True, metavar="KEY[=VALUE]",
                     help="Like --config but never shown or logged; KEY alone reads $KEY (repeatable)."),
        click.option("--kv", "kv", is_flag=True, default=False,
                     help="Give the component its own key-value namespace."),
        click.option("--kv-quota", "kv_quota", default=None, metavar="NAME=N,...",
                     help="KV quotas, e.g. max_total_bytes=16MiB,max_keys=1000,max_value_bytes=1MiB (implies --kv)."),
        click.option("--kv-store", "kv_store", multiple=True, metavar="LABEL",
                     help="A key-value store a Spin component may open besides 'default', with a namespace of its "
                          "own (repeatable; implies --kv)."),
    )


def limit_options(f: F) -> F:
    """``--timeout``, ``--memory``, ``--fuel``, ``--min-instances``, ``--max-instances``, ``--max-body``,
    ``--isolation``."""
    return _stack(
        f,
        click.option("--timeout", default=None, metavar="DURATION",
                     help="Per-request deadline, e.g. 200ms, 2s, 1m (a bare number is seconds); a guest past it is "
                          "interrupted (504). [default: 30s]"),
        click.option("--memory", default=None, metavar="SIZE",
                     help="Linear memory cap per instance: 64MiB, 1GiB, or a number of MiB. [default: 256MiB]"),
        click.option("--fuel", type=int, default=None, metavar="N",
                     help="Per-request budget of wasm instructions (off by default)."),
        click.option("--min-instances", type=int, default=None, help="Pre-warmed instances. [default: 1]"),
        click.option("--max-instances", type=int, default=None,
                     help="Maximum concurrent instances; overflow waits, then 503. [default: 16]"),
        click.option("--max-body", default=None, metavar="SIZE",
                     help="Largest request body (413 beyond): 1MiB, 512KiB, or a number of MiB. [default: 10MiB]"),
        click.option("--isolation", default=None, type=click.Choice(ISOLATIONS),
                     help="pooled: instances are reused, one request at a time each; request: a fresh instance "
                          "for every request, so nothing can leak between requests. [default: pooled]"),
    )


def capability_options(f: F) -> F:
    """Grants, limits, ``--manifest`` and ``--grant-declared``."""
    f = _stack(
        f,
        click.option("--manifest", "manifest", type=click.Path(dir_okay=False, path_type=Path), default=None,
                     help="airssys.toml to read (default: the one next to the component, if any)."),
        click.option("--grant-declared", "grant_declared", is_flag=True, default=False,
                     help="Grant what the component declares (origins, kv, config defaults)."),
    )
    return grant_options(limit_options(f))


@dataclass(frozen=True)
class CapabilityOptions:
    """What the grant/limit flags of one command invocation say."""

    grants: Grants
    limits: dict[str, Any]  # only the limits given, canonical (bytes), validated together
    manifest: Path | None = None
    grant_declared: bool = False
    grants_given: bool = False

    @classmethod
    def pop_from(cls, params: dict[str, Any], *, environ: dict[str, str] | None = None) -> CapabilityOptions:
        """Remove this module's options from a command's ``kwargs`` and parse them."""
        values = {name: params.pop(name, None) for name in (*_GRANT_PARAMS, *_LIMIT_PARAMS, *_OTHER_PARAMS)}
        grants = parse_grant_options(values, environ=os.environ if environ is None else environ)
        limits = parse_limit_options(values)
        given = any(values[n] for n in _GRANT_PARAMS)
        return cls(grants, limits, values["manifest"], bool(values["grant_declared"]), given)


def parse_grant_options(values: dict[str, Any], *, environ: os._Environ[str] | dict[str, str]) -> Grants:
    from ...capabilities.grants import Capability, ConfigValue, Grants, KeyValue, Secret, parse_file_grant, parse_pair

    caps: list[Capability] = [Capability.network_outbound(h) for h in values.get("allow_host") or ()]
    caps += [Capability.component(name) for name in values.get("allow_component") or ()]
    caps += [parse_file_grant(text).absolute() for text in values.get("allow_file") or ()]
    caps += [ConfigValue(*parse_pair(text, "--config")) for text in values.get("config") or ()]
    for text in values.get("secret") or ():
        if "=" in text:
            caps.append(Secret(*parse_pair(text, "--secret")))
        elif text in environ:
            caps.append(Secret(text, environ[text]))
        else:
            raise CapabilityError(f"--secret {text}: give KEY=VALUE, or set the environment variable {text}")
    quota_text = values.get("kv_quota")
    stores = tuple(values.get("kv_store") or ())
    if quota_text or stores or values.get("kv"):
        caps.append(KeyValue(parse_kv_quota(quota_text) if quota_text else KeyValue().quota, stores))
    return Grants.of(caps)


def parse_kv_quota(text: str) -> KVQuota:
    """``max_total_bytes=16MiB,max_keys=1000`` -> KVQuota (sizes take units; counts are plain numbers)."""
    from ...capabilities.grants import parse_pair
    from ...capabilities.kv import KVQuota
    from ...units import parse_size

    fields: dict[str, Any] = {}
    for item in text.split(","):
        key, value = parse_pair(item.strip(), "--kv-quota")
        if key.endswith("_bytes"):
            fields[key] = parse_size(value, default_unit=1, what=f"--kv-quota {key}")
        elif value.isdigit():
            fields[key] = int(value)
        else:
            raise CapabilityError(f"--kv-quota {key}={value!r}: expected a whole number")
    return KVQuota.from_dict(fields)


def parse_limit_options(values: dict[str, Any]) -> dict[str, Any]:
    from ...runtime.limits import Limits

    out: dict[str, Any] = {}
    for name in _LIMIT_PARAMS:
        if values.get(name) is not None:
            out[name] = values[name]
    try:
        return Limits.from_user(out)
    except CapabilityError as exc:
        raise CapabilityError(str(exc).replace("invalid limit ", "invalid --", 1).replace("_", "-", 1)) from None
