"""Several hosts on one Redis registry: real ``airssys-web serve`` processes on 127.0.0.1, a real ``redis-server``.

Each host has its own artifacts directory (``AIRSSYS_WEB_CACHE``), as separate machines would: what one compiled is
never used by another. The bounds are generous waits for a loaded machine, not speed assertions; the 1 s the README
promises for a deploy to reach every host is what the first test waits for (with a margin, named in the message).
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from conftest import find_free_port, stop_process
from redis_support import RedisServer, session_redis
from support import text_component, wait_until

from airssys_web.errors import RegistryError
from airssys_web.lifecycle.api import DeployRequest
from airssys_web.lifecycle.registry.redis_registry import RedisRegistry
from airssys_web.lifecycle.remote import RemoteLifecycle
from airssys_web.web.auth import TokenAuthority

SECRET = "hosts-test-secret-0123456789abcdef"
BOUND = 60.0  # a server's start-up on a loaded machine; not a speed assertion
REACH = 3.0  # the README's 1 s for a deploy to reach every host, with a margin for a loaded 2-core machine


@dataclass
class Host:
    name: str
    url: str
    proc: subprocess.Popen[bytes]
    log: Path

    def get(self, path: str) -> httpx.Response:
        with httpx.Client(timeout=10) as client:  # a new connection each time, as a load balancer would open
            return client.get(self.url + path)

    def version(self, path: str = "/hello") -> str | None:
        resp = self.get(path)
        return resp.headers.get("x-airssys-version") if resp.status_code == 200 else None

    def lifecycle(self) -> RemoteLifecycle:
        token, _ = TokenAuthority(SECRET).mint("deploy", 3600)
        return RemoteLifecycle(self.url, token, progress=False)

    def status(self) -> dict[str, object]:
        with self.lifecycle() as lifecycle:
            return lifecycle.server_status()

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def start_host(tmp: Path, name: str, registry: str) -> Host:
    home = tmp / name
    home.mkdir()
    port = find_free_port()
    env = dict(os.environ, AIRSSYS_SECRET=SECRET, AIRSSYS_WEB_CACHE=str(home / "cache"))
    log = home / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-c", "from airssys_web.cli import main; main()", "serve", "--registry", registry,
             "--port", str(port), "--log-level", "info"], env=env, cwd=home, stdout=out, stderr=subprocess.STDOUT)
    host = Host(name, f"http://127.0.0.1:{port}", proc, log)

    def up() -> bool:
        assert proc.poll() is None, f"host {name} exited:\n{host.output()}"
        try:
            return host.get("/").status_code == 200
        except httpx.HTTPError:
            return False

    wait_until(up, BOUND, f"host {name} answering")
    return host


@pytest.fixture
def two_hosts(tmp_path: Path) -> Iterator[tuple[Host, Host, str]]:
    """Two hosts on the session's Redis, in a key prefix of this test's own."""
    url = session_redis().url(prefix=f"hosts-{tmp_path.name}:")
    hosts = [start_host(tmp_path, name, url) for name in ("a", "b")]
    try:
        yield hosts[0], hosts[1], url
    finally:
        for host in hosts:
            stop_process(host.proc)


def deploy_through(host: Host, text: str, version: str) -> None:
    with host.lifecycle() as lifecycle:
        lifecycle.deploy(DeployRequest("hello", text_component(text), version=version, route="/hello"))


def test_a_deploy_through_one_host_is_served_by_both(two_hosts: tuple[Host, Host, str]) -> None:
    a, b, url = two_hosts
    deploy_through(a, "one", "1.0.0")
    assert a.version() == "hello@1.0.0"  # the admin call returns once its own host serves it
    wait_until(lambda: b.version() == "hello@1.0.0", REACH, "host b serving hello@1.0.0 (README: within 1 s)")
    deploy_through(b, "two", "1.1.0")
    wait_until(lambda: a.version() == "hello@1.1.0", REACH, "host a serving hello@1.1.0 (README: within 1 s)")
    assert a.get("/hello").text == b.get("/hello").text == "two"
    # Each host compiled the component itself, into its own cache; nothing compiled crossed over.
    for host in (a, b):
        cache = Path(host.log.parent / "cache" / "artifacts")
        assert len(list(cache.glob("*.cwasm"))) == 2, f"host {host.name} artifacts: {list(cache.iterdir())}"
    with RedisRegistry(url, artifacts_dir=a.log.parent / "cli-artifacts") as registry:
        assert [h.version for h in registry.history("hello")] == ["1.0.0", "1.1.0"]


def test_concurrent_deploys_through_both_hosts_stay_linear(two_hosts: tuple[Host, Host, str]) -> None:
    a, b, url = two_hosts
    deploy_through(a, "v0", "1.0.0")
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def work(host: Host, versions: list[str]) -> None:
        try:
            barrier.wait()
            for v in versions:
                deploy_through(host, f"text {v}", v)
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=work, args=(a, [f"2.0.{i}" for i in range(6)])),
               threading.Thread(target=work, args=(b, [f"3.0.{i}" for i in range(6)]))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with RedisRegistry(url, artifacts_dir=a.log.parent / "cli-artifacts") as registry:
        history = registry.history("hello")
        final = registry.get_deployment("hello").active_version
    assert len(history) == 13 and [h.id for h in history] == sorted(h.id for h in history)
    for before, after in itertools.pairwise(history):  # each change starts from the one before it
        assert after.previous_version == before.version, (before, after)
    assert history[-1].version == final
    for host in (a, b):
        wait_until(lambda h=host: h.version() == f"hello@{final}", REACH, f"host {host.name} serving {final}")


def test_hosts_keep_serving_while_redis_is_gone_and_catch_up_when_it_returns(tmp_path: Path) -> None:
    redis_dir = tmp_path / "redis"
    redis_dir.mkdir()
    server = RedisServer(redis_dir)
    try:
        url = server.url()
        a, b = start_host(tmp_path, "a", url), start_host(tmp_path, "b", url)
        try:
            deploy_through(a, "before", "1.0.0")
            wait_until(lambda: b.version() == "hello@1.0.0", REACH, "host b serving hello@1.0.0")

            server.kill()
            for host in (a, b):  # both notice, say so in their status and log, and keep serving
                wait_until(lambda h=host: h.status()["registry"]["state"] == "unreachable", 10,  # type: ignore[index]
                           f"host {host.name} reporting the registry unreachable")
                for _ in range(5):
                    resp = host.get("/hello")
                    assert (resp.status_code, resp.text) == (200, "before")
                assert "is unreachable" in host.output()
            with a.lifecycle() as lifecycle:  # changes and registry reads are refused, saying why
                with pytest.raises(RegistryError, match="cannot reach the registry"):
                    lifecycle.components()
                with pytest.raises(RegistryError, match="cannot reach the registry"):
                    lifecycle.deploy(DeployRequest("hello", text_component("during"), version="1.0.1"))
            cli = subprocess.run([sys.executable, "-c", "from airssys_web.cli import main; main()", "status",
                                  "--server", a.url, "--token", TokenAuthority(SECRET).mint("read", 60)[0]],
                                 capture_output=True, text=True, timeout=BOUND)
            assert cli.returncode == 0, cli.stderr
            assert "cannot reach its registry" in cli.stderr and "serving hello@1.0.0" in cli.stdout

            server.start()  # from its append-only file
            for host in (a, b):
                wait_until(lambda h=host: h.status()["registry"]["state"] == "ok", 15,  # type: ignore[index]
                           f"host {host.name} reaching the registry again (backoff is at most 5 s)")
                assert "reachable again" in host.output()
            with RedisRegistry(url, artifacts_dir=tmp_path / "cli-artifacts") as registry:
                assert registry.get_deployment("hello").active_version == "1.0.0"  # nothing was lost
            deploy_through(b, "after", "1.1.0")
            wait_until(lambda: a.version() == "hello@1.1.0", REACH, "host a serving the deploy made after the outage")
        finally:
            for host in (a, b):
                stop_process(host.proc)
    finally:
        server.stop()


def test_a_host_refuses_to_start_without_its_registry(tmp_path: Path) -> None:
    url = f"redis://127.0.0.1:{find_free_port()}/0"  # nothing listens there
    run = subprocess.run([sys.executable, "-c", "from airssys_web.cli import main; main()", "serve", "--registry",
                          url, "--port", "0"], capture_output=True, text=True, timeout=BOUND, cwd=tmp_path)
    assert run.returncode == 2, run.stderr
    assert f"error: cannot reach the registry at {url}" in run.stderr and "check that Redis is running" in run.stderr
