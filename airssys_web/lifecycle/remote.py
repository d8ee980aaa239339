"""The lifecycle through a running server's admin API (``airssys-web ... --server URL``), built on httpx.

:class:`RemoteLifecycle` implements :class:`~.api.Lifecycle`: the same records as on a registry directory, parsed
from the JSON the admin API answers with (each record's ``from_json``). Errors come back as the same exception
classes the server raised (``NotFound``, ``Conflict``, ``AuthError``, ...) with the server's one-line explanation,
so the CLI reports them exactly as in ``--registry`` mode. Uploads skip blobs the server already has (a re-deploy
sends nothing) and show a progress bar for large files when stderr is a terminal.
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import Any, Self, TypeVar
from urllib.parse import urlsplit

import httpx

from ..errors import API_ERRORS, AirssysError, AuthError, DeployError, NotFound
from .api import Change, ComponentStatus, DeployRequest, Strategy
from .pipeline import Pipeline
from .registry import AuditEntry, HistoryEntry
from .routing import ADMIN_PREFIX

__all__ = ["RemoteLifecycle", "admin_base"]

CHUNK = 256 * 1024
PROGRESS_THRESHOLD = 1024 * 1024
_BY_REASON: dict[str, type[AirssysError]] = {reason: kind for kind, _, reason in API_ERRORS}
R = TypeVar("R")


def admin_base(server: str) -> str:
    """``http://host:8000`` -> ``http://host:8000/_airssys/api``; a URL with a path is taken as the API itself."""
    parts = urlsplit(server)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise AirssysError(f"invalid --server {server!r}: give the server's URL, e.g. http://127.0.0.1:8000")
    path = parts.path.rstrip("/")
    return f"{parts.scheme}://{parts.netloc}{path or ADMIN_PREFIX}"


class RemoteLifecycle:
    """:class:`~.api.Lifecycle` through the admin API of the server at ``server``, authorized by ``token``.

    ``transport`` is for tests (e.g. ``httpx.ASGITransport``); ``progress`` shows an upload bar (default: when
    stderr is a terminal).
    """

    def __init__(self, server: str, token: str | None, *, timeout: float = 300.0,
                 transport: httpx.BaseTransport | None = None, progress: bool | None = None) -> None:
        if not token:
            raise AuthError("no admin token: pass --token or set AIRSSYS_TOKEN "
                            "(mint one where the server's secret is: airssys-web token --scope deploy)")
        self.base = admin_base(server)
        self.server = server
        self.progress = sys.stderr.isatty() if progress is None else progress
        self._http = httpx.Client(base_url=self.base, timeout=timeout, transport=transport,
                                  headers={"authorization": f"Bearer {token}"})

    # -- the lifecycle --------------------------------------------------------------------------------------
    def deploy(self, request: DeployRequest) -> Change:
        """Upload the component (unless the server has it) and deploy it; returns once the new version serves."""
        sha = self.upload(request.wasm, label=request.name)
        plan = request.plan
        body: dict[str, Any] = {"version": request.version, "sha256": sha, "strategy": plan.strategy.value}
        settings = request.settings.to_json(reveal_secrets=True)  # the server stores references only
        optional = {"route": request.route, "nested": request.nested or None, "settings": settings or None,
                    "percent": plan.percent if plan.strategy is Strategy.CANARY else None, "probe": plan.probe,
                    "auto_rollback": plan.policy_text}
        body.update({key: value for key, value in optional.items() if value is not None})
        return self._parse(Change.from_json, self._call("POST", f"/components/{request.name}/deploy", json=body))

    def promote(self, name: str) -> Change:
        return self._parse(Change.from_json, self._call("POST", f"/components/{name}/promote"))

    def rollback(self, name: str, to_version: str | None = None) -> Change:
        body = {} if to_version is None else {"to_version": to_version}
        return self._parse(Change.from_json, self._call("POST", f"/components/{name}/rollback", json=body))

    def set_pipeline(self, pipeline: Pipeline) -> Change:
        body = {"stages": list(pipeline.stages)}
        return self._parse(Change.from_json, self._call("PUT", f"/components/{pipeline.component}/pipeline",
                                                        json=body))

    def components(self) -> list[ComponentStatus]:
        return [self._parse(ComponentStatus.from_json, c) for c in self._call("GET", "/components")]

    def component(self, name: str) -> ComponentStatus:
        return self._parse(ComponentStatus.from_json, self._call("GET", f"/components/{name}"))

    def history(self, name: str) -> list[HistoryEntry]:
        return [self._parse(HistoryEntry.from_json, h) for h in self._call("GET", f"/components/{name}/history")]

    def audit(self, limit: int = 100) -> list[AuditEntry]:
        return [self._parse(AuditEntry.from_json, a) for a in self._call("GET", "/audit", params={"limit": limit})]

    def describe(self) -> str:
        return f"server {self.server}"

    # -- what only a server has -----------------------------------------------------------------------------
    def server_status(self) -> dict[str, Any]:
        """What this server process serves and whether it reaches its registry (``GET /status``): answered even
        while the registry is unreachable."""
        return dict(self._call("GET", "/status"))

    def whoami(self) -> dict[str, Any]:
        """The calling token's id, scope and expiry."""
        return dict(self._call("GET", "/token"))

    def upload(self, wasm: bytes, *, label: str = "component") -> str:
        """Store ``wasm`` on the server (unless it is there already); returns its sha256."""
        sha = hashlib.sha256(wasm).hexdigest()
        try:
            self._call("GET", f"/blobs/{sha}")
            return sha
        except NotFound:
            pass
        headers = {"content-type": "application/wasm", "content-length": str(len(wasm))}
        if self.progress and len(wasm) >= PROGRESS_THRESHOLD:
            from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

            columns = ("[progress.description]{task.description}", BarColumn(), DownloadColumn(),
                       TransferSpeedColumn())
            with Progress(*columns, transient=True) as bar:
                task = bar.add_task(f"uploading {label}", total=len(wasm))

                def chunks() -> Iterator[bytes]:
                    for start in range(0, len(wasm), CHUNK):
                        piece = wasm[start:start + CHUNK]
                        yield piece
                        bar.advance(task, len(piece))

                self._call("PUT", f"/blobs/{sha}", content=chunks(), headers=headers)
        else:
            self._call("PUT", f"/blobs/{sha}", content=wasm, headers=headers)
        return sha

    # -- plumbing -------------------------------------------------------------------------------------------
    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def _parse(self, parse: Callable[[Any], R], data: Any) -> R:
        """A record from the server's JSON; an answer of another shape (another airssys-web version, or not
        airssys-web at all) is one clear error rather than a KeyError."""
        try:
            return parse(data)
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise AirssysError(f"the server at {self.base} answered in an unexpected shape ({type(e).__name__}: "
                               f"{e}); is it running the same airssys-web version?") from None

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            resp = self._http.request(method, path, **kwargs)
        except httpx.TransportError as e:
            raise AirssysError(f"cannot reach the server at {self.base}: {e or type(e).__name__}") from None
        if resp.status_code < 400:
            return resp.json() if resp.content else None
        try:
            payload = resp.json()
            error, detail = str(payload["error"]), str(payload.get("detail", ""))
        except (ValueError, KeyError, TypeError):
            if resp.status_code == 404:
                raise AirssysError(f"{self.base} has no admin API (404): is the server started with a secret "
                                   "(AIRSSYS_SECRET or --secret-file), and is the URL right?") from None
            raise AirssysError(f"the server answered {resp.status_code} to {method} {path}") from None
        message = detail or error
        if resp.status_code in (401, 403):
            raise AuthError(message, status=resp.status_code)
        kind = _BY_REASON.get(error)
        if kind is not None:
            raise kind(message)
        if resp.status_code < 500:
            raise DeployError(message)
        raise AirssysError(f"server error ({resp.status_code}): {message}")
