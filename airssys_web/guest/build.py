"""Build guest components: assemble WAT, run componentize-py or componentize-qjs (cached), generate WAT components.

Used by the test-suite, the example site and ``airssys-web build`` (:func:`build_component` detects the language;
JavaScript lives in :mod:`airssys_web.guest.build_js`). Everything here produces plain component
bytes; validating them against the ``airssys:web/route`` contract is the runtime's job, not the builder's.

Writing a Python guest (componentize-py 0.25)
----------------------------------------------
componentize-py generates a bindings package named ``wit_world`` at build time (nothing to install or vendor).
The app module (``app.py`` in the source directory) must define a class named after the exported interface,
``Handler``, subclassing the generated protocol ``wit_world.exports.Handler``; componentize-py instantiates it
once per call of ``handle``. WIT records are dataclasses in ``wit_world.imports.types``; ``list<u8>`` is
``bytes``, ``option<T>`` is ``T | None`` and an imported function returning ``result<T, E>`` returns ``T`` or
raises ``componentize_py_types.Err`` whose ``.value`` is the ``E``::

    from componentize_py_types import Err
    from wit_world import exports
    from wit_world.imports import config, outbound, types

    class Handler(exports.Handler):
        def handle(self, req: types.Request) -> types.Response:
            name = config.get("greeting") or "hello"
            try:
                outbound.fetch("GET", "https://example.com/", [], b"")
            except Err as err:
                name += f" ({err.value})"
            return types.Response(status=200, headers=[("content-type", "text/plain")], body=name.encode())

An exception escaping ``handle`` traps the instance. The guest runs CPython 3.14 (bundled by componentize-py,
whatever the host's Python is) and the component is ~18 MB: its imports are the four ``airssys:web`` interfaces
(``types`` carries only types) plus the whole WASI 0.2 CLI world, and it also exports componentize-py's own
``exports`` instance (an ``init`` hook used at build time) next to ``airssys:web/handler@0.1.0``.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from airssys_web import _native
from airssys_web._files import PUBLIC_MODE, copy_atomic, write_atomic
from airssys_web.errors import AirssysError, BuildError, InvalidComponent
from airssys_web.guest import KINDS, LANGUAGES
from airssys_web.guest.sdk import PYTHON_PATH

__all__ = [
    "ALLOCATOR_WAT",
    "KINDS",
    "LANGUAGES",
    "BuildResult",
    "build_component",
    "build_python_guest",
    "check_kind",
    "compile_wat",
    "componentize_py_version",
    "default_cache_dir",
    "default_output",
    "detect_language",
    "handler_component_wat",
    "iter_guest_sources",
    "python_guest_key",
    "wat_response_component",
]

from airssys_web.runtime.imports import WIT_DIR

WORLD = "route"
_COMPONENTIZE_PY = "componentize-py"
_IGNORED_DIRS = {"__pycache__", ".git", ".mypy_cache", ".pytest_cache", ".ruff_cache", ".venv", "node_modules"}
#: A toolchain's output longer than this many lines is shown as its first and last lines (whole lines, never cut).
_HEAD_LINES = 12
_TAIL_LINES = 30


# --------------------------------------------------------------------------------------------------- WAT


def compile_wat(text: str) -> bytes:
    """Assemble WebAssembly text into binary.

    Only parses: type errors surface when wasmtime compiles the result. A syntax error becomes one line naming
    the position, e.g. ``invalid WAT at line 3, column 6: unknown operator or unexpected token: (i32.ad)))``.
    """
    try:
        return _native.wat2wasm(text)
    except _native.GuestFault as exc:
        raise InvalidComponent(_describe_wat_error(exc.detail, text)) from None


def _describe_wat_error(message: str, text: str) -> str:
    reason = message.split("\n", 1)[0].strip()
    where = re.search(r"-->\s*\S*?:(\d+):(\d+)", message)
    if where is None:
        return f"invalid WAT: {reason}"
    line, column = int(where[1]), int(where[2])
    lines = text.splitlines()
    source = lines[line - 1].strip() if 0 < line <= len(lines) else ""
    return f"invalid WAT at line {line}, column {column}: {reason}" + (f": {source}" if source else "")


# The component scaffold around a core module exporting "memory", "realloc" and "handle"; the type layout is
# airssys:web/handler@0.1.0 exactly (the nested component re-exports the record types under their WIT names).
_COMPONENT_TEMPLATE = """\
(component
{core}
  (core instance $i (instantiate $m))
  (type $headers (list (tuple string string)))
  (type $request' (record (field "method" string) (field "path" string) (field "query" string)
    (field "headers" $headers) (field "body" (list u8))))
  (type $response' (record (field "status" u16) (field "headers" $headers) (field "body" (list u8))))
  (func $handle (param "req" $request') (result $response')
    (canon lift (core func $i "handle") (memory (core memory $i "memory")) (realloc (core func $i "realloc"))))
  (component $H
    (import "request-in" (type $r (eq $request')))
    (import "response-in" (type $s (eq $response')))
    (import "f" (func $f (param "req" $r) (result $s)))
    (export $re "request" (type $r))
    (export $se "response" (type $s))
    (export "handle" (func $f) (func (param "req" $re) (result $se))))
  (instance $hi (instantiate $H (with "request-in" (type $request')) (with "response-in" (type $response'))
    (with "f" (func $handle))))
  (export "airssys:web/handler@0.1.0" (instance $hi))
)
"""

# A bump allocator that grows memory on demand. ``handle`` calls ``$reset`` before returning: the host has
# lowered the request already and lifts the response right after the return without allocating, so the next
# call may reuse the whole heap and a long-lived instance never runs out of memory.
ALLOCATOR_WAT = """\
    (global $heap (mut i32) (i32.const {heap}))
    (func $alloc (param $align i32) (param $size i32) (result i32)
      (local $p i32) (local $end i32) (local $have i32)
      (local.set $p (i32.and (i32.add (global.get $heap) (i32.sub (local.get $align) (i32.const 1)))
                             (i32.sub (i32.const 0) (local.get $align))))
      (local.set $end (i32.add (local.get $p) (local.get $size)))
      (if (i32.lt_u (local.get $end) (local.get $p)) (then unreachable))
      (local.set $have (i32.shl (memory.size) (i32.const 16)))
      (if (i32.gt_u (local.get $end) (local.get $have))
        (then
          (if (i32.eq (memory.grow (i32.shr_u (i32.add (i32.sub (local.get $end) (local.get $have))
                                                        (i32.const 65535)) (i32.const 16)))
                      (i32.const -1))
            (then unreachable))))
      (global.set $heap (local.get $end))
      (local.get $p))
    (func $reset (global.set $heap (i32.const {heap})))
    (func (export "realloc") (param $old i32) (param $old_size i32) (param $align i32) (param $size i32)
      (result i32)
      (local $p i32)
      (local.set $p (call $alloc (local.get $align) (local.get $size)))
      (if (local.get $old)
        (then (memory.copy (local.get $p) (local.get $old)
          (select (local.get $old_size) (local.get $size) (i32.lt_u (local.get $old_size) (local.get $size))))))
      (local.get $p))
"""


def handler_component_wat(core_module: str) -> str:
    """Wrap a core module ``$m`` into a component exporting ``airssys:web/handler@0.1.0``.

    ``core_module`` is ``(core module $m ...)`` exporting ``memory``, ``realloc`` (``(i32 i32 i32 i32) -> i32``)
    and ``handle``: ten i32 parameters (method, path, query, headers, body as pointer/length pairs; a header is
    16 bytes: name pointer/length, value pointer/length) returning a pointer to the 20-byte response record
    (u16 status at +0, headers pointer/length at +4/+8, body pointer/length at +12/+16).
    """
    return _COMPONENT_TEMPLATE.format(core=core_module)


def wat_response_component(body: bytes | str, status: int = 200, headers: Sequence[tuple[str, str]] = ()) -> str:
    """WAT for a component whose ``handle`` always returns this response.

    Everything, including the response record, is static data, so ``handle`` only returns a pointer. The status
    is not checked against HTTP (tests use 700), only against the WIT type ``u16``.
    """
    if not 0 <= status <= 0xFFFF:
        raise ValueError(f"status {status} does not fit the WIT type u16 (0..65535)")
    payload = body.encode() if isinstance(body, str) else bytes(body)
    record, table = 8, 32
    blobs = bytearray()
    strings_at = table + 16 * len(headers)

    def place(data: bytes) -> tuple[int, int]:
        blobs.extend(data)
        return strings_at + len(blobs) - len(data), len(data)

    rows = bytearray()
    for name, value in headers:
        for field in (name, value):
            rows += _words(*place(field.encode()))
    body_at = place(payload)
    head = status.to_bytes(2, "little") + b"\0\0" + _words(table, len(headers), *body_at)
    end = strings_at + len(blobs)
    heap = (end + 15) // 16 * 16
    core = f"""\
  (core module $m
    (memory (export "memory") {heap // 65536 + 1})
{ALLOCATOR_WAT.format(heap=heap)}
    (data (i32.const {record}) "{_wat_bytes(head)}")
    (data (i32.const {table}) "{_wat_bytes(bytes(rows) + bytes(blobs))}")
    (func (export "handle") (param i32 i32 i32 i32 i32 i32 i32 i32 i32 i32) (result i32)
      (call $reset)
      (i32.const {record}))
  )"""
    return handler_component_wat(core)


def _words(*values: int) -> bytes:
    return b"".join(v.to_bytes(4, "little") for v in values)


def _wat_bytes(data: bytes) -> str:
    """Escape bytes for a WAT string literal (printable ASCII kept readable)."""
    return "".join(chr(b) if 0x20 <= b < 0x7F and b not in (0x22, 0x5C) else f"\\{b:02x}" for b in data)


# --------------------------------------------------------------------------------------------- Python guest


def default_cache_dir(start: Path | None = None) -> Path:
    """``$AIRSSYS_WEB_CACHE/guests``, else ``.cache/guests`` in the nearest project root above ``start``.

    A project root holds ``pyproject.toml`` or ``.git``; without one the current directory is used, so
    repeated builds of the same sources hit the same cache.
    """
    env = os.environ.get("AIRSSYS_WEB_CACHE")
    if env:
        return Path(env) / "guests"
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "pyproject.toml").exists() or (folder / ".git").exists():
            return folder / ".cache" / "guests"
    return Path.cwd() / ".cache" / "guests"


def componentize_py_version() -> str:
    """The installed componentize-py version; a clear :class:`BuildError` when it is missing."""
    try:
        return importlib.metadata.version(_COMPONENTIZE_PY)
    except importlib.metadata.PackageNotFoundError:
        raise BuildError(
            "componentize-py is not installed; install it with: pip install 'componentize-py==0.25.1'"
        ) from None


def check_kind(kind: str) -> str:
    """``kind`` if it names a world guests are built for, else a :class:`BuildError` listing them."""
    if kind not in KINDS:
        raise BuildError(f"unknown component kind {kind!r}: build a {' or a '.join(KINDS)} component")
    return kind


def python_guest_key(src_dir: Path, wit_dir: Path = WIT_DIR, kind: str = WORLD) -> str:
    """Cache key of a Python guest: sha256 of its sources, the WIT contract, the guest SDK and the toolchain version.

    Bytecode caches and tool directories are skipped: building imports ``app`` and must not change the key.
    """
    digest = hashlib.sha256()
    digest.update(f"componentize-py {componentize_py_version()} world {check_kind(kind)}\0".encode())
    _hash_trees(digest, ("src", src_dir), ("wit", wit_dir), ("sdk", PYTHON_PATH))
    return digest.hexdigest()


def _hash_trees(digest: hashlib._Hash, *trees: tuple[str, Path]) -> None:
    """Add each tree's :func:`_source_files` (relative name and content hash) to a guest's cache key."""
    for label, root in trees:
        for path in _source_files(root):
            digest.update(f"{label}/{path.relative_to(root).as_posix()}\0".encode())
            digest.update(hashlib.sha256(path.read_bytes()).digest())


def _source_files(root: Path) -> Iterator[Path]:
    """The files a guest is built from: no tool directories, dotfiles, build outputs, tests or deploy manifest."""
    for path in sorted(root.rglob("*")):
        parts = path.relative_to(root).parts
        if any(part in _IGNORED_DIRS or part.startswith(".") for part in parts):
            continue
        if path.is_file() and path.suffix not in (".pyc", ".wasm") and not _is_test_file(parts):
            yield path


def _is_test_file(parts: tuple[str, ...]) -> bool:
    name = parts[-1]
    return "tests" in parts[:-1] or name in ("conftest.py", "airssys.toml") or (name.endswith(".py") and (
        name.startswith("test_") or name.endswith("_test.py")))


def build_python_guest(
    src_dir: Path,
    *,
    out: Path | None = None,
    cache_dir: Path | None = None,
    app_module: str = "app",
    timeout: float = 600.0,
    kind: str = WORLD,
) -> Path:
    """Build the componentize-py guest in ``src_dir`` (module ``app``) for the ``kind`` world (``route`` or
    ``middleware``); return its path.

    The result lives in ``cache_dir`` (default :func:`default_cache_dir`) under :func:`python_guest_key`, written
    atomically, so unchanged sources never rebuild and concurrent builders cannot publish a torn file. The guest
    SDK (``airssys_guest``, shipped in :mod:`airssys_web.guest.sdk`) is on the guest's module path. With
    ``out`` the cached component is also copied there (atomically) and ``out`` is returned. The build runs on a
    copy of the sources so the toolchain's byproducts never land in the user's directory.
    """
    src_dir = Path(src_dir).resolve()
    if not (src_dir / f"{app_module}.py").is_file() and not (src_dir / app_module / "__init__.py").is_file():
        raise BuildError(f"{src_dir} has no {app_module}.py; a Python guest needs one defining class Handler")
    cache = (cache_dir if cache_dir is not None else default_cache_dir(src_dir)).resolve()
    target = _cached_path(cache, src_dir, python_guest_key(src_dir, kind=kind))
    if not target.is_file():
        cache.mkdir(parents=True, exist_ok=True)
        _componentize(src_dir, app_module, target, timeout, world=kind)
    return _deliver(target, out)


def _cached_path(cache: Path, src_dir: Path, key: str) -> Path:
    """Where the build cache keeps the component of ``src_dir`` built under ``key``."""
    return cache / f"{src_dir.name}-{key[:32]}.wasm"


def _deliver(target: Path, out: Path | None) -> Path:
    """The cached component ``target``, or ``out`` after copying it there (atomically)."""
    if out is None:
        return target
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    copy_atomic(target, out)
    return out


def _stage_sources(src_dir: Path, work: Path) -> None:
    """Copy exactly the files the cache key covers, so the toolchain's byproducts never land in ``src_dir``."""
    for path in _source_files(src_dir):
        copy = work / path.relative_to(src_dir)
        copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, copy)


def _componentize(src_dir: Path, app_module: str, target: Path, timeout: float, *, wit: Path = WIT_DIR,
                  world: str = WORLD, sdk: bool = True) -> None:
    """Run componentize-py on a staged copy of ``src_dir``; ``sdk`` puts the guest SDK on the guest's path."""
    with tempfile.TemporaryDirectory(prefix="airssys-build-", dir=target.parent) as tmp:
        work = Path(tmp) / "src"
        _stage_sources(src_dir, work)
        staged = Path(tmp) / "out.wasm"
        sdk_path = ["--python-path", str(PYTHON_PATH)] if sdk else []
        # componentize-py adds a site-packages directory to the guest's path and reads every componentize-py.toml
        # there (WIT worlds shipped by SDKs such as spin-sdk, which then clash with ours: 'Unable to resolve
        # Some("route")'). It takes $VIRTUAL_ENV's, else the one of whatever `python3` is first on $PATH (an
        # activated venv's). Point it at an empty one, so a build depends on nothing but its sources, our SDK and
        # the WIT given here.
        empty_env = Path(tmp) / "no-site-packages"
        (empty_env / "lib" / "site-packages").mkdir(parents=True)
        command = [
            sys.executable, "-c", "import sys; from componentize_py import script; sys.exit(script())",
            "--wit-path", str(wit), "--world", world, "--quiet",
            "componentize", "--python-path", str(work), *sdk_path,
            "--output", str(staged), app_module,
        ]  # fmt: skip
        # A Rust backtrace would bury the guest's own traceback in the error message.
        env = os.environ | {"VIRTUAL_ENV": str(empty_env), "RUST_BACKTRACE": "0"}
        try:
            done = subprocess.run(
                command, cwd=tmp, env=env, capture_output=True, text=True, timeout=timeout, check=False
            )
        except subprocess.TimeoutExpired:
            raise BuildError(f"componentize-py did not finish within {timeout:g}s building {src_dir}") from None
        if done.returncode != 0 or not staged.is_file():
            # the guest sees its sources under /0 (the first --python-path): show the user's own path
            detail = _toolchain_error(done.stderr or done.stdout).replace('"/0/', f'"{src_dir}/')
            raise BuildError(f"componentize-py failed to build {src_dir} (exit {done.returncode}):\n{detail}")
        os.replace(staged, target)


def _toolchain_error(text: str) -> str:
    """componentize-py's stderr without a Rust backtrace or the traceback of its own entry point, shortened by
    :func:`_tail` (so its first line, the cause, is always there)."""
    text = text.split("\nStack backtrace:", 1)[0]
    wrapper = re.match(r"Traceback \(most recent call last\):\n(?:  .*\n)*?AssertionError: ", text)
    if wrapper:
        text = text[wrapper.end() :]
    return _tail(text)


def _tail(text: str) -> str:
    """A toolchain's output without a Rust backtrace; if long, its first and last lines around a count of those left
    out. Lines are never cut: the cause (usually first) and the guest's own traceback (usually last) stay whole."""
    lines = text.split("\nStack backtrace:", 1)[0].strip().splitlines()
    if len(lines) <= _HEAD_LINES + _TAIL_LINES + 1:
        return "\n".join(lines)
    left_out = len(lines) - _HEAD_LINES - _TAIL_LINES
    return "\n".join([*lines[:_HEAD_LINES], f"... ({left_out} lines left out) ...", *lines[-_TAIL_LINES:]])


def iter_guest_sources(root: Path) -> Iterable[Path]:
    """The files that make up a guest source tree (what the cache key covers), for watchers such as ``dev``."""
    return list(_source_files(Path(root)))


# ------------------------------------------------------------------------------------------ any language

_RECIPES = {"Cargo.toml": "Rust", "CMakeLists.txt": "C", "Makefile": "C"}


@dataclass(frozen=True)
class BuildResult:
    """What :func:`build_component` produced: where, from which language, how big, how long, from the cache?"""

    path: Path
    language: str
    size: int
    seconds: float
    cached: bool


def detect_language(source: Path) -> str:
    """``python``, ``js`` or ``wat`` for a source (a ``.wat`` file or a guest directory); BuildError if unclear."""
    source = Path(source)
    if source.is_file():
        if source.suffix == ".wat":
            return "wat"
        if source.suffix == ".wasm":
            raise BuildError(f"{source} is already a built component; deploy it, or build its source directory")
        raise BuildError(f"do not know how to build {source}: give a .wat file or a guest directory")
    if not source.is_dir():
        raise BuildError(f"{source} does not exist")
    found = [lang for lang, mark in LANGUAGES.items() if any(source.glob(mark))]
    if len(found) == 1:
        return found[0]
    if len(found) > 1:
        raise BuildError(f"{source} looks like {' and '.join(found)} at once; pass --lang to choose")
    for mark, lang in _RECIPES.items():
        if (source / mark).exists():
            raise BuildError(f"{source} looks like a {lang} guest: build it with its own toolchain (see the README's "
                             f"'{lang} recipe'), then deploy the .wasm")
    raise BuildError(f"{source} has no app.py (Python), app.js (JavaScript) or .wat file; "
                     "create one with `airssys-web new NAME --lang python|js|wat`")


def default_output(source: Path) -> Path:
    """``x.wat`` -> ``x.wasm``; a directory ``d`` -> ``d/d.wasm`` (beside its ``airssys.toml``, which deploy reads)."""
    source = Path(source)
    return source.with_suffix(".wasm") if source.is_file() else source / f"{source.resolve().name}.wasm"


def _wat_file(source: Path) -> Path:
    if source.is_file():
        return source
    files = sorted(source.glob("*.wat"))
    preferred = [f for f in files if f.stem in (source.resolve().name, "app")]
    if len(files) == 1 or preferred:
        return (preferred or files)[0]
    raise BuildError(f"{source} has several .wat files ({', '.join(f.name for f in files)}); build one of them")


def build_component(source: Path, *, out: Path | None = None, language: str | None = None,
                    cache_dir: Path | None = None, console: Any = None, kind: str | None = None) -> BuildResult:
    """Build any supported guest: detect the language, run its toolchain (cached), write ``out``.

    ``out`` defaults to :func:`default_output`. ``console`` (a ``rich.console.Console``) shows toolchain installs.
    ``kind`` is the world to build for: ``route`` or ``middleware`` (default: the ``[component] kind`` of the
    ``airssys.toml`` beside the source, else ``route``; a WAT component declares its own imports).
    The result is not validated here: ``airssys-web build`` and deploy check it against the WIT contract.
    """
    from ..lifecycle.manifest import manifest_kind

    source = Path(source)
    lang = language or detect_language(source)
    if lang not in LANGUAGES:
        raise BuildError(f"unknown language {lang!r}; known: {', '.join(LANGUAGES)}")
    try:
        kind = check_kind(kind or manifest_kind(source) or WORLD)
    except AirssysError as e:
        raise BuildError(str(e)) from None
    target = Path(out) if out is not None else default_output(source)
    started = time.perf_counter()
    cached = False
    if lang == "wat":
        wat = _wat_file(source)
        data = compile_wat(wat.read_text())
        target.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(target, data, durable=False, mode=PUBLIC_MODE)
    elif lang == "python":
        cache = (cache_dir or default_cache_dir(source)).resolve()
        cached = _cached_path(cache, source.resolve(), python_guest_key(source.resolve(), kind=kind)).is_file()
        build_python_guest(source, out=target, cache_dir=cache, kind=kind)
    else:
        from .build_js import build_js_guest, js_guest_key

        cache = (cache_dir or default_cache_dir(source)).resolve()
        cached = _cached_path(cache, source.resolve(), js_guest_key(source.resolve(), kind=kind)).is_file()
        build_js_guest(source, out=target, cache_dir=cache, console=console, kind=kind)
    from ..lifecycle.manifest import embed_manifest_needs

    data = target.read_bytes()
    tagged = embed_manifest_needs(data, source)  # the [needs] of an airssys.toml next to the source, if any
    if tagged is not data:
        write_atomic(target, tagged, durable=False, mode=PUBLIC_MODE)
    return BuildResult(target, lang, target.stat().st_size, time.perf_counter() - started, cached)
