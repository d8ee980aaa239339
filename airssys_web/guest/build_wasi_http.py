"""Build Python guests for the standard ``wasi:http/proxy@0.2.0`` world with componentize-py (cached).

The result is the same kind of component ``wasmtime serve`` and Spin run, and airssys-web serves it unchanged.
componentize-py needs the WIT of ``wasi:http@0.2.0`` and its dependencies (``wasi:io``, ``wasi:cli``, ...); its
wheel does not ship them, so they are taken from the ``spin-sdk`` wheel (a development dependency), copied once into
``<cache>/wit/wasi-http-0.2.0``. A guest is an ``app.py`` defining ``class IncomingHandler`` (componentize-py's
documented form)::

    from componentize_py_types import Ok
    from wit_world import exports
    from wit_world.imports.types import Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam

    class IncomingHandler(exports.IncomingHandler):
        def handle(self, request: IncomingRequest, response_out: ResponseOutparam) -> None:
            response = OutgoingResponse(Fields.from_list([("content-type", b"text/plain")]))
            body = response.body()
            ResponseOutparam.set(response_out, Ok(response))
            with body.write() as stream:
                stream.blocking_write_and_flush(b"hello\\n")
            OutgoingBody.finish(body, None)

The asyncio style of componentize-py's ``examples/http`` works as well: ``import poll_loop`` (bundled with
componentize-py) and run a ``PollLoop``.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import shutil
import tempfile
from pathlib import Path

from airssys_web.errors import BuildError
from airssys_web.guest.build import (
    _componentize,
    _deliver,
    _hash_trees,
    componentize_py_version,
    default_cache_dir,
)

__all__ = ["WASI_HTTP_PACKAGES", "build_wasi_http_guest", "wasi_http_wit_dir"]

#: The WIT packages of ``wasi:http/proxy@0.2.0`` and everything it (transitively) uses.
WASI_HTTP_PACKAGES = ("cli", "clocks", "filesystem", "http", "io", "random", "sockets")
WASI_VERSION = "0.2.0"
WORLD = "proxy"
_ROOT_WIT = f"""package airssys:wasi-http-guest;

world {WORLD} {{
  include wasi:http/proxy@{WASI_VERSION};
}}
"""


def _spin_sdk_wit() -> Path:
    try:
        dist = importlib.metadata.distribution("spin-sdk")
    except importlib.metadata.PackageNotFoundError:
        raise BuildError("building a wasi:http guest needs the WASI 0.2 WIT files, which the spin-sdk wheel ships; "
                         "install it with: pip install 'spin-sdk==5.0.0'") from None
    deps = Path(str(dist.locate_file("spin_sdk/wit/deps")))
    missing = [p for p in WASI_HTTP_PACKAGES if not (deps / f"{p}@{WASI_VERSION}").is_dir()]
    if missing:
        raise BuildError(f"spin-sdk {dist.version} lacks the WIT of {', '.join(missing)}@{WASI_VERSION} in {deps}; "
                         "install spin-sdk==5.0.0")
    return deps


def wasi_http_wit_dir(cache_dir: Path | None = None) -> Path:
    """A WIT directory whose world ``proxy`` is ``wasi:http/proxy@0.2.0`` (made once under ``cache_dir``)."""
    cache = (cache_dir if cache_dir is not None else default_cache_dir()).resolve()
    target = cache / "wit" / f"wasi-http-{WASI_VERSION}"
    if (target / "world.wit").is_file():
        return target
    deps = _spin_sdk_wit()
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".wit-", dir=target.parent) as tmp:
        staged = Path(tmp) / "wit"
        for package in WASI_HTTP_PACKAGES:
            shutil.copytree(deps / f"{package}@{WASI_VERSION}", staged / "deps" / f"{package}@{WASI_VERSION}")
        (staged / "world.wit").write_text(_ROOT_WIT)
        try:
            os.replace(staged, target)
        except OSError:  # another builder published it first
            if not (target / "world.wit").is_file():
                raise
    return target


def _key(src_dir: Path, wit_dir: Path) -> str:
    digest = hashlib.sha256(f"componentize-py {componentize_py_version()} wasi:http {WASI_VERSION}\0".encode())
    _hash_trees(digest, ("src", src_dir), ("wit", wit_dir))
    return digest.hexdigest()


def build_wasi_http_guest(src_dir: Path, *, out: Path | None = None, cache_dir: Path | None = None,
                          app_module: str = "app", timeout: float = 600.0) -> Path:
    """Build the componentize-py ``wasi:http/proxy`` guest in ``src_dir``; return the (cached) component's path.

    Like :func:`airssys_web.guest.build.build_python_guest`: cached by a hash of the sources, the WIT and the toolchain
    version, published atomically, built on a copy of the sources; ``out`` also gets a copy.
    """
    src_dir = Path(src_dir).resolve()
    if not (src_dir / f"{app_module}.py").is_file() and not (src_dir / app_module / "__init__.py").is_file():
        raise BuildError(f"{src_dir} has no {app_module}.py; a wasi:http guest needs one defining "
                         "class IncomingHandler")
    cache = (cache_dir if cache_dir is not None else default_cache_dir(src_dir)).resolve()
    wit = wasi_http_wit_dir(cache)
    target = cache / f"{src_dir.name}-wasi-http-{_key(src_dir, wit)[:32]}.wasm"
    if not target.is_file():
        cache.mkdir(parents=True, exist_ok=True)
        _componentize(src_dir, app_module, target, timeout, wit=wit, world=WORLD, sdk=False)
    return _deliver(target, out)
