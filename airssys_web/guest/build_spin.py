"""Build Python guests with Spin's public SDK (``spin-sdk``) for Spin's ``http-trigger`` world, cached.

This is the build Spin's own documentation gives (``componentize-py -w spin:up/http-trigger@4.1.0 componentize
app -o app.wasm``); the component exports ``wasi:http/handler@0.3.0`` and airssys-web serves it unchanged (see
``README.md``, "Running Spin components"). A guest is an ``app.py`` such as::

    from spin_sdk import http, key_value, variables
    from spin_sdk.http import Request, Response

    class HttpHandler(http.Handler):
        async def handle_request(self, request: Request) -> Response:
            greeting = await variables.get("greeting")                     # --config greeting=...
            with await key_value.open_default() as store:                  # --kv
                await store.set("last", request.uri.encode())
            return Response(200, {"content-type": "text/plain"}, greeting.encode())

componentize-py finds the SDK's WIT through the ``componentize-py.toml`` files of ``$VIRTUAL_ENV``'s
site-packages, and puts that directory on the guest's module path. Each build therefore runs with a staged
environment holding a copy of ``spin_sdk`` and nothing else: no other package's WIT or modules can reach the
build, whatever is installed beside airssys-web. Builds are cached by a hash of the sources, the SDK and the
toolchain version.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from ..errors import BuildError
from .build import _deliver, _hash_trees, _stage_sources, _toolchain_error, componentize_py_version, default_cache_dir

__all__ = ["SPIN_SDK_VERSION", "SPIN_WORLD", "build_spin_guest", "spin_sdk_dir"]

#: The world Spin's Python SDK documents for HTTP components.
SPIN_WORLD = "spin:up/http-trigger@4.1.0"
#: The SDK release this is tested with (a development dependency).
SPIN_SDK_VERSION = "5.0.0"


def spin_sdk_dir() -> Path:
    """The installed ``spin_sdk`` package directory; BuildError saying how to install it."""
    try:
        dist = importlib.metadata.distribution("spin-sdk")
    except importlib.metadata.PackageNotFoundError:
        raise BuildError(f"building a Spin component needs Spin's Python SDK; install it with: "
                         f"pip install 'spin-sdk=={SPIN_SDK_VERSION}'") from None
    sdk = Path(str(dist.locate_file("spin_sdk")))
    if not (sdk / "componentize-py.toml").is_file():
        raise BuildError(f"spin-sdk {dist.version} in {sdk.parent} has no componentize-py.toml; "
                         f"install spin-sdk=={SPIN_SDK_VERSION}")
    return sdk


def _key(src_dir: Path, sdk: Path, world: str) -> str:
    digest = hashlib.sha256(f"componentize-py {componentize_py_version()} {world}\0".encode())
    _hash_trees(digest, ("src", src_dir), ("spin_sdk", sdk))
    return digest.hexdigest()


def build_spin_guest(src_dir: Path, *, out: Path | None = None, cache_dir: Path | None = None,
                     app_module: str = "app", world: str = SPIN_WORLD, timeout: float = 600.0) -> Path:
    """Build the Spin SDK guest in ``src_dir``; return the (cached) component's path (``out`` also gets a copy)."""
    src_dir = Path(src_dir).resolve()
    if not (src_dir / f"{app_module}.py").is_file() and not (src_dir / app_module / "__init__.py").is_file():
        raise BuildError(f"{src_dir} has no {app_module}.py; a Spin guest needs one defining "
                         "class HttpHandler(spin_sdk.http.Handler)")
    sdk = spin_sdk_dir()
    cache = (cache_dir if cache_dir is not None else default_cache_dir(src_dir)).resolve()
    target = cache / f"{src_dir.name}-spin-{_key(src_dir, sdk, world)[:32]}.wasm"
    if not target.is_file():
        cache.mkdir(parents=True, exist_ok=True)
        _componentize(src_dir, sdk, app_module, world, target, timeout)
    return _deliver(target, out)


def _componentize(src_dir: Path, sdk: Path, app_module: str, world: str, target: Path, timeout: float) -> None:
    with tempfile.TemporaryDirectory(prefix="airssys-spin-build-", dir=target.parent) as tmp:
        work = Path(tmp) / "src"
        _stage_sources(src_dir, work)
        # The only package componentize-py sees: the SDK (its WIT and its modules).
        env_dir = Path(tmp) / "env"
        site = env_dir / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
        shutil.copytree(sdk, site / "spin_sdk", ignore=shutil.ignore_patterns("__pycache__"))
        staged = Path(tmp) / "out.wasm"
        command = [
            sys.executable, "-c", "import sys; from componentize_py import script; sys.exit(script())",
            "-w", world, "--quiet", "componentize", "-p", str(work), "-o", str(staged), app_module,
        ]  # fmt: skip
        env = os.environ | {"VIRTUAL_ENV": str(env_dir), "RUST_BACKTRACE": "0"}
        try:
            done = subprocess.run(command, cwd=tmp, env=env, capture_output=True, text=True, timeout=timeout,
                                  check=False)
        except subprocess.TimeoutExpired:
            raise BuildError(f"componentize-py did not finish within {timeout:g}s building {src_dir}") from None
        if done.returncode != 0 or not staged.is_file():
            detail = _toolchain_error(done.stderr or done.stdout)
            raise BuildError(f"componentize-py failed to build the Spin guest {src_dir} (exit {done.returncode}):\n"
                             f"{detail}")
        os.replace(staged, target)
