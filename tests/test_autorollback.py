"""Auto-rollback: policy parsing, the sliding-window error rate on a hand-driven clock, the registry rollback, and
outcomes counted across processes (both registry flavours)."""

from __future__ import annotations

from pathlib import Path

import pytest
from redis_support import redis_url
from support import text_component

from airssys_web import AirssysHost, EmbeddedRegistry, deploy
from airssys_web.errors import CapabilityError, RegistryUnavailable
from airssys_web.lifecycle.autorollback import ACTOR, AutoRollback, ErrorRateWatch, Policy, SharedCounts
from airssys_web.lifecycle.registry import open_registry


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Counter:
    def __init__(self) -> None:
        self.completed = 0
        self.failed = 0

    def add(self, ok: int = 0, bad: int = 0) -> None:
        self.completed += ok + bad
        self.failed += bad

    def __call__(self) -> tuple[int, int]:
        return self.completed, self.failed


def test_policy_parses_the_documented_form() -> None:
    p = Policy.parse("error-rate=5%,window=30s,min-requests=20")
    assert (p.error_rate, p.window, p.min_requests) == (0.05, 30.0, 20)
    assert Policy.parse(str(p)) == p
    assert Policy.parse("window=2m").window == 120 and Policy.parse("error-rate=0.1").error_rate == 0.1
    assert Policy.parse(" error-rate = 50% , window=500ms ").window == 0.5


@pytest.mark.parametrize("text", ["", "error-rate", "error-rate=abc", "window=3 days", "min-requests=0",
                                  "error-rate=100%", "colour=red", "window=0s"])
def test_policy_rejects_bad_input(text: str) -> None:
    with pytest.raises(CapabilityError, match="auto-rollback"):
        Policy.parse(text)


def test_watch_needs_min_requests_before_judging() -> None:
    clock, counts = Clock(), Counter()
    watch = ErrorRateWatch(Policy(0.05, 30, 20), counts, timer=clock)
    counts.add(bad=19)
    assert watch.observe() is None  # 19 failures but below min-requests
    counts.add(bad=1)
    reason = watch.observe()
    assert reason is not None and "20 of 20 requests failed" in reason and "> 5%" in reason


def test_watch_rate_threshold_is_exclusive() -> None:
    clock, counts = Clock(), Counter()
    watch = ErrorRateWatch(Policy(0.10, 30, 10), counts, timer=clock)
    counts.add(ok=90, bad=10)  # exactly 10%: not more than the threshold
    assert watch.observe() is None
    counts.add(bad=1)
    assert watch.observe() is not None


def test_old_failures_slide_out_of_the_window() -> None:
    clock, counts = Clock(), Counter()
    watch = ErrorRateWatch(Policy(0.05, 30, 20), counts, timer=clock)
    counts.add(ok=15, bad=4)  # 19 requests: not enough to judge
    assert watch.observe() is None
    clock.now += 31  # those requests are now older than the window
    counts.add(ok=30)
    assert watch.observe() is None
    clock.now += 31
    counts.add(ok=19, bad=1)  # 1 of 20 in this window: 5% is not more than 5%
    assert watch.observe() is None
    clock.now += 1
    counts.add(bad=2)
    reason = watch.observe()  # the window starts at the last sample before it: the 30 ok requests slid out
    assert reason is not None and "3 of 22" in reason


def test_counts_before_arming_are_ignored() -> None:
    clock, counts = Clock(), Counter()
    counts.add(bad=100)
    watch = ErrorRateWatch(Policy(0.05, 30, 20), counts, timer=clock)
    counts.add(ok=20)
    assert watch.observe() is None


def test_trip_rolls_back_through_the_registry_and_records_why(tmp_path: Path) -> None:
    clock, counts = Clock(), Counter()
    with EmbeddedRegistry(tmp_path) as reg:
        deploy(reg, "a", text_component("A1"), version="1.0.0", route="/a")
        deploy(reg, "a", text_component("A2"), version="1.1.0", route="/a")
        guard = AutoRollback(reg, timer=clock)
        guard.arm("a", "1.1.0", "error-rate=5%,window=30s,min-requests=20", 1, counts)
        guard.arm("a", "1.1.0", "error-rate=5%,window=30s,min-requests=20", 1, counts)  # same: keeps its window
        counts.add(ok=10, bad=10)
        done = guard.check()
        assert [(n, v) for n, v, _ in done] == [("a", "1.1.0")]
        assert reg.get_deployment("a").active_version == "1.0.0"
        last = reg.history("a")[-1]
        assert (last.action, last.actor, last.version) == ("rollback", ACTOR, "1.0.0")
        assert "10 of 20 requests failed" in last.detail
        assert guard.watching() == {}
        assert guard.check() == []  # disarmed after acting


def test_trip_after_a_newer_change_does_nothing(tmp_path: Path) -> None:
    clock, counts = Clock(), Counter()
    with EmbeddedRegistry(tmp_path) as reg:
        deploy(reg, "a", text_component("A1"), version="1.0.0", route="/a")
        deploy(reg, "a", text_component("A2"), version="1.1.0", route="/a")
        guard = AutoRollback(reg, timer=clock)
        guard.arm("a", "1.1.0", "error-rate=5%,min-requests=1", 1, counts)
        deploy(reg, "a", text_component("A3"), version="1.2.0", route="/a")  # someone deployed meanwhile
        counts.add(bad=5)
        assert guard.check() == []
        assert reg.get_deployment("a").active_version == "1.2.0"


def test_host_watches_the_stored_policy_and_rolls_back(tmp_path: Path) -> None:
    """End to end without a server: a failing version deployed with a policy is undone by the host."""
    with EmbeddedRegistry(tmp_path) as reg:
        deploy(reg, "a", text_component("fine"), version="1.0.0", route="/a")
        dep = deploy(reg, "a", text_component("broken", status=500), version="1.1.0", route="/a")
        reg.deploy("a", "1.1.0", sha256=dep.sha256, auto_rollback="error-rate=5%,window=30s,min-requests=5")
        host = AirssysHost(reg)
        host.start(watch=False)  # this test drives the checks itself
        try:
            gen = host.generations()["a"]
            assert host.autorollback.watching() == {"a": "1.1.0"}
            for _ in range(5):
                gen.outcome(gen.call("GET", "/a").status)
            assert [v for _, v, _ in host.autorollback.check()] == ["1.1.0"]
            host.sync()
            assert host.generations()["a"].version == "1.0.0"
            assert host.generations()["a"].call("GET", "/a").body == b"fine"
            assert host.autorollback.watching() == {}
        finally:
            host.close()
        assert reg.history("a")[-1].actor == ACTOR


@pytest.mark.parametrize("flavour", ["embedded", "redis"])
def test_outcomes_are_counted_across_processes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, flavour: str) -> None:
    """Two hosts (two workers, or two machines) each see 6 failures: neither reaches min-requests=10 alone, together
    they do, and the one that finds the rate too high rolls back for both."""
    monkeypatch.setenv("AIRSSYS_WEB_CACHE", str(tmp_path / "cache"))
    location = str(tmp_path / "reg") if flavour == "embedded" else redis_url(tmp_path)
    with open_registry(location) as reg:
        deploy(reg, "a", text_component("fine"), version="1.0.0", route="/a")
        dep = deploy(reg, "a", text_component("broken", status=500), version="1.1.0", route="/a")
        reg.deploy("a", "1.1.0", sha256=dep.sha256, auto_rollback="error-rate=5%,window=30s,min-requests=10")
    hosts = [AirssysHost(location), AirssysHost(location)]
    try:
        for host in hosts:
            host.start(watch=False)  # the test drives the checks
            gen = host.generations()["a"]
            for _ in range(6):
                gen.outcome(gen.call("GET", "/a").status)
        assert hosts[0].autorollback.check() == []  # 6 of 6 failed, but 6 < min-requests
        done = hosts[1].autorollback.check()
        assert [(n, v) for n, v, _ in done] == [("a", "1.1.0")] and "12 of 12 requests failed" in done[0][2]
        for host in hosts:
            host.sync()
            assert host.generations()["a"].version == "1.0.0"
    finally:
        for host in hosts:
            host.close()


def test_an_unreadable_counter_skips_the_sample_and_reports_later(tmp_path: Path) -> None:
    class Flaky:
        def __init__(self) -> None:
            self.down, self.total = False, (0, 0)

        def add(self, component: str, version: str, completed: int, failed: int) -> tuple[int, int]:
            if self.down:
                raise RegistryUnavailable("gone")
            self.total = (self.total[0] + completed, self.total[1] + failed)
            return self.total

        def totals(self, component: str, version: str) -> tuple[int, int]:
            if self.down:
                raise RegistryUnavailable("gone")
            return self.total

    store, local = Flaky(), Counter()
    shared = SharedCounts(store, "a", "1.0.0", local)
    watch = ErrorRateWatch(Policy(0.05, 30, 5), shared, timer=Clock())
    store.down = True
    local.add(bad=5)
    assert shared() is None and watch.observe() is None  # nothing judged while the registry is away
    store.down = False
    assert watch.observe() is not None  # the 5 failures were reported once it answered again
    assert store.total == (5, 5)
