"""The ``airssys:web`` world: the whole request in, ``handle``, the whole response out.

The request body is read before the guest is called, bounded three ways: the route's ``max_body`` (413, refused at
once when ``content-length`` says so), no byte for ``body_timeout`` seconds, and the route's deadline in all (408,
saying which). The response is checked by the runtime (status, header names and values, header caps); framing
headers the guest set are dropped and recomputed here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

from starlette.types import Message, Receive, Scope, Send

from ...errors import BodyTimeout, BodyTooLarge
from ...units import format_duration
from . import AIRSSYS_WORLD

if TYPE_CHECKING:
    from ..instance import GuestResponse
    from ..limits import Limits


class Buffered(Protocol):
    """What this world serves: anything that answers a whole request (a generation, or a pipeline's chain)."""

    @property
    def limits(self) -> Limits: ...

    async def handle(self, method: str, path: str, query: str, headers: Sequence[tuple[str, str]],
                     body: bytes) -> GuestResponse: ...

# Framing is the server's job: whatever the guest says about these is dropped and recomputed.
_HOP_BY_HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "upgrade", "content-length",
                         "proxy-connection", "te", "trailer"})


class AirssysWorld:
    name = AIRSSYS_WORLD

    async def serve(self, gen: Buffered, scope: Scope, receive: Receive, send: Send,
                    extra: list[tuple[bytes, bytes]], *, body_timeout: float) -> int:
        limits = gen.limits
        body = await read_body(scope, receive, limits.max_body, body_timeout, limits.timeout)
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]]
        resp = await gen.handle(scope["method"], scope["path"], scope["query_string"].decode("latin-1"), headers,
                                body)
        out: list[tuple[bytes, bytes]] = []
        for k, v in resp.headers:
            k = k.lower()
            if k not in _HOP_BY_HOP:
                out.append((k.encode("latin-1"), v.encode("latin-1")))
        out.append((b"content-length", str(len(resp.body)).encode()))
        out.extend(extra)
        await send({"type": "http.response.start", "status": resp.status, "headers": out})
        await send({"type": "http.response.body", "body": resp.body})
        return resp.status


AIRSSYS = AirssysWorld()


def too_large(limit: int) -> BodyTooLarge:
    return BodyTooLarge(f"the limit for this route is {limit} bytes")


async def read_body(scope: Scope, receive: Receive, limit: int, idle: float, deadline: float) -> bytes:
    """The whole request body: at most ``limit`` bytes (BodyTooLarge), no wait for the next chunk longer than
    ``idle`` seconds and ``deadline`` seconds in all (BodyTimeout, saying which)."""
    framed = False
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                if int(value) > limit:
                    raise too_large(limit)
                framed = framed or int(value) > 0
            except ValueError:
                framed = True
        elif name == b"transfer-encoding":
            framed = True
    first: Message | None = None
    if not framed and scope.get("http_version") in ("1.1", "1.0"):
        # HTTP/1 without Content-Length or Transfer-Encoding has no body: the server answers at once, so no timer.
        first = await receive()
        if first["type"] == "http.request" and not first.get("more_body", False):
            body: bytes = first.get("body", b"")
            if len(body) > limit:
                raise too_large(limit)
            return body
    return await _read_bounded(receive, limit, idle, deadline, first)


async def _read_bounded(receive: Receive, limit: int, idle: float, deadline: float, first: Message | None) -> bytes:
    """:func:`read_body` under one asyncio timeout, moved on by every chunk (``first``: a message already read)."""
    chunks: list[bytes] = []
    size = 0
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline
    wake = min(loop.time() + idle, end)
    try:
        async with asyncio.timeout_at(wake) as bound:
            message = first if first is not None else await receive()
            while message["type"] != "http.disconnect":
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > limit:
                    raise too_large(limit)
                chunks.append(chunk)
                if not message.get("more_body", False):
                    break
                wake = min(loop.time() + idle, end)
                bound.reschedule(wake)
                message = await receive()
    except TimeoutError:
        if wake >= end:
            raise BodyTimeout(f"the request body did not arrive within this route's deadline of "
                              f"{format_duration(deadline)} ({size} bytes received)") from None
        raise BodyTimeout(f"no request body bytes arrived for {format_duration(idle)} ({size} bytes received); "
                          "send the body without pausing") from None
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)
