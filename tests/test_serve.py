"""``airssys-web serve`` as a user starts it: the address it prints is the one it is bound to, and its options."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from conftest import stop_process

from airssys_web.cli import cli
from airssys_web.web.serve import listening_url

BOUND = 60.0  # a bound on shutdown, not a speed assertion


@contextmanager
def serving(tmp_path: Path, *args: str) -> Iterator[str]:
    """Run ``airssys-web serve --registry ... ARGS`` and yield the banner line it prints once it is bound."""
    env = {k: v for k, v in os.environ.items() if k != "AIRSSYS_SECRET"}
    proc = subprocess.Popen([sys.executable, "-c", "from airssys_web.cli import main; main()", "serve",
                             "--registry", str(tmp_path / "reg"), "--log-level", "warning", *args],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        for line in proc.stderr:  # each read blocks until the server writes a line (or exits: then it ends)
            if "serving registry" in line:
                yield line.strip()
                break
        else:
            pytest.fail(f"serve exited without printing its address (exit {proc.wait(BOUND)})")
    finally:
        stop_process(proc)


def _url(banner: str) -> str:
    match = re.search(r" at (http://\S+/)", banner)
    assert match is not None, banner
    return match.group(1)


@pytest.mark.parametrize("workers", ["1", "2"])
def test_serve_prints_the_address_it_is_bound_to(tmp_path: Path, workers: str) -> None:
    with serving(tmp_path, "--host", "127.0.0.1", "--port", "0", "--workers", workers) as banner:
        url = _url(banner)
        port = int(url.rsplit(":", 1)[1].rstrip("/"))
        assert url == f"http://127.0.0.1:{port}/" and port != 0  # not "localhost", not the requested port 0
        assert ("with 2 workers" in banner) == (workers == "2")
        page = httpx.get(url, timeout=30)
        assert page.status_code == 200 and "airssys-web" in page.text  # the landing page, at that very address


def test_listening_url_brackets_ipv6() -> None:
    assert listening_url("127.0.0.1", 8000) == "http://127.0.0.1:8000/"
    assert listening_url("0.0.0.0", 8000) == "http://0.0.0.0:8000/"
    assert listening_url("::1", 8000) == "http://[::1]:8000/"


def test_a_bad_body_timeout_is_refused(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["serve", "--registry", str(tmp_path / "reg"), "--body-timeout", "soon"])
    assert result.exit_code == 2
    assert result.stderr.startswith("error: invalid --body-timeout 'soon': write a duration such as 200ms")
