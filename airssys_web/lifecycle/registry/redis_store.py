"""The Redis flavour's plumbing: where the registry is (:class:`RedisLocation`), the connection, the key layout, and
the parts that are plain Redis values: blobs (:class:`RedisBlobStore`), the audit log (:class:`RedisAuditLog`),
auto-rollback outcome counters (:class:`RedisOutcomes`) and the change feed (:class:`ChangeListener`).

Every key starts with the location's prefix (``airssys:`` unless the URL says ``?prefix=...``), so several registries
can share one Redis database::

    {p}schema                  the layout version (refused if newer than this code knows)
    {p}change                  the change token: INCR in every change transaction
    {p}changes                 pub/sub channel: a message after every committed change (the payload is empty)
    {p}components              hash name -> JSON {route, created_at, nested}
    {p}versions:{name}         hash version -> JSON {sha256, settings_json, created_at}; immutable
    {p}deployments             hash name -> JSON {active_version, previous_version, canary_*, auto_rollback, ...}
    {p}history-seq, {p}history, {p}history:{name}
                               history ids, and entries "id time json" (all components; one component)
    {p}audit-seq, {p}audit     the admin API's audit log, same entry form
    {p}blob:{sha256}           an uploaded .wasm (content-addressed, checked on every read)
    {p}secret-key, {p}secret:{hex}
                               the secret store (:class:`~airssys_web.capabilities.secrets.RedisSecretStore`)
    {p}kv:{ns}, {p}kv-usage:{ns}
                               guest KV data (:class:`~airssys_web.capabilities.kv_redis.RedisKVStore`)
    {p}outcomes:{name}:{version}
                               requests completed / failed, summed over every process (auto-rollback)

History and audit ids and times come from one Lua script run on the server (``INCR`` and ``TIME``), so ids follow
the order in which changes committed and times come from one clock, whatever the clocks of the hosts say.

Connection failures become :class:`~airssys_web.errors.RegistryUnavailable` naming the location (never its
password); redis-py's own exceptions do not leave this package.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import redis

from airssys_web.errors import InvalidName, NotFound, RegistryError, RegistryUnavailable

from .records import AuditEntry
from .rules import validate_sha256

__all__ = ["ChangeListener", "RedisAuditLog", "RedisBlobStore", "RedisLocation", "RedisOutcomes", "as_bytes", "connect"]

log = logging.getLogger("airssys_web.lifecycle.registry.redis")

SCHEMES = ("redis", "rediss", "unix")
DEFAULT_PREFIX = "airssys:"
_PREFIX_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789:_-.")
_EXAMPLE = "redis://127.0.0.1:6379/0"


@dataclass(frozen=True)
class RedisLocation:
    """A Redis registry's address: ``redis://[user:password@]host:port/db[?prefix=name:]`` (``rediss://`` for TLS,
    ``unix:///path/redis.sock?db=0``). Parsed and checked once; ``str()`` hides the password."""

    url: str
    prefix: str = DEFAULT_PREFIX

    @classmethod
    def parse(cls, text: str) -> RedisLocation:
        def bad(why: str) -> InvalidName:
            return InvalidName(f"invalid registry URL {_redacted(text)!r}: {why}; expected e.g. {_EXAMPLE}")

        parts = urlsplit(text)
        if parts.scheme not in SCHEMES:
            raise bad(f"the scheme must be one of {', '.join(s + '://' for s in SCHEMES)}")
        query = parse_qs(parts.query, keep_blank_values=True)
        unknown = sorted(set(query) - {"prefix", "db"})
        if unknown:
            raise bad(f"unknown option(s) {', '.join(unknown)} (known: prefix, db)")
        if parts.scheme == "unix":
            if not parts.path:
                raise bad("give the socket's path, e.g. unix:///run/redis/redis.sock?db=0")
        else:
            if not parts.hostname:
                raise bad("it names no host")
            try:
                parts.port  # noqa: B018 - raises ValueError for a port that is not a number in range
            except ValueError:
                raise bad("the port is not a number from 1 to 65535") from None
            db = parts.path.lstrip("/")
            if db and not (db.isdigit() and int(db) < 1 << 16):
                raise bad(f"the database must be a number such as /0, not /{db}")
        prefix = query.get("prefix", [DEFAULT_PREFIX])[-1]
        if not prefix or len(prefix) > 64 or not set(prefix) <= _PREFIX_CHARS:
            raise bad("the prefix must be 1-64 characters from A-Z, a-z, 0-9, ':', '_', '-', '.'")
        db_query = "".join(f"?db={d}" for d in query.get("db", [])[-1:])
        return cls(f"{parts.scheme}://{parts.netloc}{parts.path}{db_query}", prefix)

    def __str__(self) -> str:
        url = _redacted(self.url)
        return url if self.prefix == DEFAULT_PREFIX else f"{url}{'&' if '?' in url else '?'}prefix={self.prefix}"


def _redacted(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.netloc.rpartition("@")[2]
    return parts._replace(netloc=f"{user}:***@{host}").geturl()


def connect(location: RedisLocation, *, timeout: float = 5.0) -> redis.Redis:
    """A client (a thread-safe connection pool) for ``location``, with bounded waits: a Redis that is gone must make
    calls fail within ``timeout`` seconds rather than hang a sync or a guest's KV call."""
    return redis.Redis.from_url(location.url, socket_timeout=timeout, socket_connect_timeout=min(timeout, 2.0),
                                socket_keepalive=True, health_check_interval=15, retry_on_timeout=False)


@contextmanager
def mapped(location: RedisLocation, what: str) -> Iterator[None]:
    """Turn redis-py's exceptions into ours: unreachable -> RegistryUnavailable, anything else -> RegistryError."""
    try:
        yield
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        raise RegistryUnavailable(
            f"cannot reach the registry at {location} ({what}): {_reason(exc)}; check that Redis is running and "
            "reachable (hosts keep serving what they loaded and retry)") from None
    except redis.AuthenticationError as exc:  # pragma: no cover - needs a Redis with a password
        raise RegistryError(f"the registry at {location} refused the credentials: {exc}") from None
    except redis.RedisError as exc:
        raise RegistryError(f"the registry at {location} failed ({what}): {exc}") from None


def _reason(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:200]


class Keys:
    """The key layout (see the module docstring)."""

    def __init__(self, prefix: str) -> None:
        p = self.prefix = prefix
        self.schema, self.change, self.channel = f"{p}schema", f"{p}change", f"{p}changes"
        self.components, self.deployments = f"{p}components", f"{p}deployments"
        self.history_seq, self.history_all = f"{p}history-seq", f"{p}history"
        self.audit_seq, self.audit = f"{p}audit-seq", f"{p}audit"

    def versions(self, name: str) -> str:
        return f"{self.prefix}versions:{name}"

    def history(self, name: str) -> str:
        return f"{self.prefix}history:{name}"

    def blob(self, sha256: str) -> str:
        return f"{self.prefix}blob:{sha256}"

    def outcomes(self, name: str, version: str) -> str:
        return f"{self.prefix}outcomes:{name}:{version}"


#: Append one entry to one or two lists with the next id of a sequence (KEYS = seq, list[, list]; ARGV = JSON);
#: returns the entry as stored.
#: Entries are stored as "<id> <seconds>.<microseconds> <json>", id and time from the server.
APPEND_SCRIPT = """
local id = redis.call('INCR', KEYS[1])
local t = redis.call('TIME')
local entry = id .. ' ' .. t[1] .. '.' .. string.format('%06d', tonumber(t[2])) .. ' ' .. ARGV[1]
for i = 2, #KEYS do redis.call('RPUSH', KEYS[i], entry) end
return entry
"""


def parse_entry(raw: bytes) -> tuple[int, datetime, dict[str, Any]]:
    """An appended entry's id, time and fields."""
    head, time_text, body = raw.decode("utf-8").split(" ", 2)
    seconds, _, micros = time_text.partition(".")
    at = datetime.fromtimestamp(int(seconds), UTC).replace(microsecond=int(micros))
    return int(head), at, dict(json.loads(body))


def as_bytes(value: object) -> bytes:
    """A reply as bytes (the client does not decode replies; redis-py's types allow either)."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    raise RegistryError(f"unexpected reply from Redis: {type(value).__name__}")


def dumps(data: dict[str, Any]) -> str:
    return json.dumps(data, separators=(",", ":"), sort_keys=True)


class RedisBlobStore:
    """A :class:`~.base.BlobStore` in Redis: one string per blob, checked against its name on every read.

    A blob is as durable as the Redis it is in (``appendonly yes``; see the README). ``put`` overwrites: the same
    bytes under the same name, which also repairs a corrupt copy.
    """

    def __init__(self, client: redis.Redis, keys: Keys, location: RedisLocation) -> None:
        self._client, self._keys, self._location = client, keys, location

    def put(self, data: bytes) -> str:
        sha = hashlib.sha256(data).hexdigest()
        with mapped(self._location, f"storing blob {sha[:12]}"):
            self._client.set(self._keys.blob(sha), bytes(data))
        return sha

    def read(self, sha256: str) -> bytes:
        key = self._keys.blob(validate_sha256(sha256))
        with mapped(self._location, f"reading blob {sha256[:12]}"):
            reply = self._client.get(key)
        if reply is None:
            raise NotFound(f"blob {sha256} is not in the registry at {self._location}")
        data = as_bytes(reply)
        if hashlib.sha256(data).hexdigest() != sha256:
            raise RegistryError(f"blob {sha256} in the registry at {self._location} is corrupt (its content does not "
                                "match its sha256); deploy it again")
        return data

    def size(self, sha256: str) -> int | None:
        with mapped(self._location, f"looking up blob {sha256[:12]}"):
            size = int(self._client.strlen(self._keys.blob(validate_sha256(sha256))))
        return size or None

    def __repr__(self) -> str:
        return f"RedisBlobStore({str(self._location)!r})"


class RedisAuditLog:
    """The :class:`~.base.AuditLog` as a Redis list (ids and times from the server; see the module docstring)."""

    def __init__(self, client: redis.Redis, keys: Keys, location: RedisLocation) -> None:
        self._client, self._keys, self._location = client, keys, location
        self._append = client.register_script(APPEND_SCRIPT)

    def append(self, action: str, target: str, outcome: str, *, token_id: str, detail: str = "") -> None:
        body = dumps({"token_id": token_id, "action": action, "target": target, "outcome": outcome,
                      "detail": detail})
        with mapped(self._location, "appending to the audit log"):
            self._append(keys=[self._keys.audit_seq, self._keys.audit], args=[body])

    def entries(self, limit: int = 100) -> list[AuditEntry]:
        with mapped(self._location, "reading the audit log"):
            rows = self._client.lrange(self._keys.audit, -limit, -1) if limit > 0 else []
        out = []
        for raw in rows:
            entry_id, at, f = parse_entry(as_bytes(raw))
            out.append(AuditEntry(entry_id, f["token_id"], f["action"], f["target"], f["outcome"], f["detail"], at))
        return out


class RedisOutcomes:
    """Requests completed and failed per (component, version), summed over every process that serves it.

    Each process adds what its own generation counted since its last report (``HINCRBY``, atomic), so the totals are
    the whole fleet's; auto-rollback samples them (see :mod:`airssys_web.lifecycle.autorollback`). The counters are
    statistics, not history: they expire a week after their last change.
    """

    TTL = 7 * 86400

    def __init__(self, client: redis.Redis, keys: Keys, location: RedisLocation) -> None:
        self._client, self._keys, self._location = client, keys, location

    def add(self, component: str, version: str, completed: int, failed: int) -> tuple[int, int]:
        key = self._keys.outcomes(component, version)
        with mapped(self._location, "counting outcomes"):
            pipe = self._client.pipeline(transaction=True)
            pipe.hincrby(key, "completed", completed)
            pipe.hincrby(key, "failed", failed)
            pipe.expire(key, self.TTL)
            done, bad, _ = pipe.execute()
        return int(done), int(bad)

    def totals(self, component: str, version: str) -> tuple[int, int]:
        with mapped(self._location, "reading outcomes"):
            done, bad = self._client.hmget(self._keys.outcomes(component, version), ["completed", "failed"])
        return int(done or 0), int(bad or 0)


class ChangeListener:
    """Calls every subscriber when a change is published on the registry's channel; one daemon thread.

    A lost connection is retried with backoff; every reconnection also calls the subscribers (a message may have
    been missed meanwhile), and the hosts' polling of the change token remains the fallback either way.
    """

    def __init__(self, client: redis.Redis, channel: str) -> None:
        self._client, self._channel = client, channel
        self._subscribers: list[Callable[[], None]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def subscribe(self, callback: Callable[[], None]) -> Callable[[], None]:
        with self._lock:
            self._subscribers.append(callback)
            if self._thread is None and not self._stop.is_set():
                self._thread = threading.Thread(target=self._run, name="airssys-redis-changes", daemon=True)
                self._thread.start()

        def unsubscribe() -> None:
            with self._lock:
                if callback in self._subscribers:
                    self._subscribers.remove(callback)

        return unsubscribe

    def _notify(self) -> None:
        with self._lock:
            subscribers = list(self._subscribers)
        for callback in subscribers:
            try:
                callback()
            except Exception:  # pragma: no cover - a subscriber's bug must not stop the feed
                log.exception("change subscriber failed")

    def _run(self) -> None:
        delay = 0.1
        while not self._stop.is_set():
            pubsub = self._client.pubsub(ignore_subscribe_messages=True)
            try:
                pubsub.subscribe(self._channel)
                self._notify()  # (re)subscribed: anything published while we were away is seen by a poll now
                delay = 0.1
                while not self._stop.is_set():
                    if pubsub.get_message(timeout=0.5) is not None:
                        self._notify()
            except redis.RedisError as exc:
                log.debug("change feed: %s; reconnecting in %.1fs", _reason(exc), delay)
                self._stop.wait(delay)
                delay = min(delay * 2, 5.0)
            finally:
                try:
                    pubsub.close()
                except redis.RedisError:  # pragma: no cover - closing a broken connection
                    pass

    def close(self) -> None:
        self._stop.set()
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout=5)
