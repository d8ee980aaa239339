"""JavaScript guests: componentize-qjs (QuickJS) from npm, pinned, installed into a cache on first use.

The toolchain is the npm package ``componentize-qjs`` at the exact versions of the ``package-lock.json`` shipped in
:mod:`airssys_web.guest.sdk` (``js/toolchain``). The first JavaScript build runs ``npm ci`` for it into
:func:`toolchain_cache_dir` (one directory per lock file, published atomically), with a progress display; later
builds, in any project, reuse it. Only Node.js 18+ and npm must be installed.

A guest is a directory with ``app.js``, an ES module exporting ``handler`` (an object with ``handle(req)``), usually
made with the SDK: ``import { App } from "@airssys/guest"`` resolves to :data:`~airssys_web.guest.sdk.JS_SDK`,
staged as a package beside the sources. Components are built with ``--sync`` (wasmtime-py has no component-model
async) and
cached by the hash of the sources, the SDK, the WIT contract and the lock file, like Python guests.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

from rich.console import Console

from ..errors import BuildError
from ..runtime.imports import WIT_DIR
from .build import WORLD, _cached_path, _deliver, _hash_trees, _stage_sources, _tail, check_kind, default_cache_dir
from .sdk import JS_MIDDLEWARE, JS_PACKAGE, JS_SDK, JS_TOOLCHAIN

__all__ = ["QJS_PACKAGE", "build_js_guest", "ensure_js_toolchain", "js_guest_key", "toolchain_cache_dir"]

QJS_PACKAGE = "componentize-qjs"
_MIN_NODE = 18


def toolchain_cache_dir() -> Path:
    """Where toolchains are installed, shared by every project of the user.

    ``$AIRSSYS_WEB_CACHE/toolchains``, else ``$XDG_CACHE_HOME/airssys-web/toolchains`` (``~/.cache`` by default).
    """
    env = os.environ.get("AIRSSYS_WEB_CACHE")
    if env:
        return Path(env) / "toolchains"
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "airssys-web" / "toolchains"


def _lock_text() -> str:
    return (JS_TOOLCHAIN / "package-lock.json").read_text()


def qjs_version() -> str:
    """The pinned componentize-qjs version (from the shipped lock file)."""
    packages = json.loads(_lock_text())["packages"]
    return str(packages[f"node_modules/{QJS_PACKAGE}"]["version"])


def _node_and_npm() -> tuple[str, str]:
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        missing = " and ".join(n for n, p in (("node", node), ("npm", npm)) if p is None)
        raise BuildError(f"JavaScript components need Node.js {_MIN_NODE}+ and npm, but {missing} is not on PATH; "
                         "install them (e.g. apt-get install nodejs npm) and build again")
    done = subprocess.run([node, "--version"], capture_output=True, text=True, check=False)
    m = re.match(r"v(\d+)\.", done.stdout.strip())
    if m is None or int(m[1]) < _MIN_NODE:
        raise BuildError(f"JavaScript components need Node.js {_MIN_NODE}+; {node} is {done.stdout.strip() or '?'}")
    return node, npm


def ensure_js_toolchain(*, root: Path | None = None, console: Console | None = None,
                        timeout: float = 600.0) -> Path:
    """The componentize-qjs CLI script, installed with ``npm ci`` on first use; return its path.

    ``console`` shows a spinner while npm runs (default: one on stderr). Concurrent first uses each install into a
    private directory and the first to finish publishes it; the others use that one.
    """
    _, npm = _node_and_npm()
    lock = _lock_text()
    home = (root or toolchain_cache_dir()) / f"{QJS_PACKAGE}-{hashlib.sha256(lock.encode()).hexdigest()[:16]}"
    cli = home / "node_modules" / QJS_PACKAGE / "bin" / QJS_PACKAGE
    if cli.is_file():
        return cli
    home.parent.mkdir(parents=True, exist_ok=True)
    console = console or Console(stderr=True)
    what = f"{QJS_PACKAGE} {qjs_version()}"
    console.print(f"[bold]Installing the JavaScript toolchain[/bold] ({what}, pinned by its package-lock.json) "
                  f"into {home.parent} - once, for every project")
    tmp = Path(tempfile.mkdtemp(prefix=".install-", dir=home.parent))
    try:
        for name in ("package.json", "package-lock.json"):
            shutil.copy2(JS_TOOLCHAIN / name, tmp / name)
        status: AbstractContextManager[object] = (console.status(f"npm ci ({what}) ...") if console.is_terminal
                                                  else nullcontext())
        with status:
            try:
                done = subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--ignore-scripts", "--loglevel=error"],
                                      cwd=tmp, capture_output=True, text=True, timeout=timeout, check=False)
            except subprocess.TimeoutExpired:
                raise BuildError(f"npm ci for {what} did not finish within {timeout:g}s; check your network "
                                 "access to the npm registry and build again") from None
        if done.returncode != 0 or not (tmp / cli.relative_to(home)).is_file():
            raise BuildError(f"installing {what} with npm failed (exit {done.returncode}):\n"
                             f"{_tail(done.stderr or done.stdout)}")
        try:
            os.replace(tmp, home)
        except OSError:  # someone else published it first
            if not cli.is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    console.print(f"installed {what}")
    return cli


def js_guest_key(src_dir: Path, entry: str = "app.js", kind: str = WORLD) -> str:
    """Cache key of a JavaScript guest: its sources, the SDK, the WIT contract and the toolchain lock file."""
    digest = hashlib.sha256()
    digest.update(f"{QJS_PACKAGE} world {check_kind(kind)} entry {entry} sync\0".encode())
    digest.update(hashlib.sha256(_lock_text().encode()).digest())
    for module in (JS_SDK, JS_MIDDLEWARE):
        digest.update(hashlib.sha256(module.read_bytes()).digest())
    _hash_trees(digest, ("src", src_dir), ("wit", WIT_DIR))
    return digest.hexdigest()


def build_js_guest(src_dir: Path, *, out: Path | None = None, cache_dir: Path | None = None, entry: str = "app.js",
                   timeout: float = 300.0, console: Console | None = None, kind: str = WORLD) -> Path:
    """Build the componentize-qjs guest in ``src_dir`` (``app.js``) for the ``kind`` world (``route`` or
    ``middleware``); return its path.

    Like :func:`airssys_web.guest.build.build_python_guest`: cached under :func:`js_guest_key`, written atomically,
    built from a staged copy of the sources (with the SDK as ``@airssys/guest``), copied to ``out`` if given.
    """
    src_dir = Path(src_dir).resolve()
    if not (src_dir / entry).is_file():
        raise BuildError(f"{src_dir} has no {entry}; a JavaScript guest needs one exporting `handler`")
    cache = (cache_dir if cache_dir is not None else default_cache_dir(src_dir)).resolve()
    target = _cached_path(cache, src_dir, js_guest_key(src_dir, entry, kind))
    if not target.is_file():
        cli = ensure_js_toolchain(console=console)
        cache.mkdir(parents=True, exist_ok=True)
        _componentize_js(cli, src_dir, entry, target, timeout, kind)
    return _deliver(target, out)


def _componentize_js(cli: Path, src_dir: Path, entry: str, target: Path, timeout: float, kind: str) -> None:
    node, _ = _node_and_npm()
    with tempfile.TemporaryDirectory(prefix="airssys-build-", dir=target.parent) as tmp:
        root = Path(tmp) / "root"
        work = root / "src"
        _stage_sources(src_dir, work)
        if (src_dir / "node_modules").is_dir():  # the guest's own npm dependencies (ES modules)
            shutil.copytree(src_dir / "node_modules", work / "node_modules", symlinks=False)
        package = root / "node_modules" / JS_PACKAGE
        package.mkdir(parents=True)
        shutil.copy2(JS_SDK, package / "index.js")
        shutil.copy2(JS_MIDDLEWARE, package / "middleware.js")
        (package / "package.json").write_text(json.dumps(
            {"name": JS_PACKAGE, "version": "0.1.0", "type": "module", "main": "index.js",
             "exports": {".": "./index.js", "./middleware": "./middleware.js"}}))
        staged = Path(tmp) / "out.wasm"
        command = [node, str(cli), "--wit", str(WIT_DIR), "--world", kind, "--js", str(work / entry),
                   "--module-root", str(root), "--output", str(staged), "--sync"]
        try:
            done = subprocess.run(command, cwd=root, capture_output=True, text=True, timeout=timeout, check=False,
                                  env=os.environ | {"RUST_BACKTRACE": "0"})
        except subprocess.TimeoutExpired:
            raise BuildError(f"componentize-qjs did not finish within {timeout:g}s building {src_dir}") from None
        if done.returncode != 0 or not staged.is_file():
            # stdout is only a banner; the guest sees its sources at /src/ (the module root is the staging dir)
            detail = _tail(done.stderr if done.stderr.strip() else done.stdout).replace(str(work), str(src_dir))
            detail = re.sub(r"(?<![\w/])/src/", f"{src_dir}/", detail).replace("Error: : ", "Error: ")
            raise BuildError(f"componentize-qjs failed to build {src_dir} (exit {done.returncode}):\n{detail}")
        os.replace(staged, target)
