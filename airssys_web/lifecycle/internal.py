"""Calls between components: ``fetch("http://NAME.airssys.internal/PATH")`` runs component NAME in process.

Cloudflare's service bindings are the model: a component granted ``--allow-component NAME`` reaches NAME's active
version directly (no socket, no DNS), which receives PATH as its request path and runs with its own grants and
limits; its answer is the fetch response. The address space is closed:

* only the exact form ``http://NAME.airssys.internal[:80]/PATH`` names a component; anything else under
  ``airssys.internal`` (another scheme or port, user info, a deeper name, a trailing dot) is refused, and the
  outbound policy never sends such a name to the network, whatever ``--allow-host`` says;
* the component is chosen by the URL alone: a ``Host`` header, ``x-airssys-*`` headers and redirects the caller
  sends or receives change nothing (spin#3016, a chained call reaching an ungranted component, and CVE-2024-32980,
  ``self`` plus a spoofed ``Host``, are the cautionary tales); a redirect is returned to the caller unfollowed, and
  following it is a new, fully checked fetch;
* the callee learns who called in ``x-airssys-caller`` (set here, never forwarded from the caller);
* a chain of calls is bounded in depth (:data:`MAX_DEPTH`) and shares the first caller's deadline.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from urllib.parse import urlsplit

from ..capabilities.outbound import INTERNAL_DOMAIN, is_internal_host
from ..errors import AirssysError, OutboundDenied, OutboundError, OutboundTimeout
from ..runtime.generation import Generation
from .registry import Registry, validate_name

__all__ = ["CALLER_HEADER", "INTERNAL_DOMAIN", "MAX_DEPTH", "InternalCalls", "call_warnings", "internal_name",
           "not_granted"]

#: Request header naming the calling component and version (``name@version``), set by the host.
CALLER_HEADER = "x-airssys-caller"
#: How many component-to-component calls one request may nest (A calls B calls C ... ).
MAX_DEPTH = 8
#: Headers a caller may not set for the callee: hop-by-hop ones, Host (the URL names the callee), and the host's own.
_DROPPED = frozenset({"host", "connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding",
                      "upgrade", "content-length"})
_RESOLVE_ATTEMPTS = 8  # a version retiring between lookup and entry is looked up again (a swap in progress)

Resolve = Callable[[str], Generation | None]


def internal_name(url: str) -> str | None:
    """The component named by an internal URL; None for a URL outside ``airssys.internal``.

    Raises :class:`OutboundDenied` for a URL inside that space that is not exactly ``http://NAME.airssys.internal
    [:80]/PATH`` with a valid component name.
    """
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return None  # not a URL at all: the outbound policy explains that
    if not is_internal_host(host):
        return None
    form = "only http://NAME.airssys.internal/PATH reaches a component"
    if parts.scheme.lower() != "http" or parts.username is not None or parts.password is not None:
        raise OutboundDenied(f"{url!r}: {form} (plain http, no user info)")
    if port not in (None, 80) or host.endswith("."):
        raise OutboundDenied(f"{url!r}: {form} (no port, no trailing dot)")
    name = host[: -len(INTERNAL_DOMAIN) - 1] if host != INTERNAL_DOMAIN else ""
    try:
        validate_name(name)
    except AirssysError:
        raise OutboundDenied(f"{url!r}: {name or '(nothing)'} is not a component name; {form}") from None
    return name


def not_granted(caller: str, name: str) -> OutboundDenied:
    return OutboundDenied(f"component {name} is not granted to {caller}; deploy {caller} with --allow-component "
                          f"{name} to let it call http://{name}.{INTERNAL_DOMAIN}/")


class InternalCalls:
    """The internal calls of one version: ``granted`` component names, reached through ``resolve`` (the host's
    lookup of a component's active generation)."""

    __slots__ = ("_caller", "_granted", "_resolve", "_tag", "max_depth")

    def __init__(self, caller: str, tag: str, granted: frozenset[str], resolve: Resolve, *,
                 max_depth: int = MAX_DEPTH) -> None:
        self._caller = caller
        self._tag = tag
        self._granted = granted
        self._resolve = resolve
        self.max_depth = max_depth

    def __call__(self, name: str, method: str, url: str, headers: list[tuple[str, str]], body: bytes, *,
                 deadline: float | None, depth: int) -> tuple[int, list[tuple[str, str]], bytes]:
        """Call component ``name`` (already parsed from ``url`` by :func:`internal_name`)."""
        if name not in self._granted:
            raise not_granted(self._caller, name)
        if depth + 1 > self.max_depth:
            raise OutboundError(f"error: calling {name} would nest {depth + 1} component calls; at most "
                                f"{self.max_depth} may nest (is there a cycle of calls?)")
        if deadline is not None and deadline <= 0:
            raise OutboundTimeout(f"the call to {name} ran past its deadline of the caller's time left")
        parts = urlsplit(url)
        path = parts.path or "/"
        sent = [(k, v) for k, v in headers if k.lower() not in _DROPPED and not k.lower().startswith("x-airssys-")]
        sent.append((CALLER_HEADER, self._tag))
        for _ in range(_RESOLVE_ATTEMPTS):
            gen = self._resolve(name)
            if gen is None:
                raise OutboundError(f"error: component {name} is not served here (it is granted to {self._caller}, "
                                    f"but it is not deployed, or it is a middleware stage, which only runs in front "
                                    f"of a route): deploy {name} as a route component")
            if gen.enter():
                break
        else:  # pragma: no cover - a component swapped eight times during one lookup
            raise OutboundError(f"error: component {name} is being swapped; try again")
        try:
            answer = gen.call(method, path, parts.query, sent, body, timeout=deadline, depth=depth + 1)
        except AirssysError as e:  # the callee failed: the caller gets the answer an HTTP client would
            status = getattr(e, "status", 500)
            reason = getattr(e, "reason", "internal error")
            payload = json.dumps({"error": reason, "detail": str(e), "component": gen.tag}).encode()
            gen.outcome(status)
            return status, [("content-type", "application/json")], payload
        finally:
            gen.leave()
        gen.outcome(answer.status)
        return answer.status, list(answer.headers), answer.body


def call_warnings(registry: Registry, name: str, granted: Iterable[str]) -> tuple[str, ...]:
    """What to tell the deployer of ``name`` about the components it may call: those not deployed (yet), and
    middleware stages (which answer only in a pipeline). The deploy goes ahead: they may be deployed later."""
    kinds = {c.name: c.kind for c in registry.components()}
    out = []
    for callee in granted:
        if callee not in kinds:
            out.append(f"{name} may call component {callee} (--allow-component {callee}), which is not deployed: "
                       f"its calls fail until {callee} is deployed")
        elif kinds[callee] != "route":
            out.append(f"{name} may call component {callee}, a middleware stage: it only answers in front of a "
                       "route, so calls to it fail")
    return tuple(out)
