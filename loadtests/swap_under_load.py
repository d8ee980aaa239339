"""Swap under load: update and roll back a component while users hit it; the run fails if any request failed.

A background task deploys a new version of ``hello-wat`` (a different body each time) and rolls back, one change
every ``AIRSSYS_SWAP_INTERVAL`` seconds (default 2), through the same registry directory the site serves from
(``AIRSSYS_LOADTEST_REGISTRY``) with the ``airssys-web`` CLI, as an operator would. Meanwhile ``Swapwatcher`` users
request ``/wasm/hello`` back to back and check each answer is one of the versions deployed. At the end the run
exits 1 if any request failed, any swap failed, or fewer than two swaps happened (then nothing was tested).

Use it together with the mix (``-f loadtests/locustfile.py,loadtests/swap_under_load.py``) or alone.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import gevent
from gevent import subprocess
from locust import FastHttpUser, constant, events, task
from locust.env import Environment
from locust.runners import MasterRunner

COMPONENT, ROUTE = "hello-wat", "/wasm/hello"
STATE: dict[str, Any] = {"swaps": 0, "errors": [], "bodies": set()}


def _cli(*args: str) -> tuple[int, str]:
    done = subprocess.run([sys.executable, "-m", "airssys_web.cli", *args], capture_output=True, text=True,
                          timeout=120, check=False)
    return done.returncode, (done.stderr or done.stdout).strip()


def _swapper(environment: Environment, registry: str, interval: float) -> None:
    from airssys_web.guest.build import compile_wat, wat_response_component

    folder = Path(tempfile.mkdtemp(prefix="airssys-swap-"))
    stamp = int(time.time())
    step = 0
    while True:
        gevent.sleep(interval)
        step += 1
        started = time.perf_counter()
        if step % 3 == 0:
            action, (code, message) = "rollback", _cli("rollback", COMPONENT, "--registry", registry)
        else:
            body = f"Hello from swap {stamp}.{step}\n"
            wasm = folder / f"swap-{step}.wasm"
            wasm.write_bytes(compile_wat(wat_response_component(body, headers=[("content-type", "text/plain")])))
            STATE["bodies"].add(body)
            action, (code, message) = "deploy", _cli("deploy", COMPONENT, str(wasm), "--route", ROUTE,
                                                     "--version", f"9.{stamp}.{step}", "--registry", registry)
        elapsed_ms = (time.perf_counter() - started) * 1000
        error = None if code == 0 else RuntimeError(f"{action} failed (exit {code}): {message}")
        environment.events.request.fire(request_type="SWAP", name=action, response_time=elapsed_ms,
                                        response_length=0, exception=error, context={})
        if error is None:
            STATE["swaps"] += 1
        else:
            STATE["errors"].append(str(error))


@events.init_command_line_parser.add_listener
def _options(parser: Any) -> None:
    parser.add_argument("--swap-registry", default=os.environ.get("AIRSSYS_LOADTEST_REGISTRY", ""),
                        help="registry directory the site serves from (swap-under-load scenario)")
    parser.add_argument("--swap-interval", type=float,
                        default=float(os.environ.get("AIRSSYS_SWAP_INTERVAL", "2")))


@events.test_start.add_listener
def _start(environment: Environment, **_: Any) -> None:
    if isinstance(environment.runner, MasterRunner):  # swaps run once, where the test is driven
        return
    registry = environment.parsed_options.swap_registry if environment.parsed_options else ""
    if not registry:
        raise SystemExit("swap_under_load needs --swap-registry DIR (or AIRSSYS_LOADTEST_REGISTRY)")
    interval = environment.parsed_options.swap_interval
    STATE["task"] = gevent.spawn(_swapper, environment, registry, interval)


@events.quitting.add_listener
def _verdict(environment: Environment, **_: Any) -> None:
    task = STATE.pop("task", None)
    if task is not None:
        task.kill()
    failures = environment.stats.total.num_failures
    problems = list(STATE["errors"])
    if failures:
        problems.append(f"{failures} request(s) failed")
    if task is not None and STATE["swaps"] < 2:
        problems.append(f"only {STATE['swaps']} swap(s) happened; run longer")
    if problems:
        print("swap under load: FAILED: " + "; ".join(problems), file=sys.stderr)
        environment.process_exit_code = 1
    elif task is not None:
        print(f"swap under load: OK: {STATE['swaps']} swaps, "
              f"{environment.stats.total.num_requests} requests, none failed", file=sys.stderr)


class SwapWatcher(FastHttpUser):
    """Requests the route being swapped back to back; any answer but 200 from a deployed version fails."""

    wait_time = constant(0)
    fixed_count = 4  # the rest of the users run the realistic mix

    @task
    def hello(self) -> None:
        with self.client.get(ROUTE, catch_response=True) as r:
            version = r.headers.get("x-airssys-version", "")
            if r.status_code != 200:
                r.failure(f"status {r.status_code}: {r.text[:200]}")
            elif not version.startswith(f"{COMPONENT}@"):
                r.failure(f"answered by {version or 'no component'}")
            else:
                r.success()
