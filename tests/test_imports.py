"""What a guest gets from the host without grants: config values; fetch and kv answered with the WIT err case."""

from __future__ import annotations

from pathlib import Path

import pytest
from support import make_generation

from airssys_web.build import compile_wat
from airssys_web.errors import GuestTrap
from airssys_web.runtime.imports import KV_NOT_GRANTED

IMPORTS_GUEST = Path(__file__).parent / "guests" / "convert" / "imports.wat"


def _gen(config: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    return make_generation(compile_wat(IMPORTS_GUEST.read_text()), name="imp", config=config)


def test_config_get_returns_granted_values_only() -> None:
    gen = _gen({"greeting": "hej"})
    r = gen.call("@c", "greeting")
    assert (r.status, r.headers) == (200, [("value", "hej")])
    assert gen.call("@c", "missing").status == 404
    gen.close()


def test_fetch_is_denied_without_grants() -> None:
    gen = _gen()
    r = gen.call("GET", "https://example.com/")
    assert r.status == 502
    assert r.headers[0][0] == "error" and r.headers[0][1].startswith("denied: ")
    gen.close()


def test_kv_answers_not_granted() -> None:
    gen = _gen()
    for method in ("@g", "@s", "@d"):
        r = gen.call(method, "key", body=b"v")
        assert (r.status, r.headers) == (500, [("error", KV_NOT_GRANTED)]), method
    assert gen.pool.discarded == 0  # an err result is an answer, not a trap
    gen.close()


def test_a_failing_host_function_is_named_in_the_trap(monkeypatch: pytest.MonkeyPatch) -> None:
    """A host function that raises is our bug: the guest traps and the log names the Python error."""
    from airssys_web.runtime import imports

    def broken(self: imports.HostBridge, key: str) -> object:
        return {}[key]  # raises KeyError

    monkeypatch.setattr(imports.HostBridge, "kv_get", broken)
    gen = _gen()
    with pytest.raises(GuestTrap, match=r"trapped in kv\.kv_get: KeyError: 'key'"):
        gen.call("@g", "key")
    assert gen.pool.discarded == 1
    assert gen.call("@c", "greeting").status == 404  # a fresh instance serves on
    gen.close()


def test_outbound_failures_become_error_codes() -> None:
    """One classification for both worlds: the slug picks the wasi:http error-code, the text is the err."""
    from airssys_web.errors import OutboundDenied, OutboundError, OutboundTimeout
    from airssys_web.runtime.imports import HostBridge, HostContext

    cases = [
        (OutboundDenied("x is not granted"), "denied"),
        (OutboundError("could not resolve a.test: no addresses"), "dns"),
        (OutboundError("could not connect to http://a.test: refused"), "refused"),
        (OutboundTimeout("http://a.test took longer than its deadline of 2s"), "deadline"),
        (OutboundTimeout("http://a.test timed out"), "response-timeout"),
        (OutboundError("http://a.test answered more than the 10-byte cap"), "response-too-large"),
        (OutboundError("http://a.test sent 101 response headers, more than the cap of 100"), "headers-too-large"),
        (OutboundError("request body of 11 bytes is over the 10-byte cap"), "request-too-large"),
        (OutboundError("something else"), "error"),
    ]
    for exc, code in cases:
        def fail(*_: object, exc: Exception = exc) -> tuple[int, list[tuple[str, str]], bytes]:
            raise exc

        bridge = HostBridge(HostContext("c", "1.0.0", fetch=fail))
        got = bridge.fetch("GET", "http://a.test/", [], b"", 1.0)
        assert got[0] == code, (exc, got)
        assert isinstance(got[1], str) and str(exc) in got[1]
