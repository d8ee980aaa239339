"""What a guest gets from the host in this release: config values; fetch and kv denied with the WIT err case."""

from __future__ import annotations

from pathlib import Path

from support import make_generation

from airssys_web.build import compile_wat
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
