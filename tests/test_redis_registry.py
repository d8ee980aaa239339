"""What only the Redis flavour has (the contract itself is ``test_registry.py``): its URL, opening it, blobs checked
against their names, the pushed change feed, and its shared secrets; plus :func:`open_registry` for both flavours."""

from __future__ import annotations

import threading
from pathlib import Path

import httpx
import pytest
import redis
from conftest import find_free_port, run_uvicorn
from redis_support import redis_url, session_redis
from starlette.applications import Starlette
from support import text_component, wait_until

from airssys_web import AirssysMiddleware, deploy
from airssys_web.errors import InvalidName, RegistryError, RegistryUnavailable
from airssys_web.lifecycle.registry import EmbeddedRegistry, describe_location, open_registry
from airssys_web.lifecycle.registry.redis_registry import REDIS_SCHEMA, RedisRegistry
from airssys_web.lifecycle.registry.redis_store import RedisLocation


@pytest.mark.parametrize(("text", "url", "prefix"), [
    ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0", "airssys:"),
    ("redis://localhost", "redis://localhost", "airssys:"),
    ("redis://h:6379/3?prefix=shop:", "redis://h:6379/3", "shop:"),
    ("rediss://user:pw@h:6380/1", "rediss://user:pw@h:6380/1", "airssys:"),
    ("unix:///run/redis.sock?db=2", "unix:///run/redis.sock?db=2", "airssys:"),
])
def test_locations_parse(text: str, url: str, prefix: str) -> None:
    location = RedisLocation.parse(text)
    assert (location.url, location.prefix) == (url, prefix)


@pytest.mark.parametrize(("text", "why"), [
    ("http://h:6379/0", "the scheme must be one of"),
    ("redis://:6379/0", "it names no host"),
    ("redis://h:99999/0", "the port is not a number"),
    ("redis://h:6379/zero", "the database must be a number"),
    ("redis://h:6379/0?colour=red", "unknown option(s) colour"),
    ("redis://h:6379/0?prefix=a b", "the prefix must be"),
    ("unix://", "give the socket's path"),
])
def test_bad_locations_say_what_is_wrong(text: str, why: str) -> None:
    with pytest.raises(InvalidName, match="invalid registry URL") as caught:
        RedisLocation.parse(text)
    assert why in str(caught.value) and "redis://127.0.0.1:6379/0" in str(caught.value)


def test_a_password_is_never_shown() -> None:
    text = "redis://app:s3cret@h:6379/0?prefix=x:"
    assert "s3cret" not in str(RedisLocation.parse(text)) and "app:***@h" in str(RedisLocation.parse(text))
    assert "s3cret" not in describe_location(text)
    with pytest.raises(InvalidName) as caught:
        RedisLocation.parse("redis://app:s3cret@h:6379/x")
    assert "s3cret" not in str(caught.value)


def test_open_registry_takes_a_directory_a_url_or_a_registry(tmp_path: Path) -> None:
    with open_registry(tmp_path / "reg") as embedded:
        assert isinstance(embedded, EmbeddedRegistry)
        assert open_registry(embedded) is embedded
    with open_registry(redis_url(tmp_path)) as on_redis:
        assert isinstance(on_redis, RedisRegistry) and on_redis.change_token() == 0
    with pytest.raises(InvalidName, match="unknown registry location 'ftp://x'"):
        open_registry("ftp://x")


def test_an_unreachable_redis_is_a_clear_error() -> None:
    url = f"redis://127.0.0.1:{find_free_port()}/0"
    with pytest.raises(RegistryUnavailable, match=rf"cannot reach the registry at {url} \(opening\).*Redis is running"):
        RedisRegistry(url)


def test_a_newer_layout_is_refused(tmp_path: Path) -> None:
    url = redis_url(tmp_path)
    with redis.Redis.from_url(url.partition("?")[0]) as client:
        client.set(RedisLocation.parse(url).prefix + "schema", REDIS_SCHEMA + 1)
    with pytest.raises(RegistryError, match="newer than this airssys-web supports"):
        RedisRegistry(url, artifacts_dir=tmp_path)


def test_a_corrupt_blob_is_detected_and_repaired_by_storing_it_again(tmp_path: Path) -> None:
    url = redis_url(tmp_path)
    with RedisRegistry(url, artifacts_dir=tmp_path) as reg:
        sha = reg.blobs.put(b"\0asm good bytes")
        with redis.Redis.from_url(url.partition("?")[0]) as client:
            client.set(f"{reg.location.prefix}blob:{sha}", b"\0asm evil bytes")
        with pytest.raises(RegistryError, match="is corrupt"):
            reg.blobs.read(sha)
        reg.blobs.put(b"\0asm good bytes")
        assert reg.blobs.read(sha) == b"\0asm good bytes"


def test_changes_are_pushed_to_subscribers(tmp_path: Path) -> None:
    url = redis_url(tmp_path)
    with RedisRegistry(url, artifacts_dir=tmp_path) as watcher, RedisRegistry(url, artifacts_dir=tmp_path) as writer:
        heard = threading.Event()
        unsubscribe = watcher.subscribe(heard.set)
        wait_until(heard.is_set, 10, "the subscription's first call (on connecting)")
        heard.clear()
        writer.audit.append("deploy", "a", "ok", token_id="t")  # not a change: nothing to push
        writer.deploy("a", "1.0.0", sha256=writer.blobs.put(b"\0asm a"), route="/a")
        wait_until(heard.is_set, 10, "a pushed change")
        unsubscribe()


def test_every_handle_shares_the_secret_store_and_derived_keys(tmp_path: Path) -> None:
    url = redis_url(tmp_path)
    with RedisRegistry(url, artifacts_dir=tmp_path) as one, RedisRegistry(url, artifacts_dir=tmp_path) as two:
        ref = one.secrets.put("hunter2")
        assert two.secrets.get(ref) == "hunter2" and two.secrets.put("hunter2") == ref
        assert one.secrets.derive_key("cookies") == two.secrets.derive_key("cookies") != two.secrets.derive_key("x")
    other = session_redis().url(prefix="another-registry:")
    with RedisRegistry(other, artifacts_dir=tmp_path) as three:
        assert three.secrets.put("hunter2") != ref  # keyed per registry


def test_a_registry_that_lost_its_data_is_not_taken_for_an_empty_one(tmp_path: Path) -> None:
    url = redis_url(tmp_path)
    with RedisRegistry(url, artifacts_dir=tmp_path) as reg:
        reg.deploy("a", "1.0.0", sha256=reg.blobs.put(b"\0asm a"), route="/a")
        assert reg.change_token() == 1
        with redis.Redis.from_url(url.partition("?")[0]) as client:
            client.delete(*client.keys(reg.location.prefix + "*"))  # what a restart without persistence leaves
        with pytest.raises(RegistryUnavailable, match="has lost its data"):
            reg.change_token()  # a host's watcher backs off and keeps serving instead of unloading everything


def test_the_middleware_takes_a_redis_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``AirssysMiddleware(app, registry="redis://...")`` from Python: served, swapped when the registry changes."""
    monkeypatch.setenv("AIRSSYS_WEB_CACHE", str(tmp_path / "cache"))
    url = redis_url(tmp_path)
    with RedisRegistry(url, artifacts_dir=tmp_path / "cli") as reg:
        deploy(reg, "hello", text_component("from redis"), version="1.0.0", route="/hello")
        with run_uvicorn(AirssysMiddleware(Starlette(), registry=url)) as base:
            assert httpx.get(base + "/hello").text == "from redis"
            deploy(reg, "hello", text_component("swapped"), version="1.1.0", route="/hello")
            wait_until(lambda: httpx.get(base + "/hello").text == "swapped", 10, "the swap pushed through Redis")
