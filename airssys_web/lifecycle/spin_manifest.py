"""A Spin application manifest (``spin.toml``, ``spin_manifest_version = 2``) read as a plan of deploys.

``airssys-web spin deploy spin.toml`` deploys each component an HTTP trigger routes to, with the grants its
manifest entry asks for, mapped onto ours without ever widening them:

=====================================  ===========================================================================
spin.toml                              airssys-web
=====================================  ===========================================================================
``[[trigger.http]] route``             the component's route: ``/hello/...`` -> ``/hello``; ``/hello`` too (it then
                                       also answers below ``/hello``); ``/users/:id`` -> ``/users``; ``/...`` needs
                                       ``--base``, which prefixes every route
``source = "app.wasm"``                the file deployed (relative to the manifest; build it first)
``allowed_outbound_hosts``             ``--allow-host`` each (the same syntax; ``{{ var }}`` templates resolved)
``key_value_stores``                   ``--kv`` for ``default``, ``--kv-store LABEL`` for each other label
``[component.x.variables]``            ``--config key=value``, templates resolved from ``[variables]``; a value
                                       that uses a ``secret = true`` variable becomes ``--secret``
``[variables]``                        values: ``$SPIN_VARIABLE_<NAME>`` (as ``spin up`` reads them), else the
                                       ``default``; a ``required`` one with neither refuses the deploy
``files``                              ``--allow-file`` read-only: ``{ source = "dir", destination = "/d" }``, a
                                       directory, or ``dir/**``; single files and other globs are not mapped
=====================================  ===========================================================================

Everything else is listed in the plan's ``notes``, one sentence each, and left out: other triggers (redis, cron,
...), private routes, ``environment``, ``exclude_files`` (then no files are granted), SQLite databases, AI models,
``self`` as an outbound host, component dependencies, remote sources. Leaving one out can only narrow what a
component gets. A malformed manifest, or one asking for what cannot be deployed (a missing ``.wasm``, a required
variable without a value, a route that cannot be mounted) raises :class:`~airssys_web.errors.InvalidManifest`
naming it, before anything is deployed.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..capabilities.grants import DEFAULT_STORE, Capability, ConfigValue, FileAccess, Grants, KeyValue, Secret
from ..errors import AirssysError, InvalidManifest
from .registry import validate_name, validate_route

__all__ = ["SpinApp", "SpinComponent", "load_spin_manifest"]

_TEMPLATE = re.compile(r"\{\{\s*([^{}\s]*)\s*\}\}")
_GLOB = re.compile(r"[*?\[]")
_MAPPED_KEYS = {"source", "description", "variables", "allowed_outbound_hosts", "key_value_stores", "files",
                "exclude_files", "build"}


@dataclass(frozen=True)
class SpinComponent:
    """One deploy: ``name`` at ``route``, the ``.wasm`` at ``wasm``, with ``grants``; ``notes`` say what of its
    manifest entry was not mapped."""

    name: str
    route: str
    wasm: Path
    grants: Grants
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class SpinApp:
    """The deploys a manifest asks for, in the order of its HTTP triggers; ``notes``: what was left out."""

    path: Path
    name: str
    version: str | None
    components: tuple[SpinComponent, ...]
    notes: tuple[str, ...] = ()


def load_spin_manifest(path: str | Path, *, base: str | None = None,
                       environ: Mapping[str, str] | None = None) -> SpinApp:
    """Read ``spin.toml`` at ``path``. ``base`` is a route prefix for every component (needed for ``/...``);
    ``environ`` supplies ``SPIN_VARIABLE_*`` values (default: the process environment)."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InvalidManifest(f"Spin manifest {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidManifest(f"cannot read the Spin manifest {path}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise InvalidManifest(f"Spin manifest {path} is not valid TOML: {exc}") from None
    version = data.get("spin_manifest_version")
    if version != 2:
        raise InvalidManifest(f"{path}: spin_manifest_version is {version!r}; only version 2 is supported "
                              "(`spin doctor` converts an older manifest)")
    if base is not None:
        validate_route(base)
    return _Reader(path, data, base, os.environ if environ is None else environ).app()


class _Reader:
    """One manifest being read: its variables resolved once, its notes collected."""

    def __init__(self, path: Path, data: dict[str, Any], base: str | None, environ: Mapping[str, str]) -> None:
        self.path = path
        self.root = path.resolve().parent
        self.data = data
        self.base = base
        self.variables = self._variables(environ)
        self.notes: list[str] = []
        self.routed: set[str] = set()  # components some trigger names (deployed or not)

    def fail(self, message: str) -> InvalidManifest:
        return InvalidManifest(f"{self.path}: {message}")

    def table(self, value: object, where: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(f"{where} must be a table")
        return value

    def strings(self, value: object, where: str) -> list[str]:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.fail(f"{where} must be a list of strings")
        return value

    # -- the application ---------------------------------------------------------------------------------------
    def app(self) -> SpinApp:
        application = self.table(self.data.get("application", {}), "[application]")
        name = application.get("name")
        if not isinstance(name, str) or not name:
            raise self.fail("[application] name is missing")
        version = application.get("version")
        if version is not None and not isinstance(version, str):
            raise self.fail("[application] version must be a string")
        triggers = self.table(self.data.get("trigger", {}), "[trigger]")
        for kind, entries in triggers.items():
            if kind != "http":
                ids = [str(e.get("component", "?")) for e in entries if isinstance(e, dict)] if isinstance(
                    entries, list) else []
                self.routed.update(ids)
                self.notes.append(f"trigger {kind} ({', '.join(ids) or 'no component'}) is not supported: "
                                  "airssys-web serves HTTP components only; not deployed")
        components = self.table(self.data.get("component", {}), "[component]")
        deploys: dict[str, SpinComponent] = {}
        http = triggers.get("http", [])
        if not isinstance(http, list):
            raise self.fail("[[trigger.http]] must be an array of tables")
        for i, trigger in enumerate(http, 1):
            planned = self.trigger(self.table(trigger, f"[[trigger.http]] #{i}"), i, name, components, deploys)
            if planned is not None:
                deploys[planned.name] = planned
        for cid in components:
            if cid not in self.routed:
                self.notes.append(f"component {cid} has no HTTP route; not deployed")
        if not deploys:
            raise self.fail("no HTTP component to deploy (no [[trigger.http]] routes to a component)")
        return SpinApp(self.path, name, version, tuple(deploys.values()), tuple(self.notes))

    def trigger(self, trigger: dict[str, Any], index: int, app: str, components: dict[str, Any],
                deploys: dict[str, SpinComponent]) -> SpinComponent | None:
        ref = trigger.get("component")
        route = trigger.get("route")
        if isinstance(ref, dict):  # an inline component: named after the app and the trigger's position
            cid, entry = f"{app}-{index}", ref
        elif isinstance(ref, str):
            if ref not in components:
                raise self.fail(f"[[trigger.http]] route {route!r} names component {ref!r}, which [component] does "
                                "not define")
            cid, entry = ref, components[ref]
        else:
            raise self.fail(f"[[trigger.http]] #{index} has no component")
        self.routed.add(cid)
        if isinstance(route, dict) and route.get("private"):
            self.notes.append(f"component {cid} has a private route (only for calls from the app itself), which "
                              "airssys-web does not have; not deployed")
            return None
        if not isinstance(route, str):
            raise self.fail(f"[[trigger.http]] #{index} (component {cid}) has no route")
        for key in sorted(set(trigger) - {"route", "component"}):
            self.notes.append(f"component {cid}: trigger setting {key} is not mapped")
        if cid in deploys:
            self.notes.append(f"component {cid} is also routed at {route}; airssys-web gives a component one route "
                              f"(it is deployed at {deploys[cid].route})")
            return None
        try:
            validate_name(cid)
        except AirssysError as exc:
            raise self.fail(f"component id {cid!r} is not a valid airssys-web name: {exc}") from None
        start = len(self.notes)  # the route's notes belong to the component too
        return self.component(cid, self.table(entry, f"[component.{cid}]"), self.route(cid, route), start)

    def route(self, cid: str, route: str) -> str:
        """The airssys-web route (a prefix) for a Spin route."""
        notes = self.notes
        path = route
        if path.endswith("/..."):
            path = path[: -len("/...")]
        else:
            notes.append(f"component {cid}: Spin matches {route} exactly; here the component also answers the paths "
                         f"below it")
        segments = [s for s in path.split("/") if s]
        if any(s.startswith(":") for s in segments):
            kept = segments[: next(i for i, s in enumerate(segments) if s.startswith(":"))]
            notes.append(f"component {cid}: route {route} has parameters; it is mounted at the prefix before them "
                         "and the component matches the rest itself")
            segments = kept
        mounted = (self.base or "") + "".join(f"/{s}" for s in segments)
        if not mounted:
            raise self.fail(f"component {cid} is routed at {route}, the whole app; mount it under a prefix with "
                            "--base, e.g. --base /app")
        try:
            return validate_route(mounted)
        except AirssysError as exc:
            raise self.fail(f"component {cid}: route {route} cannot be mounted: {exc}") from None

    # -- a component -------------------------------------------------------------------------------------------
    def component(self, cid: str, entry: dict[str, Any], route: str, start: int) -> SpinComponent:
        wasm = self.source(cid, entry.get("source"), entry.get("build"))
        caps: list[Capability] = []
        caps += self.outbound(cid, entry.get("allowed_outbound_hosts", []))
        caps += self.key_value(cid, entry.get("key_value_stores", []))
        caps += self.component_variables(cid, self.table(entry.get("variables", {}), f"[component.{cid}.variables]"))
        caps += self.files(cid, entry.get("files", []), entry.get("exclude_files", []))
        for key in sorted(set(entry) - _MAPPED_KEYS):
            self.notes.append(f"component {cid}: {key} is not mapped" + {
                "environment": " (the component's WASI environment stays empty)",
                "sqlite_databases": " (SQLite is not provided by this host: calls fail)",
                "ai_models": " (the LLM interface is not provided by this host: calls fail)",
                "dependencies": " (component dependencies are not composed: their imports are not provided)",
            }.get(key, ""))
        own = tuple(n.removeprefix(f"component {cid}: ") for n in self.notes[start:])
        del self.notes[start:]
        return SpinComponent(cid, route, wasm, Grants.of(caps), own)

    def source(self, cid: str, source: object, build: object) -> Path:
        if isinstance(source, dict):
            raise self.fail(f"component {cid}: a remote source ({source.get('url', source)}) is not fetched; "
                            "download the .wasm and give its path as source")
        if not isinstance(source, str) or not source:
            raise self.fail(f"component {cid} has no source")
        wasm = (self.root / source).resolve()
        if not wasm.is_file():
            command = build.get("command") if isinstance(build, dict) else None
            hint = f" (its build command: {command})" if command else ""
            raise self.fail(f"component {cid}: source {source} does not exist; build it first with `spin build`"
                            f"{hint}")
        return wasm

    def outbound(self, cid: str, hosts: object) -> list[Capability]:
        caps: list[Capability] = []
        for host in self.strings(hosts, f"[component.{cid}] allowed_outbound_hosts"):
            resolved = self.render(host, f"component {cid} allowed_outbound_hosts")[0]
            if resolved.split("://")[-1].startswith("self"):
                self.notes.append(f"component {cid}: outbound host {host} (the app itself) is not mapped")
                continue
            try:
                caps.append(Capability.network_outbound(resolved))
            except AirssysError as exc:
                self.notes.append(f"component {cid}: outbound host {host} is not mapped ({exc})")
        return caps

    def key_value(self, cid: str, stores: object) -> list[Capability]:
        labels = self.strings(stores, f"[component.{cid}] key_value_stores")
        if not labels:
            return []
        try:
            return [KeyValue(stores=tuple(labels), default=DEFAULT_STORE in labels)]
        except AirssysError as exc:
            raise self.fail(f"component {cid} key_value_stores: {exc}") from None

    def component_variables(self, cid: str, variables: dict[str, Any]) -> list[Capability]:
        caps: list[Capability] = []
        for key, template in variables.items():
            if not isinstance(template, str):
                raise self.fail(f"[component.{cid}.variables] {key} must be a string")
            value, secret = self.render(template, f"component {cid} variable {key}")
            try:
                caps.append(Secret(key, value) if secret else ConfigValue(key, value))
            except AirssysError as exc:
                raise self.fail(f"component {cid} variable {key}: {exc}") from None
        return caps

    def files(self, cid: str, entries: object, excluded: object) -> list[Capability]:
        if not isinstance(entries, list):
            raise self.fail(f"[component.{cid}] files must be a list")
        if entries and self.strings(excluded, f"[component.{cid}] exclude_files"):
            self.notes.append(f"component {cid}: files with exclude_files are not mapped (a directory grant cannot "
                              "leave files out); no files are granted")
            return []
        caps: list[Capability] = []
        for entry in entries:
            if isinstance(entry, dict):
                source, guest = entry.get("source"), entry.get("destination")
            else:
                source, guest = entry, None
            if not isinstance(source, str):
                raise self.fail(f"[component.{cid}] files entry {entry!r} has no source")
            directory = source.removesuffix("/**")
            host = (self.root / directory).resolve()
            if _GLOB.search(directory) or not host.is_dir():
                self.notes.append(f"component {cid}: files entry {source!r} is not mapped (airssys-web grants whole "
                                  "directories, read-only: give a directory or dir/**)")
                continue
            target = guest if isinstance(guest, str) else "/" + directory.strip("/")
            try:
                caps.append(FileAccess.make(host, target if target != "/." else "/", writable=False))
            except AirssysError as exc:
                self.notes.append(f"component {cid}: files entry {source!r} is not mapped ({exc})")
        return caps

    # -- variables ---------------------------------------------------------------------------------------------
    def _variables(self, environ: Mapping[str, str]) -> dict[str, tuple[str | None, bool]]:
        """Application variables: name -> (value or None when required and unset, secret?)."""
        out: dict[str, tuple[str | None, bool]] = {}
        for name, spec in self.table(self.data.get("variables", {}), "[variables]").items():
            spec = self.table(spec, f"[variables] {name}")
            env = environ.get(f"SPIN_VARIABLE_{name.upper()}")
            default = spec.get("default")
            if default is not None and not isinstance(default, str):
                raise self.fail(f"[variables] {name}: default must be a string")
            out[name] = (env if env is not None else default, bool(spec.get("secret", False)))
        return out

    def render(self, template: str, what: str) -> tuple[str, bool]:
        """``template`` with ``{{ name }}`` replaced; whether it used a secret variable."""
        secret = False

        def value(match: re.Match[str]) -> str:
            nonlocal secret
            name = match.group(1)
            if name not in self.variables:
                raise self.fail(f"{what} uses {{{{ {name} }}}}, which [variables] does not define")
            found, is_secret = self.variables[name]
            if found is None:
                raise self.fail(f"{what} needs the variable {name}, which is required and has no value: set "
                                f"SPIN_VARIABLE_{name.upper()} (as `spin up` reads it)")
            secret = secret or is_secret
            return found

        return _TEMPLATE.sub(value, template), secret
