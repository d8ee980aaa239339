"""Admin tokens: minting, verification, expiry on an injected clock, scopes, and where the secret comes from."""

from __future__ import annotations

from pathlib import Path

import pytest

from airssys_web.errors import AirssysError, AuthError
from airssys_web.web.auth import MIN_SECRET_LENGTH, TokenAuthority, load_secret

SECRET = "s" * 32


class Clock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_minted_token_verifies_with_its_scope_and_id() -> None:
    authority = TokenAuthority(SECRET)
    bearer, token = authority.mint("deploy", 3600)
    verified = authority.verify(bearer)
    assert verified == token and verified.id.startswith("tok_") and verified.scope == "deploy"
    assert bearer not in repr(verified)  # the id names the token; the token itself is never stored


def test_tokens_have_distinct_ids() -> None:
    authority = TokenAuthority(SECRET)
    assert len({authority.mint("read", 60)[1].id for _ in range(20)}) == 20


def test_expiry_follows_the_injected_clock() -> None:
    clock = Clock()
    authority = TokenAuthority(SECRET, timer=clock)
    bearer, _ = authority.mint("read", 60)
    clock.now += 59.9
    authority.verify(bearer)
    clock.now += 0.1
    with pytest.raises(AuthError, match="expired") as info:
        authority.verify(bearer)
    assert info.value.status == 401


@pytest.mark.parametrize("tamper", [
    lambda b: b[:-2] + ("AA" if not b.endswith("AA") else "BB"),  # signature changed
    lambda b: "x" + b,  # payload changed
    lambda b: "not-a-token",
])
def test_forged_tokens_are_refused(tamper: object) -> None:
    authority = TokenAuthority(SECRET)
    bearer, _ = authority.mint("deploy", 60)
    with pytest.raises(AuthError, match="invalid token"):
        authority.verify(tamper(bearer))  # type: ignore[operator]


def test_token_from_another_secret_is_refused() -> None:
    bearer, _ = TokenAuthority("t" * 32).mint("deploy", 60)
    with pytest.raises(AuthError, match="signature"):
        TokenAuthority(SECRET).verify(bearer)


def test_authorize_checks_header_and_scope() -> None:
    authority = TokenAuthority(SECRET)
    read, _ = authority.mint("read", 60)
    deploy, _ = authority.mint("deploy", 60)
    assert authority.authorize(f"Bearer {read}", "read").scope == "read"
    assert authority.authorize(f"bearer {deploy}", "read").scope == "deploy"  # deploy includes read
    with pytest.raises(AuthError) as info:
        authority.authorize(f"Bearer {read}", "deploy")
    assert info.value.status == 403 and "scope 'read'" in str(info.value)
    for header in (None, "", "Basic abc", "Bearer "):
        with pytest.raises(AuthError) as info:
            authority.authorize(header, "read")
        assert info.value.status == 401


def test_mint_rejects_bad_scope_and_ttl() -> None:
    authority = TokenAuthority(SECRET)
    with pytest.raises(AirssysError, match="scope"):
        authority.mint("admin", 60)
    with pytest.raises(AirssysError, match="ttl"):
        authority.mint("read", 0)


def test_mint_takes_a_duration() -> None:
    clock = Clock()
    _, token = TokenAuthority(SECRET, timer=clock).mint("read", "30m")  # the grammar of airssys_web.units
    assert token.expires_at - token.issued_at == 1800


def test_secret_sources(tmp_path: Path) -> None:
    assert load_secret(environ={}) is None
    assert load_secret(environ={"AIRSSYS_SECRET": SECRET}) == SECRET
    path = tmp_path / "secret"
    path.write_text(f"{SECRET}\n")
    assert load_secret(path, environ={"AIRSSYS_SECRET": "e" * 32}) == SECRET  # the file wins
    with pytest.raises(AirssysError, match=f"at least {MIN_SECRET_LENGTH}"):
        load_secret(environ={"AIRSSYS_SECRET": "short"})
    with pytest.raises(AirssysError, match="cannot read --secret-file"):
        load_secret(tmp_path / "missing")
