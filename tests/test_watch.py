"""The registry watcher: health transitions logged once each, backoff while the registry is unreachable, recovery."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from support import wait_until

from airssys_web.errors import RegistryUnavailable
from airssys_web.lifecycle.registry import EmbeddedRegistry
from airssys_web.lifecycle.watch import RegistryHealth, RegistryWatch


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


def test_health_goes_down_once_and_up_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    clock, seen = Clock(), []
    with EmbeddedRegistry(tmp_path) as registry:
        watch = RegistryWatch(registry, lambda: None, clock=clock)
        watch.on_change.append(seen.append)
        with caplog.at_level(logging.INFO, logger="airssys_web.lifecycle.watch"):
            for _ in range(3):
                watch.failed(RegistryUnavailable("cannot reach the registry at redis://x:1/0"))
                clock.now += 1
            down = watch.health
            assert (down.reachable, down.retries, down.error) == (False, 3, "cannot reach the registry at redis://x:1/0")
            assert down.to_json()["state"] == "unreachable" and down.to_json()["since"].startswith("2023-11-14")
            clock.now += 10
            watch.succeeded()
            watch.succeeded()
    up = watch.health
    assert up.reachable and up.retries == 0 and up.last_ok == clock.now
    assert [h.reachable for h in seen] == [False, True]  # the metrics hook sees each transition once
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2, messages
    assert "is unreachable" in messages[0] and "reachable again after 13.0s (3 retries)" in messages[1]


def test_the_watcher_backs_off_while_unreachable_and_recovers(tmp_path: Path) -> None:
    calls: list[float] = []
    down = threading.Event()
    down.set()

    def tick() -> None:
        calls.append(len(calls))
        if down.is_set():
            raise RegistryUnavailable("gone")

    with EmbeddedRegistry(tmp_path) as registry:
        watch = RegistryWatch(registry, tick, poll_interval=0.005, max_backoff=0.04)
        watch.start()
        try:
            wait_until(lambda: watch.health.retries >= 4, 10, "four failed attempts")
            assert not watch.health.reachable
            down.clear()
            wait_until(lambda: watch.health.reachable, 10, "the watcher reaching the registry again")
        finally:
            watch.close()


def test_a_registry_that_pushes_changes_wakes_the_watcher(tmp_path: Path) -> None:
    class Pushing(EmbeddedRegistry):
        callbacks: list[Callable[[], None]] = []

        def subscribe(self, callback: Callable[[], None]) -> Callable[[], None]:
            self.callbacks.append(callback)
            return lambda: self.callbacks.remove(callback)

    ticked = threading.Event()
    with Pushing(tmp_path) as registry:
        watch = RegistryWatch(registry, ticked.set, poll_interval=3600)  # polling alone would never come round
        watch.start()
        try:
            registry.callbacks[0]()
            wait_until(ticked.is_set, 10, "a tick after the push")
        finally:
            watch.close()
        assert registry.callbacks == []
    assert isinstance(watch.health, RegistryHealth)
