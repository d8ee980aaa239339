"""The Redis registry: the :class:`~.base.Registry` contract on a Redis server that several hosts share.

``RedisRegistry("redis://127.0.0.1:6379/0")`` (the CLI's ``--registry redis://...``) keeps metadata, history, the
audit log, blobs, secrets, guest KV data and auto-rollback counters in Redis (key layout: :mod:`.redis_store`;
rows and the transaction's view: :mod:`.redis_tx`);
compiled artifacts stay on each machine (``artifacts_dir``), because wasmtime trusts them blindly.

How the contract holds:

* **Atomic changes.** A write is an optimistic transaction: ``WATCH`` the change token, read what the change needs,
  decide in Python (the same rules as the embedded flavour), then ``MULTI`` … ``EXEC`` the writes together with
  ``INCR`` of the token and a ``PUBLISH`` on the change channel. Every change bumps the token, so two writers
  anywhere are serialized: the loser's ``EXEC`` fails and it starts again from fresh reads (with a little random
  backoff, up to ``busy_timeout`` seconds). History entries are appended in the same ``EXEC`` by a Lua script that
  takes their ids and times from the server, so the history is linear whichever host wrote it.
* **Consistent reads.** A read that spans keys takes the components and deployments in one ``MULTI`` (a snapshot);
  the versions they name are immutable and were written no later than the deployment, so reading them afterwards
  cannot mix states.
* **Change token and notification.** ``GET`` of the token is one round trip, cheap to poll; hosts also
  :meth:`subscribe` to the channel, so a change reaches them at once and the poll is only the fallback.
* **Blobs first.** A version may only name a blob already stored (checked before the transaction); Redis's
  append-only file keeps writes in order, so a version that survived a crash has its blob too.

Failures to reach Redis raise :class:`~airssys_web.errors.RegistryUnavailable`; calls are safe from any thread.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Self, TypeVar

import redis

from airssys_web.capabilities.redis_stores import RedisKVStore, RedisSecretStore
from airssys_web.errors import (
    Conflict,
    InvalidName,
    NotFound,
    RegistryError,
    RegistryUnavailable,
    VersionExists,
)

from ..settings import VersionSettings
from .records import ACTIVATIONS, ComponentInfo, Deployment, HistoryEntry, VersionInfo
from .redis_store import (
    APPEND_SCRIPT,
    ChangeListener,
    Keys,
    RedisAuditLog,
    RedisBlobStore,
    RedisLocation,
    RedisOutcomes,
    as_bytes,
    connect,
    dumps,
    mapped,
)
from .redis_tx import (
    Row,
    Tx,
    component_info,
    default_artifacts_dir,
    deployment,
    describe,
    history_entry,
    last_change,
    version_info,
)
from .rules import (
    check_kind,
    check_new_version,
    check_pipeline,
    route_overlap,
    validate_name,
    validate_route,
    validate_version,
    version_key,
)
from .sqlite import now

__all__ = ["REDIS_SCHEMA", "RedisRegistry", "default_artifacts_dir"]

REDIS_SCHEMA = 1
T = TypeVar("T")


class RedisRegistry:
    """A registry in Redis, shared by every host that opens the same ``location``; see the module docstring.

    ``location`` is a URL (``redis://host:port/db``, ``?prefix=name:`` to share a database) or a parsed
    :class:`RedisLocation`. ``artifacts_dir`` is this machine's compile cache (default:
    :func:`default_artifacts_dir`). Opening checks that Redis answers (RegistryUnavailable if not) and that its
    data was written by a compatible airssys-web.
    """

    def __init__(self, location: str | RedisLocation, *, artifacts_dir: str | Path | None = None,
                 busy_timeout: float = 10.0, timeout: float = 5.0) -> None:
        self.location = location if isinstance(location, RedisLocation) else RedisLocation.parse(location)
        self._artifacts_dir = Path(artifacts_dir) if artifacts_dir is not None else default_artifacts_dir()
        self._busy_timeout = busy_timeout
        self._keys = Keys(self.location.prefix)
        self._client = connect(self.location, timeout=timeout)
        self._closed = False
        self._seen_changes = False
        self._append = self._client.register_script(APPEND_SCRIPT)
        try:
            with mapped(self.location, "opening"):
                self._client.ping()
                self._client.set(self._keys.schema, REDIS_SCHEMA, nx=True)
                schema = int(self._client.get(self._keys.schema) or 0)
        except BaseException:
            self._client.close()
            raise
        if schema > REDIS_SCHEMA:
            self._client.close()
            raise RegistryError(f"the registry at {self.location} has layout {schema}, newer than this airssys-web "
                                f"supports ({REDIS_SCHEMA}); upgrade airssys-web")
        self.blobs = RedisBlobStore(self._client, self._keys, self.location)
        self.audit = RedisAuditLog(self._client, self._keys, self.location)
        self.outcomes = RedisOutcomes(self._client, self._keys, self.location)
        self.secrets = RedisSecretStore(self._client, self._keys.prefix, str(self.location))
        self._listener = ChangeListener(self._client, self._keys.channel)
        try:
            self._artifacts_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            self.close()
            raise RegistryError(f"cannot create the artifacts directory {self._artifacts_dir}: {exc}") from exc

    @property
    def artifacts_dir(self) -> Path:
        return self._artifacts_dir

    def kv_store(self) -> RedisKVStore:
        """A handle on the components' KV data in this Redis (it shares the registry's connections)."""
        return RedisKVStore(self._client, self._keys.prefix, str(self.location))

    def subscribe(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call ``callback`` (on a listener thread) soon after any process commits a change; returns a function
        that unsubscribes. Messages can be lost while Redis is unreachable: keep polling :meth:`change_token`."""
        return self._listener.subscribe(callback)

    # -- transactions ---------------------------------------------------------------------------------------
    def _change(self, what: str, body: Callable[[Tx], T], *, bump: bool = True) -> tuple[T, list[bytes]]:
        """Run ``body`` as one optimistic transaction (see the module docstring); return its result and the history
        entries it appended, as stored."""
        self._check_open()
        deadline = time.monotonic() + self._busy_timeout
        attempt = 0
        with mapped(self.location, what), self._client.pipeline(transaction=True) as pipe:
            while True:
                try:
                    pipe.watch(self._keys.change)  # type: ignore[no-untyped-call]
                    tx = Tx(pipe, self._keys)
                    result = body(tx)
                    if not tx.writes and not tx.logs:
                        return result, []
                    pipe.multi()
                    for name, entry in tx.logs:
                        self._append(keys=[self._keys.history_seq, self._keys.history_all, self._keys.history(name)],
                                     args=[entry], client=pipe)
                    for (key, field), row in tx.writes.items():
                        pipe.hset(key, field, dumps(row))
                    if bump:
                        pipe.incr(self._keys.change)
                        pipe.publish(self._keys.channel, b"")
                    replies = pipe.execute()
                    return result, [as_bytes(r) for r in replies[:len(tx.logs)]]
                except redis.WatchError:
                    attempt += 1
                    if time.monotonic() > deadline:
                        raise RegistryError(
                            f"the registry at {self.location} kept changing under {what} for over "
                            f"{self._busy_timeout:g}s (other writers); retry") from None
                    time.sleep(random.uniform(0, min(0.05, 0.0005 * 2 ** min(attempt, 10))))
                finally:
                    pipe.reset()

    def _read(self, what: str, body: Callable[[redis.Redis], T]) -> T:
        self._check_open()
        with mapped(self.location, what):
            return body(self._client)

    def _check_open(self) -> None:
        if self._closed:
            raise RegistryError(f"registry {self.location} is closed")

    # -- writes ---------------------------------------------------------------------------------------------
    def deploy(self, name: str, version: str, *, sha256: str, route: str | None = None,
               settings: VersionSettings | None = None, actor: str = "cli", strategy: str = "immediate",
               auto_rollback: str | None = None, allow_nested: bool = False, kind: str = "route") -> Deployment:
        settings_json = check_new_version(name, version, sha256, route, settings, self.blobs.size)

        def body(tx: Tx) -> Deployment:
            detail = self._add_version_in(tx, name, version, sha256, route, settings_json, allow_nested, kind)
            previous = self._pushed(tx, name)
            return self._activate_in(tx, name, version, previous, "deploy", strategy, actor, detail, auto_rollback)

        return self._change(f"deploying {name} {version}", body)[0]

    def add_version(self, name: str, version: str, *, sha256: str, route: str | None = None,
                    settings: VersionSettings | None = None, allow_nested: bool = False,
                    kind: str = "route") -> VersionInfo:
        settings_json = check_new_version(name, version, sha256, route, settings, self.blobs.size)

        def body(tx: Tx) -> VersionInfo:
            self._add_version_in(tx, name, version, sha256, route, settings_json, allow_nested, kind)
            return self._require_version(tx, name, version)

        return self._change(f"adding {name} {version}", body)[0]

    def _add_version_in(self, tx: Tx, name: str, version: str, sha256: str, route: str | None,
                        settings_json: str, allow_nested: bool, kind: str) -> str:
        created = now()
        comp = tx.component(name)
        check_kind(name, kind, route, None if comp is None else comp.get("kind", "route"))
        detail = ""
        if comp is None:
            if route is None and kind == "route":
                raise InvalidName(f"component {name!r} is new: give it a route, e.g. --route /{name}")
            if route is not None:
                route_overlap(name, route, tx.routes(), allow_nested=allow_nested)
            tx.set_component(name, {"route": route, "created_at": created, "nested": allow_nested, "kind": kind,
                                    "stages": []})
        elif route is not None and route != comp["route"]:
            route_overlap(name, route, tx.routes(), allow_nested=allow_nested)
            tx.set_component(name, {**comp, "route": route, "nested": allow_nested})
            detail = f"route {comp['route']} -> {route}" + (" (nested)" if allow_nested else "")
        old = tx.version(name, version)
        if old is None:
            tx.set_version(name, version, {"sha256": sha256, "settings": settings_json, "created_at": created})
        elif (old["sha256"], old["settings"]) != (sha256, settings_json):
            what = f"sha256 {old['sha256'][:12]}..." if old["sha256"] != sha256 else f"settings {old['settings']}"
            raise VersionExists(f"{name} {version} already exists with different content ({what}); "
                                "versions are immutable: deploy a new version")
        return detail

    def check_route(self, name: str, route: str, *, allow_nested: bool = False) -> None:
        validate_name(name)
        validate_route(route)

        def body(client: redis.Redis) -> None:
            stored = client.hgetall(self._keys.components)
            owners = sorted((as_bytes(k).decode(), json.loads(v)["route"]) for k, v in stored.items()
                            if json.loads(v)["route"] is not None)
            if dict(owners).get(name) != route:
                route_overlap(name, route, owners, allow_nested=allow_nested)

        self._read("checking a route", body)

    def activate(self, name: str, version: str, *, actor: str = "cli", action: str = "activate",
                 strategy: str = "immediate", auto_rollback: str | None = None) -> Deployment:
        validate_name(name)
        validate_version(version)

        def body(tx: Tx) -> Deployment:
            self._require_version(tx, name, version)
            return self._activate_in(tx, name, version, self._pushed(tx, name), action, strategy, actor, "",
                                     auto_rollback)

        return self._change(f"activating {name} {version}", body)[0]

    def rollback(self, name: str, to_version: str | None = None, *, actor: str = "cli", reason: str = "",
                 expect: str | None = None) -> Deployment:
        validate_name(name)
        if to_version is not None:
            validate_version(to_version)

        def body(tx: Tx) -> Deployment:
            current = self._current(tx, name)
            if expect is not None and current.newest_version != expect:
                raise Conflict(f"{name} changed meanwhile: the newest version is {current.newest_version}, not "
                               f"{expect}; nothing was rolled back")
            why = f"; {reason}" if reason else ""
            history = [history_entry(raw) for raw in reversed(tx.history(name))]  # newest first
            if to_version is None and current.canary_version is not None:
                dep = tx.deployment(name)
                assert dep is not None
                tx.set_deployment(name, {**dep, "canary_version": None, "canary_percent": 0, "auto_rollback": None,
                                         "updated_at": now()})
                started = next((h.id for h in history if h.action == "canary"), None)
                tx.log(name, current.active_version, current.previous_version, "rollback", "canary", actor,
                       f"canary {current.canary_version} aborted (0%){why}", undoes=started)
                return self._current(tx, name)
            undone = None if to_version is not None else last_change(tx, name, versions=expect is not None)
            if undone is not None and undone["action"] == "pipeline":
                restored, replaced = tuple(undone["stages_before"] or ()), current.stages
                comp = self._require_component(tx, name)
                tx.set_component(name, {**comp, "stages": list(restored)})
                tx.log(name, current.active_version, current.previous_version, "rollback", "pipeline", actor,
                       f"pipeline {describe(replaced)} -> {describe(restored)}{why}", stages=restored,
                       stages_before=replaced, undoes=undone["id"])
                return self._current(tx, name)
            target = to_version if to_version is not None else current.previous_version
            if target is None:
                raise NotFound(f"{name} has no earlier version to roll back to (active: {current.active_version}); "
                               "name a version explicitly")
            self._require_version(tx, name, target)
            # Restore the stack below ``target`` as it was when ``target`` was last activated.
            below: str | None = current.active_version
            for entry in history:
                if (entry.version == target and entry.action in ACTIVATIONS and entry.outcome == "ok"
                        and entry.strategy != "pipeline"):
                    below = entry.previous_version
                    break
            return self._activate_in(tx, name, target, below, "rollback", "immediate", actor,
                                     f"from {current.active_version}{why}", None,
                                     undoes=None if undone is None else undone["id"])

        return self._change(f"rolling back {name}", body)[0]

    def set_pipeline(self, name: str, stages: Sequence[str], *, actor: str = "cli") -> Deployment:
        """Put ``stages`` in front of route component ``name`` (``[]`` clears them), recorded in its history and
        undone by a rollback; the same pipeline again changes nothing and records nothing (see the embedded
        flavour for the rules, which are :func:`.rules.check_pipeline`)."""

        def body(tx: Tx) -> Deployment:
            kinds = {n: c.get("kind", "route") for n, c in tx.all_components().items()}
            checked = check_pipeline(name, stages, kinds, tx.active_names())
            current = self._current(tx, name)
            if checked == current.stages:
                return current
            comp = self._require_component(tx, name)
            tx.set_component(name, {**comp, "stages": list(checked)})
            tx.log(name, current.active_version, current.previous_version, "pipeline", "pipeline", actor,
                   f"{describe(current.stages)} -> {describe(checked)}", stages=checked,
                   stages_before=current.stages)
            return self._current(tx, name)

        return self._change(f"setting the pipeline of {name}", body)[0]

    def pipelines_using(self, stage: str) -> list[str]:
        """The route components whose pipeline includes ``stage``, by name."""
        return [c.name for c in self.components() if stage in c.stages]

    def start_canary(self, name: str, version: str, percent: int, *, actor: str = "cli",
                     auto_rollback: str | None = None) -> Deployment:
        validate_name(name)
        validate_version(version)
        if isinstance(percent, bool) or not isinstance(percent, int) or not 1 <= percent <= 100:
            raise InvalidName(f"invalid canary percent {percent!r}: use a whole number from 1 to 100")

        def body(tx: Tx) -> Deployment:
            self._require_version(tx, name, version)
            current = self._current(tx, name)
            if version == current.active_version:
                raise Conflict(f"{name} {version} is already the active version; a canary needs another version")
            if current.canary_version not in (None, version):
                raise Conflict(f"{name} already runs canary {current.canary_version}; promote or roll it back first")
            dep = tx.deployment(name)
            assert dep is not None
            tx.set_deployment(name, {**dep, "canary_version": version, "canary_percent": percent,
                                     "auto_rollback": auto_rollback, "updated_at": now()})
            was = f"{current.canary_percent}% -> " if current.canary_version == version else ""
            tx.log(name, version, current.active_version, "canary", "canary", actor, f"{was}{percent}%")
            return self._current(tx, name)

        return self._change(f"starting a canary of {name}", body)[0]

    def promote(self, name: str, *, actor: str = "cli") -> Deployment:
        validate_name(name)

        def body(tx: Tx) -> Deployment:
            current = self._current(tx, name)
            if current.canary_version is None:
                raise NotFound(f"{name} has no canary in progress to promote (active: {current.active_version})")
            return self._activate_in(tx, name, current.canary_version, current.active_version, "promote", "canary",
                                     actor, f"canary at {current.canary_percent}%", current.auto_rollback)

        return self._change(f"promoting {name}", body)[0]

    def record(self, name: str, version: str, *, action: str, strategy: str, actor: str, outcome: str,
               detail: str = "") -> HistoryEntry:
        validate_name(name)

        def body(tx: Tx) -> None:
            self._require_component(tx, name)
            tx.log(name, version, self._pushed(tx, name), action, strategy, actor, detail, outcome)

        _, entries = self._change(f"recording a {action} of {name}", body, bump=False)
        return history_entry(entries[0])

    # -- reads ----------------------------------------------------------------------------------------------
    def _snapshot(self, client: redis.Redis) -> tuple[dict[str, Row], dict[str, Row]]:
        """Components and deployments as of one instant."""
        pipe = client.pipeline(transaction=True)
        pipe.hgetall(self._keys.components)
        pipe.hgetall(self._keys.deployments)
        comps, deps = pipe.execute()
        return ({k.decode(): json.loads(v) for k, v in comps.items()},
                {k.decode(): json.loads(v) for k, v in deps.items()})

    def get_component(self, name: str) -> ComponentInfo:
        validate_name(name)
        return next(c for c in self._components(name))

    def components(self) -> list[ComponentInfo]:
        return self._components(None)

    def _components(self, only: str | None) -> list[ComponentInfo]:
        def body(client: redis.Redis) -> list[ComponentInfo]:
            comps, deps = self._snapshot(client)
            if only is not None and only not in comps:
                raise NotFound(f"no component named {only!r}; deploy it first")
            return [component_info(n, comps[n], deps.get(n)) for n in sorted(comps) if only in (None, n)]

        return self._read("listing components", body)

    def versions(self, name: str) -> list[VersionInfo]:
        validate_name(name)

        def body(client: redis.Redis) -> list[VersionInfo]:
            pipe = client.pipeline(transaction=True)
            pipe.hexists(self._keys.components, name)
            pipe.hgetall(self._keys.versions(name))
            exists, rows = pipe.execute()
            if not exists:
                raise NotFound(f"no component named {name!r}; deploy it first")
            found = [version_info(name, k.decode(), json.loads(v)) for k, v in rows.items()]
            return sorted(found, key=lambda v: version_key(v.version))

        return self._read(f"reading the versions of {name}", body)

    def get_version(self, name: str, version: str) -> VersionInfo:
        validate_name(name)
        validate_version(version)

        def body(client: redis.Redis) -> VersionInfo:
            pipe = client.pipeline(transaction=True)
            pipe.hexists(self._keys.components, name)
            pipe.hget(self._keys.versions(name), version)
            exists, raw = pipe.execute()
            if not exists:
                raise NotFound(f"no component named {name!r}; deploy it first")
            if raw is None:
                raise NotFound(f"component {name!r} has no version {version}")
            return version_info(name, version, json.loads(raw))

        return self._read(f"reading {name} {version}", body)

    def get_deployment(self, name: str) -> Deployment:
        validate_name(name)
        found = self._deployments(name)
        return found[0]

    def active(self) -> list[Deployment]:
        return self._deployments(None)

    def _deployments(self, only: str | None) -> list[Deployment]:
        def body(client: redis.Redis) -> list[Deployment]:
            comps, deps = self._snapshot(client)
            if only is not None:
                if only not in comps:
                    raise NotFound(f"no component named {only!r}; deploy it first")
                if only not in deps:
                    raise NotFound(f"component {only!r} has no active version")
            names = [n for n in sorted(deps) if only in (None, n)]
            pipe = client.pipeline(transaction=False)  # versions are immutable: no snapshot needed
            for n in names:
                pipe.hget(self._keys.versions(n), deps[n]["active_version"])
                pipe.hget(self._keys.versions(n), deps[n]["canary_version"] or "-")
            rows = pipe.execute()
            out = []
            for i, n in enumerate(names):
                active, canary = rows[2 * i], rows[2 * i + 1]
                out.append(deployment(n, comps[n], deps[n], json.loads(active),
                                       json.loads(canary) if canary is not None else None))
            return out

        return self._read("reading deployments", body)

    def history(self, name: str | None = None) -> list[HistoryEntry]:
        def body(client: redis.Redis) -> list[HistoryEntry]:
            if name is None:
                return [history_entry(as_bytes(raw)) for raw in client.lrange(self._keys.history_all, 0, -1)]
            pipe = client.pipeline(transaction=True)
            pipe.hexists(self._keys.components, validate_name(name))
            pipe.lrange(self._keys.history(name), 0, -1)
            exists, rows = pipe.execute()
            if not exists:
                raise NotFound(f"no component named {name!r}; deploy it first")
            return [history_entry(as_bytes(raw)) for raw in rows]

        return self._read("reading the history", body)

    def change_token(self) -> int:
        """The change counter. A handle that has seen changes and then finds no counter raises RegistryUnavailable:
        Redis lost its data (restarted without its append-only file, or flushed), and a host must not take the
        empty registry for the truth and stop serving everything."""
        raw = self._read("reading the change token", lambda client: client.get(self._keys.change))
        if raw is None and self._seen_changes:
            raise RegistryUnavailable(
                f"the registry at {self.location} has lost its data (its change counter is gone: was Redis restarted "
                "without its append-only file, or flushed?); hosts keep serving what they loaded: restore Redis's "
                "data, or restart them to serve the empty registry")
        token = int(raw or 0)
        self._seen_changes = self._seen_changes or token > 0
        return token

    # -- lifecycle ------------------------------------------------------------------------------------------
    def close(self) -> None:
        """Stop the change listener and close the connections; later calls raise RegistryError. Idempotent."""
        if self._closed:
            return
        self._closed = True
        listener = getattr(self, "_listener", None)
        if listener is not None:
            listener.close()
        self._client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"RedisRegistry({str(self.location)!r})"

    # -- internals ------------------------------------------------------------------------------------------
    def _require_component(self, tx: Tx, name: str) -> Row:
        comp = tx.component(name)
        if comp is None:
            raise NotFound(f"no component named {name!r}; deploy it first")
        return comp

    def _require_version(self, tx: Tx, name: str, version: str) -> VersionInfo:
        row = tx.version(name, version)
        if row is None:
            self._require_component(tx, name)
            raise NotFound(f"component {name!r} has no version {version}")
        return version_info(name, version, row)

    def _current(self, tx: Tx, name: str) -> Deployment:
        dep = tx.deployment(name)
        comp = self._require_component(tx, name)
        if dep is None:
            raise NotFound(f"component {name!r} has no active version")
        active = tx.version(name, dep["active_version"])
        canary = tx.version(name, dep["canary_version"]) if dep["canary_version"] else None
        assert active is not None
        return deployment(name, comp, dep, active, canary)

    def _pushed(self, tx: Tx, name: str) -> str | None:
        """The rollback target after a plain activation: the version active until now."""
        dep = tx.deployment(name)
        return None if dep is None else str(dep["active_version"])

    def _activate_in(self, tx: Tx, name: str, version: str, previous: str | None, action: str, strategy: str,
                     actor: str, detail: str, auto_rollback: str | None, *, undoes: int | None = None) -> Deployment:
        """Point ``name`` at ``version`` with rollback target ``previous`` (ending any canary), set the watch policy
        and log the event. Re-activating the active version keeps its rollback target."""
        dep = tx.deployment(name)
        if dep is not None and dep["active_version"] == version:
            previous, detail = dep["previous_version"], detail or "already active"
        if dep is not None and dep["canary_version"] is not None and action != "promote":
            detail = "; ".join(filter(None, [detail, f"canary {dep['canary_version']} ended"]))
        tx.set_deployment(name, {"active_version": version, "previous_version": previous, "canary_version": None,
                                 "canary_percent": 0, "auto_rollback": auto_rollback, "updated_at": now()})
        tx.log(name, version, previous, action, strategy, actor, detail, undoes=undoes)
        return self._current(tx, name)

