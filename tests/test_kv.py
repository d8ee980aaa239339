"""The KV stores: namespaces, quotas checked inside the write (SQLite and Redis, the same tests), persistence, and a
real guest on either."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from caps_support import generation, imports_guest
from redis_support import RedisServer, redis_url

from airssys_web.capabilities.kv import KVNamespace, KVQuota, KVStore, KVUsage, SqliteKVStore
from airssys_web.capabilities.redis_stores import RedisKVStore
from airssys_web.errors import CapabilityError, KVError
from airssys_web.lifecycle.registry.redis_registry import RedisRegistry
from airssys_web.lifecycle.services import HostServices
from airssys_web.runtime.imports import KV_NOT_GRANTED

QUOTA = KVQuota(max_key_bytes=8, max_value_bytes=16, max_keys=3, max_total_bytes=40)


Opener = Callable[[], KVStore]


@pytest.fixture(params=["sqlite", "redis"])
def opener(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Opener]:
    """Opens another handle on one store, as another process would."""
    opened: list[KVStore] = []
    clients: list[redis.Redis] = []

    def open_store() -> KVStore:
        if request.param == "sqlite":
            store: KVStore = SqliteKVStore(tmp_path / "kv.db")
        else:
            url = redis_url(tmp_path)
            clients.append(redis.Redis.from_url(url.partition("?")[0]))
            store = RedisKVStore(clients[-1], url.rpartition("prefix=")[2], url)
        opened.append(store)
        return store

    yield open_store
    for store in opened:
        store.close()
    for client in clients:
        client.close()


@pytest.fixture
def store(opener: Opener) -> KVStore:
    return opener()


def test_get_set_delete(store: KVStore) -> None:
    ns = KVNamespace(store, "a", QUOTA)
    assert ns.get("k") is None
    ns.set("k", b"v1")
    ns.set("k", b"v2")
    assert ns.get("k") == b"v2"
    ns.delete("k")
    ns.delete("k")  # deleting a missing key is fine
    assert ns.get("k") is None
    assert ns.usage() == KVUsage(0, 0)


def test_namespaces_are_isolated(store: KVStore) -> None:
    a, b = KVNamespace(store, "a", QUOTA), KVNamespace(store, "b", QUOTA)
    a.set("k", b"from a")
    assert b.get("k") is None
    b.set("k", b"from b")
    assert (a.get("k"), b.get("k")) == (b"from a", b"from b")
    b.delete("k")
    assert a.get("k") == b"from a"


@pytest.mark.parametrize(("key", "value", "message"), [
    ("", b"v", "the key is empty"),
    ("123456789", b"v", "key of 9 bytes is over the 8-byte limit"),
    ("\u00e9\u00e9\u00e9\u00e9\u00e9", b"v", "key of 10 bytes"),
    ("k", b"x" * 17, "value of 17 bytes is over the 16-byte limit"),
])
def test_key_and_value_limits(store: KVStore, key: str, value: bytes, message: str) -> None:
    with pytest.raises(KVError, match=message):
        KVNamespace(store, "a", QUOTA).set(key, value)


def test_key_count_and_total_bytes_quotas(store: KVStore) -> None:
    ns = KVNamespace(store, "a", QUOTA)
    for key in ("k1", "k2", "k3"):
        ns.set(key, b"x" * 10)  # 12 bytes each
    assert ns.usage() == KVUsage(3, 36)
    with pytest.raises(KVError, match="at most 3 keys"):
        ns.set("k4", b"")
    ns.set("k1", b"x" * 14)  # replacing counts the difference: 36 - 12 + 16 = 40, exactly the limit
    with pytest.raises(KVError, match="would store 41 bytes, over the 40-byte limit"):
        ns.set("k2", b"x" * 11)
    ns.delete("k3")
    ns.set("k4", b"y")
    assert ns.usage() == KVUsage(3, 31)
    other = KVNamespace(store, "b", QUOTA)
    other.set("k", b"x" * 16)  # quotas are per component


def test_refused_write_changes_nothing(store: KVStore) -> None:
    ns = KVNamespace(store, "a", QUOTA)
    ns.set("k", b"keep")
    with pytest.raises(KVError):
        ns.set("k", b"x" * 100)
    assert ns.get("k") == b"keep" and ns.usage() == KVUsage(1, 5)


def test_data_survives_reopening(tmp_path: Path) -> None:
    first = SqliteKVStore(tmp_path / "kv.db")
    KVNamespace(first, "a", QUOTA).set("k", b"v")
    first.close()
    with pytest.raises(KVError, match="closed"):
        first.get("a", "k")
    second = SqliteKVStore(tmp_path / "kv.db")
    assert KVNamespace(second, "a", QUOTA).get("k") == b"v"
    assert second.usage("a") == KVUsage(1, 2)
    second.close()


def test_concurrent_writers_cannot_overshoot_a_quota(opener: Opener) -> None:
    stores = [opener() for _ in range(2)]  # two "processes"
    quota = KVQuota(max_keys=20)
    errors: list[str] = []

    def writer(n: int) -> None:
        ns = KVNamespace(stores[n % 2], "a", quota)
        for i in range(10):
            try:
                ns.set(f"w{n}-{i}", b"v")
            except KVError as e:
                errors.append(str(e))

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert stores[0].usage("a").keys == 20
    assert len(errors) == 20 and all("at most 20 keys" in e for e in errors)


@pytest.mark.parametrize("fields", [{"max_keys": 0}, {"max_value_bytes": -1}, {"max_key_bytes": True},
                                    {"max_total_bytes": 1 << 41}])
def test_quota_validation(fields: dict[str, int]) -> None:
    with pytest.raises(CapabilityError, match="invalid kv quota"):
        KVQuota(**fields)


def test_unopenable_store_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "kv.db").mkdir()
    with pytest.raises(KVError, match="cannot open"):
        SqliteKVStore(tmp_path / "kv.db")


# -- through a real guest --------------------------------------------------------------------------------------

def test_guest_uses_its_namespace_with_quotas(tmp_path: Path) -> None:
    services = HostServices(tmp_path)
    settings = {"kv": {"max_value_bytes": 4}}
    a = generation(imports_guest(), settings, services, name="alpha")
    b = generation(imports_guest(), settings, services, name="beta")
    assert a.call("@s", "count", body=b"1").status == 204
    assert a.call("@g", "count").body == b"1"
    assert b.call("@g", "count").status == 404  # beta cannot see alpha's key
    refused = a.call("@s", "count", body=b"12345")
    assert (refused.status, refused.headers) == (500, [("error", "kv: value of 5 bytes is over the 4-byte limit")])
    assert a.call("@s", "", body=b"1").headers == [("error", "kv: the key is empty")]
    assert a.call("@d", "count").status == 204 and a.call("@g", "count").status == 404
    assert a.pool.discarded == 0  # err results are answers, not traps
    for gen in (a, b):
        gen.close()
    services.close()


def test_guest_without_the_grant_gets_an_err(tmp_path: Path) -> None:
    gen = generation(imports_guest(), {}, HostServices(tmp_path))
    for method in ("@g", "@s", "@d"):
        r = gen.call(method, "key", body=b"v")
        assert (r.status, r.headers) == (500, [("error", KV_NOT_GRANTED)])
    gen.close()
    assert not (tmp_path / "kv.db").exists()  # nothing was even opened


def test_keys_lists_one_namespace_sorted(store: KVStore) -> None:
    ns = KVNamespace(store, "a", QUOTA)
    for key in ("b", "a", "c"):
        ns.set(key, b"v")
    KVNamespace(store, "a/cache", QUOTA).set("z", b"v")  # a Spin store label: a namespace of its own
    assert ns.keys() == ["a", "b", "c"]
    assert store.keys("a/cache") == ["z"] and store.keys("nobody") == []


def test_guest_kv_lives_in_a_redis_registry_and_fails_cleanly_without_it(tmp_path: Path) -> None:
    server = RedisServer(tmp_path)
    try:
        with RedisRegistry(server.url(), artifacts_dir=tmp_path / "artifacts") as registry:
            services = HostServices.for_registry(registry)
            gen = generation(imports_guest(), {"kv": {}}, services, name="alpha")
            assert gen.call("@s", "count", body=b"7").status == 204
            other = registry.kv_store()  # what another host sees
            assert other.get("alpha", "count") == b"7" and other.usage("alpha") == KVUsage(1, 6)
            server.kill()
            r = gen.call("@g", "count")
            assert r.status == 500 and r.headers[0][1].startswith("kv: storage unavailable")
            assert gen.pool.discarded == 0  # an err result, not a trap: the instance serves on
            gen.close()
            services.close()
    finally:
        server.stop()
