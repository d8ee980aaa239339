"""``wasi:http/types.error-code`` values: what our failures look like to a guest, and what the guest's mean to us.

An error-code is ``(case, payload)``, e.g. ``("HTTP-request-denied", None)`` or ``("DNS-error", {"rcode": None,
"info-code": None})``. Case names are those of the WIT (the same in every 0.2.x release).
"""

from __future__ import annotations

from typing import Any

from ...errors import OutboundDenied, OutboundError
from .io import IoError

ErrorCode = tuple[str, Any]

DENIED: ErrorCode = ("HTTP-request-denied", None)


def internal(message: str) -> ErrorCode:
    return "internal-error", message[:500]


def from_outbound(exc: BaseException) -> ErrorCode:
    """Map a :class:`~airssys_web.outbound.Fetcher` failure to the closest error-code."""
    if isinstance(exc, OutboundDenied):
        return DENIED
    text = str(exc)
    if not isinstance(exc, OutboundError):
        return internal(f"{type(exc).__name__}")
    if "could not resolve" in text:
        return "DNS-error", {"rcode": None, "info-code": None}
    if "timed out while sending the body" in text or "took longer" in text:
        return "HTTP-response-timeout", None
    if "timed out" in text:
        return "connection-timeout", None
    if "could not connect" in text:
        return "connection-refused", None
    if "request body of" in text:
        return "HTTP-request-body-size", None
    if "cap" in text and "answered" in text:
        return "HTTP-response-body-size", None
    return internal(text)


def body_size_error(declared: int, actual: int, *, response: bool = True) -> IoError:
    """The stream error for a body that does not match its declared ``content-length``."""
    case = "HTTP-response-body-size" if response else "HTTP-request-body-size"
    return IoError(f"the body has {actual} bytes but content-length declared {declared}", (case, actual))


def status_for(code: ErrorCode) -> int:
    """The HTTP status a client gets when the guest answers ``response-outparam.set(err(code))``."""
    case = code[0]
    if case in ("HTTP-response-timeout", "connection-timeout", "connection-read-timeout", "DNS-timeout"):
        return 504
    if case.startswith(("DNS-", "destination-", "connection-", "TLS-")) or case.startswith("HTTP-response-"):
        return 502
    if case == "HTTP-request-body-size":
        return 413
    if case in ("HTTP-request-method-invalid", "HTTP-request-URI-invalid"):
        return 400
    return 500


def describe(code: ErrorCode) -> str:
    case, payload = code
    return case if payload is None else f"{case} ({payload})"
