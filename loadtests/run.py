"""``make loadtest``: start the example site on loopback, run locust headless for a bounded time, print the summary.

Runs both scenarios at once: the realistic mix (``locustfile.py``) and swap-under-load (``swap_under_load.py``),
which updates and rolls back ``hello-wat`` during the run. Exits with locust's status: non-zero if any request or
swap failed. Only 127.0.0.1 is ever contacted.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
STARTUP = 600.0  # a first run builds every example (Python guests take a while); later runs start in seconds


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_ready(url: str, site: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + STARTUP
    while time.monotonic() < deadline:
        if site.poll() is not None:
            raise SystemExit(f"the example site exited with {site.returncode} before serving (see above)")
        try:
            if httpx.get(url + "/wasm/hello", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"the example site did not serve within {STARTUP:g}s")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m loadtests", description=__doc__)
    parser.add_argument("--duration", default="60s", help="locust --run-time (default: 60s)")
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--spawn-rate", type=float, default=10)
    parser.add_argument("--registry", type=Path, default=ROOT / ".cache" / "loadtest" / "registry")
    parser.add_argument("--swap-interval", type=float, default=2.0)
    args = parser.parse_args(argv)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = os.environ | {"PYTHONUNBUFFERED": "1"}
    site = subprocess.Popen([sys.executable, "-m", "example_site", "--port", str(port), "--registry",
                             str(args.registry)], cwd=ROOT, env=env)
    code = 1
    try:
        wait_ready(url, site)
        print(f"\nload test: {args.users} users for {args.duration} against {url} (mix + swap under load)\n",
              flush=True)
        code = subprocess.call([
            sys.executable, "-m", "locust", "-f", f"{HERE / 'locustfile.py'},{HERE / 'swap_under_load.py'}",
            "--headless", "--host", url, "--users", str(args.users), "--spawn-rate", str(args.spawn_rate),
            "--run-time", args.duration, "--stop-timeout", "10", "--only-summary",
            "--swap-registry", str(args.registry), "--swap-interval", str(args.swap_interval),
        ], cwd=ROOT, env=env)
    finally:
        site.send_signal(signal.SIGINT)
        try:
            site.wait(30)
        except subprocess.TimeoutExpired:
            site.kill()
    raise SystemExit(code)


if __name__ == "__main__":
    main()
