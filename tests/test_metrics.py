"""airssys_web.observability.metrics and .stats: the series, exported from per-generation counters.

The server tests scrape ``/_airssys/metrics`` of a real uvicorn server after sending a known number of requests to
real components (including ones that trap, time out, hit their memory cap or answer an invalid status) and
compare; the unit tests check the copying, the label lifecycle and the multiprocess files directly.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path

import httpx
import pytest
from caps_support import counting_server, generation, imports_guest
from prometheus_client import Histogram
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette
from support import make_generation, text_component, wait_until

from airssys_web import AirssysMiddleware, EmbeddedRegistry, deploy
from airssys_web.errors import (
    BadGuestResponse,
    BodyTooLarge,
    GuestMemoryLimit,
    GuestTimeout,
    GuestTrap,
    HostClosed,
    PoolExhausted,
)
from airssys_web.lifecycle.api import DeployRequest, Plan
from airssys_web.lifecycle.settings import VersionSettings
from airssys_web.lifecycle.strategies import rollout_local
from airssys_web.observability.metrics import Metrics, add_timings
from airssys_web.observability.stats import BUCKETS, RequestStats, Timings, error_kind

Server = Callable[..., AbstractContextManager[str]]
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(text: str) -> Samples:
    """``{(sample name, labels): value}`` from a Prometheus text exposition."""
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum over every series of ``name`` whose labels include ``labels``."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= ls)


# -- the counters ------------------------------------------------------------------------------------------------

def test_error_kinds() -> None:
    assert error_kind(GuestTrap("x")) == 0
    assert error_kind(GuestTimeout("x")) == 1
    assert error_kind(GuestMemoryLimit("x")) == 2
    assert error_kind(BadGuestResponse("x")) == 3
    assert error_kind(PoolExhausted("x")) == 4
    assert error_kind(HostClosed("x")) is None  # shutting down is not the guest's failure
    assert error_kind(BodyTooLarge("x")) is None  # refused before the guest ran


def test_request_counts_status_and_bucket() -> None:
    stats = RequestStats()
    stats.request(200, 0.0004)
    stats.request(200, 0.0005)  # a bucket's bound is inclusive (Prometheus' "le")
    stats.request(503, 100.0)
    assert stats.statuses[200] == 2 and stats.statuses[503] == 1
    assert stats.timings.counts[0] == 2 and stats.timings.counts[len(BUCKETS)] == 1  # +Inf
    assert stats.timings.sum == pytest.approx(100.0009)


def test_add_timings_matches_observe() -> None:
    """The one use of prometheus-client's internals (a histogram child's ``_buckets`` and ``_sum``): adding
    counted observations must give exactly what ``observe()`` per observation gives."""
    observed = Histogram("a_seconds", "a", buckets=BUCKETS, registry=None)
    added = Histogram("b_seconds", "b", buckets=BUCKETS, registry=None)
    values = [0.0001, 0.003, 0.003, 0.2, 7.0, 45.0]
    now = Timings()
    for v in values:
        observed.observe(v)
        now.counts[sum(1 for b in BUCKETS if b < v)] += 1
        now.sum += v
    add_timings(added, now, Timings())

    def samples(h: Histogram) -> list[tuple[str, dict[str, str], float]]:
        return [(s.name[2:], s.labels, s.value) for m in h.collect() for s in m.samples if "created" not in s.name]

    assert samples(added) == samples(observed)


def test_generations_are_exported_until_they_close(wat_guest: Callable[[str], bytes]) -> None:
    metrics = Metrics()
    one, two = make_generation(wat_guest("hello"), name="h"), make_generation(wat_guest("hello"), name="h")
    metrics.bind(one)
    metrics.bind(two)  # the same (component, version): a version draining while its successor starts
    one.stats.request(200, 0.001)
    two.stats.request(200, 0.001)
    two.stats.request(500, 0.001)
    samples = scrape(metrics.render()[0].decode())
    assert value(samples, "airssys_requests_total", component="h", version="1.0.0", status="200") == 2
    assert value(samples, "airssys_request_duration_seconds_count", component="h", version="1.0.0") == 3
    metrics.release(one)
    samples = scrape(metrics.render()[0].decode())
    assert value(samples, "airssys_requests_total", component="h", version="1.0.0", status="200") == 2  # kept
    two.stats.request(200, 0.001)
    metrics.release(two)  # the last one: counted to the end, then its series go
    assert not any(n.startswith("airssys_request") for n, _ in scrape(metrics.render()[0].decode()))
    one.close()
    two.close()


def test_instances_gauge(wat_guest: Callable[[str], bytes]) -> None:
    metrics = Metrics()
    gen = make_generation(wat_guest("hello"), name="g")
    gen.warm()
    metrics.bind(gen)
    slot = gen.pool.try_acquire()
    assert slot is not None
    samples = scrape(metrics.render()[0].decode())
    busy = value(samples, "airssys_instances", component="g", version="1.0.0", state="busy")
    assert busy >= 1  # the slot taken (and maybe the one the pool is creating ahead)
    assert busy + value(samples, "airssys_instances", component="g", version="1.0.0", state="idle") == gen.pool.size
    gen.pool.release(slot)
    wait_until(lambda: gen.pool.idle == gen.pool.size)  # the pool grew one ahead in the background
    samples = scrape(metrics.render()[0].decode())
    assert value(samples, "airssys_instances", component="g", version="1.0.0", state="busy") == 0
    assert value(samples, "airssys_instances", component="g", version="1.0.0", state="idle") == gen.pool.size
    gen.close()


def test_outbound_outcomes(tmp_path: Path) -> None:
    metrics = Metrics()
    with counting_server() as upstream:
        granted = generation(imports_guest(), {"outbound": [f"http://127.0.0.1:{upstream.port}"]},
                             name="out")
        bare = generation(imports_guest(), {}, name="bare")
        for gen in (granted, bare):
            metrics.bind(gen)
        assert granted.call("GET", f"http://127.0.0.1:{upstream.port}/x").status == 200
        granted.call("GET", "http://127.0.0.1:1/not-granted")
        granted.call("GET", f"http://127.0.0.1:{upstream.port + 0}/again")
        bare.call("GET", "http://example.com/")  # nothing granted: denied without a connection
    samples = scrape(metrics.render()[0].decode())
    assert value(samples, "airssys_outbound_requests_total", component="out", version="1.0.0",
                 outcome="allowed") == 2
    assert value(samples, "airssys_outbound_requests_total", component="out", version="1.0.0",
                 outcome="denied") == 1
    assert value(samples, "airssys_outbound_requests_total", component="bare", version="1.0.0",
                 outcome="denied") == 1
    granted.close()
    bare.close()


# -- a real server -----------------------------------------------------------------------------------------------

@pytest.fixture
def served(tmp_path: Path, wat_guest: Callable[[str], bytes], uvicorn_server: Server) -> Iterator[tuple[str, Path]]:
    reg = tmp_path / "reg"
    with EmbeddedRegistry(reg) as registry:
        deploy(registry, "hello", text_component("v1"), version="1.0.0", route="/hello")
        deploy(registry, "trap", wat_guest("trap"), version="1.0.0", route="/trap")
        deploy(registry, "spin", wat_guest("spin"), version="1.0.0", route="/spin",
               settings=VersionSettings.of(timeout=0.05))
        deploy(registry, "grow", wat_guest("grow"), version="1.0.0", route="/grow",
               settings=VersionSettings.of(memory=2 * 2**20))
        deploy(registry, "bad", wat_guest("bad_status"), version="1.0.0", route="/bad")
    app = AirssysMiddleware(Starlette(), registry=reg, secret="s" * 32)
    with uvicorn_server(app) as url:
        yield url, reg


def test_scrape_counts_what_was_sent(served: tuple[str, Path]) -> None:
    url, _ = served
    sent = {"/hello": (40, 200), "/trap": (7, 500), "/spin": (3, 504), "/grow": (3, 500), "/bad": (5, 502)}
    with httpx.Client(base_url=url) as client:
        for path, (n, status) in sent.items():
            for _ in range(n):
                assert client.get(path).status_code == status
        r = client.get("/_airssys/metrics")  # no token: a Prometheus endpoint
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    samples = scrape(r.text)
    for path, (n, status) in sent.items():
        name = path[1:]
        assert value(samples, "airssys_requests_total", component=name, version="1.0.0", status=str(status)) == n
        assert value(samples, "airssys_request_duration_seconds_count", component=name, version="1.0.0") == n
    errors = {"trap": "trap", "spin": "timeout", "grow": "memory", "bad": "bad_response"}
    for name, kind in errors.items():
        assert value(samples, "airssys_guest_errors_total", component=name, version="1.0.0",
                     kind=kind) == sent[f"/{name}"][0]
    assert total(samples, "airssys_guest_errors_total", component="hello") == 0
    assert total(samples, "airssys_requests_total") == sum(n for n, _ in sent.values())
    assert value(samples, "airssys_canary_percent", component="hello", version="1.0.0") == 100
    assert total(samples, "airssys_instances", component="hello") >= 1


def test_request_ids(served: tuple[str, Path]) -> None:
    url, _ = served
    with httpx.Client(base_url=url) as client:
        first, second = client.get("/hello"), client.get("/hello")
        ids = {first.headers["x-request-id"], second.headers["x-request-id"]}
        assert len(ids) == 2 and all(len(i) == 16 for i in ids)
        assert client.get("/hello", headers={"x-request-id": "proxy-42.a:b"}).headers["x-request-id"] == \
            "proxy-42.a:b"
        for bad in ("a b", "x" * 200, "é"):
            got = client.get("/hello", headers={"x-request-id": bad.encode()}).headers["x-request-id"]
            assert got != bad and len(got) == 16
        trapped = client.get("/trap", headers={"x-request-id": "trace-me"})
        assert trapped.headers.get_list("x-request-id") == ["trace-me"]
        assert trapped.json()["request_id"] == "trace-me"
        assert "x-request-id" not in client.get("/elsewhere").headers  # the app's own routes are untouched


def test_swaps_and_canary_split(served: tuple[str, Path]) -> None:
    url, reg = served
    with EmbeddedRegistry(reg) as registry:
        deploy(registry, "hello", text_component("v2"), version="2.0.0")
    with httpx.Client(base_url=url) as client:
        wait_until(lambda: client.get("/hello").text == "v2", what="the swap to 2.0.0")
        with EmbeddedRegistry(reg) as registry:
            rollout_local(registry, DeployRequest("hello", text_component("v3"), version="3.0.0",
                                                  plan=Plan.parse("canary", percent=25)))
        wait_until(lambda: 'version="3.0.0"' in client.get("/_airssys/metrics").text, what="the canary")
        samples = scrape(client.get("/_airssys/metrics").text)
    assert value(samples, "airssys_swaps_total", component="hello") == 2
    assert value(samples, "airssys_swap_duration_seconds_count") == 2
    assert value(samples, "airssys_canary_percent", component="hello", version="2.0.0") == 75
    assert value(samples, "airssys_canary_percent", component="hello", version="3.0.0") == 25
    assert total(samples, "airssys_canary_percent", version="1.0.0", component="hello") == 0  # gone


def test_metrics_path_options(tmp_path: Path, uvicorn_server: Server) -> None:
    reg = tmp_path / "reg"
    with EmbeddedRegistry(reg) as registry:
        deploy(registry, "hello", text_component("v1"), version="1.0.0", route="/hello")
    moved = AirssysMiddleware(Starlette(), registry=reg, metrics_path="/metrics")
    off = AirssysMiddleware(Starlette(), registry=reg, metrics_path=None)
    with uvicorn_server(moved) as url:
        assert httpx.get(url + "/metrics").status_code == 200
        assert httpx.get(url + "/_airssys/metrics").status_code == 404  # the app's own 404
        assert httpx.post(url + "/metrics").status_code == 405
    with uvicorn_server(off) as url:
        assert httpx.get(url + "/_airssys/metrics").status_code == 404
    with pytest.raises(ValueError, match="metrics_path"):
        AirssysMiddleware(Starlette(), registry=reg, metrics_path="metrics")


def test_admin_metrics_json(served: tuple[str, Path]) -> None:
    from airssys_web.web.auth import TokenAuthority

    url, _ = served
    token, _ = TokenAuthority("s" * 32).mint("read", 60)
    with httpx.Client(base_url=url, headers={"authorization": f"Bearer {token}"}) as client:
        for _ in range(3):
            client.get("/hello")
        client.get("/trap")
        data = client.get("/_airssys/api/metrics").json()
    assert data["bounds"] == list(BUCKETS)
    rows = {(v["component"], v["version"]): v for v in data["versions"]}
    hello, trap = rows[("hello", "1.0.0")], rows[("trap", "1.0.0")]
    assert hello["requests"] == {"200": 3.0} and hello["percent"] == 100
    assert hello["duration"]["count"] == 3 and hello["duration"]["buckets"][-1] == 3  # cumulative: +Inf has all
    assert trap["errors"] == {"trap": 1.0} and trap["requests"] == {"500": 1.0}


# -- multiprocess mode -------------------------------------------------------------------------------------------

WORKER = textwrap.dedent("""\
    import sys
    from airssys_web.observability.metrics import Metrics
    from airssys_web.observability.stats import RequestStats

    class Gen:
        name, version = "m", "1.0.0"
        def __init__(self):
            self.stats = RequestStats()
            self.pool = type("P", (), {"idle": 2, "size": 3})()

    metrics = Metrics()
    gen = Gen()
    metrics.bind(gen)
    for _ in range(int(sys.argv[1])):
        gen.stats.request(200, 0.002)
    metrics.close()
    """)


def test_a_scrape_survives_a_worker_that_is_starting(tmp_path: Path) -> None:
    """A worker that has just made its metrics file (still empty) does not fail the scrape (it did, with a 500,
    when the supervisor replaced a killed worker): the scrape answers what the other files hold."""
    directory = tmp_path / "mp"
    directory.mkdir()
    env = {"PROMETHEUS_MULTIPROC_DIR": str(directory), "PATH": "/usr/bin:/bin"}
    subprocess.run([sys.executable, "-c", WORKER, "3"], env=env, capture_output=True, text=True, check=True)
    (directory / "counter_424242.db").touch()  # a starting worker's file, not sized yet
    reader = subprocess.run([sys.executable, "-c", textwrap.dedent("""\
        from airssys_web.observability.metrics import Metrics
        print(Metrics().render()[0].decode())
        """)], env=env, capture_output=True, text=True, check=True)
    assert value(scrape(reader.stdout), "airssys_requests_total", component="m", version="1.0.0", status="200") == 3


def test_multiprocess_one_scrape_covers_every_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two processes count into PROMETHEUS_MULTIPROC_DIR; a third reads both. A dead one's live gauges go."""
    directory = tmp_path / "mp"
    directory.mkdir()
    env = {"PROMETHEUS_MULTIPROC_DIR": str(directory), "PATH": "/usr/bin:/bin"}
    pids = []
    for n in (5, 7):
        proc = subprocess.run([sys.executable, "-c", WORKER + "print(__import__('os').getpid())", str(n)], env=env,
                              capture_output=True, text=True, check=True)
        pids.append(int(proc.stdout.strip()))
    reader = subprocess.run([sys.executable, "-c", textwrap.dedent(f"""\
        from airssys_web.observability.metrics import Metrics, mark_dead
        m = Metrics()
        print(m.render()[0].decode())
        print("#SPLIT")
        mark_dead({pids[0]}, {str(directory)!r})
        print(m.render()[0].decode())
        """)], env=env, capture_output=True, text=True, check=True)
    before, after = (scrape(part) for part in reader.stdout.split("#SPLIT"))
    assert value(before, "airssys_requests_total", component="m", version="1.0.0", status="200") == 12
    assert value(before, "airssys_request_duration_seconds_count", component="m", version="1.0.0") == 12
    assert value(before, "airssys_instances", component="m", version="1.0.0", state="idle") == 4
    assert value(after, "airssys_instances", component="m", version="1.0.0", state="idle") == 2
    assert value(after, "airssys_requests_total", component="m", version="1.0.0", status="200") == 12
