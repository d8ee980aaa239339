"""The one renderer of errors for HTTP clients: every ``AirssysError`` becomes ``{"error", "detail"?, "request_id"?}``.

The class of an error decides everything a client sees (``airssys_web.errors``): the status, the short public
``reason``, whether the message may be shown as ``detail`` (a refused deploy says what to fix; a guest's trap stays
in the server log), and a ``Retry-After`` for passing conditions. The middleware and the admin API both answer
through here, so an error looks the same wherever it comes from.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from starlette.responses import Response
from starlette.types import Send

from ..errors import AirssysError, BodyTimeout


def error_payload(error: AirssysError, *, request_id: str | None = None, detail: str | None = None) -> bytes:
    """The JSON body for ``error``: its class's ``reason``, its message as ``detail`` only if the class is public
    (``detail`` given: that instead, for a caller that always explains, such as the admin API), the request id."""
    payload: dict[str, Any] = {"error": error.reason}
    shown = detail if detail is not None else (str(error) if error.public else None)
    if shown:
        payload["detail"] = shown
    if request_id:
        payload["request_id"] = request_id
    return json.dumps(payload).encode()


def error_headers(error: AirssysError, body: bytes, *, request_id: str | None = None) -> list[tuple[bytes, bytes]]:
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if request_id:
        headers.append((b"x-request-id", request_id.encode()))
    if error.retry_after is not None:
        headers.append((b"retry-after", str(error.retry_after).encode()))
    if isinstance(error, BodyTimeout):
        headers.append((b"connection", b"close"))  # the rest of a stalled body is not waited for
    return headers


async def send_error(send: Send, error: AirssysError, extra: Sequence[tuple[bytes, bytes]] = (), *,
                     request_id: str | None = None) -> None:
    """Answer ``error`` on an ASGI ``send`` (nothing may have been sent yet); ``extra`` are headers to add (an
    ``x-request-id`` among them is not repeated)."""
    body = error_payload(error, request_id=request_id)
    header_id = None if any(k == b"x-request-id" for k, _ in extra) else request_id
    headers = [*extra, *error_headers(error, body, request_id=header_id)]
    await send({"type": "http.response.start", "status": error.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def error_response(error: AirssysError, *, detail: str | None = None,
                   headers: Mapping[str, str] | None = None) -> Response:
    """The same answer as a Starlette response (the admin API's routes); ``detail`` as for :func:`error_payload`,
    ``headers`` added (``www-authenticate`` on a 401)."""
    body = error_payload(error, detail=detail)
    response = Response(body, status_code=error.status)
    for k, v in error_headers(error, body):
        if k != b"content-length":
            response.headers[k.decode()] = v.decode()
    response.headers.update(headers or {})
    return response
