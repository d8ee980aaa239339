"""The dashboard (airssys_web/web/dashboard/, served by airssys_web.web.observe) in a real browser.

Debian's ``chromium`` driven by playwright's Python package through ``executable_path`` (no browser download):
``make test`` installs it with apt-get where it can. Without it these tests skip and say why. A few focused flows,
each against a real server: a read token watching a canary and a failing route, a deploy token promoting, rolling
back and uploading, and the pipeline editor. ``AIRSSYS_SCREENSHOTS=DIR`` saves the README's screenshots there.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from support import text_component

from airssys_web import AirssysMiddleware, EmbeddedRegistry, deploy
from airssys_web.capabilities.grants import Capability
from airssys_web.lifecycle.api import DeployRequest, Plan
from airssys_web.lifecycle.settings import VersionSettings
from airssys_web.lifecycle.strategies import rollout_local
from airssys_web.web.auth import TokenAuthority

playwright = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install -e '.[dev]')")

Server = Callable[..., AbstractContextManager[str]]
SECRET = "dashboard-test-secret-0123456789"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SHOTS = os.environ.get("AIRSSYS_SCREENSHOTS")
BOUND = 20_000  # ms: a generous bound on a failure, not a speed assertion
playwright.expect.set_options(timeout=BOUND)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if CHROMIUM is None:
        pytest.skip("no chromium on PATH: `make test` installs Debian's chromium with apt-get (as root); "
                    "or run: apt-get install chromium")
    with playwright.sync_playwright() as p:
        try:
            instance = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        except Exception as e:  # pragma: no cover - a chromium that playwright cannot drive
            pytest.skip(f"playwright cannot start {CHROMIUM}: {e}")
        yield instance
        instance.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1180, "height": 820})
    page = context.new_page()
    page.set_default_timeout(BOUND)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    yield page
    context.close()
    assert not errors, errors  # no JavaScript error on the page


@pytest.fixture
def site(tmp_path: Path, wat_guest: Callable[[str], bytes], uvicorn_server: Server) -> Iterator[tuple[str, Path]]:
    reg = tmp_path / "reg"
    with EmbeddedRegistry(reg) as registry:
        deploy(registry, "hello", text_component("v1"), version="1.0.0", route="/hello")
        deploy(registry, "broken", wat_guest("trap"), version="1.0.0", route="/broken")
        rollout_local(registry, DeployRequest("hello", text_component("v1.1"), version="1.1.0",
                                              plan=Plan.parse("canary", percent=30)))
    with uvicorn_server(AirssysMiddleware(Starlette(), registry=reg, secret=SECRET)) as url:
        yield url, reg


def token(scope: str) -> str:
    return TokenAuthority(SECRET).mint(scope, 600)[0]


def log_in(page: Any, url: str, scope: str) -> None:
    page.goto(url + "/_airssys/dashboard")
    page.fill("#token", token(scope))
    page.click("#login-form button[type=submit]")
    playwright.expect(page.locator("#app")).to_be_visible()


def load(url: str, paths: list[str], count: int) -> threading.Thread:
    """Send ``count`` requests to each path from a thread (failures are collected on the thread object)."""
    failures: list[str] = []

    def run() -> None:
        with httpx.Client(base_url=url) as client:
            for _ in range(count):
                for path in paths:
                    try:
                        client.get(path)
                    except httpx.HTTPError as e:
                        failures.append(f"{path}: {e}")
                    client.cookies.clear()  # a new client each time: canary buckets spread as for many clients

    thread = threading.Thread(target=run)
    thread.failures = failures  # type: ignore[attr-defined]
    thread.start()
    return thread


def shot(page: Any, name: str) -> None:
    if SHOTS:
        page.screenshot(path=str(Path(SHOTS) / name))


def test_a_read_token_watches_a_canary_live(site: tuple[str, Path], page: Any) -> None:
    url, _ = site
    log_in(page, url, "read")
    hello = page.locator(".route[data-component=hello]")
    playwright.expect(hello.locator("tr[data-version='1.0.0'] [data-field=percent]")).to_have_text("70%")
    playwright.expect(hello.locator("tr[data-version='1.1.0'] [data-field=percent]")).to_have_text("30%")
    playwright.expect(hello.locator("tr[data-version='1.1.0'] .badge")).to_have_text("canary")
    thread = load(url, ["/hello", "/broken"], 150)
    # refreshing in place: the numbers move while the page stays
    for version in ("1.0.0", "1.1.0"):
        row = hello.locator(f"tr[data-version='{version}']")
        playwright.expect(row.locator("[data-field=rate]")).not_to_have_text(re.compile(r"^(\u2013|0\.0)$"))
        playwright.expect(row.locator("[data-field=p99]")).to_contain_text("s")
    broken = page.locator(".route[data-component=broken] tr[data-version='1.0.0']")
    playwright.expect(broken.locator("[data-field=errors]")).to_have_text("100.0%")
    thread.join()
    assert not thread.failures  # type: ignore[attr-defined]
    playwright.expect(broken.locator("[data-field=total]")).to_have_text("150")
    assert not page.locator("[data-action='roll back']").first.is_visible()  # read scope: looks only
    assert not page.locator("#upload-form").is_visible()
    shot(page, "dashboard.png")


def test_a_deploy_token_promotes_rolls_back_and_uploads(site: tuple[str, Path], page: Any,
                                                        tmp_path: Path) -> None:
    url, reg = site

    def active() -> tuple[str | None, str | None]:
        with EmbeddedRegistry(reg) as registry:
            dep = registry.get_deployment("hello")
            return dep.active_version, dep.canary_version

    log_in(page, url, "deploy")
    hello = page.locator(".route[data-component=hello]")
    hello.locator("[data-action=promote]").click()
    playwright.expect(page.locator("#message")).to_contain_text("1.1.0 now serves every client")
    assert active() == ("1.1.0", None)
    playwright.expect(hello.locator("tr[data-version='1.1.0'] [data-field=percent]")).to_have_text("100%")

    hello.locator("[data-action=details]").click()
    row = page.locator("#history tr[data-version='1.0.0']").first
    row.locator("[data-action='roll back to']").click()
    playwright.expect(page.locator("#message")).to_contain_text("1.0.0 serves")
    assert active() == ("1.0.0", None)
    shot(page, "dashboard-history.png")

    wasm = tmp_path / "hello-2.wasm"
    wasm.write_bytes(text_component("v2 from the dashboard"))
    page.fill("#up-name", "hello")
    page.fill("#up-version", "2.0.0")
    page.set_input_files("#up-file", str(wasm))
    page.click("#upload-form button[type=submit]")
    playwright.expect(page.locator("#message")).to_contain_text("hello@2.0.0 deployed")
    assert active() == ("2.0.0", None)
    assert httpx.get(url + "/hello").text == "v2 from the dashboard"


def test_the_plain_sha256_matches(site: tuple[str, Path], page: Any) -> None:
    """Outside a secure context (plain http to a non-local name) the page hashes uploads itself."""
    url, _ = site
    log_in(page, url, "read")
    data = bytes(range(256)) * 5 + b"airssys"
    got = page.evaluate("(bytes) => window.airssysSha256(new Uint8Array(bytes))", list(data))
    assert got == hashlib.sha256(data).hexdigest()
    assert page.evaluate("() => window.airssysSha256(new Uint8Array(0))") == hashlib.sha256(b"").hexdigest()


def test_a_bad_token_is_refused(site: tuple[str, Path], page: Any) -> None:
    url, _ = site
    page.goto(url + "/_airssys/dashboard")
    page.fill("#token", "not-a-token")
    page.click("#login-form button[type=submit]")
    playwright.expect(page.locator("#login-error")).to_contain_text("not a valid token")
    assert not page.locator("#app").is_visible()


def test_the_page_and_its_files(site: tuple[str, Path], tmp_path: Path, uvicorn_server: Server) -> None:
    """No browser needed: what the server sends (its own files only, a strict CSP), and no dashboard without
    the admin API."""
    url, _ = site
    r = httpx.get(url + "/_airssys/dashboard")
    assert r.status_code == 200 and "default-src 'none'" in r.headers["content-security-policy"]
    assert 'data-api="/_airssys/api"' in r.text and "http" not in r.text.split("<body", 1)[0].replace(
        "http-equiv", "")  # nothing from another origin
    assert httpx.get(url + "/_airssys/dashboard/dashboard.js").headers["content-type"].startswith("text/javascript")
    assert httpx.get(url + "/_airssys/dashboard/../web/observe.py").status_code == 404
    assert httpx.post(url + "/_airssys/dashboard").status_code == 405
    reg = tmp_path / "no-admin"
    with uvicorn_server(AirssysMiddleware(Starlette(), registry=reg, secret="")) as bare:
        r = httpx.get(bare + "/_airssys/dashboard")
        assert r.status_code == 404 and "AIRSSYS_SECRET" in r.json()["detail"]


def test_the_pipeline_editor_reorders_and_applies(site: tuple[str, Path], page: Any,
                                                  wat_guest: Callable[[str], bytes]) -> None:
    url, reg = site
    with EmbeddedRegistry(reg) as registry:
        for name in ("auth", "log"):
            deploy(registry, name, wat_guest("stage"), version="1.0.0",
                   settings=VersionSettings.of(Capability.config("name", name)))
    log_in(page, url, "deploy")
    playwright.expect(page.locator("#middleware .route[data-component=log]")).to_be_visible()
    page.locator(".route[data-component=hello] [data-action=details]").click()
    for name in ("auth", "log"):
        page.select_option("#pipeline-add", name)
        page.click("#pipeline-add-button")
    page.locator("#pipeline-stages li[data-stage=log] [data-action='↑']").click()  # log first, then auth
    playwright.expect(page.locator("#pipeline-stages li[data-stage]")).to_have_count(2)
    assert page.locator("#pipeline-stages li[data-stage]").evaluate_all("els => els.map(e => e.dataset.stage)") == \
        ["log", "auth"]
    page.click("#pipeline-apply")  # one change
    playwright.expect(page.locator("#message")).to_contain_text("log → auth → hello")
    got = httpx.get(url + "/_airssys/api/components/hello/pipeline",
                    headers={"authorization": f"Bearer {token('read')}"}).json()
    assert got["stages"] == ["log", "auth"]
    playwright.expect(page.locator(".route[data-component=hello] [data-field=chain]")).to_contain_text("log")
    shot(page, "dashboard-pipeline.png")
