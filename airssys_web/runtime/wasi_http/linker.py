"""The linker for one ``wasi:http`` component: our resources and functions at the versions it imports.

wasmtime-py cannot construct the resources of its built-in ``add_wasi_http()``, so this host defines
``wasi:io``, ``wasi:http`` and every interface whose types mention their resources itself, at the exact version
each import names (a componentize-py guest built against 0.2.0 imports ``@0.2.9``); the rest of WASI (wall clock,
random, environment, exit, terminals) comes from ``add_wasip2()``. Each function's converters are compiled here,
once, from the type the component imports.
"""

from __future__ import annotations

from typing import Any

from wasmtime.component import Component, ComponentInstanceType, FuncType, Linker

from ...errors import InvalidComponent
from ..engine import get_engine
from ..imports import HostContext
from .codec import Trap
from .fields import Fields, fields_functions
from .http import (
    FutureTrailers,
    IncomingBody,
    IncomingRequest,
    OutgoingBody,
    OutgoingResponse,
    ResponseOutparam,
    incoming_functions,
)
from .io import InputStream, IoError, OutputStream, Pollable, io_functions
from .linking import define_func, define_resource
from .outgoing import (
    FutureIncomingResponse,
    IncomingResponse,
    OutgoingRequest,
    RequestOptions,
    handle,
    outgoing_functions,
)
from .wasi import STUB_INTERFACES, STUB_RESOURCES, stub, wasi_functions

#: Resource types by the interface that *defines* them (an interface that only ``use``s one must not redefine it).
RESOURCES: dict[str, dict[str, int]] = {
    "wasi:io/error": {"error": IoError.RESOURCE_ID},
    "wasi:io/poll": {"pollable": Pollable.RESOURCE_ID},
    "wasi:io/streams": {"input-stream": InputStream.RESOURCE_ID, "output-stream": OutputStream.RESOURCE_ID},
    "wasi:http/types": {
        "fields": Fields.RESOURCE_ID, "incoming-request": IncomingRequest.RESOURCE_ID,
        "outgoing-request": OutgoingRequest.RESOURCE_ID, "request-options": RequestOptions.RESOURCE_ID,
        "response-outparam": ResponseOutparam.RESOURCE_ID, "incoming-response": IncomingResponse.RESOURCE_ID,
        "incoming-body": IncomingBody.RESOURCE_ID, "future-trailers": FutureTrailers.RESOURCE_ID,
        "outgoing-response": OutgoingResponse.RESOURCE_ID, "outgoing-body": OutgoingBody.RESOURCE_ID,
        "future-incoming-response": FutureIncomingResponse.RESOURCE_ID,
    },
    **STUB_RESOURCES,
}


def _functions() -> dict[str, dict[str, Any]]:
    table: dict[str, dict[str, Any]] = {**io_functions(), **wasi_functions()}
    table["wasi:http/types"] = {**fields_functions(), **incoming_functions(), **outgoing_functions()}
    table["wasi:http/outgoing-handler"] = {"handle": handle}
    return table


FUNCTIONS = _functions()
OURS = frozenset(FUNCTIONS) | frozenset(RESOURCES) | STUB_INTERFACES


def split_name(name: str) -> tuple[str, str]:
    """``"wasi:io/poll@0.2.9"`` -> ``("wasi:io/poll", "0.2.9")``."""
    base, _, version = name.partition("@")
    return base, version


def build_linker(ctx: HostContext, component: Component) -> Linker:
    """A linker that satisfies every import of ``component`` this host provides, bound to nothing per request."""
    engine = get_engine(ctx.fuel)
    linker = Linker(engine)
    linker.allow_shadowing = True
    linker.add_wasip2()
    imports = component.type.imports(engine)
    with linker.root() as root:
        for full, item in sorted(imports.items()):
            base, _ = split_name(full)
            if base not in OURS:
                continue
            ty = item.ty
            if not isinstance(ty, ComponentInstanceType):
                raise InvalidComponent(f"{ctx.tag} imports {full} as something other than an interface instance")
            with root.add_instance(full) as inst:
                for rname, rid in RESOURCES.get(base, {}).items():
                    define_resource(inst, rname, rid)
                impls = FUNCTIONS.get(base, {})
                for fname, fitem in ty.exports(engine).items():
                    fty = fitem.ty
                    if not isinstance(fty, FuncType):
                        continue
                    impl = impls.get(fname)
                    if impl is None:
                        impl = stub(base, fname, fty) if base in STUB_INTERFACES else _missing(full, fname)
                    define_func(inst, fname, fty, impl, f"{full}#{fname}")
    return linker


def _missing(iface: str, name: str) -> Any:
    def trap(_s: Any, *_a: Any) -> Any:
        raise Trap(f"{iface}#{name} is not implemented by this host")
    return trap
