"""Outbound HTTP capability: grant parsing, URL/address checks and the fetcher.

Requests that may connect go either to a real threaded HTTP server on 127.0.0.1 (which counts accepted TCP
connections, so a denial is proven to have made none) or, for every other address, to a recording
``httpx.MockTransport`` behind a fake resolver: nothing here ever leaves the machine.
"""

from __future__ import annotations

import contextlib
import copy
import ipaddress
import json
import logging
import pickle
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from support import wait_until

from airssys_web.capabilities.outbound import (
    AllowedHost,
    Fetcher,
    IPAddress,
    OutboundPolicy,
    Target,
    default_resolver,
    special_label,
)
from airssys_web.errors import CapabilityError, OutboundDenied, OutboundError, OutboundTimeout
from airssys_web.units import format_duration

# --------------------------------------------------------------------------------------------------------------
# A loopback HTTP server that counts accepted connections


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _CountingServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _route(self) -> None:
        url = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if url.path == "/echo":
            echo = {"method": self.command, "path": self.path, "headers": self.headers.items(), "body": body.hex()}
            self._send(200, json.dumps(echo).encode(), {"Connection": "close, x-internal", "X-Internal": "1"})
        elif url.path == "/redirect":
            self._send(302, b"", {"Location": "http://169.254.169.254/latest/meta-data/"})
        elif url.path == "/cookie":
            self._send(200, b"ok", {"Set-Cookie": "session=secret; Path=/"})
        elif url.path == "/slow":
            time.sleep(float(query.get("s", "2")))  # the subject, not a wait: a slow upstream
            self._send(200, b"late")
        elif url.path == "/drip":
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            with contextlib.suppress(OSError):
                for _ in range(1000):
                    self.wfile.write(b"x")
                    self.wfile.flush()
                    time.sleep(0.02)  # the subject, not a wait: a body that drips in slowly
        elif url.path == "/big":
            self._big(int(query["n"]), query.get("declare") == "1", query.get("id", ""))
        else:
            self._send(404, b"")

    def _big(self, n: int, declare: bool, key: str) -> None:
        """Send ``n`` bytes (chunked unless ``declare``); record under ``key`` whether the whole body was written."""
        self.send_response(200)
        self.send_header(*(("Content-Length", str(n)) if declare else ("Transfer-Encoding", "chunked")))
        self.end_headers()
        chunk = b"x" * 65536
        try:
            for _ in range(n // len(chunk)):
                self.wfile.write(chunk if declare else b"%x\r\n%s\r\n" % (len(chunk), chunk))
            if not declare:
                self.wfile.write(b"0\r\n\r\n")
            self.server.big_done[key] = True
        except OSError:
            self.server.big_done[key] = False

    do_GET = do_POST = do_PUT = do_DELETE = _route


class _CountingServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.accepted = 0
        self.big_done: dict[str, bool] = {}

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Stay quiet about clients that hung up (the timeout and size-cap tests do); report anything else."""
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)

    def get_request(self) -> tuple[socket.socket, Any]:
        conn, addr = super().get_request()
        self.accepted += 1
        return conn, addr


@contextlib.contextmanager
def _serve(server: ThreadingHTTPServer) -> Iterator[None]:
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture(scope="module")
def server() -> Iterator[_CountingServer]:
    srv = _CountingServer()
    with _serve(srv):
        yield srv


@pytest.fixture
def port(server: _CountingServer) -> int:
    return int(server.server_address[1])


# Names the tests resolve; anything else fails like an unknown name. Only ever loopback for the real server.
LOCAL_NAMES = {"localhost": ["127.0.0.1"], "allowed.example": ["127.0.0.1"], "evil.localhost": ["127.0.0.1"]}


def fake_resolver(table: dict[str, list[str]]) -> Callable[[str, int], list[str]]:
    def resolve(host: str, port: int) -> list[str]:
        if host not in table:
            raise socket.gaierror(socket.EAI_NONAME, f"unknown test name {host}")
        return table[host]

    return resolve


def local_fetcher(grants: list[str], **kwargs: Any) -> Fetcher:
    return Fetcher(OutboundPolicy(grants), resolver=fake_resolver(LOCAL_NAMES), **kwargs)


# --------------------------------------------------------------------------------------------------------------
# The bypass table against the real loopback server

OK, NO = True, False
LOCAL_CASES: list[tuple[str, list[str], str, bool]] = [
    ("ip-literal", ["http://127.0.0.1:*"], "http://127.0.0.1:{port}/echo", OK),
    ("scheme-and-case", ["http://127.0.0.1:*"], "HTTP://127.0.0.1:{port}/echo", OK),
    ("fragment-is-dropped", ["http://127.0.0.1:*"], "http://127.0.0.1:{port}/echo#@evil.example", OK),
    ("trailing-dot-ip", ["http://127.0.0.1:*"], "http://127.0.0.1.:{port}/echo", OK),
    ("ipv4-mapped-means-ipv4", ["http://127.0.0.1:*"], "http://[::ffff:127.0.0.1]:{port}/echo", OK),
    ("exact-port", ["http://127.0.0.1:{port}"], "http://127.0.0.1:{port}/echo", OK),
    ("port-range", ["http://127.0.0.1:{port}..{port1}"], "http://127.0.0.1:{port}/echo", OK),
    ("loopback-cidr", ["http://127.0.0.0/8:*"], "http://127.0.0.1:{port}/echo", OK),
    ("localhost-grant", ["http://localhost:*"], "http://localhost:{port}/echo", OK),
    ("localhost-case-and-dot", ["http://localhost:*"], "http://LocalHost.:{port}/echo", OK),
    ("name-and-ip-grant", ["http://allowed.example:*", "http://127.0.0.1:*"], "http://allowed.example:{port}/echo", OK),
    ("empty-policy", [], "http://127.0.0.1:{port}/echo", NO),
    ("name-not-granted", ["http://127.0.0.1:*"], "http://localhost:{port}/echo", NO),
    ("other-port", ["http://127.0.0.1:{port1}"], "http://127.0.0.1:{port}/echo", NO),
    ("range-end-excluded", ["http://127.0.0.1:{port_1}..{port}"], "http://127.0.0.1:{port}/echo", NO),
    ("scheme-mismatch", ["https://127.0.0.1:*"], "http://127.0.0.1:{port}/echo", NO),
    ("short-ipv4", ["*://*:*"], "http://127.1:{port}/echo", NO),
    ("hex-ipv4", ["*://*:*"], "http://0x7f.1:{port}/echo", NO),
    ("hex-dword", ["*://*:*"], "http://0x7f000001:{port}/echo", NO),
    ("decimal-dword", ["*://*:*"], "http://2130706433:{port}/echo", NO),
    ("octal-ipv4", ["*://*:*"], "http://0177.0.0.1:{port}/echo", NO),
    ("leading-zero-octet", ["http://127.0.0.1:*"], "http://127.0.0.01:{port}/echo", NO),
    ("fullwidth-digits", ["http://127.0.0.1:*"], "http://\uff11\uff12\uff17.\uff10.\uff10.\uff11:{port}/echo", NO),
    ("ideographic-dots", ["http://127.0.0.1:*"], "http://127。0。0。1:{port}/echo", NO),
    ("percent-encoded-host", ["*://*:*"], "http://%31%32%37.0.0.1:{port}/echo", NO),
    ("userinfo", ["http://allowed.example:*"], "http://allowed.example@127.0.0.1:{port}/echo", NO),
    ("userinfo-on-granted", ["http://127.0.0.1:*"], "http://user:pw@127.0.0.1:{port}/echo", NO),
    ("backslash-userinfo", ["http://allowed.example:*"], "http://allowed.example\\@127.0.0.1:{port}/", NO),
    ("backslash-authority", ["http://127.0.0.1:*"], "http:\\\\127.0.0.1:{port}/echo", NO),
    ("wildcard-is-not-loopback", ["*://*:*"], "http://127.0.0.1:{port}/echo", NO),
    ("unspecified-0.0.0.0", ["*://*:*"], "http://0.0.0.0:{port}/echo", NO),
    ("mapped-loopback-hex", ["*://*:*"], "http://[::ffff:7f00:1]:{port}/echo", NO),
    ("nat64-loopback", ["*://*:*"], "http://[64:ff9b::7f00:1]:{port}/echo", NO),
    ("ipv6-loopback-not-granted", ["http://127.0.0.1:*"], "http://[::1]:{port}/echo", NO),
    ("zone-id", ["*://*:*"], "http://[fe80::1%25lo]:{port}/echo", NO),
    ("broad-cidr-names-no-loopback", ["http://0.0.0.0/0:*"], "http://127.0.0.1:{port}/echo", NO),
    ("dns-rebinding-to-loopback", ["http://allowed.example:*"], "http://allowed.example:{port}/echo", NO),
    ("wildcard-subdomain-of-localhost", ["http://*.localhost:*"], "http://evil.localhost:{port}/echo", NO),
    ("relative-url-CVE-2024-32980", ["http://127.0.0.1:*"], "/echo", NO),
    ("scheme-relative", ["http://127.0.0.1:*"], "//127.0.0.1:{port}/echo", NO),
    ("non-http-scheme", ["*://127.0.0.1:*"], "ftp://127.0.0.1:{port}/echo", NO),
    ("port-overflow", ["http://127.0.0.1:*"], "http://127.0.0.1:{port_wrap}/echo", NO),
    ("signed-port", ["http://127.0.0.1:*"], "http://127.0.0.1:+{port}/echo", NO),
    ("space-in-host", ["http://127.0.0.1:*"], "http://127.0.0.1 :{port}/echo", NO),
    ("crlf-injection", ["http://127.0.0.1:*"], "http://127.0.0.1:{port}/ HTTP/1.1\r\nHost: evil/", NO),
    ("empty-host", ["*://*:*"], "http://:{port}/echo", NO),
    ("apex-not-in-wildcard", ["http://*.allowed.example:*", "http://127.0.0.1:*"], "http://allowed.example:{port}", NO),
    ("suffix-confusion", ["http://*.allowed.example:*", "http://127.0.0.1:*"], "http://evilallowed.example:{port}", NO),
]


def _fill(text: str, port: int) -> str:
    return text.format(port=port, port1=port + 1, port_1=port - 1, port_wrap=port + 65536)


@pytest.mark.parametrize(("grants", "url", "allowed"), [c[1:] for c in LOCAL_CASES], ids=[c[0] for c in LOCAL_CASES])
def test_bypass_table_against_loopback_server(
    server: _CountingServer, port: int, grants: list[str], url: str, allowed: bool
) -> None:
    before = server.accepted
    with local_fetcher([_fill(g, port) for g in grants]) as fetcher:
        if allowed:
            status, _, body = fetcher.fetch("GET", _fill(url, port), [], b"")
            assert status == 200
            assert json.loads(body)["path"] == "/echo"
            assert server.accepted == before + 1
        else:
            with pytest.raises(OutboundDenied, match=r"^denied: "):
                fetcher.fetch("GET", _fill(url, port), [], b"")
            assert server.accepted == before
            assert sum(fetcher.denials.values()) == 1


def test_table_is_large_enough() -> None:
    assert len(LOCAL_CASES) >= 25
    assert sum(not c[3] for c in LOCAL_CASES) >= 25


# --------------------------------------------------------------------------------------------------------------
# Other addresses: a recording mock transport behind a fake resolver

PUBLIC_V4, PUBLIC_V6 = "93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"
REMOTE_NAMES = {
    "api.example.com": [PUBLIC_V4],
    "v6.example.com": [PUBLIC_V6],
    "xn--bcher-kva.example": [PUBLIC_V4],
    "private.example.com": ["10.0.0.5"],
    "mixed.example.com": [PUBLIC_V4, "10.0.0.5"],
    "mapped.example.com": ["::ffff:10.0.0.1"],
    "metadata.google.internal": ["169.254.169.254"],
    "imds6.example.com": ["fd00:ec2::254"],
    "cgnat.example.com": ["100.64.0.1"],
    "azure.example.com": ["168.63.129.16"],
    "mcast.example.com": ["224.0.0.1"],
    "nat64.example.com": ["64:ff9b::a9fe:a9fe"],
    "sixtofour.example.com": ["2002:a00:1::1"],
    "intranet.corp": ["10.1.2.3"],
    "ula.example.com": ["fd12:3456::1"],
}


class Recorder:
    """A MockTransport handler that records requests and answers 200 (or ``response``)."""

    def __init__(self, response: Callable[[httpx.Request], httpx.Response] | None = None) -> None:
        self.requests: list[httpx.Request] = []
        self._response = response or (lambda request: httpx.Response(200, content=b"ok"))

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self._response(request)


def remote_fetcher(grants: list[str], recorder: Recorder, **kwargs: Any) -> Fetcher:
    kwargs.setdefault("resolver", fake_resolver(REMOTE_NAMES))
    return Fetcher(OutboundPolicy(grants), transport=httpx.MockTransport(recorder), **kwargs)


MOCK_CASES: list[tuple[str, list[str], str, str | None]] = [
    ("public-name", ["https://api.example.com"], "https://api.example.com/v1?q=1", PUBLIC_V4),
    ("explicit-default-port", ["https://api.example.com"], "https://api.example.com:443/", PUBLIC_V4),
    ("port-8443", ["https://api.example.com:8443"], "https://api.example.com:8443/", PUBLIC_V4),
    ("wrong-port", ["https://api.example.com"], "https://api.example.com:8443/", None),
    ("http-not-https", ["https://api.example.com"], "http://api.example.com/", None),
    ("subdomain-wildcard", ["https://*.example.com"], "https://api.example.com/", PUBLIC_V4),
    ("wildcard-not-apex", ["https://*.example.com"], "https://example.com/", None),
    ("wildcard-suffix-trick", ["https://*.example.com"], "https://api.example.com.evil.net/", None),
    ("idn-grant-unicode-url", ["https://bücher.example"], "https://BÜCHER.example/", PUBLIC_V4),
    ("idn-grant-punycode-url", ["https://bücher.example"], "https://xn--bcher-kva.example/", PUBLIC_V4),
    ("public-ipv6", ["https://v6.example.com"], "https://v6.example.com/", PUBLIC_V6),
    ("public-ipv6-literal", ["https://[2606:2800:21f:cb07:6820:80da:af6b:8b2c]"], f"https://[{PUBLIC_V6}]/", PUBLIC_V6),
    ("broad-cidr-public", ["*://0.0.0.0/0:*"], "http://8.8.8.8/", "8.8.8.8"),
    ("private-name", ["https://*.example.com"], "https://private.example.com/", None),
    ("one-private-answer", ["https://*.example.com"], "https://mixed.example.com/", None),
    ("mapped-private-answer", ["*://*:*"], "http://mapped.example.com/", None),
    ("ula-answer", ["*://*:*"], "http://ula.example.com/", None),
    ("metadata-name", ["*://*:*"], "http://metadata.google.internal/computeMetadata/v1/", None),
    ("metadata-literal", ["*://*:*"], "http://169.254.169.254/latest/meta-data/", None),
    ("metadata-in-link-local-cidr", ["http://169.254.0.0/16:*"], "http://169.254.169.254/", None),
    ("metadata-exact-grant", ["http://169.254.169.254"], "http://169.254.169.254/latest/", "169.254.169.254"),
    ("imds-ipv6-answer", ["*://*:*"], "http://imds6.example.com/", None),
    ("imds-ipv6-literal", ["*://*:*"], "http://[fd00:ec2::254]/", None),
    ("cgnat-answer", ["*://*:*"], "http://cgnat.example.com/", None),
    ("azure-wireserver-answer", ["*://*:*"], "http://azure.example.com/", None),
    ("azure-wireserver-in-cidr", ["*://168.63.0.0/16:*"], "http://168.63.129.16/", None),
    ("multicast-answer", ["*://*:*"], "http://mcast.example.com/", None),
    ("nat64-to-metadata", ["*://*:*"], "http://nat64.example.com/", None),
    ("6to4-to-private", ["*://*:*"], "http://sixtofour.example.com/", None),
    ("private-literal-wildcard", ["*://*:*"], "http://10.0.0.1/", None),
    ("broad-cidr-private", ["*://0.0.0.0/0:*"], "http://10.0.0.1/", None),
    ("private-cidr-grant", ["http://10.0.0.0/8:*"], "http://10.1.2.3:8080/", "10.1.2.3"),
    ("intranet-name-and-cidr", ["http://intranet.corp:8080", "http://10.0.0.0/8:8080"], "http://intranet.corp:8080/",
     "10.1.2.3"),
    ("intranet-cidr-other-port", ["http://intranet.corp:*", "http://10.0.0.0/8:8080"], "http://intranet.corp:9090/",
     None),
    ("intranet-name-alone", ["http://intranet.corp:8080"], "http://intranet.corp:8080/", None),
]


@pytest.mark.parametrize(("grants", "url", "dialled"), [c[1:] for c in MOCK_CASES], ids=[c[0] for c in MOCK_CASES])
def test_address_table_with_recording_transport(grants: list[str], url: str, dialled: str | None) -> None:
    recorder = Recorder()
    with remote_fetcher(grants, recorder) as fetcher:
        if dialled is None:
            with pytest.raises(OutboundDenied, match=r"^denied: "):
                fetcher.fetch("GET", url, [], b"")
            assert recorder.requests == []
            return
        status, _, body = fetcher.fetch("GET", url, [], b"")
    assert (status, body) == (200, b"ok")
    [request] = recorder.requests
    target = OutboundPolicy(grants).check(url)
    assert ipaddress.ip_address(request.url.host) == ipaddress.ip_address(dialled)  # pinned to the checked IP
    assert request.url.port in (None, target.port) and request.url.scheme == target.scheme
    assert request.headers.get_list("host") == [target.authority]
    assert request.extensions.get("sni_hostname") == (None if target.ip else target.host)


def test_rebinding_between_lookups_cannot_swap_the_address() -> None:
    answers = iter([[PUBLIC_V4], ["127.0.0.1"]])
    calls: list[str] = []

    def rebinding(host: str, port: int) -> list[str]:
        calls.append(host)
        return next(answers)

    recorder = Recorder()
    with remote_fetcher(["https://api.example.com"], recorder, resolver=rebinding) as fetcher:
        assert fetcher.fetch("GET", "https://api.example.com/", [], b"")[0] == 200
    assert calls == ["api.example.com"]  # resolved once ...
    assert [r.url.host for r in recorder.requests] == [PUBLIC_V4]  # ... and that answer was dialled


def test_redirects_are_returned_unfollowed() -> None:
    recorder = Recorder(lambda r: httpx.Response(302, headers={"Location": "http://169.254.169.254/"}))
    with remote_fetcher(["https://api.example.com"], recorder) as fetcher:
        status, headers, _ = fetcher.fetch("GET", "https://api.example.com/", [], b"")
    assert status == 302 and ("location", "http://169.254.169.254/") in headers
    assert len(recorder.requests) == 1


def test_redirect_from_loopback_server_is_not_followed(server: _CountingServer, port: int) -> None:
    before = server.accepted
    with local_fetcher(["http://127.0.0.1:*"]) as fetcher:
        status, headers, _ = fetcher.fetch("GET", f"http://127.0.0.1:{port}/redirect", [], b"")
    assert status == 302 and dict(headers)["location"].startswith("http://169.254.169.254/")
    assert server.accepted == before + 1


# --------------------------------------------------------------------------------------------------------------
# Headers, methods and bodies


def _echo(fetcher: Fetcher, port: int, headers: list[tuple[str, str]], body: bytes = b"") -> dict[str, Any]:
    status, _, raw = fetcher.fetch("POST", f"http://127.0.0.1:{port}/echo", headers, body)
    assert status == 200
    echo: dict[str, Any] = json.loads(raw)
    echo["headers"] = [(k.lower(), v) for k, v in echo["headers"]]
    return echo


def test_hop_by_hop_and_framing_headers_are_stripped(port: int) -> None:
    sent = [
        ("Connection", "close, X-Listed"), ("X-Listed", "1"), ("Keep-Alive", "timeout=5"), ("TE", "trailers"),
        ("Transfer-Encoding", "chunked"), ("Upgrade", "websocket"), ("Proxy-Authorization", "Basic eA=="),
        ("Content-Length", "999"), ("X-Kept", "yes"),
    ]
    with local_fetcher(["http://127.0.0.1:*"]) as fetcher:
        echo = _echo(fetcher, port, sent, b"abc")
    names = {name for name, _ in echo["headers"]}
    assert names.isdisjoint({"x-listed", "keep-alive", "te", "transfer-encoding", "upgrade", "proxy-authorization"})
    assert ("x-kept", "yes") in echo["headers"]
    assert ("content-length", "3") in echo["headers"] and bytes.fromhex(echo["body"]) == b"abc"
    assert ("host", f"127.0.0.1:{port}") in echo["headers"]


def test_response_hop_by_hop_headers_are_stripped(port: int) -> None:
    with local_fetcher(["http://127.0.0.1:*"]) as fetcher:
        _, headers, _ = fetcher.fetch("GET", f"http://127.0.0.1:{port}/echo", [], b"")
    names = [name for name, _ in headers]
    assert "connection" not in names and "x-internal" not in names and "content-length" in names


def test_matching_host_header_is_accepted_once(port: int) -> None:
    with local_fetcher(["http://127.0.0.1:*"]) as fetcher:
        echo = _echo(fetcher, port, [("host", f"127.0.0.1:{port}")])
    assert [v for k, v in echo["headers"] if k == "host"] == [f"127.0.0.1:{port}"]


@pytest.mark.parametrize("host", ["evil.example", "169.254.169.254", "127.0.0.1:1", ""])
def test_host_header_override_is_denied(server: _CountingServer, port: int, host: str) -> None:
    before = server.accepted
    with local_fetcher(["http://127.0.0.1:*"]) as fetcher:
        with pytest.raises(OutboundDenied, match="Host header"):
            fetcher.fetch("GET", f"http://127.0.0.1:{port}/echo", [("Host", host)], b"")
        assert fetcher.denials == {"host-header": 1}
    assert server.accepted == before


@pytest.mark.parametrize(
    ("method", "headers"),
    [
        ("CONNECT", []),
        ("GET /x HTTP/1.1\r\n", []),
        ("GET", [("X-Bad\r\nInjected", "1")]),
        ("GET", [("X-Bad", "a\r\nInjected: 1")]),
        ("GET", [(":authority", "evil")]),
        ("GET", [("X-Unicode", "é")]),
        ("GET", [("X-Many", "1")] * 101),
    ],
)
def test_malformed_requests_are_denied(
    server: _CountingServer, port: int, method: str, headers: list[tuple[str, str]]
) -> None:
    before = server.accepted
    with local_fetcher(["http://127.0.0.1:*"]) as fetcher:
        with pytest.raises(OutboundDenied):
            fetcher.fetch(method, f"http://127.0.0.1:{port}/echo", headers, b"")
    assert server.accepted == before


def test_environment_proxies_are_ignored(port: int, monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "all_proxy"):
        monkeypatch.setenv(var, "http://127.0.0.1:9")  # the discard port: a proxied request would fail
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    with local_fetcher(["http://127.0.0.1:*"]) as fetcher:
        assert fetcher.fetch("GET", f"http://127.0.0.1:{port}/echo", [], b"")[0] == 200


def test_cookies_are_never_stored_or_replayed(port: int) -> None:
    with local_fetcher(["http://127.0.0.1:*"]) as fetcher:
        _, headers, _ = fetcher.fetch("GET", f"http://127.0.0.1:{port}/cookie", [], b"")
        assert ("set-cookie", "session=secret; Path=/") in headers  # the guest sees it ...
        echo = _echo(fetcher, port, [])
    assert "cookie" not in {k for k, _ in echo["headers"]}  # ... the host never sends it on


def test_no_implicit_request_headers(port: int) -> None:
    with local_fetcher(["http://127.0.0.1:*"]) as fetcher:
        echo = _echo(fetcher, port, [])
    assert {k for k, _ in echo["headers"]} <= {"host", "content-length"}  # no user-agent, accept-encoding, ...


# --------------------------------------------------------------------------------------------------------------
# Limits and failures


def test_read_timeout(port: int) -> None:
    with local_fetcher(["http://127.0.0.1:*"], read_timeout=0.2) as fetcher:
        with pytest.raises(OutboundError, match="timed out"):
            fetcher.fetch("GET", f"http://127.0.0.1:{port}/slow?s=3", [], b"")


def test_total_timeout_bounds_a_dripping_body(port: int) -> None:
    with local_fetcher(["http://127.0.0.1:*"], total_timeout=0.2) as fetcher:
        with pytest.raises(OutboundError, match="in total"):
            fetcher.fetch("GET", f"http://127.0.0.1:{port}/drip", [], b"")


class _RawUpstream:
    """A loopback TCP server that reads each request head and answers with ``respond(connection, stop)``: raw bytes,
    so a test can send what no well-behaved server would (a header flood, a response trickled byte by byte)."""

    def __init__(self, respond: Callable[[socket.socket, threading.Event], None]) -> None:
        self.respond = respond
        self.stop = threading.Event()
        self.accepted = 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.errors: list[str] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def __enter__(self) -> _RawUpstream:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept() (close alone does not)
        self.listener.close()
        self._thread.join(10)
        assert not self._thread.is_alive()

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.accepted += 1
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        with conn:
            head = b""
            while b"\r\n\r\n" not in head and (chunk := conn.recv(65536)):
                head += chunk
            try:
                self.respond(conn, self.stop)
            except OSError:
                pass  # the fetcher hung up: that is what most of these tests expect
            except Exception as e:  # collected for the test's own thread to assert on
                self.errors.append(repr(e))


def _answer(data: bytes) -> Callable[[socket.socket, threading.Event], None]:
    def respond(conn: socket.socket, stop: threading.Event) -> None:
        conn.sendall(data)

    return respond


def _trickle(data: bytes, every: float, head: bytes = b"") -> Callable[[socket.socket, threading.Event], None]:
    """Send ``head`` at once, then ``data`` one byte every ``every`` seconds (the upstream's pace, not a wait)."""

    def respond(conn: socket.socket, stop: threading.Event) -> None:
        conn.sendall(head)
        for byte in data:
            conn.sendall(bytes([byte]))
            if stop.wait(every):
                return

    return respond


def _head(*headers: tuple[str, str], length: int = 2) -> bytes:
    lines = [f"{name}: {value}" for name, value in headers] + [f"Content-Length: {length}"]
    return ("HTTP/1.1 200 OK\r\n" + "".join(f"{line}\r\n" for line in lines) + "\r\n").encode() + b"ok"[:length]


@pytest.mark.parametrize(("headers", "message"), [
    ([(f"x-h{i}", "v") for i in range(150)], "sent 151 response headers, more than the cap of 100"),
    ([(f"x-big{i}", "v" * 30_000) for i in range(3)], "bytes of response headers, more than the cap of 65536 bytes"),
    # Over the cap before the head is complete: refused by the parser's buffer limit, or by the byte count when the
    # whole head arrived in one read (which of the two depends on how the kernel delivers it).
    ([(f"x-big{i}", "v" * 30_000) for i in range(5)],
     "sent response headers over the 65536-byte cap|bytes of response headers, more than the cap of 65536 bytes"),
])
def test_a_response_header_flood_is_refused(headers: list[tuple[str, str]], message: str) -> None:
    with _RawUpstream(_answer(_head(*headers))) as upstream, local_fetcher(["http://127.0.0.1:*"]) as fetcher:
        with pytest.raises(OutboundError, match=message) as info:
            fetcher.fetch("GET", f"http://127.0.0.1:{upstream.port}/", [], b"")
    assert str(info.value).startswith(f"http://127.0.0.1:{upstream.port} sent ")
    assert upstream.errors == []


def test_response_headers_within_the_caps_pass_and_the_caps_are_settable() -> None:
    headers = [(f"x-h{i}", "v" * 600) for i in range(99)]  # 100 with content-length; about 60 KiB
    with _RawUpstream(_answer(_head(*headers))) as upstream:
        with local_fetcher(["http://127.0.0.1:*"]) as fetcher:
            status, got, body = fetcher.fetch("GET", f"http://127.0.0.1:{upstream.port}/", [], b"")
        assert (status, len(got), body) == (200, 100, b"ok")
        with local_fetcher(["http://127.0.0.1:*"], max_response_headers=10) as fetcher, \
                pytest.raises(OutboundError, match=r"more than the cap of 10$"):
            fetcher.fetch("GET", f"http://127.0.0.1:{upstream.port}/", [], b"")
    with pytest.raises(CapabilityError, match="max_response_header_bytes"):
        local_fetcher([], max_response_header_bytes=0)


@pytest.mark.parametrize(("what", "respond", "deadline"), [
    ("headers at 1 byte/s", _trickle(_head(("x-a", "b" * 100)), 1.0), 1.5),
    ("headers at 5 bytes/s", _trickle(_head(("x-a", "b" * 100)), 0.2), 0.8),
    ("body at 5 bytes/s", _trickle(b"x" * 1000, 0.2, head=b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"), 0.8),
])
def test_the_deadline_holds_against_a_trickling_upstream(what: str, respond: Callable[..., None],
                                                         deadline: float) -> None:
    """Each byte comes sooner than any read timeout (clamped to the deadline): only the deadline can stop it."""
    with _RawUpstream(respond) as upstream, local_fetcher(["http://127.0.0.1:*"]) as fetcher:
        started = time.monotonic()
        with pytest.raises(OutboundTimeout, match=rf"took longer than its deadline of {format_duration(deadline)}$"):
            fetcher.fetch("GET", f"http://127.0.0.1:{upstream.port}/", [], b"", deadline=deadline)
        took = time.monotonic() - started
    assert deadline - 0.05 <= took <= deadline + 0.25, f"{what}: gave up after {took:.3f}s"
    assert upstream.errors == []


def test_total_timeout_holds_against_trickled_headers() -> None:
    with _RawUpstream(_trickle(_head(("x-a", "b" * 100)), 0.1)) as upstream, \
            local_fetcher(["http://127.0.0.1:*"], total_timeout=0.5) as fetcher:
        started = time.monotonic()
        with pytest.raises(OutboundTimeout, match=r"took longer than 500ms in total"):
            fetcher.fetch("GET", f"http://127.0.0.1:{upstream.port}/", [], b"", deadline=5)  # the smaller bound
        assert time.monotonic() - started <= 0.75


def test_a_spent_deadline_fails_before_connecting() -> None:
    with _RawUpstream(_answer(_head())) as upstream, local_fetcher(["http://127.0.0.1:*"]) as fetcher:
        for spent in (0, -1):
            with pytest.raises(OutboundTimeout, match="took longer than its deadline of 0ms"):
                fetcher.fetch("GET", f"http://127.0.0.1:{upstream.port}/", [], b"", deadline=spent)
        assert fetcher.fetch("GET", f"http://127.0.0.1:{upstream.port}/", [], b"", deadline=5)[2] == b"ok"
        with pytest.raises(TypeError, match="deadline must be a number of seconds"):
            fetcher.fetch("GET", f"http://127.0.0.1:{upstream.port}/", [], b"", deadline="5s")  # type: ignore[arg-type]
    assert upstream.accepted == 1


def test_declared_oversize_response_is_refused_before_reading(port: int) -> None:
    with local_fetcher(["http://127.0.0.1:*"], max_response_bytes=1000) as fetcher:
        with pytest.raises(OutboundError, match="1000-byte cap"):
            fetcher.fetch("GET", f"http://127.0.0.1:{port}/big?n=655360&declare=1", [], b"")


def test_streamed_oversize_response_stops_reading(server: _CountingServer, port: int) -> None:
    with local_fetcher(["http://127.0.0.1:*"], max_response_bytes=100_000) as fetcher:
        with pytest.raises(OutboundError, match="100000-byte cap"):
            fetcher.fetch("GET", f"http://127.0.0.1:{port}/big?n=67108864&id=stream", [], b"")  # 64 MiB, chunked
    wait_until(lambda: "stream" in server.big_done, 30, "the handler to notice the closed connection")
    assert server.big_done["stream"] is False


def test_oversize_stream_is_not_drained() -> None:
    pulled = []

    class Endless(httpx.SyncByteStream):
        def __iter__(self) -> Iterator[bytes]:
            for i in range(10_000):
                pulled.append(i)
                yield b"x" * 65536

    recorder = Recorder(lambda r: httpx.Response(200, stream=Endless()))
    with remote_fetcher(["https://api.example.com"], recorder, max_response_bytes=200_000) as fetcher:
        with pytest.raises(OutboundError, match="cap"):
            fetcher.fetch("GET", "https://api.example.com/", [], b"")
    assert len(pulled) == 4


def test_oversize_request_body_is_refused_before_connecting(server: _CountingServer, port: int) -> None:
    before = server.accepted
    with local_fetcher(["http://127.0.0.1:*"], max_request_bytes=10) as fetcher:
        with pytest.raises(OutboundError, match="10-byte cap"):
            fetcher.fetch("POST", f"http://127.0.0.1:{port}/echo", [], b"x" * 11)
    assert server.accepted == before


def test_connection_refused_is_an_outbound_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        free = sock.getsockname()[1]
    with local_fetcher(["http://127.0.0.1:*"]) as fetcher:
        with pytest.raises(OutboundError, match="could not connect"):
            fetcher.fetch("GET", f"http://127.0.0.1:{free}/", [], b"")


@pytest.mark.parametrize("answers", [[], ["not-an-ip"], ["10.0.0.1%eth0x"]])
def test_bad_resolver_answers_are_outbound_errors(answers: list[str]) -> None:
    recorder = Recorder()
    with remote_fetcher(["https://api.example.com"], recorder, resolver=lambda h, p: answers) as fetcher:
        with pytest.raises(OutboundError, match="could not resolve"):
            fetcher.fetch("GET", "https://api.example.com/", [], b"")
    assert recorder.requests == []


def test_unknown_name_is_an_outbound_error() -> None:
    with remote_fetcher(["https://*.example.com"], Recorder()) as fetcher:
        with pytest.raises(OutboundError, match=r"could not resolve nowhere\.example\.com"):
            fetcher.fetch("GET", "https://nowhere.example.com/", [], b"")


def test_default_resolver_on_localhost() -> None:
    addresses = default_resolver("localhost", 80)
    assert addresses and all(ipaddress.ip_address(a).is_loopback for a in addresses)


@pytest.mark.parametrize(
    "kwargs", [{"connect_timeout": 0}, {"read_timeout": -1}, {"max_response_bytes": 0}, {"total_timeout": "1"}]
)
def test_fetcher_settings_are_validated(kwargs: dict[str, Any]) -> None:
    with pytest.raises(CapabilityError, match=next(iter(kwargs))):
        Fetcher(OutboundPolicy(), **kwargs)


# --------------------------------------------------------------------------------------------------------------
# Observability: counters and logs never carry secrets


def test_denials_are_counted_and_logged_without_secrets(caplog: pytest.LogCaptureFixture) -> None:
    recorder = Recorder()
    secret = "Bearer s3cr3t-token"
    with caplog.at_level(logging.DEBUG, logger="airssys_web.capabilities.outbound"):
        with remote_fetcher(["https://*.example.com"], recorder) as fetcher:
            for url in ("https://evil.example/?key=s3cr3t-token", "https://private.example.com/", "ftp://x/"):
                with pytest.raises(OutboundDenied):
                    fetcher.fetch("GET", url, [("Authorization", secret)], b"")
            with pytest.raises(OutboundDenied):
                fetcher.fetch("GET", "https://api.example.com/", [("X-Api-Key", "s3cr3t-token\n")], b"")
            assert fetcher.denials == {"not-granted": 1, "blocked-address": 1, "bad-url": 1, "bad-header": 1}
    assert recorder.requests == []
    assert len(caplog.records) == 4 and all(r.levelno == logging.WARNING for r in caplog.records)
    assert "s3cr3t" not in caplog.text


# --------------------------------------------------------------------------------------------------------------
# TLS: the pinned IP is dialled, SNI and verification use the name


def _make_cert(tmp: Path, name: str) -> tuple[Path, Path]:
    key, cert = tmp / f"{name}.key", tmp / f"{name}.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", f"/CN={name}",
         "-addext", f"subjectAltName=DNS:{name}"],
        check=True, capture_output=True,
    )
    return cert, key


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path, list[str | None]]]:
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is needed to make a test certificate")
    cert, key = _make_cert(tmp_path_factory.mktemp("tls"), "localhost")
    sni: list[str | None] = []
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    context.sni_callback = lambda sock, name, ctx: sni.append(name)  # type: ignore[assignment,misc]
    srv = _CountingServer()
    srv.socket = context.wrap_socket(srv.socket, server_side=True)
    with _serve(srv):
        yield int(srv.server_address[1]), cert, sni


def test_tls_uses_the_name_for_sni_and_verification(tls_server: tuple[int, Path, list[str | None]]) -> None:
    tls_port, cert, sni = tls_server
    trusted = ssl.create_default_context(cafile=str(cert))
    with local_fetcher(["https://localhost:*"], ssl_context=trusted) as fetcher:
        status, _, body = fetcher.fetch("GET", f"https://localhost:{tls_port}/echo", [], b"")
    assert status == 200
    assert ["host", f"localhost:{tls_port}"] in [[k.lower(), v] for k, v in json.loads(body)["headers"]]
    assert sni[-1] == "localhost"


def test_tls_verification_fails_for_another_name_on_the_same_ip(
    tls_server: tuple[int, Path, list[str | None]],
) -> None:
    tls_port, cert, _ = tls_server
    trusted = ssl.create_default_context(cafile=str(cert))
    grants = ["https://allowed.example:*", "https://127.0.0.1:*"]  # the name may use 127.0.0.1 ...
    with local_fetcher(grants, ssl_context=trusted) as fetcher:
        with pytest.raises(OutboundError, match="Hostname mismatch"):  # ... but the certificate is for localhost
            fetcher.fetch("GET", f"https://allowed.example:{tls_port}/echo", [], b"")


def test_tls_with_default_trust_rejects_a_self_signed_server(tls_server: tuple[int, Path, list[str | None]]) -> None:
    with local_fetcher(["https://localhost:*"]) as fetcher:
        with pytest.raises(OutboundError, match="CERTIFICATE_VERIFY_FAILED"):
            fetcher.fetch("GET", f"https://localhost:{tls_server[0]}/echo", [], b"")


def test_tls_to_an_ip_literal_verifies_the_ip(tls_server: tuple[int, Path, list[str | None]]) -> None:
    tls_port, cert, _ = tls_server
    trusted = ssl.create_default_context(cafile=str(cert))
    with local_fetcher(["https://127.0.0.1:*"], ssl_context=trusted) as fetcher:
        with pytest.raises(OutboundError, match="IP address mismatch"):
            fetcher.fetch("GET", f"https://127.0.0.1:{tls_port}/echo", [], b"")


# --------------------------------------------------------------------------------------------------------------
# Grants: Spin-compatible syntax, value semantics, errors

GRANTS = [
    ("https://api.example.com", "https://api.example.com"),
    ("https://API.Example.com:443/", "https://api.example.com"),
    ("  https://api.example.com  ", "https://api.example.com"),
    ("https://api.example.com:8443", "https://api.example.com:8443"),
    ("https://*.example.com", "https://*.example.com"),
    ("http://127.0.0.1:*", "http://127.0.0.1:*"),
    ("*://host:8080", "*://host:8080"),
    ("*://*:*", "*://*:*"),
    ("http://10.0.0.0/8:*", "http://10.0.0.0/8:*"),
    ("http://10.0.0.0/8", "http://10.0.0.0/8"),
    ("*://127.0.0.1/24:63551", "*://127.0.0.0/24:63551"),
    ("*://ff00::/8:80", "*://ff00::/8:80"),
    ("http://[fd00::]/8:*", "*://fd00::/8:*".replace("*", "http", 1)),
    ("http://[::1]:8001", "http://[::1]:8001"),
    ("http://[::1]", "http://[::1]"),
    ("http://[::ffff:10.0.0.1]", "http://10.0.0.1"),
    ("http://localhost:3000", "http://localhost:3000"),
    ("http://spin.fermyon.dev:4444..5555", "http://spin.fermyon.dev:4444..5555"),
    ("https://bücher.example", "https://xn--bcher-kva.example"),
    ("https://example.com.", "https://example.com"),
    ("HTTPS://Example.COM", "https://example.com"),
]


@pytest.mark.parametrize(("pattern", "canonical"), GRANTS)
def test_grant_syntax(pattern: str, canonical: str) -> None:
    grant = AllowedHost(pattern)
    assert str(grant) == canonical
    assert AllowedHost(str(grant)) == grant and hash(AllowedHost(str(grant))) == hash(grant)
    assert eval(repr(grant)) == grant


BAD_GRANTS = [
    ("", "empty"),
    ("api.example.com", "missing scheme"),
    ("api.example.com:443", "missing scheme"),
    ("ftp://x.com", "'ftp' is not supported"),
    ("insecure:allow-all", "'\\*://\\*:\\*'"),
    ("http://x.com/path", "paths"),
    ("http://*x.com", "'\\*' is only allowed"),
    ("http://a.*.com", "'\\*' is only allowed"),
    ("http://*.*.com", "not a valid host"),
    ("http://127.1", "ambiguous IPv4"),
    ("http://0x7f.0.0.1", "ambiguous IPv4"),
    ("https://user@x.com", "'@'"),
    ("*://x.com", "need a port"),
    ("*://127.0.0.0/24", "need a port"),
    ("http://x.com:0", "out of range"),
    ("http://x.com:65536", "out of range"),
    ("http://x.com:9..9", "out of range"),
    ("http://x.com:http", "must be a number"),
    ("http://x.com:", "must be a number"),
    ("http://self", "'self'"),
    ("http://{a,b}.com", "host lists"),
    ("http://::1", "brackets"),
    ("http://[::1", "unclosed"),
    ("http://[zz::1]:80", "not an IPv6"),
    ("http://10.0.0.0/33:*", "not a CIDR"),
    ("http://x .com", "' '"),
    ("http://bad_\u0000.com", "'\\\\x00'"),
]


@pytest.mark.parametrize(("pattern", "message"), BAD_GRANTS)
def test_bad_grants_name_the_pattern_and_show_examples(pattern: str, message: str) -> None:
    with pytest.raises(CapabilityError, match=message) as info:
        AllowedHost(pattern)
    text = str(info.value)
    assert repr(pattern) in text and "https://api.example.com" in text and "\n" not in text


def test_policy_value_semantics() -> None:
    a = OutboundPolicy(["https://api.example.com", "http://127.0.0.1:*", "https://API.example.com:443"])
    b = OutboundPolicy([AllowedHost("http://127.0.0.1:*"), "https://api.example.com"])
    assert a == b and hash(a) == hash(b) and len(a.grants) == 2
    assert repr(a) == "OutboundPolicy(['https://api.example.com', 'http://127.0.0.1:*'])"
    assert pickle.loads(pickle.dumps(a)) == a and copy.deepcopy(a.grants[0]) == a.grants[0]
    with pytest.raises(AttributeError):
        a.grants[0].host = "evil"
    with pytest.raises(AttributeError):
        a.grants = ()  # type: ignore[misc]
    with pytest.raises(CapabilityError, match="list of strings"):
        OutboundPolicy("https://api.example.com")
    with pytest.raises(CapabilityError, match="must be a string"):
        OutboundPolicy([42])  # type: ignore[list-item]


def test_empty_policy_denies_everything() -> None:
    with pytest.raises(OutboundDenied, match=r"not granted; to allow it, deploy with --allow-host https://a\.example "):
        OutboundPolicy().check("https://a.example/x")


@pytest.mark.parametrize(("grants", "url", "flag"), [
    ([], "https://a.example/x", "--allow-host https://a.example"),
    (["https://api.example.com"], "http://api.example.com:8080/", "--allow-host http://api.example.com:8080"),
    (["https://*.example.com"], "https://[2001:db8::1]/", "--allow-host https://[2001:db8::1]"),
])
def test_a_denial_names_the_flag_that_grants_it(grants: list[str], url: str, flag: str) -> None:
    with pytest.raises(OutboundDenied) as info:
        OutboundPolicy(grants).check(url)
    origin = flag.removeprefix("--allow-host ")
    assert str(info.value) == (f"denied: {origin} is not granted; to allow it, deploy with {flag} "
                               f'(or outbound = ["{origin}"] under [grants] in airssys.toml)')


def test_check_returns_a_canonical_target() -> None:
    target = OutboundPolicy(["https://*.example.com:*"]).check("HTTPS://Api.Example.COM.:8443/a%20b?q=1&r=é#frag")
    assert target == Target("https", "api.example.com", 8443, "/a%20b?q=1&r=%C3%A9", None)
    assert target.authority == "api.example.com:8443" and target.origin == "https://api.example.com:8443"


# --------------------------------------------------------------------------------------------------------------
# Properties

_names = st.sampled_from(["api.example.com", "a.b.example.com", "example.com", "localhost", "evil.example",
                          "xn--bcher-kva.example", "bücher.example", "x"])
_hosts = st.one_of(_names, st.sampled_from(["*", "*.example.com", "127.0.0.1", "[::1]", "10.0.0.0/8", "fd00::/8",
                                             "[2001:db8::1]", "0.0.0.0/0"]))
_ports = st.one_of(
    st.none(),
    st.just("*"),
    st.integers(1, 65535).map(str),
                   st.tuples(st.integers(1, 65534), st.integers(1, 100)).map(lambda t: f"{t[0]}..{min(sum(t), 65535)}"),
)


@st.composite
def valid_patterns(draw: st.DrawFn) -> str:
    scheme = draw(st.sampled_from(["http", "https", "*", "HTTP"]))
    port = draw(_ports)
    if scheme == "*" and port is None:
        port = "*"
    return f"{scheme}://{draw(_hosts)}" + (f":{port}" if port is not None else "")


@given(valid_patterns())
def test_property_valid_grants_round_trip(pattern: str) -> None:
    grant = AllowedHost(pattern)
    assert AllowedHost(str(grant)) == grant
    assert str(AllowedHost(str(grant))) == str(grant)


@given(st.one_of(st.text(max_size=60), valid_patterns().map(lambda p: p[: len(p) // 2] + "*/:[@%" + p[len(p) // 2 :])))
def test_property_grant_parser_only_raises_capability_error(pattern: str) -> None:
    try:
        grant = AllowedHost(pattern)
    except CapabilityError as exc:
        assert "\n" not in str(exc) or "\n" in pattern
    else:
        assert AllowedHost(str(grant)) == grant


_url_hosts = st.one_of(
    _names,
    _names,
    st.builds("{}.example.com".format, st.from_regex(r"[a-zA-Z0-9-]{1,10}", fullmatch=True)),
    st.sampled_from(["127.0.0.1", "127.1", "0x7f.1", "2130706433", "[::1]", "[::ffff:7f00:1]", "EXAMPLE.com.",
                     "api.example.com.evil", "%61pi.example.com", "api.example.com@evil", "①.example.com", "",
                     "[fe80::1%25eth0]", "api.example.com\\", "api。example。com"]),
    st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=12),
)


@st.composite
def nasty_urls(draw: st.DrawFn) -> str:
    """URLs that are mostly well-formed, with one or two tricky parts (repeats in the lists weight the draw)."""
    scheme = draw(st.sampled_from(["http", "https", "HTTPS", "http", "https", "ftp", "", "javascript"]))
    sep = draw(st.sampled_from(["://"] * 6 + [":/", ":\\\\", "//", ":", ":///"]))
    user = draw(st.sampled_from([""] * 6 + ["user@", "api.example.com@", "a:b@"]))
    port = draw(st.sampled_from(["", "", "", ":443", ":80", ":0", ":65536", ":+1", ":", ":8443"]))
    safe_tail = st.text(st.sampled_from("/?#@%.-_~=&abcé"), max_size=10)
    tail = draw(st.one_of(safe_tail, safe_tail, st.text(st.sampled_from("/?#@\\%. a\t\r\nxé"), max_size=8)))
    return f"{scheme}{sep}{user}{draw(_url_hosts)}{port}{tail}"


_clean_urls = st.builds(
    "{}://{}{}{}".format,
    st.sampled_from(["http", "https", "HTTPS"]),
    st.one_of(_names, st.builds("{}.example.com".format, st.from_regex(r"[a-zA-Z0-9-]{1,10}", fullmatch=True))),
    st.sampled_from(["", ":443", ":8443"]),
    st.text(st.sampled_from("/?#@%.-_~=&abcé"), max_size=10),
)


_GRANTED_NAMES = {"api.example.com", "xn--bcher-kva.example"}
_SOUND_POLICY = OutboundPolicy(["https://api.example.com", "*://*.example.com:*", "https://bücher.example"])


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(_clean_urls, nasty_urls()))
def test_property_check_never_allows_an_unmatched_host(url: str) -> None:
    try:
        target = _SOUND_POLICY.check(url)
    except OutboundDenied as exc:
        assert str(exc).startswith("denied: ")
        return
    assert target.ip is None
    assert target.host in _GRANTED_NAMES or target.host.endswith(".example.com")
    assert target.scheme in ("http", "https") and 0 < target.port < 65536
    # No parser differential: where httpx can read the URL at all, it sees the same host.
    try:
        theirs = httpx.URL(url)
    except httpx.InvalidURL:
        return
    assert theirs.raw_host.decode("ascii").lower().rstrip(".") == target.host


@settings(max_examples=300)
@given(st.text(max_size=40).map(lambda s: "http://" + s))
def test_property_check_only_raises_outbound_denied(url: str) -> None:
    try:
        target = OutboundPolicy(["*://*:*"]).check(url)
    except OutboundDenied:
        return
    assert target.ip is None or special_label(target.ip) is None
    assert target.host and all(c.isascii() and not c.isspace() for c in target.host + target.path)


@given(st.ip_addresses())
def test_property_wildcard_grants_never_reach_internal_addresses(ip: IPAddress) -> None:
    policy = OutboundPolicy(["*://*:*", "*://0.0.0.0/0:*", "*://::/0:*"])
    target = Target("http", "name.example", 80, "/")
    if special_label(ip) is None:
        assert ip.is_global or (ip.version == 6 and ip.ipv4_mapped is not None)
        policy.check_address(target, ip)
    else:
        with pytest.raises(OutboundDenied, match="only a grant naming it"):
            policy.check_address(target, ip)


@given(st.ip_addresses(v=4).filter(lambda ip: special_label(ip) is not None))
def test_property_an_exact_ip_grant_names_its_address(ip: ipaddress.IPv4Address) -> None:
    OutboundPolicy([f"http://{ip}:*"]).check_address(Target("http", "name.example", 8080, "/"), ip)
    assume(str(ip) != "0.0.0.0")
    OutboundPolicy([f"http://{ip}:*"]).check(f"http://{ip}:8080/")
