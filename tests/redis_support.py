"""A real ``redis-server`` for the tests: on a free loopback port, in its own temporary directory, with the append-only
file on (``appendfsync always``, so a killed server loses nothing it acknowledged), as production should run it.

:func:`session_redis` is the suite's shared server, started on first use and stopped at the end of the session
(conftest); a test that kills and restarts Redis makes its own :class:`RedisServer`. Each test keeps its keys apart
with its own key prefix (:func:`redis_url`). Without ``redis-server`` the tests that need it are skipped, except on
CI (``CI`` set), where that is a failure: ``make test`` installs Debian's package.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
import redis
from conftest import find_free_port
from support import wait_until

_BOUND = 30.0  # a generous bound on a start, not a speed assertion


class RedisServer:
    """One ``redis-server`` process; :meth:`kill` and :meth:`start` again keep its port and data directory."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = find_free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            message = "redis-server is not installed: `make test` installs it (apt-get install redis-server)"
            if os.environ.get("CI"):
                pytest.fail(message)
            pytest.skip(message)
        self.proc = subprocess.Popen(
            [binary, "--bind", "127.0.0.1", "--port", str(self.port), "--dir", str(self.directory),
             "--appendonly", "yes", "--appendfsync", "always", "--save", "", "--daemonize", "no",
             "--logfile", str(self.directory / "redis.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(self.answers, _BOUND, "redis-server answering PING")

    def answers(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            log = (self.directory / "redis.log").read_text(errors="replace")[-2000:]
            raise AssertionError(f"redis-server exited with {self.proc.returncode}:\n{log}")
        try:
            with redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=1) as client:
                return bool(client.ping())
        except redis.RedisError:
            return False

    def kill(self) -> None:
        """SIGKILL: Redis is gone without a goodbye, as in a crash."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def url(self, db: int = 0, prefix: str | None = None) -> str:
        query = f"?prefix={prefix}" if prefix else ""
        return f"redis://127.0.0.1:{self.port}/{db}{query}"

    def stop(self) -> None:
        self.kill()


_session: list[RedisServer] = []


def session_redis() -> RedisServer:
    """The suite's shared server (started on first use)."""
    if not _session:
        _session.append(RedisServer(Path(tempfile.mkdtemp(prefix="airssys-redis-"))))
    return _session[0]


def stop_session_redis() -> None:
    for server in _session:
        server.stop()
        shutil.rmtree(server.directory, ignore_errors=True)
    _session.clear()


def redis_url(tmp: Path) -> str:
    """A URL on the shared server with a key prefix of its own for the test that owns ``tmp``."""
    return session_redis().url(prefix="t-" + re.sub(r"[^A-Za-z0-9_-]", "_", tmp.name)[-50:] + ":")
