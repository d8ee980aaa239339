"""The ASGI middleware: requests for a deployed component's route go to its guest, the rest to the wrapped app.

Mount it in any ASGI app (Starlette, FastAPI, ...)::

    app.add_middleware(AirssysMiddleware, registry="./airssys-data")

It starts the host (loads and warms the active versions, starts watching the registry) on lifespan startup, or on
the first request when the server runs no lifespan, and closes it on shutdown.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from pathlib import Path
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import GuestError, PoolExhausted
from .host import AirssysHost
from .registry import Registry
from .runtime.generation import Generation

log = logging.getLogger("airssys_web")

VERSION_HEADER = b"x-airssys-version"
# Framing is the server's job: whatever the guest says about these is dropped and recomputed.
_HOP_BY_HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "upgrade", "content-length",
                         "proxy-connection", "te", "trailer"})


class _TooLarge(Exception):
    pass


class AirssysMiddleware:
    """Route requests owned by deployed components to their guests; everything else falls through to ``app``.

    Give either ``registry`` (a directory or a :class:`Registry`) or a ready ``host``. ``version_header`` adds
    ``x-airssys-version: NAME@VERSION`` to every component response.
    """

    def __init__(self, app: ASGIApp, registry: str | Path | Registry | None = None, *,
                 host: AirssysHost | None = None, version_header: bool = True, poll_interval: float = 0.2) -> None:
        if (registry is None) == (host is None):
            raise TypeError("AirssysMiddleware needs exactly one of registry=... or host=...")
        self.app = app
        self.host = host if host is not None else AirssysHost(registry, poll_interval=poll_interval)  # type: ignore[arg-type]
        self.version_header = version_header
        self._started = False
        self._start_lock: asyncio.Lock | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            if not self._started:
                await self._start()
            gen = self.host.enter(scope["path"])
            if gen is None:
                await self.app(scope, receive, send)
                return
            try:
                await self._serve(gen, scope, receive, send)
            finally:
                gen.leave()
        elif kind == "lifespan":
            await self._lifespan(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    # -- lifecycle ------------------------------------------------------------------------------------------
    async def _start(self) -> None:
        if self._start_lock is None:
            self._start_lock = asyncio.Lock()
        async with self._start_lock:
            if not self._started:
                await asyncio.to_thread(self.host.start)
                self._started = True

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def wrapped_receive() -> Message:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await self._start()
            elif message["type"] == "lifespan.shutdown":
                await asyncio.to_thread(self.host.close)
            return message

        await self.app(scope, wrapped_receive, send)

    # -- serving --------------------------------------------------------------------------------------------
    async def _serve(self, gen: Generation, scope: Scope, receive: Receive, send: Send) -> None:
        extra: list[tuple[bytes, bytes]] = []
        if self.version_header:
            extra.append((VERSION_HEADER, gen.tag.encode()))
        try:
            body = await _read_body(scope, receive, gen.limits.max_body)
        except _TooLarge:
            await _send_error(send, 413, "request body too large",
                              f"the limit for this route is {gen.limits.max_body} bytes", extra)
            return
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]]
        try:
            resp = await gen.handle(scope["method"], scope["path"], scope["query_string"].decode("latin-1"),
                                    headers, body)
        except GuestError as e:
            request_id = uuid.uuid4().hex[:16]
            log.error("request %s %s %s failed [%s]: %s", request_id, scope["method"], scope["path"],
                      type(e).__name__, e)
            if isinstance(e, PoolExhausted):
                extra.append((b"retry-after", b"1"))
            await _send_error(send, e.status, _PUBLIC_REASON.get(type(e).__name__, "guest error"), None, extra,
                              request_id=request_id)
            return
        out = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in resp.headers
               if k.lower() not in _HOP_BY_HOP]
        out.append((b"content-length", str(len(resp.body)).encode()))
        out.extend(extra)
        await send({"type": "http.response.start", "status": resp.status, "headers": out})
        await send({"type": "http.response.body", "body": resp.body})


_PUBLIC_REASON = {
    "GuestTrap": "the component failed",
    "GuestTimeout": "the component ran past its deadline",
    "GuestMemoryLimit": "the component failed",
    "BadGuestResponse": "the component sent an invalid response",
    "PoolExhausted": "the component is busy; retry shortly",
}


async def _read_body(scope: Scope, receive: Receive, limit: int) -> bytes:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                if int(value) > limit:
                    raise _TooLarge
            except ValueError:
                pass
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def _send_error(send: Send, status: int, error: str, detail: str | None,
                      extra: list[tuple[bytes, bytes]], *, request_id: str | None = None) -> None:
    payload: dict[str, Any] = {"error": error}
    if detail:
        payload["detail"] = detail
    headers = list(extra)
    if request_id:
        payload["request_id"] = request_id
        headers.append((b"x-request-id", request_id.encode()))
    body = json.dumps(payload).encode()
    headers += [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
