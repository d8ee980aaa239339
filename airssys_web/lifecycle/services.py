"""Turning a version's stored settings into what its generation runs with: a HostContext and Limits.

:class:`HostServices` belongs to one host (one registry) and owns what all its generations share: the KV store
and the secret store, both kept by the registry (its directory, or its Redis: :meth:`HostServices.for_registry`) so
grants, data and secrets survive restarts and every process serving the registry shares them. Everything a
context owns on its own (the outbound Fetcher and its connections) is released by ``HostContext.close()`` when
its generation closes.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..capabilities.grants import REDACTED, Grants
from ..capabilities.kv import KVNamespace, KVStore, SqliteKVStore
from ..capabilities.outbound import Fetcher, OutboundPolicy
from ..capabilities.secrets import SecretBackend, SecretStore
from ..errors import CapabilityError, OutboundDenied
from ..observability.tracing import TRACING
from ..runtime.generation import Generation
from ..runtime.imports import NOTHING_GRANTED, HostContext
from ..runtime.limits import Limits
from .internal import InternalCalls, Resolve, internal_name, not_granted

if TYPE_CHECKING:
    from .registry import Registry

KV_FILE = "kv.db"
SECRETS_DIR = "secrets"


def state_dir(registry: Any) -> Path | None:
    """Where a registry keeps KV data and secrets: its root directory (beside ``artifacts/``), if it has one."""
    root = getattr(registry, "root", None)
    if root is not None:
        return Path(root)
    artifacts = getattr(registry, "artifacts_dir", None)
    return Path(artifacts).parent if artifacts is not None else None


_DENY_ALL = OutboundPolicy()


class _Outbound:
    """A version's ``fetch``, the one path of every world's outbound requests: a component address goes to the
    version's internal calls, anything else to its outbound fetcher, all under the caller's deadline.

    The one place every request a guest sends passes through, so the trace context is propagated here: the
    current span's W3C ``traceparent`` replaces any the guest set (only while a tracer provider is installed).
    """

    __slots__ = ("_component", "_fetcher", "_internal")

    def __init__(self, component: str, fetcher: Fetcher | None, internal: InternalCalls | None) -> None:
        self._component = component
        self._fetcher = fetcher
        self._internal = internal

    def __call__(self, method: str, url: str, headers: list[tuple[str, str]], body: bytes, *,
                 deadline: float | None = None, depth: int = 0) -> tuple[int, list[tuple[str, str]], bytes]:
        headers = TRACING.inject(headers)
        name = internal_name(url)
        if name is not None:
            if self._internal is None:
                raise not_granted(self._component, name)
            return self._internal(name, method, url, headers, body, deadline=deadline, depth=depth)
        if self._fetcher is None:
            raise explain_denial(url, self._component)
        return self._fetcher.fetch(method, url, headers, body, deadline=deadline)


def explain_denial(url: str, component: str = "this component") -> OutboundDenied:
    """Why a request is refused when a version has no outbound grant: the empty policy's own verdict (a bad URL,
    or the origin not granted, with the flag that grants it), or the component grant a component address needs."""
    try:
        name = internal_name(url)
        if name is not None:
            return not_granted(component, name)
        _DENY_ALL.check(url)
    except OutboundDenied as e:
        return e
    return OutboundDenied(NOTHING_GRANTED)  # pragma: no cover - the empty policy refuses everything


class HostServices:
    """Per-host shared resources and the settings -> (HostContext, Limits) factory.

    ``directory`` is the registry directory (None: no KV and no secrets, e.g. a trial instantiation); a registry
    that keeps them elsewhere gives ``secrets`` and ``open_kv`` instead (:meth:`for_registry`).
    ``fetcher_options`` go to every :class:`~airssys_web.capabilities.outbound.Fetcher` (timeouts, caps, a test
    transport).
    """

    def __init__(self, directory: str | Path | None, *, kv_store: KVStore | None = None,
                 fetcher_options: Mapping[str, Any] | None = None, secrets: SecretBackend | None = None,
                 open_kv: Callable[[], KVStore] | None = None) -> None:
        #: How internal calls find a component's active generation (the host sets it; None: nothing is deployed
        #: here, so a granted component answers "not deployed").
        self.resolve_component: Resolve | None = None
        self.directory = Path(directory) if directory is not None else None
        self._kv = kv_store
        self._owns_kv = kv_store is None
        self._open_kv = open_kv
        self._fetcher_options = dict(fetcher_options or {})
        self._lock = threading.Lock()
        if secrets is None and self.directory is not None:
            secrets = SecretStore(self.directory / SECRETS_DIR)
        self.secrets = secrets

    @classmethod
    def for_registry(cls, registry: Registry, **options: Any) -> HostServices:
        """The services of a host serving ``registry``: its secret store and its KV data (opened on first use)."""
        return cls(state_dir(registry), secrets=registry.secrets, open_kv=registry.kv_store, **options)

    @property
    def kv_store(self) -> KVStore:
        """The KV store, opened on first use (the registry's, else ``<directory>/kv.db``)."""
        with self._lock:
            if self._kv is None:
                if self._open_kv is not None:
                    self._kv = self._open_kv()
                elif self.directory is None:
                    raise CapabilityError("kv needs a registry directory to keep its data in")
                else:
                    self._kv = SqliteKVStore(self.directory / KV_FILE)
            return self._kv

    def context(self, component: str, version: str, settings: Mapping[str, Any]) -> tuple[HostContext, Limits]:
        """The host context and limits a version was deployed with (so a rollback restores them too)."""
        limits = Limits.from_dict(settings.get("limits"))
        grants = Grants.from_settings(settings)
        config = dict(grants.config)
        secret_values: list[str] = []
        for key, secret in grants.secrets.items():
            if secret.value is not None:
                value = secret.value
            elif self.secrets is None or secret.ref is None:
                raise CapabilityError(f"{component}@{version}: secret {key!r} cannot be read without its registry")
            else:
                value = self.secrets.get(secret.ref)
            config[key] = value
            secret_values.append(value)
        kv: KVNamespace | None = None
        stores: dict[str, KVNamespace] = {}
        if grants.kv is not None:
            kv = KVNamespace(self.kv_store, component, grants.kv.quota) if grants.kv.default else None
            # A Spin store label is a namespace of its own; component names cannot hold "/", so none can collide.
            stores = {label: KVNamespace(self.kv_store, f"{component}/{label}", grants.kv.quota)
                      for label in grants.kv.stores}
        fetcher = Fetcher(grants.outbound, **self._fetcher_options) if grants.outbound.grants else None
        internal = None
        if grants.components:
            resolve = self._resolve
            internal = InternalCalls(component, f"{component}@{version}", frozenset(grants.components), resolve)
        send = _Outbound(component, fetcher, internal) if fetcher is not None or internal is not None else None
        ctx = HostContext(component=component, version=version, config=config, fetch=send,
                          explain_denial=lambda url: explain_denial(url, component), kv=kv, kv_stores=stores,
                          files=grants.files, secret_values=tuple(secret_values), redaction=REDACTED,
                          fuel=limits.fuel is not None, denials=(lambda: fetcher.denials) if fetcher else None,
                          resources=(fetcher,) if fetcher is not None else ())
        return ctx, limits

    def _resolve(self, name: str) -> Generation | None:
        resolve = self.resolve_component
        return None if resolve is None else resolve(name)

    def close(self) -> None:
        """Close the KV store if this object opened it (idempotent)."""
        with self._lock:
            kv, self._kv = self._kv, None
        if kv is not None and self._owns_kv:
            kv.close()
