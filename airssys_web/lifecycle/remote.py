"""A small client for the admin API (``airssys-web ... --server URL``), built on httpx.

Errors come back as the same exception classes the server raised (``NotFound``, ``Conflict``, ``AuthError``, ...)
with the server's one-line explanation, so the CLI reports them exactly as in ``--registry`` mode. Uploads skip
blobs the server already has (a re-deploy or a rollback by re-upload sends nothing) and show a progress bar for
large files when stderr is a terminal.
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx

from ..errors import API_ERRORS, AirssysError, AuthError, DeployError, NotFound

ADMIN_PREFIX = "/_airssys/api"
CHUNK = 256 * 1024
PROGRESS_THRESHOLD = 1024 * 1024
_BY_REASON: dict[str, type[AirssysError]] = {reason: kind for kind, _, reason in API_ERRORS}


def admin_base(server: str) -> str:
    """``http://host:8000`` -> ``http://host:8000/_airssys/api``; a URL with a path is taken as the API itself."""
    parts = urlsplit(server)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise AirssysError(f"invalid --server {server!r}: give the server's URL, e.g. http://127.0.0.1:8000")
    path = parts.path.rstrip("/")
    return f"{parts.scheme}://{parts.netloc}{path or ADMIN_PREFIX}"


class AdminClient:
    """The admin API of one server. ``transport`` is for tests (e.g. ``httpx.ASGITransport``)."""

    def __init__(self, server: str, token: str | None, *, timeout: float = 300.0,
                 transport: httpx.BaseTransport | None = None, progress: bool | None = None) -> None:
        if not token:
            raise AuthError("no admin token: pass --token or set AIRSSYS_TOKEN "
                            "(mint one where the server's secret is: airssys-web token --scope deploy)")
        self.base = admin_base(server)
        self.progress = sys.stderr.isatty() if progress is None else progress
        self._http = httpx.Client(base_url=self.base, timeout=timeout, transport=transport,
                                  headers={"authorization": f"Bearer {token}"})

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> AdminClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plumbing -------------------------------------------------------------------------------------------
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

    # -- reads ----------------------------------------------------------------------------------------------
    def whoami(self) -> dict[str, Any]:
        return dict(self._call("GET", "/token"))

    def components(self) -> list[dict[str, Any]]:
        return list(self._call("GET", "/components"))

    def component(self, name: str) -> dict[str, Any]:
        return dict(self._call("GET", f"/components/{name}"))

    def history(self, name: str) -> list[dict[str, Any]]:
        return list(self._call("GET", f"/components/{name}/history"))

    def status(self) -> dict[str, Any]:
        return dict(self._call("GET", "/status"))

    def audit(self, limit: int = 100) -> list[dict[str, Any]]:
        return list(self._call("GET", "/audit", params={"limit": limit}))

    # -- changes --------------------------------------------------------------------------------------------
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

    def deploy(self, name: str, wasm: bytes, *, version: str, route: str | None = None,
               settings: dict[str, Any] | None = None, strategy: str = "immediate", percent: int | None = None,
               probe: str | None = None, auto_rollback: str | None = None, nested: bool = False) -> dict[str, Any]:
        """Upload and deploy; returns ``{"deployment": ..., "serving": ..., "warnings": [...]}`` once the new version
        serves (``warnings``: host-app routes the component's route shadows)."""
        sha = self.upload(wasm, label=name)
        body: dict[str, Any] = {"version": version, "sha256": sha, "strategy": strategy}
        if nested:
            body["nested"] = True
        for key, value in (("route", route), ("settings", settings), ("percent", percent), ("probe", probe),
                           ("auto_rollback", auto_rollback)):
            if value is not None:
                body[key] = value
        return dict(self._call("POST", f"/components/{name}/deploy", json=body))

    def promote(self, name: str) -> dict[str, Any]:
        return dict(self._call("POST", f"/components/{name}/promote"))

    def rollback(self, name: str, to_version: str | None = None) -> dict[str, Any]:
        body = {} if to_version is None else {"to_version": to_version}
        return dict(self._call("POST", f"/components/{name}/rollback", json=body))
