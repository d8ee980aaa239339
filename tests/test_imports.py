"""What a guest gets from the host without grants: config values; fetch and kv answered with the WIT err case."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest
from support import make_generation

from airssys_web.errors import GuestTrap
from airssys_web.guest.build import compile_wat
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
        def fail(*_: object, exc: Exception = exc, deadline: float | None = None, depth: int = 0
                 ) -> tuple[int, list[tuple[str, str]], bytes]:
            raise exc

        bridge = HostBridge(HostContext("c", "1.0.0", fetch=fail))
        got = bridge.fetch("GET", "http://a.test/", [], b"", 1.0)
        assert got[0] == code, (exc, got)
        assert isinstance(got[1], str) and str(exc) in got[1]


def test_the_deadline_cuts_a_fetch_to_a_trickling_upstream() -> None:
    """A guest blocked in outbound.fetch on an upstream sending a byte now and then answers 504 at its deadline
    (not at the fetcher's own 30 s), and the message says where it was waiting."""
    import time

    from caps_support import generation, imports_guest, trickling_server

    from airssys_web.errors import GuestTimeout

    with trickling_server() as port:
        gen = generation(imports_guest(), {"outbound": [f"http://127.0.0.1:{port}"], "limits": {"timeout": 1.0}})
        try:
            started = time.monotonic()
            with pytest.raises(GuestTimeout, match=r"exceeded its 1s deadline while waiting in outbound.fetch"):
                gen.call("GET", f"http://127.0.0.1:{port}/slow")
            assert time.monotonic() - started < 10  # the deadline (1 s) cut it, not the fetcher's 30 s
            assert gen.pool.discarded == 1
        finally:
            gen.close()


def test_stalled_fetches_of_one_component_do_not_starve_another() -> None:
    """24 calls of one component stuck in fetches to a trickling upstream hold 24 threads; another component's
    fetch still gets a thread at once (the dispatcher grows with the stalled calls)."""
    import asyncio

    from caps_support import counting_server, generation, imports_guest, trickling_server

    from airssys_web.runtime.dispatch import Dispatcher

    dispatcher = Dispatcher()
    with trickling_server() as slow_port, counting_server() as fast:
        slow = generation(imports_guest(), {"outbound": [f"http://127.0.0.1:{slow_port}"],
                                            "limits": {"timeout": 30.0, "max_instances": 24}},
                          name="slow", dispatcher=dispatcher)
        quick = generation(imports_guest(), {"outbound": [f"http://127.0.0.1:{fast.port}"]}, name="quick",
                           dispatcher=dispatcher)

        async def main() -> tuple[int, bytes, int]:
            stalled = [asyncio.ensure_future(slow.handle("GET", f"http://127.0.0.1:{slow_port}/s{i}", "", [], b""))
                       for i in range(24)]
            answer = await asyncio.wait_for(quick.handle("GET", f"http://127.0.0.1:{fast.port}/q", "", [], b""), 20)
            still_stalled = sum(not t.done() for t in stalled)
            for t in stalled:
                t.cancel()
            return answer.status, answer.body, still_stalled

        try:
            status, body, still_stalled = asyncio.run(main())
        finally:
            slow.close()
            quick.close()
            dispatcher.close()
    assert (status, body) == (200, b"hello from /q")
    assert still_stalled == 24  # answered while all 24 were still stuck


def test_spin_stores_open_by_label_and_name_the_flag(caplog: pytest.LogCaptureFixture) -> None:
    """Spin's key-value interfaces open stores by label: ``default`` is the component's namespace, another label
    only when granted; a refusal is logged with the flag that grants it."""
    from airssys_web.runtime.imports import HostBridge, HostContext

    class Memory(dict[str, bytes]):
        def set(self, key: str, value: bytes) -> None:  # type: ignore[override]
            self[key] = value

        def delete(self, key: str) -> None:
            self.pop(key, None)

        def keys(self) -> list[str]:  # type: ignore[override]
            return sorted(super().keys())

    default, cache = Memory(), Memory()
    bridge = HostBridge(HostContext(component="c", version="1", kv=default, kv_stores={"cache": cache}))
    assert bridge.kv_open("default") == bridge.kv_open("cache") == ("ok", None)
    assert bridge.kv_set("k", b"v", "cache") == ("ok", None) and cache == {"k": b"v"} and not default
    assert bridge.kv_keys("cache") == ("ok", ["k"]) and bridge.kv_get("k") == ("ok", None)
    denied = bridge.kv_open("other")
    assert denied == ("denied", "key-value store 'other' is not granted to this component; deploy it with "
                                "--kv-store other")
    assert denied[1] in caplog.text
    assert bridge.kv_get("k", "other") == denied  # an operation on a store it could not open: refused again
    bare = HostBridge(HostContext(component="c", version="1"))
    assert bare.kv_open("default")[1].endswith("deploy it with --kv")
    assert bare.kv_get("k") == ("err", KV_NOT_GRANTED)  # airssys:web/kv keeps its own wording


@pytest.mark.parametrize(("headers", "message"), [
    ([(f"x-h{i}", "v") for i in range(150)], "sent 151 response headers, more than the cap of 100"),
    # over the byte cap: refused by the byte count, or by the parser's buffer limit when the head arrives in pieces
    ([(f"x-big{i}", "v" * 30_000) for i in range(3)],
     "bytes of response headers, more than the cap of 65536 bytes|sent response headers over the 65536-byte cap"),
])
def test_an_upstream_header_flood_never_reaches_the_guest(headers: list[tuple[str, str]], message: str) -> None:
    """Issue #20 (4): the caps on outbound response headers hold for a fetch made by a guest: it is handed the
    headers-too-large error, not the flood; an answer within the caps passes whole."""
    from caps_support import answering_server, generation, imports_guest, response_with_headers

    with answering_server(response_with_headers(headers)) as port:
        gen = generation(imports_guest(), {"outbound": [f"http://127.0.0.1:{port}"]})
        try:
            r = gen.call("GET", f"http://127.0.0.1:{port}/flood")
        finally:
            gen.close()
    assert r.status == 502 and len(r.headers) == 1
    name, error = r.headers[0]
    assert name == "error" and error.startswith(f"error: http://127.0.0.1:{port} sent ") and re.search(message, error)
    with answering_server(response_with_headers(headers[:2])) as port:
        gen = generation(imports_guest(), {"outbound": [f"http://127.0.0.1:{port}"]})
        try:
            r = gen.call("GET", f"http://127.0.0.1:{port}/fits")
        finally:
            gen.close()
    assert r.status == 200 and r.body == b"ok" and len(r.headers) == 3


@pytest.mark.parametrize("grants", [[], ["https://a.example"]])
def test_a_run_time_denial_names_the_flag_that_grants_it(grants: list[str], caplog: pytest.LogCaptureFixture) -> None:
    """Issue #20 (9): the guest's err and the log line of a denied fetch say how to grant it, with or without
    other grants."""
    from caps_support import generation, imports_guest

    hint = ('https://example.com is not granted; to allow it, deploy with --allow-host https://example.com '
            '(or outbound = ["https://example.com"] under [grants] in airssys.toml)')
    gen = generation(imports_guest(), {"outbound": grants} if grants else {})
    try:
        with caplog.at_level(logging.WARNING, logger="airssys_web"):
            r = gen.call("GET", "https://example.com/x")
    finally:
        gen.close()
    assert (r.status, r.headers) == (502, [("error", f"denied: {hint}")])
    assert any(rec.getMessage().endswith(f"denied (not-granted): {hint}") for rec in caplog.records)
