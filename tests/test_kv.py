"""The embedded KV store: namespaces, quotas checked inside the write transaction, persistence, and a real guest."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from caps_support import generation, imports_guest

from airssys_web.capabilities.kv import KVNamespace, KVQuota, KVUsage, SqliteKVStore
from airssys_web.errors import CapabilityError, KVError
from airssys_web.lifecycle.services import HostServices
from airssys_web.runtime.imports import KV_NOT_GRANTED

QUOTA = KVQuota(max_key_bytes=8, max_value_bytes=16, max_keys=3, max_total_bytes=40)


@pytest.fixture
def store(tmp_path: Path) -> SqliteKVStore:
    kv = SqliteKVStore(tmp_path / "kv.db")
    yield kv
    kv.close()


def test_get_set_delete(store: SqliteKVStore) -> None:
    ns = KVNamespace(store, "a", QUOTA)
    assert ns.get("k") is None
    ns.set("k", b"v1")
    ns.set("k", b"v2")
    assert ns.get("k") == b"v2"
    ns.delete("k")
    ns.delete("k")  # deleting a missing key is fine
    assert ns.get("k") is None
    assert ns.usage() == KVUsage(0, 0)


def test_namespaces_are_isolated(store: SqliteKVStore) -> None:
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
def test_key_and_value_limits(store: SqliteKVStore, key: str, value: bytes, message: str) -> None:
    with pytest.raises(KVError, match=message):
        KVNamespace(store, "a", QUOTA).set(key, value)


def test_key_count_and_total_bytes_quotas(store: SqliteKVStore) -> None:
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


def test_refused_write_changes_nothing(store: SqliteKVStore) -> None:
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


def test_concurrent_writers_cannot_overshoot_a_quota(tmp_path: Path) -> None:
    stores = [SqliteKVStore(tmp_path / "kv.db") for _ in range(2)]  # two "processes"
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
    for s in stores:
        s.close()


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


def test_keys_lists_one_namespace_sorted(store: SqliteKVStore) -> None:
    ns = KVNamespace(store, "a", QUOTA)
    for key in ("b", "a", "c"):
        ns.set(key, b"v")
    KVNamespace(store, "a/cache", QUOTA).set("z", b"v")  # a Spin store label: a namespace of its own
    assert ns.keys() == ["a", "b", "c"]
    assert store.keys("a/cache") == ["z"] and store.keys("nobody") == []
