"""What a Redis registry keeps for its components' capabilities: guest KV data and secret values, shared by
every host.

**KV** (:class:`RedisKVStore`, a :class:`~.kv.KVStore`).
Each namespace (component) is one hash, ``{prefix}kv:{namespace}``, with a usage hash beside it
(``{prefix}kv-usage:{namespace}``: ``keys``, ``bytes``). A write or a delete is one Lua script that reads the usage,
checks the quota and applies the change together, so writers on any number of hosts cannot overshoot a quota
between them (the same guarantee as the SQLite store's transaction). Keys are counted in UTF-8 bytes, as there.

A Redis that cannot be reached makes the call fail with :class:`~airssys_web.errors.KVError` (``kv: storage
unavailable ...``), which the guest receives as its ``err`` case; the route itself keeps serving.

**Secrets** (:class:`RedisSecretStore`, a :class:`~.secrets.SecretBackend`): the HMAC key and the values, as the
directory store keeps them in files (see :mod:`.secrets`).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets as _random
from collections.abc import Iterator
from contextlib import contextmanager

import redis

from ..errors import CapabilityError, KVError, RegistryError, RegistryUnavailable
from .kv import KVQuota, KVUsage, check_key
from .secrets import REF

__all__ = ["RedisKVStore", "RedisSecretStore"]

# KEYS: data hash, usage hash. ARGV: key, value, max_keys, max_total_bytes.
# Returns {0} when written, {1, n} when n keys would exceed max_keys, {2, n} when n bytes would exceed the total.
_SET = """
local exists = redis.call('HEXISTS', KEYS[1], ARGV[1])
local old = redis.call('HSTRLEN', KEYS[1], ARGV[1])
local keys = tonumber(redis.call('HGET', KEYS[2], 'keys') or '0')
local total = tonumber(redis.call('HGET', KEYS[2], 'bytes') or '0')
local klen, vlen = string.len(ARGV[1]), string.len(ARGV[2])
local new_keys, new_total = keys + 1, total + klen + vlen
if exists == 1 then new_keys, new_total = keys, total + vlen - old end
if new_keys > tonumber(ARGV[3]) then return {1, new_keys} end
if new_total > tonumber(ARGV[4]) then return {2, new_total} end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[2], 'keys', new_keys, 'bytes', new_total)
return {0}
"""

# KEYS: data hash, usage hash. ARGV: key.
_DELETE = """
local old = redis.call('HSTRLEN', KEYS[1], ARGV[1])
if redis.call('HDEL', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('HINCRBY', KEYS[2], 'keys', -1)
redis.call('HINCRBY', KEYS[2], 'bytes', -(string.len(ARGV[1]) + old))
return 1
"""


def _bytes(value: object) -> bytes:
    """A reply as bytes (the client does not decode replies; redis-py's types allow either)."""
    return value if isinstance(value, bytes) else str(value).encode("utf-8")


class RedisKVStore:
    """Namespaced KV data in Redis (see the module docstring). ``client`` is shared with the registry that made
    this store, which closes it; :meth:`close` only stops this handle."""

    def __init__(self, client: redis.Redis, prefix: str, label: str) -> None:
        self._client, self._prefix, self._label = client, prefix, label
        self._set = client.register_script(_SET)
        self._delete = client.register_script(_DELETE)
        self._closed = False

    def _keys(self, namespace: str) -> list[str]:
        return [f"{self._prefix}kv:{namespace}", f"{self._prefix}kv-usage:{namespace}"]

    @contextmanager
    def _call(self) -> Iterator[None]:
        if self._closed:
            raise KVError("kv: the store is closed")
        try:
            yield
        except (redis.ConnectionError, redis.TimeoutError):
            raise KVError(f"kv: storage unavailable (cannot reach Redis at {self._label}); retry later") from None
        except redis.RedisError as exc:
            raise KVError(f"kv: storage error: {exc}") from None

    def get(self, namespace: str, key: str) -> bytes | None:
        with self._call():
            value = self._client.hget(self._keys(namespace)[0], key.encode())
        return None if value is None else _bytes(value)

    def set(self, namespace: str, key: str, value: bytes, quota: KVQuota) -> None:
        raw = check_key(key, quota)
        if len(value) > quota.max_value_bytes:
            raise KVError(f"kv: value of {len(value)} bytes is over the {quota.max_value_bytes}-byte limit")
        with self._call():
            result = self._set(keys=self._keys(namespace),
                               args=[raw, bytes(value), quota.max_keys, quota.max_total_bytes])
        if result[0] == 1:
            raise KVError(f"kv: quota exceeded: at most {quota.max_keys} keys per component")
        if result[0] == 2:
            raise KVError(f"kv: quota exceeded: this write would store {result[1]} bytes, over the "
                          f"{quota.max_total_bytes}-byte limit per component")

    def delete(self, namespace: str, key: str) -> None:
        with self._call():
            self._delete(keys=self._keys(namespace), args=[key.encode()])

    def keys(self, namespace: str) -> list[str]:
        """Every key of the namespace, sorted (the quota bounds how many, so one HKEYS is fine)."""
        with self._call():
            raw = self._client.hkeys(self._keys(namespace)[0])
        return sorted(_bytes(k).decode("utf-8") for k in raw)

    def usage(self, namespace: str) -> KVUsage:
        with self._call():
            keys, total = self._client.hmget(self._keys(namespace)[1], ["keys", "bytes"])
        return KVUsage(int(keys or 0), int(total or 0))

    def close(self) -> None:
        """Stop using this handle (idempotent); the connections belong to the registry."""
        self._closed = True

    def __repr__(self) -> str:
        return f"RedisKVStore({self._label!r})"


class RedisSecretStore:
    """The secret store of a Redis registry: the HMAC key in ``{prefix}secret-key`` (set once, ``SET NX``), each
    value in ``{prefix}secret:{hex}``. Values are as safe as the Redis they are in: require a password (ACL) and TLS
    (``rediss://``) on any network you do not control."""

    def __init__(self, client: redis.Redis, prefix: str, label: str) -> None:
        self._client, self._prefix, self._label = client, prefix, label
        self._cached: bytes | None = None

    def _key(self) -> bytes:
        if self._cached is None:
            name = f"{self._prefix}secret-key"
            with self._mapped("reading the secret key"):
                self._client.set(name, _random.token_bytes(32), nx=True)  # two deployers racing: the first wins
                key = self._client.get(name)
            assert key is not None
            self._cached = _bytes(key)
        return self._cached

    @contextmanager
    def _mapped(self, what: str) -> Iterator[None]:
        try:
            yield
        except (redis.ConnectionError, redis.TimeoutError):
            raise RegistryUnavailable(f"cannot reach the registry at {self._label} ({what})") from None
        except redis.RedisError as exc:
            raise RegistryError(f"the registry at {self._label} failed ({what}): {exc}") from None

    def put(self, value: str) -> str:
        data = value.encode("utf-8")
        ref = "hmac-sha256:" + hmac.new(self._key(), data, hashlib.sha256).hexdigest()
        with self._mapped("storing a secret"):
            self._client.set(self._name(ref), data, nx=True)
        return ref

    def get(self, ref: str) -> str:
        with self._mapped("reading a secret"):
            data = self._client.get(self._name(ref))
        if data is None:
            raise CapabilityError(f"secret {ref[:24]}... is missing from the registry at {self._label}; "
                                  "deploy it again")
        return _bytes(data).decode("utf-8")

    def derive_key(self, purpose: str) -> bytes:
        return hmac.new(self._key(), purpose.encode("utf-8"), hashlib.sha256).digest()

    def _name(self, ref: str) -> str:
        if not REF.fullmatch(ref):
            raise CapabilityError("malformed secret reference in the version's settings")
        return f"{self._prefix}secret:{ref.partition(':')[2]}"
