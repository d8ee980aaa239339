"""Test a component in-process, in the spirit of Starlette's ``TestClient``: no server, no registry.

::

    from airssys_web.guest.testing import ComponentClient

    def test_hello():
        with ComponentClient("hello.wasm", config={"greeting": "Hi"}, kv=True) as client:
            r = client.get("/hello/Ada")
            assert r.status_code == 200 and r.text == "Hi, Ada!"

:class:`ComponentClient` is an ``httpx.Client`` whose transport calls the component the way the host would: the
same validation as ``deploy``, the same grants (``airssys.toml`` next to the ``.wasm`` is read like ``deploy`` reads
it, then ``grants``/``config``/``kv`` on top), the same limits, instance pool and response checks. KV data lives in
a private temporary store (``client.kv`` reads and seeds it). ``upstream`` stands in for the hosts a component may
``fetch`` from, so no test reaches the network. A trap, timeout or bad response raises the matching
:class:`~airssys_web.errors.GuestError` unless ``raise_guest_errors=False``, which answers the status the
middleware would (500, 504, 502, 503) instead.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import httpx

from .. import _native
from ..capabilities.grants import Capability, ConfigValue, Grants, KeyValue
from ..capabilities.kv import KVNamespace, KVStore
from ..errors import AirssysError, BadGuestResponse, GuestError, GuestTimeout, InvalidComponent, PoolExhausted
from ..lifecycle.deploy import check_component, plan_capabilities
from ..lifecycle.generations import Code, GenerationFactory
from ..lifecycle.manifest import Manifest, find_manifest, load_manifest
from ..lifecycle.registry import validate_route
from ..lifecycle.services import HostServices
from ..lifecycle.settings import VersionSettings
from ..runtime.artifacts import ArtifactCache
from ..runtime.engine import Runtime
from ..runtime.generation import Generation
from ..runtime.limits import Limits
from ..runtime.worlds import is_middleware
from .build import default_cache_dir

__all__ = ["ComponentClient", "ComponentTransport", "load_component_settings"]

Upstream = httpx.BaseTransport | Callable[[httpx.Request], httpx.Response]
#: With ``upstream``, no name is looked up: every name "resolves" to this public address, which is never dialled.
PLACEHOLDER_ADDRESS = "93.184.215.14"
VERSION_HEADER = "x-airssys-version"
ROUTE_HEADER = "x-airssys-route"


def load_component_settings(wasm: bytes, *, source: Path | None = None, manifest: str | Path | bool | None = None,
                            grants: Grants | Iterable[Capability] = (), config: Mapping[str, str] | None = None,
                            kv: bool = False, limits: Limits | Mapping[str, Any] | None = None,
                            settings: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The settings a component would be deployed with: manifest < ``settings`` < grants/config/kv/limits.

    ``manifest=None`` reads the ``airssys.toml`` beside ``source`` (as ``deploy`` does), ``False`` reads none, a
    path reads that file. The declared needs are checked against the result, as ``deploy`` checks them.
    """
    loaded: Manifest | None = None
    if manifest is None and source is not None:
        found = find_manifest(source)
        loaded = load_manifest(found) if found is not None else None
    elif isinstance(manifest, str | Path):
        loaded = load_manifest(manifest)
    extra: list[Capability | Iterable[Capability]] = [grants]
    extra += [ConfigValue(k, v) for k, v in (config or {}).items()]
    if kv:
        extra.append(KeyValue())
    given = VersionSettings.from_json(settings).merged(VersionSettings(Grants.of(*extra), limits))
    return plan_capabilities(wasm, settings=given, manifest=loaded).settings.to_json(reveal_secrets=True)


def default_artifacts_dir() -> Path:
    """The artifact directory beside the build cache (``.cache/artifacts``), shared by every ComponentClient."""
    return default_cache_dir().parent / "artifacts"


class ComponentTransport(httpx.BaseTransport):
    """An httpx transport that answers every request by calling one component (blocking, in this thread).

    With ``route``, every request carries ``x-airssys-route: <route>`` as the middleware sets it (a header of that
    name the test sends is replaced), so the component sees the mount point it would have when deployed there.
    """

    def __init__(self, generation: Generation, *, raise_guest_errors: bool = True, route: str | None = None,
                 next: Upstream | None = None) -> None:
        self.generation = generation
        self.raise_guest_errors = raise_guest_errors
        self.route = route
        self._next = None if next is None else _next_handler(next)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        body = request.read()
        limits = self.generation.limits
        if len(body) > limits.max_body:
            return _error(413, f"request body of {len(body)} bytes is over the limit of {limits.max_body}")
        headers = [(k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in request.headers.raw]
        if self.route is not None:
            headers = [(k, v) for k, v in headers if k != ROUTE_HEADER] + [(ROUTE_HEADER, self.route)]
        try:
            answer = self.generation.call(request.method, request.url.path, request.url.query.decode("latin-1"),
                                          headers, body, next=self._next)
        except (GuestError, PoolExhausted) as exc:
            if self.raise_guest_errors:
                raise
            status = 504 if isinstance(exc, GuestTimeout) else 502 if isinstance(exc, BadGuestResponse) else \
                503 if isinstance(exc, PoolExhausted) else 500
            return _error(status, str(exc))
        out = httpx.Response(answer.status, headers=answer.headers, content=answer.body, request=request)
        out.headers[VERSION_HEADER] = self.generation.tag
        return out

    def close(self) -> None:
        self.generation.close()


def _next_handler(next: Upstream) -> _native.Next:
    """What a middleware stage's imported ``handler`` calls in a test: ``next`` (a transport, or a function of an
    ``httpx.Request``) receives what the stage passed on, at ``http://next.test/PATH``."""
    transport = next if isinstance(next, httpx.BaseTransport) else httpx.MockTransport(next)

    def call(method: str, path: str, query: str, headers: list[tuple[str, str]], body: bytes,
             remaining: float) -> tuple[int, list[tuple[str, str]], bytes]:
        url = httpx.URL(f"http://next.test{path}", query=query.encode("latin-1"))
        response = transport.handle_request(httpx.Request(method, url, headers=headers, content=body))
        data = response.read()
        return response.status_code, [(k.decode("latin-1"), v.decode("latin-1")) for k, v in response.headers.raw], data

    return call


def _by_name(handler: Callable[[httpx.Request], httpx.Response]) -> httpx.MockTransport:
    """A mock transport that shows ``handler`` the URL the guest asked for, not the pinned address.

    The host connects to the address it checked and sends the name in ``Host``; a test routes on the name.
    """

    def answer(request: httpx.Request) -> httpx.Response:
        host = request.headers.get("host", request.url.netloc.decode("ascii"))
        name, _, port = host.rpartition(":") if host.rsplit(":", 1)[-1].isdigit() else (host, "", "")
        url = request.url.copy_with(host=name, port=int(port) if port else None)
        return handler(httpx.Request(request.method, url, headers=request.headers, content=request.read()))

    return httpx.MockTransport(answer)


def _error(status: int, message: str) -> httpx.Response:
    return httpx.Response(status, json={"error": message})


class ComponentClient(httpx.Client):
    """An ``httpx.Client`` wired to one component; use it as a context manager (it owns an instance pool).

    ``component`` is a ``.wasm`` path or its bytes. ``grants`` are :class:`~airssys_web.capabilities.grants.Capability`
    values (``Capability.network_outbound("https://api.example.com")``); ``config`` and ``kv=True`` are
    shorthands. ``limits`` are :class:`~airssys_web.runtime.limits.Limits` or its fields (``{"timeout": 2}``).
    ``upstream`` answers the component's granted ``fetch`` calls: an httpx transport, or a function
    ``request -> response`` (wrapped in ``httpx.MockTransport``). ``kv_store`` shares a store between clients
    (default: a private one).
    ``route`` is the route to call the component as deployed at: every request tells it that mount point in
    ``x-airssys-route``, as the middleware does (default: none, as when a guest is called outside a host).
    ``next`` stands for what comes after a middleware stage (required for one, refused for a route component):
    a transport or a function ``request -> response``, which receives what the stage passes on.
    """

    def __init__(self, component: str | Path | bytes, *, grants: Grants | Iterable[Capability] = (),
                 config: Mapping[str, str] | None = None, kv: bool = False,
                 limits: Limits | Mapping[str, Any] | None = None, settings: Mapping[str, Any] | None = None,
                 manifest: str | Path | bool | None = None, upstream: Upstream | None = None,
                 kv_store: KVStore | None = None, name: str = "component", version: str = "0.0.0-test",
                 raise_guest_errors: bool = True, base_url: str = "http://component.test",
                 artifacts: str | Path | None = None, route: str | None = None, next: Upstream | None = None,
                 **client_options: Any) -> None:
        if route is not None:
            validate_route(route)
        source: Path | None = None
        if isinstance(component, bytes | bytearray):
            wasm = bytes(component)
        else:
            source = Path(component)
            try:
                wasm = source.read_bytes()
            except FileNotFoundError:
                raise InvalidComponent(f"file not found: {source}; build the component first") from None
        full = load_component_settings(wasm, source=source, manifest=manifest, grants=grants, config=config,
                                       kv=kv, limits=limits, settings=settings)
        self._tmp = tempfile.TemporaryDirectory(prefix="airssys-testing-")
        fetcher_options: dict[str, Any] = {}
        if upstream is not None:
            transport = upstream if isinstance(upstream, httpx.BaseTransport) else _by_name(upstream)
            fetcher_options = {"transport": transport, "resolver": lambda host, port: [PLACEHOLDER_ADDRESS]}
        self.services = HostServices(self._tmp.name, kv_store=kv_store, fetcher_options=fetcher_options)
        self.runtime = Runtime(threads=2)
        cache = ArtifactCache(artifacts if artifacts is not None else default_artifacts_dir(), self.runtime)
        try:
            label = source.name if source else name
            _, self.report = check_component(wasm, cache, label=label, settings=full)
            if is_middleware(self.report.imports) and next is None:
                raise InvalidComponent(f"{label} is a middleware stage: pass next= (a function of an httpx.Request "
                                       "returning an httpx.Response, or a transport) to stand for what comes after it")
            if next is not None and not is_middleware(self.report.imports):
                raise InvalidComponent(f"{label} is a route component; only a middleware stage calls next")
            factory = GenerationFactory(self.runtime, cache, self.services)
            code = Code(name, version, self.report.sha256, json.dumps(full, sort_keys=True))  # in memory only
            generation = factory.build(code, wasm=wasm)
        except BaseException:
            self._release()
            raise
        self.settings = full
        self.limits = generation.limits
        self.generation = generation
        #: The component's KV namespace (None unless KV was granted): seed data or check what the guest wrote.
        namespace = generation.ctx.kv
        self.kv: KVNamespace | None = namespace if isinstance(namespace, KVNamespace) else None
        transport = ComponentTransport(generation, raise_guest_errors=raise_guest_errors, route=route, next=next)
        super().__init__(transport=transport, base_url=base_url, **client_options)

    def _release(self) -> None:
        self.runtime.close()
        self.services.close()
        self._tmp.cleanup()

    def close(self) -> None:
        """Close the component's instances, then its runtime, services and temporary state (idempotent)."""
        try:
            super().close()
        finally:
            self._release()

    def __enter__(self) -> ComponentClient:
        super().__enter__()
        return self


def describe_error(exc: AirssysError) -> str:
    """One line for a failed call (used by ``airssys-web call``)."""
    return f"{type(exc).__name__}: {exc}"
