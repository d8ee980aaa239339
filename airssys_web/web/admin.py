"""The admin API: upload, deploy with a strategy, promote, roll back, and read state - JSON over HTTP.

The middleware mounts it under a prefix (default ``ADMIN_PREFIX``, ``/_airssys/api``) only when a secret is
configured. Every call needs ``Authorization: Bearer <token>`` (``airssys-web token``): ``read`` for GETs,
``deploy`` for changes. ``/components/{name}/pipeline`` reads (GET), sets (PUT ``{"stages": [...]}``) and clears
(DELETE) the middleware stages in front of a route component.
Answers are the lifecycle records' JSON (:mod:`airssys_web.lifecycle.api`), the same the CLI prints with ``--json``.
Errors are ``{"error": short reason, "detail": what to do}`` with a 4xx status for anything the caller can fix; the
active version is unchanged then. Every change is written to the registry's audit log (token id, action, target,
outcome, time).

An upload is two requests so that bytes are sent once and verified: ``PUT /blobs/{sha256}`` stores the ``.wasm``
(checked against the digest in its URL; compiled artifacts are never accepted over the network, since wasmtime
trusts them blindly), then ``POST /components/{name}/deploy`` names that digest. Changes of one component are
serialized: a second change while one runs gets 409.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..errors import (
    AirssysError,
    AuthError,
    Conflict,
    InvalidComponent,
    InvalidName,
    NotFound,
)
from ..lifecycle import strategies
from ..lifecycle.api import Change, DeployRequest, Plan, Serving, component_status
from ..lifecycle.host import AirssysHost
from ..lifecycle.internal import call_warnings
from ..lifecycle.pipeline import Pipeline
from ..lifecycle.routing import shadow_warning
from ..lifecycle.settings import VersionSettings
from ..observability.summary import summarize
from .auth import Token, TokenAuthority
from .errors import error_response

log = logging.getLogger("airssys_web.web.admin")

_DEPLOY_FIELDS = {"version", "sha256", "route", "nested", "settings", "strategy", "percent", "probe", "auto_rollback"}


class _Refused(AirssysError):
    """A request the admin API refuses as it stands (its JSON, a field, the upload, the path): nothing changed.
    Each subclass is one ``error`` reason, rendered like every other error (:mod:`.errors`)."""

    status = 400
    public = True


class _InvalidJSON(_Refused):
    reason = "invalid JSON"


class _InvalidInput(_Refused):
    reason = "invalid input"


class _DigestMismatch(_Refused):
    reason = "digest mismatch"


class _UploadTooLarge(_Refused):
    status = 413
    reason = "upload too large"


class _NoEndpoint(_Refused):
    status = 404
    reason = "not found"


class _NotAllowed(_Refused):
    status = 405
    reason = "method not allowed"


class _ClientGone(_Refused):
    """The client hung up while sending its request; nothing was changed. Not a server error."""

    reason = "client disconnected"


Handler = Callable[[Request, Token], Awaitable[Response]]
Endpoint = Callable[[Request], Awaitable[Response]]


class AdminAPI:
    """The endpoints, bound to one host; see :func:`admin_app`."""

    def __init__(self, host: AirssysHost, authority: TokenAuthority, *, max_upload: int,
                 shadows: Callable[[str], list[str]] | None = None) -> None:
        self.host = host
        self.registry = host.registry
        self.authority = authority
        self.max_upload = max_upload
        self.shadows = shadows
        self._busy: set[str] = set()

    # -- plumbing -------------------------------------------------------------------------------------------
    def endpoint(self, scope: str, handler: Handler, action: str | None = None) -> Endpoint:
        """Wrap ``handler``: authorize for ``scope``, map errors to JSON, audit changes (``action``)."""

        async def run(request: Request) -> Response:
            try:
                token = self.authority.authorize(request.headers.get("authorization"), scope)
            except AuthError as e:
                return await self._refused(request, e, action)
            target = request.path_params.get("name") or request.path_params.get("sha256", "")
            try:
                response = await handler(request, token)
            except (_ClientGone, ClientDisconnect) as e:
                gone = e if isinstance(e, _ClientGone) else _ClientGone(
                    "the client disconnected before its request was complete; nothing changed")
                if action is not None:
                    await self._audit(token.id, action, getattr(request.state, "target", target), "aborted",
                                      str(gone))
                log.warning("admin API: %s %s: %s", request.method, request.url.path, gone)
                return error_response(gone)  # nobody is left to read it
            except Exception as e:
                error, detail = self._error(e)
                if action is not None:
                    target = getattr(request.state, "target", target)
                    await self._audit(token.id, action, target, "error", f"{error.status} {detail}")
                return error_response(error, detail=detail)
            if action is not None:
                await self._audit(token.id, action, getattr(request.state, "target", target), "ok",
                                  getattr(request.state, "detail", ""))
            return response

        return run

    def _error(self, e: Exception) -> tuple[AirssysError, str]:
        """What the client gets for ``e``: the error (its class gives the status and ``error`` reason, as in
        :mod:`.errors`) and the ``detail`` the admin API always carries. A public error's message says what to fix;
        anything else (a bug, or a message that may hold internals) is named by class, its traceback logged."""
        error = e if isinstance(e, AirssysError) else AirssysError()
        if error.public:
            return error, str(error) or error.reason
        log.exception("admin API: internal error")
        return error, f"{type(e).__name__}: see the server log"

    async def _refused(self, request: Request, e: AuthError, action: str | None) -> Response:
        client = request.client.host if request.client else "?"
        log.warning("admin API: refused %s %s from %s: %s", request.method, request.url.path, client, e)
        if e.status == 403 and action is not None:  # a valid token tried more than it may: worth an audit row
            token = self.authority.verify(request.headers["authorization"].partition(" ")[2].strip())
            await self._audit(token.id, action, request.path_params.get("name", ""), "denied", str(e))
        headers = {"www-authenticate": 'Bearer realm="airssys-web"'} if e.status == 401 else None
        return error_response(e, headers=headers)

    async def _audit(self, token_id: str, action: str, target: str, outcome: str, detail: str) -> None:
        try:
            await asyncio.to_thread(self.registry.audit.append, action, target, outcome, token_id=token_id,
                                    detail=detail)
        except AirssysError:
            log.exception("admin API: could not write the audit log")

    async def _json(self, request: Request, allowed: set[str]) -> dict[str, Any]:
        raw = await request.body()
        if not raw.strip():
            return {}
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise _InvalidJSON("the request body is not valid JSON") from None
        if not isinstance(data, dict):
            raise _InvalidJSON("the request body must be a JSON object")
        unknown = sorted(set(data) - allowed)
        if unknown:
            raise _InvalidInput(f"unknown field(s) {', '.join(unknown)}; "
                                                   f"known: {', '.join(sorted(allowed))}")
        return data

    def _claim(self, name: str) -> None:
        if name in self._busy:
            raise Conflict(f"another change of {name} is in progress on this server; retry when it has finished")
        self._busy.add(name)

    # -- reads ----------------------------------------------------------------------------------------------
    async def token(self, request: Request, token: Token) -> Response:
        return JSONResponse(token.as_json())

    async def components(self, request: Request, token: Token) -> Response:
        def read() -> list[dict[str, Any]]:
            return [component_status(self.registry, c, self._serving).to_json() for c in self.registry.components()]

        return JSONResponse(await asyncio.to_thread(read))

    async def component(self, request: Request, token: Token) -> Response:
        name = request.path_params["name"]

        def read() -> dict[str, Any]:
            return component_status(self.registry, self.registry.get_component(name), self._serving).to_json()

        return JSONResponse(await asyncio.to_thread(read))

    async def history(self, request: Request, token: Token) -> Response:
        entries = await asyncio.to_thread(self.registry.history, request.path_params["name"])
        return JSONResponse([h.to_json() for h in entries])

    async def status(self, request: Request, token: Token) -> Response:
        rows = {}
        watching = self.host.autorollback.watching()
        for name, gen in sorted(self.host.generations().items()):
            canary = self.host.canaries().get(name)
            gens = [gen] + ([canary[0]] if canary else [])
            rows[name] = {**self._serving(name).to_json(), "auto_rollback_watching": watching.get(name),
                          "generations": [{"version": g.version, "in_flight": g.in_flight, "completed": g.completed,
                                           "failed": g.failed, "instances": g.pool.size} for g in gens]}
        registry = {"location": self.host.watch.label, **self.host.registry_health.to_json()}
        return JSONResponse({"components": rows, "registry": registry})

    async def metrics(self, request: Request, token: Token) -> Response:
        """The metrics per version as JSON (the dashboard's source), from the samples a scrape gets."""
        return JSONResponse(summarize(await asyncio.to_thread(self.host.metrics.samples)))

    async def audit(self, request: Request, token: Token) -> Response:
        try:
            limit = int(request.query_params.get("limit", "100"))
            if not 1 <= limit <= 10_000:
                raise ValueError
        except ValueError:
            raise _InvalidInput("limit must be a whole number from 1 to 10000") from None
        entries = await asyncio.to_thread(self.registry.audit.entries, limit)
        return JSONResponse([a.to_json() for a in entries])

    async def blob(self, request: Request, token: Token) -> Response:
        sha = _sha_param(request)
        size = await asyncio.to_thread(self.registry.blobs.size, sha)
        if size is None:
            raise NotFound(f"no blob {sha} on this server; upload it with PUT")
        return JSONResponse({"sha256": sha, "size": size})

    def _serving(self, name: str) -> Serving:
        return Serving(*self.host.serving(name))

    # -- changes --------------------------------------------------------------------------------------------
    async def upload(self, request: Request, token: Token) -> Response:
        sha = _sha_param(request)
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_upload:
            raise _UploadTooLarge(self._too_large())
        digest = hashlib.sha256()
        chunks: list[bytes] = []
        size = 0
        try:
            async for chunk in request.stream():
                size += len(chunk)
                if size > self.max_upload:
                    raise _UploadTooLarge(self._too_large())
                digest.update(chunk)
                chunks.append(chunk)
        except ClientDisconnect:
            of = f" of {declared}" if declared is not None else ""
            raise _ClientGone(f"the client disconnected after sending {size}{of} bytes of blob {sha[:12]}; "
                              "nothing was stored") from None
        data = b"".join(chunks)
        if digest.hexdigest() != sha:
            raise _DigestMismatch(f"the body's sha256 is {digest.hexdigest()}, not {sha} as in "
                                                     "the URL; the upload was corrupted or the URL is wrong")
        if data[:4] != b"\x00asm":
            raise InvalidComponent("the upload is not a WebAssembly file (it does not start with \\0asm); "
                                   "upload the component's .wasm")
        await asyncio.to_thread(self.registry.blobs.put, data)
        request.state.target, request.state.detail = f"blob {sha[:12]}", f"{size} bytes"
        return JSONResponse({"sha256": sha, "size": size}, status_code=201)

    def _too_large(self) -> str:
        return (f"the upload is larger than this server's cap of {self.max_upload} bytes; "
                "raise it with --max-upload (serve) or max_upload= (middleware)")

    async def deploy(self, request: Request, token: Token) -> Response:
        name = request.path_params["name"]
        body = await self._json(request, _DEPLOY_FIELDS)
        version, sha = body.get("version"), body.get("sha256")
        if not isinstance(version, str) or not isinstance(sha, str):
            raise _InvalidInput("give \"version\" and \"sha256\" (of a blob uploaded with PUT "
                                                   "/blobs/{sha256}) as strings")
        settings = VersionSettings.from_json(body.get("settings") or {})
        nested = body.get("nested", False)
        if not isinstance(nested, bool):
            raise _InvalidInput("\"nested\" must be true or false")
        plan = Plan.parse(str(body.get("strategy", "immediate")), percent=body.get("percent"),
                          probe=body.get("probe"), auto_rollback=body.get("auto_rollback"))
        request.state.target, request.state.detail = f"{name}@{version}", f"strategy {plan.strategy}"
        self._claim(name)
        try:
            wasm = await asyncio.to_thread(self.registry.blobs.read, _sha(sha))
            wanted = DeployRequest(name, wasm, version=version, route=body.get("route"), settings=settings,
                                   plan=plan, nested=nested)
            dep = await strategies.rollout(self.host, wanted, actor=token.id)
        finally:
            self._busy.discard(name)
        paths = self.shadows(dep.route) if self.shadows is not None and dep.route is not None else []
        warnings: tuple[str, ...] = (shadow_warning(name, dep.route, paths),) if paths and dep.route else ()
        warnings += await asyncio.to_thread(call_warnings, self.registry, name, settings.grants.components)
        return JSONResponse(Change(dep, self._serving(name), warnings).to_json())

    async def promote(self, request: Request, token: Token) -> Response:
        name = request.path_params["name"]
        await self._json(request, set())
        self._claim(name)
        try:
            dep = await strategies.promote(self.host, name, actor=token.id)
        finally:
            self._busy.discard(name)
        request.state.target = f"{name}@{dep.active_version}"
        return JSONResponse(Change(dep, self._serving(name)).to_json())

    async def pipeline(self, request: Request, token: Token) -> Response:
        name = request.path_params["name"]
        dep = await asyncio.to_thread(self.registry.get_deployment, name)
        return JSONResponse({"component": name, "stages": list(dep.stages)})

    async def set_pipeline(self, request: Request, token: Token) -> Response:
        name = request.path_params["name"]
        if request.method == "DELETE":
            await self._json(request, set())
            stages: list[str] = []
        else:
            given = (await self._json(request, {"stages"})).get("stages")
            if not isinstance(given, list) or not all(isinstance(s, str) for s in given):
                raise _InvalidInput("give \"stages\": a list of middleware component names, "
                                                       "first to last ([] clears the pipeline)")
            stages = given
        pipeline = Pipeline(name, stages)
        request.state.target, request.state.detail = name, f"stages: {', '.join(stages) or '(none)'}"
        self._claim(name)
        try:
            dep = await strategies.set_pipeline(self.host, name, pipeline.stages, actor=token.id)
        finally:
            self._busy.discard(name)
        return JSONResponse(Change(dep, self._serving(name)).to_json())

    async def rollback(self, request: Request, token: Token) -> Response:
        name = request.path_params["name"]
        body = await self._json(request, {"to_version"})
        to_version = body.get("to_version")
        if to_version is not None and not isinstance(to_version, str):
            raise _InvalidInput("\"to_version\" must be a string such as \"1.0.0\"")
        self._claim(name)
        try:
            dep = await strategies.rollback(self.host, name, to_version, actor=token.id)
        finally:
            self._busy.discard(name)
        request.state.target = f"{name}@{dep.active_version}"
        return JSONResponse(Change(dep, self._serving(name)).to_json())


def _sha(value: str) -> str:
    if len(value) != 64 or any(c not in "0123456789abcdef" for c in value):
        raise InvalidName(f"invalid sha256 {value!r}: expected 64 lowercase hex digits")
    return value


def _sha_param(request: Request) -> str:
    return _sha(request.path_params["sha256"])


def admin_app(host: AirssysHost, authority: TokenAuthority, *, max_upload: int,
              shadows: Callable[[str], list[str]] | None = None) -> Starlette:
    """The admin API as a Starlette app (the middleware mounts it under its prefix). ``shadows(route)`` names the
    host app's routes a component at ``route`` would shadow; a deploy answers them as ``warnings``."""
    api = AdminAPI(host, authority, max_upload=max_upload, shadows=shadows)
    e = api.endpoint
    routes = [
        Route("/token", e("read", api.token)),
        Route("/status", e("read", api.status)),
        Route("/metrics", e("read", api.metrics)),
        Route("/audit", e("read", api.audit)),
        Route("/components", e("read", api.components)),
        Route("/components/{name}", e("read", api.component)),
        Route("/components/{name}/history", e("read", api.history)),
        Route("/components/{name}/deploy", e("deploy", api.deploy, "deploy"), methods=["POST"]),
        Route("/components/{name}/promote", e("deploy", api.promote, "promote"), methods=["POST"]),
        Route("/components/{name}/rollback", e("deploy", api.rollback, "rollback"), methods=["POST"]),
        Route("/components/{name}/pipeline", e("read", api.pipeline)),
        Route("/components/{name}/pipeline", e("deploy", api.set_pipeline, "pipeline"), methods=["PUT", "DELETE"]),
        Route("/blobs/{sha256}", e("read", api.blob)),
        Route("/blobs/{sha256}", e("deploy", api.upload, "upload"), methods=["PUT"]),
    ]

    async def not_found(request: Request, exc: Exception) -> Response:
        return error_response(_NoEndpoint(f"no admin endpoint {request.method} {request.url.path}"))

    async def not_allowed(request: Request, exc: Exception) -> Response:
        return error_response(_NotAllowed(f"{request.method} is not allowed on {request.url.path}"))

    return Starlette(routes=routes, exception_handlers={404: not_found, 405: not_allowed})
