"""Admin API credentials: bearer tokens signed with the server secret (itsdangerous).

A token is a signed, URL-safe JSON payload ``{"id", "scope", "iat", "exp"}``: the server needs no token table, only
its secret, and every audit row can name the token that acted (by ``id``, never the token itself). Scopes are
``read`` (inspect) and ``deploy`` (change things, which includes reading). Expiry is carried in the token and
checked against an injectable clock so tests never sleep.

The secret comes from ``--secret-file`` or the ``AIRSSYS_SECRET`` environment variable. Without one the admin API
is off; it is never open by default.
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from itsdangerous import BadSignature, URLSafeSerializer

from ..errors import AirssysError, AuthError
from ..units import parse_duration

SECRET_ENV = "AIRSSYS_SECRET"
TOKEN_ENV = "AIRSSYS_TOKEN"
SCOPES = ("read", "deploy")
MIN_SECRET_LENGTH = 16
MAX_TTL = 366 * 86400.0
_SALT = "airssys-web admin token v1"
_SECRET_HINT = "generate one with: python -c 'import secrets; print(secrets.token_urlsafe(32))'"


def check_secret(secret: str, *, source: str) -> str:
    """Return ``secret`` stripped, or raise if it is too short to sign anything with."""
    secret = secret.strip()
    if len(secret) < MIN_SECRET_LENGTH:
        raise AirssysError(
            f"the secret from {source} is {len(secret)} characters; use at least {MIN_SECRET_LENGTH} ({_SECRET_HINT})"
        )
    return secret


def load_secret(secret_file: str | Path | None = None, *, environ: Mapping[str, str] | None = None) -> str | None:
    """The server secret from ``secret_file`` if given, else from ``AIRSSYS_SECRET``; ``None`` if neither is set."""
    if secret_file is not None:
        path = Path(secret_file)
        try:
            text = path.read_text()
        except OSError as e:
            raise AirssysError(f"cannot read --secret-file {path}: {e.strerror or e}") from None
        return check_secret(text, source=str(path))
    value = (os.environ if environ is None else environ).get(SECRET_ENV)
    if not value:
        return None
    return check_secret(value, source=SECRET_ENV)


@dataclass(frozen=True, slots=True)
class Token:
    """A verified token: ``id`` names it in the audit log."""

    id: str
    scope: str
    issued_at: float
    expires_at: float

    def allows(self, scope: str) -> bool:
        return self.scope == "deploy" or scope == self.scope

    def as_json(self) -> dict[str, Any]:
        def iso(t: float) -> str:
            return datetime.fromtimestamp(t, UTC).isoformat(timespec="seconds")

        return {"id": self.id, "scope": self.scope, "issued_at": iso(self.issued_at),
                "expires_at": iso(self.expires_at)}


class TokenAuthority:
    """Mints and verifies tokens for one secret. ``timer`` returns the current Unix time (injectable)."""

    def __init__(self, secret: str, *, timer: Callable[[], float] = time.time) -> None:
        self._serializer = URLSafeSerializer(check_secret(secret, source="the secret"), salt=_SALT)
        self._timer = timer

    def mint(self, scope: str, ttl: float | str) -> tuple[str, Token]:
        """A new token valid for ``ttl`` (seconds, or a duration such as ``"1h"``, at most 366 days); returns (the
        bearer string, what it says)."""
        if scope not in SCOPES:
            raise AirssysError(f"invalid scope {scope!r}: use one of {', '.join(SCOPES)}")
        ttl = parse_duration(ttl, what="ttl", maximum=MAX_TTL)
        now = self._timer()
        token = Token(f"tok_{secrets.token_hex(6)}", scope, round(now, 3), round(now + ttl, 3))
        payload = {"id": token.id, "scope": token.scope, "iat": token.issued_at, "exp": token.expires_at}
        return self._serializer.dumps(payload), token

    def verify(self, bearer: str) -> Token:
        """The token ``bearer`` stands for; :class:`AuthError` (401) if it is forged, malformed or expired."""
        try:
            data = self._serializer.loads(bearer)
        except BadSignature:
            raise AuthError("invalid token: its signature does not match this server's secret") from None
        try:
            token = Token(str(data["id"]), str(data["scope"]), float(data["iat"]), float(data["exp"]))
        except (TypeError, KeyError, ValueError):
            raise AuthError("invalid token: malformed payload") from None
        if token.scope not in SCOPES:
            raise AuthError(f"invalid token: unknown scope {token.scope!r}")
        if self._timer() >= token.expires_at:
            when = token.as_json()["expires_at"]
            raise AuthError(f"token {token.id} expired at {when}; mint a new one with `airssys-web token`")
        return token

    def authorize(self, authorization: str | None, scope: str) -> Token:
        """Check an ``Authorization`` header for ``scope``: 401 without a valid token, 403 if under-scoped."""
        if not authorization:
            raise AuthError("missing credentials: send 'Authorization: Bearer <token>' (see `airssys-web token`)")
        kind, _, bearer = authorization.partition(" ")
        if kind.lower() != "bearer" or not bearer.strip():
            raise AuthError("malformed Authorization header: expected 'Bearer <token>'")
        token = self.verify(bearer.strip())
        if not token.allows(scope):
            raise AuthError(f"token {token.id} has scope {token.scope!r}; this needs {scope!r}", status=403)
        return token
