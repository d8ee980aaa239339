"""SSRF-proof outbound HTTP for guests: the host side of ``airssys:web/outbound.fetch``.

A component may only reach the origins its grants name (Spin's ``allowed_outbound_hosts`` syntax), and never
an internal address unless a grant names that address explicitly. Three rules carry the design:

* **One parser.** The guest's URL is parsed once, strictly, by this module; the request httpx sends is rebuilt
  from the parsed parts, so no second parser can read the URL differently. Only absolute ``http(s)`` URLs are
  accepted: a relative URL would let an inbound ``Host`` header pick the origin (Spin's CVE-2024-32980).
* **Check what you connect to.** A name is resolved once, every address is checked, and the connection goes to
  the checked address (no second lookup, so DNS rebinding cannot swap it); ``Host`` and TLS SNI/verification
  still use the name. The guest cannot set ``Host``.
* **No hidden hops.** Redirects, proxies from the environment, cookies and connection reuse across names are
  all off. Redirects go back to the guest unfollowed, and a follow-up request is a new, fully checked ``fetch``
  (a host-side follow would bypass the grants, Spin issue #1881; wasi-http leaves redirects to the guest too).

The address rule (see :meth:`OutboundPolicy.check_address`): an address in a special-purpose range (private,
loopback, link-local, unspecified, CGNAT, multicast, reserved, documentation, benchmarking, IPv6 ULA and
site-local, or an IPv6 form embedding such an IPv4 address) or not globally routable is refused unless a grant
whose scheme and port allow the request *names* it: an IP literal equal to it, a CIDR containing it that lies
wholly inside special-purpose space (``http://10.0.0.0/8:*`` names 10.x; ``*://0.0.0.0/0:*`` names nothing
private), or the name ``localhost`` for loopback addresses. Cloud metadata addresses need an exact IP grant.

Bounds on what an upstream can make the host do: per-phase timeouts, a total time and an optional caller deadline
(``fetch(..., deadline=)``) that hold even against an upstream trickling a byte at a time (a watchdog shuts the
connection down when the time is up), a response body cap, and caps on the response headers handed to the guest:
at most 100 of them and 64 KiB in all (names, values and 4 bytes of framing each; like ``http.client``'s
100-header limit), beyond which the fetch fails with an :class:`OutboundError` naming the cap.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import socket
import ssl
import threading
import time
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable
from contextlib import suppress
from dataclasses import dataclass
from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import Any, Literal
from urllib.parse import quote

import httpx
import idna

from airssys_web.errors import CapabilityError, OutboundDenied, OutboundError, OutboundTimeout
from airssys_web.units import format_duration

__all__ = [
    "INTERNAL_DOMAIN",
    "METADATA_ADDRESSES",
    "AllowedHost",
    "Fetcher",
    "IPAddress",
    "OutboundPolicy",
    "Resolver",
    "Target",
    "default_resolver",
    "is_internal_host",
    "parse_url",
    "special_label",
]

logger = logging.getLogger(__name__)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], list[str]]
"""``resolver(host, port) -> [ip, ...]``; injectable so tests never touch real DNS."""

DEFAULT_PORTS = {"http": 80, "https": 443}
#: Caps on the response headers a guest is handed: how many, and their size in all (name + value + 4 per header).
MAX_RESPONSE_HEADERS = 100
MAX_RESPONSE_HEADER_BYTES = 64 * 1024
_EXAMPLES = "e.g. 'https://api.example.com', 'https://*.example.com:8443', 'http://127.0.0.1:*', 'http://10.0.0.0/8:*'"
_MAX_URL = 8192
_IPV4 = re.compile(r"(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)")
_LABEL = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?")
_NUMERIC_LABEL = re.compile(r"(?:0[x][0-9a-f]*|[0-9]+)")  # WHATWG "ends in a number": an IPv4 form
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_FIELD_VALUE = re.compile(r"[\t\x20-\x7e]*")
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):(.*)", re.DOTALL)

# Special-purpose ranges (IANA registries) with the word used in denials. Checked after unwrapping
# IPv4-mapped addresses; ``not is_global`` and multicast are checked as well, as a backstop.
_SPECIAL: tuple[tuple[IPNetwork, str], ...] = tuple(
    (ipaddress.ip_network(net), label)
    for net, label in (
        ("0.0.0.0/8", "unspecified"), ("10.0.0.0/8", "private"), ("100.64.0.0/10", "CGNAT"),
        ("127.0.0.0/8", "loopback"), ("169.254.0.0/16", "link-local"), ("172.16.0.0/12", "private"),
        ("192.0.0.0/24", "IETF-reserved"), ("192.0.2.0/24", "documentation"), ("192.88.99.0/24", "6to4-relay"),
        ("192.168.0.0/16", "private"), ("198.18.0.0/15", "benchmarking"), ("198.51.100.0/24", "documentation"),
        ("203.0.113.0/24", "documentation"), ("224.0.0.0/4", "multicast"), ("240.0.0.0/4", "reserved"),
        ("::/128", "unspecified"), ("::1/128", "loopback"), ("::/96", "IPv4-compatible"),
        ("64:ff9b:1::/48", "NAT64-local"), ("100::/64", "discard"), ("2001::/23", "IETF-reserved"),
        ("2001:db8::/32", "documentation"), ("3fff::/20", "documentation"), ("5f00::/16", "SRv6"),
        ("fc00::/7", "private"), ("fe80::/10", "link-local"), ("fec0::/10", "site-local"),
        ("ff00::/8", "multicast"),
    )
)
# Cloud metadata and host-agent endpoints: reachable only through a grant naming the exact IP.
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254", "169.254.170.2", "169.254.170.23", "fd00:ec2::254", "fd00:ec2::23",
        "100.100.100.200", "168.63.129.16", "192.0.0.192",
    )
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
#: Which of the per-phase timeouts an httpx timeout exception is about.
_TIMEOUT_PHASES = {"ConnectTimeout": "connect", "ReadTimeout": "read", "WriteTimeout": "write", "PoolTimeout": "pool"}
_HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-connection", "proxy-authenticate", "proxy-authorization", "te",
     "trailer", "transfer-encoding", "upgrade"}
)


#: The domain of component addresses (``http://NAME.airssys.internal/PATH``): never sent to the network.
INTERNAL_DOMAIN = "airssys.internal"


def is_internal_host(host: str) -> bool:
    """Whether ``host`` lies in :data:`INTERNAL_DOMAIN` (case and a trailing dot do not matter)."""
    name = host.lower().rstrip(".")
    return name == INTERNAL_DOMAIN or name.endswith("." + INTERNAL_DOMAIN)


class _Denied(OutboundDenied):
    """An :class:`OutboundDenied` that carries a short ``kind`` slug for the denial counters."""

    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(reason)
        self.kind = kind


def _unwrap(ip: IPAddress) -> IPAddress:
    """``::ffff:a.b.c.d`` *is* ``a.b.c.d`` on a dual-stack socket, so it is checked and matched as IPv4."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def _embedded_v4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address a NAT64 (64:ff9b::/96) or 6to4 (2002::/16) address forwards to, if any."""
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip.sixtofour


def special_label(ip: IPAddress) -> str | None:
    """Why ``ip`` is not a plain public address (``"loopback"``, ``"private"``, ...), or None if it is."""
    ip = _unwrap(ip)
    if ip in METADATA_ADDRESSES:
        return "cloud-metadata"
    for net, label in _SPECIAL:
        if ip.version == net.version and ip in net:
            return label
    if isinstance(ip, ipaddress.IPv6Address) and (v4 := _embedded_v4(ip)) is not None:
        inner = special_label(v4)
        if inner is not None:
            return f"{inner} (embedded IPv4 {v4})"
    if ip.is_multicast:
        return "multicast"
    if not ip.is_global:
        return "non-global"
    return None


def _normalise_name(host: str) -> str:
    """Lower-case, IDNA (UTS #46) A-labels, one trailing dot dropped; raise ValueError saying what is wrong."""
    if host.endswith("."):
        host = host[:-1]
    if not host:
        raise ValueError("empty host")
    ascii_input = host.isascii()
    if not ascii_input:
        try:
            host = idna.encode(host, uts46=True).decode("ascii")
        except (idna.IDNAError, UnicodeError) as exc:
            raise ValueError(f"host {host!r} is not a valid internationalised name ({exc})") from None
    host = host.lower()
    if _IPV4.fullmatch(host) or _NUMERIC_LABEL.fullmatch(host.rsplit(".", 1)[-1]):
        if ascii_input:
            raise ValueError(f"host {host!r} is an ambiguous IPv4 form; write the address as four decimal parts")
        raise ValueError("host is an IP address written with non-ASCII characters")
    if len(host) > 253 or not all(_LABEL.fullmatch(label) for label in host.split(".")):
        raise ValueError(f"host {host!r} is not a valid host name (letters, digits, '-', '.' only)")
    if "xn--" in host:
        try:
            idna.decode(host)
        except (idna.IDNAError, UnicodeError):
            raise ValueError(f"host {host!r} has an invalid punycode label") from None
    return host


def _parse_host(host: str, bracketed: bool) -> tuple[str, IPAddress | None]:
    """Canonical host text (no brackets) and its IP if it is a literal; raise ValueError on anything odd."""
    if bracketed:
        if "%" in host:
            raise ValueError("IPv6 zone identifiers are not allowed")
        try:
            ip = _unwrap(ipaddress.IPv6Address(host))
        except ValueError:
            raise ValueError(f"[{host}] is not an IPv6 address") from None
        return str(ip), ip
    if _IPV4.fullmatch(host.removesuffix(".")):
        ip4 = ipaddress.IPv4Address(host.removesuffix("."))
        return str(ip4), ip4
    return _normalise_name(host), None


@dataclass(frozen=True, slots=True)
class Target:
    """A checked destination: canonical scheme, host (A-label name or IP), port and raw path-and-query."""

    scheme: str
    host: str
    port: int
    path: str
    ip: IPAddress | None = None

    @property
    def authority(self) -> str:
        """What the ``Host`` header says: the host, bracketed if IPv6, with the port unless it is the default."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if DEFAULT_PORTS[self.scheme] == self.port else f"{host}:{self.port}"

    @property
    def origin(self) -> str:
        """``scheme://authority``: safe to log (the path and query may carry secrets)."""
        return f"{self.scheme}://{self.authority}"


def parse_url(url: str) -> Target:
    """Parse a guest URL strictly into a :class:`Target`; raise OutboundDenied naming the defect."""

    def bad(reason: str) -> _Denied:
        return _Denied("bad-url", reason)

    if not isinstance(url, str) or not url:
        raise bad("the URL is empty")
    if len(url) > _MAX_URL:
        raise bad(f"the URL is longer than {_MAX_URL} characters")
    for ch in url:
        if ch == "\\" or unicodedata.category(ch)[0] in "CZ":  # control, format, whitespace, unassigned
            raise bad(f"the URL contains the character U+{ord(ch):04X}; percent-encode it")
    m = _SCHEME.fullmatch(url)
    scheme = m.group(1).lower() if m else ""
    if scheme not in DEFAULT_PORTS:
        raise bad("only absolute http:// and https:// URLs can be fetched")
    rest = m.group(2) if m else ""
    if not rest.startswith("//"):
        raise bad(f"the URL has no host; write it as {scheme}://host/path")
    end = len(rest)
    for sep in "/?#":
        if (i := rest.find(sep, 2)) != -1:
            end = min(end, i)
    authority, tail = rest[2:end], rest[end:]
    if "@" in authority:
        raise bad("user info ('user@host') is not allowed in URLs; send credentials in a header")
    bracketed = authority.startswith("[")
    if bracketed:
        close = authority.find("]")
        if close == -1:
            raise bad("unclosed '[' in the URL host")
        host, after = authority[1:close], authority[close + 1 :]
        if after and not after.startswith(":"):
            raise bad("unexpected text after the IPv6 address")
        port_text = after[1:] if after else None
    else:
        if authority.count(":") > 1:
            raise bad("IPv6 hosts must be written in brackets, e.g. http://[2001:db8::1]:8080/")
        host, colon, port_text_ = authority.partition(":")
        port_text = port_text_ if colon else None
    if not host:
        raise bad("the URL host is empty")
    if port_text is None:
        port = DEFAULT_PORTS[scheme]
    elif re.fullmatch(r"[0-9]{1,5}", port_text) and 0 < int(port_text) < 65536:
        port = int(port_text)
    else:
        raise bad("the URL port must be a number from 1 to 65535")
    try:
        canonical, ip = _parse_host(host, bracketed)
    except ValueError as exc:
        raise bad(str(exc)) from None
    path = tail.partition("#")[0]
    path = "/" + path if not path.startswith("/") else path
    path = "".join(c if c.isascii() else quote(c) for c in path)
    return Target(scheme, canonical, port, path, ip)


class AllowedHost:
    """One grant, Spin's ``allowed_outbound_hosts`` syntax: ``<scheme>://<host>[:<port>]``.

    scheme: ``http``, ``https`` or ``*``. host: a name, ``*.suffix`` (subdomains only, not the apex), ``*``,
    an IP (``127.0.0.1``, ``[::1]``) or a CIDR (``10.0.0.0/8``, ``fd00::/8``). port: a number, ``*``, a
    range ``8000..9000`` (end excluded, as in Spin) or absent for the scheme's default (required with ``*://``).
    Immutable; parsed once, compared by meaning: ``AllowedHost('https://A.com:443') == AllowedHost('https://a.com')``.
    """

    __slots__ = ("host", "kind", "network", "ports", "scheme")
    scheme: str | None  # None: any
    kind: Literal["any", "suffix", "name", "ip", "cidr"]
    host: str  # canonical: name, ".suffix", IP text or CIDR text; "" for any
    network: IPNetwork | None  # for "ip" (a /32 or /128) and "cidr"
    ports: tuple[int, int] | None  # inclusive; None: any

    def __init__(self, pattern: str) -> None:
        if not isinstance(pattern, str):
            raise CapabilityError(f"outbound grant must be a string like {_EXAMPLES}, not {type(pattern).__name__}")
        try:
            self._parse(pattern.strip())
        except ValueError as exc:
            raise CapabilityError(f"invalid outbound grant {pattern!r}: {exc}; expected {_EXAMPLES}") from None

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("AllowedHost is immutable")

    def _set(self, **fields: object) -> None:
        for name, value in fields.items():
            object.__setattr__(self, name, value)

    def _parse(self, text: str) -> None:
        if text == "insecure:allow-all":
            raise ValueError("'insecure:allow-all' is not supported; '*://*:*' allows every public host")
        if not text:
            raise ValueError("empty grant")
        for c in text:
            if c in "\\@" or unicodedata.category(c)[0] in "CZ":
                raise ValueError(f"character {c!r} is not allowed (no user info, whitespace or control characters)")
        scheme, sep, rest = text.partition("://")
        if not sep:
            raise ValueError("missing scheme ('http://', 'https://' or '*://')")
        scheme = scheme.lower()
        if scheme not in ("http", "https", "*"):
            raise ValueError(f"scheme {scheme!r} is not supported; airssys-web only makes HTTP(S) requests")
        rest = rest.removesuffix("/")
        if rest.startswith("["):
            close = rest.find("]")
            if close == -1:
                raise ValueError("unclosed '['")
            host, after = rest[: close + 1], rest[close + 1 :]
            if after.startswith("/"):  # "[fd00::]/8:80"
                prefix, _, port = after[1:].partition(":")
                host, has_port = f"{host}/{prefix}", ":" in after
            else:
                if after and not after.startswith(":"):
                    raise ValueError("unexpected text after ']'")
                port, has_port = after[1:], bool(after)
        elif "/" in rest:  # CIDR "10.0.0.0/8:*", "fd00::/8:80"
            addr, _, tail = rest.partition("/")
            prefix, colon, port = tail.partition(":")
            if not prefix.isdigit():
                raise ValueError("paths are not allowed in grants")
            host, has_port = f"{addr}/{prefix}", bool(colon)
        else:
            if rest.count(":") > 1:
                raise ValueError("IPv6 addresses must be in brackets, e.g. 'http://[::1]:8080'")
            host, colon, port = rest.partition(":")
            has_port = bool(colon)
        self._set(scheme=None if scheme == "*" else scheme)
        self._parse_host(host)
        self._parse_port(port if has_port else None, scheme)

    def _parse_host(self, host: str) -> None:
        network: IPNetwork | None = None
        if host == "*":
            kind, canonical = "any", ""
        elif host in ("self", "self.alt"):
            raise ValueError("'self' (requests to the app itself) is not supported; grant its origin instead")
        elif host.startswith("{"):
            raise ValueError("host lists are not supported; write one grant per host")
        elif not host:
            raise ValueError("empty host")
        elif "/" in host:
            try:
                network = ipaddress.ip_network(host.replace("[", "").replace("]", ""), strict=False)
            except ValueError:
                raise ValueError(f"{host!r} is not a CIDR network") from None
            kind, canonical = "cidr", str(network)
        elif host.startswith("*."):
            kind, canonical = "suffix", "." + _normalise_name(host[2:])
        elif "*" in host:
            raise ValueError("'*' is only allowed as the whole host or as a '*.' prefix")
        else:
            bracketed = host.startswith("[") and host.endswith("]")
            canonical, ip = _parse_host(host[1:-1] if bracketed else host, bracketed)
            kind = "name"
            if ip is not None:
                kind, network = "ip", ipaddress.ip_network(ip)
        if kind in ("name", "suffix") and is_internal_host(canonical.lstrip(".")):
            name = canonical.lstrip(".").removesuffix(INTERNAL_DOMAIN).rstrip(".") or "NAME"
            raise ValueError(f"{INTERNAL_DOMAIN} names components, which are granted by name: "
                             f"--allow-component {name} (components = [\"{name}\"] in airssys.toml)")
        self._set(kind=kind, host=canonical, network=network)

    def _parse_port(self, port: str | None, scheme: str) -> None:
        if port is None:
            if scheme == "*":
                raise ValueError("'*://' grants need a port ('*://host:443' or '*://host:*')")
            self._set(ports=(DEFAULT_PORTS[scheme],) * 2)
        elif port == "*":
            self._set(ports=None)
        elif m := re.fullmatch(r"([0-9]{1,5})(?:\.\.([0-9]{1,5}))?", port):
            lo = int(m.group(1))
            hi = int(m.group(2)) - 1 if m.group(2) else lo
            if not 0 < lo <= hi < 65536:
                raise ValueError(f"port {port!r} is out of range (1-65535; ranges 'start..end' exclude end)")
            self._set(ports=(lo, hi))
        else:
            raise ValueError(f"port {port!r} must be a number, 'start..end' or '*'")

    def allows_scheme_port(self, scheme: str, port: int) -> bool:
        """Whether this grant admits ``scheme`` and ``port`` (the host is not looked at)."""
        return (self.scheme is None or self.scheme == scheme) and (
            self.ports is None or self.ports[0] <= port <= self.ports[1]
        )

    def matches(self, target: Target) -> bool:
        """Whether the URL ``target`` is granted (Spin semantics: ``*.a.com`` matches ``b.a.com``, not ``a.com``)."""
        if not self.allows_scheme_port(target.scheme, target.port):
            return False
        if self.kind == "any":
            return True
        if self.kind in ("ip", "cidr"):
            return self.network is not None and target.ip is not None and _in(target.ip, self.network)
        if target.ip is not None:
            return False
        return target.host == self.host if self.kind == "name" else target.host.endswith(self.host)

    def names(self, ip: IPAddress) -> bool:
        """Whether this grant names the special-purpose address ``ip`` explicitly (see the module docstring)."""
        ip = _unwrap(ip)
        if self.kind == "ip":
            return self.network is not None and _in(ip, self.network)
        if ip in METADATA_ADDRESSES:
            return False
        if self.kind == "name":
            return self.host == "localhost" and ip.is_loopback
        if self.kind == "cidr" and self.network is not None and _in(ip, self.network):
            net = self.network
            return any(net.version == s.version and net.subnet_of(s) for s, _ in _SPECIAL)  # type: ignore[arg-type]
        return False

    def _key(self) -> tuple[object, ...]:
        return (self.scheme, self.kind, self.host, self.ports)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, AllowedHost) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __str__(self) -> str:
        scheme = self.scheme or "*"
        host = {"any": "*", "suffix": "*" + self.host}.get(self.kind, self.host)
        if self.kind == "ip" and ":" in host:
            host = f"[{host}]"
        if self.ports is None:
            return f"{scheme}://{host}:*"
        lo, hi = self.ports
        if self.scheme is not None and lo == hi == DEFAULT_PORTS[self.scheme]:
            return f"{scheme}://{host}"
        return f"{scheme}://{host}:{lo}" if lo == hi else f"{scheme}://{host}:{lo}..{hi + 1}"

    def __repr__(self) -> str:
        return f"AllowedHost({str(self)!r})"

    def __reduce__(self) -> tuple[type[AllowedHost], tuple[str]]:
        return AllowedHost, (str(self),)  # copy and pickle re-parse the canonical form


def _in(ip: IPAddress, net: IPNetwork) -> bool:
    return ip.version == net.version and ip in net


class OutboundPolicy:
    """A component's grants; empty denies everything. Immutable and cheap to share between threads."""

    __slots__ = ("_grants",)
    _grants: tuple[AllowedHost, ...]

    def __init__(self, grants: Iterable[str | AllowedHost] = ()) -> None:
        if isinstance(grants, str):
            raise CapabilityError("outbound grants must be a list of strings, e.g. ['https://api.example.com']")
        parsed = tuple(g if isinstance(g, AllowedHost) else AllowedHost(g) for g in grants)
        object.__setattr__(self, "_grants", tuple(dict.fromkeys(parsed)))

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("OutboundPolicy is immutable")

    @property
    def grants(self) -> tuple[AllowedHost, ...]:
        return self._grants

    def __eq__(self, other: object) -> bool:
        return isinstance(other, OutboundPolicy) and set(self._grants) == set(other._grants)

    def __hash__(self) -> int:
        return hash(frozenset(self._grants))

    def __repr__(self) -> str:
        return f"OutboundPolicy({[str(g) for g in self._grants]!r})"

    def __reduce__(self) -> tuple[type[OutboundPolicy], tuple[list[str]]]:
        return OutboundPolicy, ([str(g) for g in self._grants],)

    def check(self, url: str) -> Target:
        """Parse ``url`` and match it against the grants; an IP literal is address-checked too.

        Raises OutboundDenied (message ``denied: ...``). A name still has to pass :meth:`check_address` for each
        address it resolves to; :class:`Fetcher` does that.
        """
        target = parse_url(url)
        self.check_target(target)
        return target

    def check_target(self, target: Target) -> None:
        """:meth:`check` for an already parsed URL."""
        if is_internal_host(target.host):  # components are reached in process (--allow-component), never here
            raise _Denied("not-granted", f"{target.host} is not a network host: http://NAME.{INTERNAL_DOMAIN}/ "
                                         "reaches component NAME when it is granted with --allow-component NAME")
        if not any(g.matches(target) for g in self._grants):
            hint = (f"to allow it, deploy with --allow-host {target.origin} "
                    f"(or outbound = [\"{target.origin}\"] under [grants] in airssys.toml)")
            raise _Denied("not-granted", f"{target.origin} is not granted; {hint}")
        if target.ip is not None:
            self.check_address(target, target.ip)

    def check_address(self, target: Target, ip: IPAddress) -> None:
        """Refuse ``ip`` as the address for ``target`` unless it is public or explicitly named by a grant.

        "Explicitly named" means a grant that admits the target's scheme and port and whose host is that IP, a
        CIDR holding it and lying wholly in special-purpose space, or ``localhost`` for loopback. Cloud metadata
        addresses only count as named by an exact IP grant.
        """
        label = special_label(ip)
        if label is None:
            return
        if any(g.allows_scheme_port(target.scheme, target.port) and g.names(ip) for g in self._grants):
            return
        shown = _unwrap(ip)
        literal = f"[{shown}]" if shown.version == 6 else str(shown)
        via = "" if target.ip is not None else f"{target.host} resolves to "
        raise _Denied(
            "blocked-address",
            f"{via}{shown}, a {label} address; only a grant naming it, e.g. "
            f"'{target.scheme}://{literal}:{target.port}', allows that",
        )


def default_resolver(host: str, port: int) -> list[str]:
    """Resolve with :func:`socket.getaddrinfo`, in the system's order, without duplicates or zone ids."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]).partition("%")[0] for info in infos))


class _Watchdog:
    """Shuts the connection of one fetch down at its deadline, which wakes a read or write blocked on it.

    Per-read timeouts cannot bound an upstream that sends a byte now and then; this can. httpcore reports each socket
    it opens through the request's ``trace`` extension (after the TCP connect, and again after the TLS handshake);
    a timer shuts the latest one down when the time is up. ``fired`` tells the fetch why its connection failed.
    """

    def __init__(self, seconds: float) -> None:
        self.fired = False
        self._lock = threading.Lock()
        self._socket: socket.socket | None = None
        self._done = False
        self._timer = threading.Timer(max(0.0, seconds), self._fire)
        self._timer.daemon = True
        self._timer.start()

    def trace(self, event: str, info: dict[str, Any]) -> None:
        if event not in ("connection.connect_tcp.complete", "connection.start_tls.complete"):
            return
        sock = info["return_value"].get_extra_info("socket")
        with self._lock:
            self._socket = sock
            late = self.fired
        if late:
            self._shut(sock)

    def _fire(self) -> None:
        with self._lock:
            if self._done:
                return
            self.fired = True
            sock = self._socket
        if sock is not None:
            self._shut(sock)

    @staticmethod
    def _shut(sock: socket.socket) -> None:
        with suppress(OSError):  # already closed: nothing to wake
            socket.socket.shutdown(sock, socket.SHUT_RDWR)  # the plain socket's, also for a TLS one

    def stop(self) -> None:
        with self._lock:
            self._done = True
        self._timer.cancel()


class Fetcher:
    """Performs granted requests for one component; thread-safe, call :meth:`fetch` from worker threads.

    Connections are not kept alive: httpx pools them by the address it dials, and reusing a TLS session verified
    for one name to carry another name's request would undo the per-name check. ``total_timeout`` bounds a whole
    fetch (connect, send and read) however slowly the upstream answers; ``max_response_headers`` and
    ``max_response_header_bytes`` cap the response headers handed back.
    """

    MAX_ADDRESSES = 3  # addresses tried in turn on connect errors; all resolved ones are checked

    def __init__(
        self,
        policy: OutboundPolicy,
        *,
        transport: httpx.BaseTransport | None = None,
        resolver: Resolver = default_resolver,
        connect_timeout: float = 5.0,
        read_timeout: float = 10.0,
        total_timeout: float = 30.0,
        max_response_bytes: int = 10 * 1024 * 1024,
        max_request_bytes: int = 10 * 1024 * 1024,
        max_headers: int = 100,
        max_response_headers: int = MAX_RESPONSE_HEADERS,
        max_response_header_bytes: int = MAX_RESPONSE_HEADER_BYTES,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        limits = {"connect_timeout": connect_timeout, "read_timeout": read_timeout, "total_timeout": total_timeout,
                  "max_response_bytes": max_response_bytes, "max_request_bytes": max_request_bytes,
                  "max_headers": max_headers, "max_response_headers": max_response_headers,
                  "max_response_header_bytes": max_response_header_bytes}
        for name, value in limits.items():
            if not isinstance(value, int | float) or isinstance(value, bool) or value <= 0:
                raise CapabilityError(f"outbound {name} must be a positive number, got {value!r}")
        self.policy = policy
        self._resolver = resolver
        self._total_timeout = total_timeout
        self._max_response = max_response_bytes
        self._max_request = max_request_bytes
        self._max_headers = max_headers
        self._max_response_headers = max_response_headers
        self._max_response_header_bytes = max_response_header_bytes
        self._timeouts = {"connect": connect_timeout, "read": read_timeout, "write": read_timeout,
                          "pool": connect_timeout}
        if transport is None:
            transport = httpx.HTTPTransport(
                verify=ssl_context or httpx.create_ssl_context(trust_env=False),
                trust_env=False,
                limits=httpx.Limits(max_connections=100, max_keepalive_connections=0),
            )
        timeout = httpx.Timeout(connect=connect_timeout, read=read_timeout, write=read_timeout, pool=connect_timeout)
        self._client = httpx.Client(
            transport=transport,
            timeout=timeout,
            trust_env=False,
            follow_redirects=False,
            cookies=CookieJar(DefaultCookiePolicy(allowed_domains=[])),  # stores nothing
        )
        self._lock = threading.Lock()
        self._denials: Counter[str] = Counter()

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> Fetcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def denials(self) -> dict[str, int]:
        """Denials so far by kind (``not-granted``, ``blocked-address``, ``bad-url``, ``bad-header``, ...)."""
        with self._lock:
            return dict(self._denials)

    def fetch(
        self, method: str, url: str, headers: list[tuple[str, str]], body: bytes, *, deadline: float | None = None
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        """Send one request on the guest's behalf: ``(status, headers, body)``; redirects are returned as-is.

        ``deadline`` is the time left for the whole operation in seconds (connect, send and read; the name lookup
        is checked against it too): the fetch fails with :class:`OutboundTimeout` no later than that, however
        slowly the upstream trickles. Without it, ``total_timeout`` is the bound.

        Raises OutboundDenied (nothing was sent), or OutboundError (resolution, connection, size and header caps;
        :class:`OutboundTimeout` for every timeout and the deadline).
        """
        started = time.monotonic()
        budget, why = self._budget(deadline)
        if len(body) > self._max_request:
            raise OutboundError(f"request body of {len(body)} bytes is over the {self._max_request}-byte cap")
        target: Target | None = None
        try:
            target = parse_url(url)
            self.policy.check_target(target)
            request_headers = self._request_headers(method, target, headers)
            addresses = [target.ip] if target.ip is not None else self._resolve(target)
        except OutboundDenied as exc:
            kind = exc.kind if isinstance(exc, _Denied) else "denied"
            with self._lock:
                self._denials[kind] += 1
            # Never the path, query or header values: they may carry secrets.
            where = target.origin if target is not None else "an invalid URL"
            logger.warning("outbound request to %s denied (%s): %s", where, kind, exc.reason)
            raise
        return self._send(method, target, addresses, request_headers, bytes(body), started + budget, why)

    def _budget(self, deadline: float | None) -> tuple[float, str]:
        """The seconds this fetch may take, and how to say it ran past them."""
        if deadline is not None:
            if isinstance(deadline, bool) or not isinstance(deadline, int | float) or deadline != deadline:
                raise TypeError(f"deadline must be a number of seconds or None, not {deadline!r}")
            if deadline < self._total_timeout:
                return float(deadline), f"its deadline of {format_duration(max(deadline, 0.0))}"
        return self._total_timeout, f"{format_duration(self._total_timeout)} in total"

    def _request_headers(self, method: str, target: Target, headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
        """Validate the guest's headers; drop hop-by-hop and framing ones; ``Host`` always comes from the URL."""
        if not _TOKEN.fullmatch(method) or method.upper() == "CONNECT":
            raise _Denied("bad-method", f"method {method[:32]!r} is not allowed")
        if len(headers) > self._max_headers:
            raise _Denied("bad-header", f"more than {self._max_headers} request headers")
        drop = set(_HOP_BY_HOP) | {"content-length", "host"}
        own_host = {target.authority.lower()}
        if target.port == DEFAULT_PORTS[target.scheme]:
            own_host.add(f"{target.authority}:{target.port}".lower())
        for name, value in headers:
            if not isinstance(name, str) or not _TOKEN.fullmatch(name):
                raise _Denied("bad-header", f"invalid header name {str(name)[:64]!r}")
            if not isinstance(value, str) or not _FIELD_VALUE.fullmatch(value):
                raise _Denied("bad-header", f"the value of header {name!r} has control or non-ASCII characters")
            lower = name.lower()
            if lower == "connection":
                drop.update(t.strip().lower() for t in value.split(","))
            elif lower == "host" and value.strip().lower() not in own_host:
                raise _Denied("host-header", "the Host header is set from the URL; remove it or make it match")
        out = [("Host", target.authority)]
        out += [(n, v) for n, v in headers if n.lower() not in drop]
        return out

    def _resolve(self, target: Target) -> list[IPAddress]:
        try:
            answers = self._resolver(target.host, target.port)
            addresses = list(dict.fromkeys(_unwrap(ipaddress.ip_address(a)) for a in answers))
        except (OSError, ValueError, UnicodeError) as exc:
            raise OutboundError(f"could not resolve {target.host}: {exc}") from None
        if not addresses:
            raise OutboundError(f"could not resolve {target.host}: no addresses")
        for ip in addresses:  # every answer, not just the one dialled: any internal one means a hostile name
            self.policy.check_address(target, ip)
        return addresses[: self.MAX_ADDRESSES]

    def _send(
        self, method: str, target: Target, addresses: list[IPAddress], headers: list[tuple[str, str]], body: bytes,
        end: float, why: str,
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        """Try the checked addresses in turn until one connects; everything by ``end`` (``why`` says whose)."""
        late = OutboundTimeout(f"{target.origin} took longer than {why}")
        last: Exception | None = None
        for ip in addresses:
            left = end - time.monotonic()
            if left <= 0:
                raise late
            watchdog = _Watchdog(left)
            extensions: dict[str, Any] = {"trace": watchdog.trace,  # a timeout never runs past the deadline
                                          "timeout": {k: min(v, left) for k, v in self._timeouts.items()}}
            if target.ip is None:
                extensions["sni_hostname"] = target.host
            url = httpx.URL(scheme=target.scheme, host=str(ip), port=target.port, raw_path=target.path.encode())
            request = httpx.Request(method, url, headers=headers, content=body or None, extensions=extensions)
            try:
                try:
                    response = self._client.send(request, stream=True)
                except httpx.ConnectError as exc:  # nothing was sent: the next checked address may answer
                    last = exc
                    continue
                except httpx.HTTPError as exc:
                    raise self._failure(target, exc, watchdog, late, left, "") from None
                try:
                    return self._read(target, response, watchdog, late, left)
                finally:
                    response.close()
            finally:
                watchdog.stop()
        raise OutboundError(f"could not connect to {target.origin}: {last}")

    def _failure(self, target: Target, exc: httpx.HTTPError, watchdog: _Watchdog, late: OutboundTimeout,
                 left: float, phase: str) -> OutboundError:
        """The error to raise for an httpx failure. When the time was up (the watchdog cut the connection, or a
        timeout expired that the time left had shortened) it is ``late``, whatever httpx saw."""
        if watchdog.fired:
            return late
        if isinstance(exc, httpx.TimeoutException):
            which = _TIMEOUT_PHASES.get(type(exc).__name__, "read")
            return late if self._timeouts[which] >= left else OutboundTimeout(f"{target.origin} timed out{phase}")
        if isinstance(exc, httpx.RemoteProtocolError) and "Receive buffer too long" in str(exc):
            return OutboundError(f"{target.origin} sent response headers over the "
                                 f"{self._max_response_header_bytes}-byte cap")
        return OutboundError(f"{target.origin} failed{phase}: {type(exc).__name__}")

    def _read(
        self, target: Target, response: httpx.Response, watchdog: _Watchdog, late: OutboundTimeout, left: float
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        """Check the header caps, then read the raw body (as sent, still content-encoded) up to the cap; stop at
        once past it."""
        self._check_headers(target, response.headers.raw)
        cap = self._max_response
        declared = response.headers.get("content-length", "")
        bodiless = response.request.method == "HEAD" or response.status_code in (204, 304)
        if declared.isdigit() and int(declared) > cap and not bodiless:
            raise OutboundError(f"{target.origin} answered {declared} bytes, over the {cap}-byte cap")
        body = bytearray()
        try:
            # A response already read in memory (e.g. from a mock transport) cannot be streamed again.
            chunks = [response.content] if response.is_stream_consumed else response.iter_raw()
            for chunk in chunks:
                body += chunk
                if len(body) > cap:
                    raise OutboundError(f"{target.origin} answered more than the {cap}-byte cap")
                if watchdog.fired:
                    raise late
        except httpx.HTTPError as exc:
            raise self._failure(target, exc, watchdog, late, left, " while sending the body") from None
        drop = set(_HOP_BY_HOP)
        for value in response.headers.get_list("connection"):
            drop.update(t.strip().lower() for t in value.split(","))
        headers = [
            (k.decode("latin-1").lower(), v.decode("latin-1"))
            for k, v in response.headers.raw
            if k.decode("latin-1").lower() not in drop
        ]
        return response.status_code, headers, bytes(body)

    def _check_headers(self, target: Target, raw: list[tuple[bytes, bytes]]) -> None:
        """Refuse a response whose headers exceed the count or size cap (an upstream flooding the guest)."""
        if len(raw) > self._max_response_headers:
            raise OutboundError(f"{target.origin} sent {len(raw)} response headers, more than the cap of "
                                f"{self._max_response_headers}")
        size = sum(len(name) + len(value) + 4 for name, value in raw)
        if size > self._max_response_header_bytes:
            raise OutboundError(f"{target.origin} sent {size} bytes of response headers, more than the cap of "
                                f"{self._max_response_header_bytes} bytes")
