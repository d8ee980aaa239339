"""Build the example components (cached), deploy them into a local registry, and serve the site.

``make run`` calls ``python -m example_site``. It starts the mock upstream API on 127.0.0.1, builds every component
in ``components/`` (WAT, Python, JavaScript; unchanged sources come from the build cache), deploys each one whose
code or settings changed as ``1.0.0+<code hash>.<settings hash>``, and serves the site with uvicorn. With
``AIRSSYS_SECRET`` set, the admin API answers at ``/_airssys/api`` (see ``airssys-web token``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn

from airssys_web import AirssysMiddleware, EmbeddedRegistry, VersionSettings, deploy
from airssys_web.errors import AirssysError
from airssys_web.guest.build import build_component
from airssys_web.lifecycle.routing import ADMIN_PREFIX
from airssys_web.runtime.artifacts import sha256_hex
from example_site.upstream import Upstream

HERE = Path(__file__).resolve().parent
COMPONENTS = HERE / "components"
DEFAULT_REGISTRY = HERE.parent / ".cache" / "example_site" / "registry"
BUILD_DIR = HERE.parent / ".cache" / "example_site" / "build"
Settings = Callable[[str], dict[str, Any]]  # upstream URL -> settings


@dataclass(frozen=True)
class ExampleComponent:
    """One example: a route component (``route``), or a middleware stage (``route`` None) that runs in front of
    the route of each component whose ``pipeline`` names it."""

    name: str
    route: str | None
    source: Path
    language: str
    link: str
    about: str
    settings: Settings = lambda upstream: {}
    pipeline: tuple[str, ...] = ()

    def build(self) -> bytes:
        """Build (from the cache when unchanged) into .cache/example_site/build, not into the source tree."""
        return build_component(self.source, out=BUILD_DIR / f"{self.name}.wasm").path.read_bytes()


EXAMPLES = [
    ExampleComponent("hello-wat", "/wasm/hello", COMPONENTS / "hello_wat" / "hello.wat", "WAT", "/wasm/hello",
                     "hand-written WebAssembly text: about 1 KB, answers in microseconds"),
    ExampleComponent("greeter-py", "/wasm/greet", COMPONENTS / "greeter_py", "Python", "/wasm/greet?name=Ada",
                     "the raw componentize-py bindings; its greeting is granted config",
                     lambda upstream: {"config": {"greeting": "Hello"}, "limits": {"timeout": 5.0}}),
    ExampleComponent("notes-py", "/wasm/notes", COMPONENTS / "notes_py", "Python", "/wasm/notes",
                     "a JSON API (airssys_guest SDK) keeping notes in its own KV namespace",
                     lambda upstream: {"kv": {"max_keys": 1000, "max_total_bytes": 4 * 1024 * 1024},
                                       "limits": {"timeout": 5.0}}),
    ExampleComponent("markdown-js", "/wasm/markdown", COMPONENTS / "markdown_js", "JavaScript", "/wasm/markdown",
                     "a Markdown-to-HTML transform (@airssys/guest SDK, QuickJS); needs no grants",
                     lambda upstream: {"limits": {"timeout": 2.0}}, pipeline=("guard-js",)),
    ExampleComponent("guard-js", None, COMPONENTS / "guard_js", "JavaScript", "/wasm/markdown",
                     "a middleware stage in front of the Markdown route: refuses documents over 64 KiB (413) "
                     "before the renderer runs, and marks what went through it (x-guarded-by)",
                     lambda upstream: {"config": {"max_bytes": "65536"}, "limits": {"timeout": 2.0}}),
    ExampleComponent("forecast-js", "/wasm/forecast", COMPONENTS / "forecast_js", "JavaScript",
                     "/wasm/forecast?city=Lisbon",
                     "calls an upstream API through the one origin it was granted",
                     lambda upstream: {"outbound": [upstream], "config": {"upstream": upstream},
                                       "limits": {"timeout": 5.0}}),
]


def example_version(wasm: bytes, settings: dict[str, Any]) -> str:
    """``1.0.0+<code>.<settings>``: a changed source or setting (the upstream's port) is a new version."""
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()
    return f"1.0.0+{sha256_hex(wasm)[:12]}.{digest[:8]}"


def deploy_examples(registry_dir: Path, upstream: str, examples: list[ExampleComponent] = EXAMPLES) -> list[str]:
    """Build and deploy every example that is not already active in this exact version, then put the stages in
    front of the routes whose pipeline names them; return the versions deployed."""
    changed = []
    with EmbeddedRegistry(registry_dir) as registry:
        active = {d.component: d for d in registry.active()}
        for example in examples:
            print(f"building {example.name} ({example.language}) from {example.source.relative_to(HERE.parent)}"
                  " ...", flush=True)
            wasm = example.build()
            settings = example.settings(upstream)
            version = example_version(wasm, settings)
            current = active.get(example.name)
            if current is not None and current.active_version == version:
                continue
            if current is not None and version in {v.version for v in registry.versions(example.name)}:
                registry.activate(example.name, version, actor="example_site")  # e.g. back from `dev` builds
            else:
                deploy(registry, example.name, wasm, version=version, route=example.route,
                       settings=VersionSettings.from_json(settings), manifest=False, actor="example_site")
            changed.append(f"{example.name}@{version}")
        for example in examples:  # stages in front of routes, once every stage is deployed
            current_stages = registry.get_deployment(example.name).stages
            if example.route is not None and tuple(current_stages) != example.pipeline:
                registry.set_pipeline(example.name, list(example.pipeline), actor="example_site")
                print(f"pipeline of {example.name}: {' > '.join(example.pipeline) or '(none)'}", flush=True)
    return changed


def make_site(registry: Path, *, secret: str | None = None, poll_interval: float = 0.2) -> AirssysMiddleware:
    """The example app behind the middleware; the home page links the admin API when it is on."""
    from example_site.app import app

    app.state.admin_prefix = ADMIN_PREFIX if secret else None
    app.state.examples = EXAMPLES
    app.state.registry = registry
    return AirssysMiddleware(app, registry=registry, secret=secret, admin_prefix=ADMIN_PREFIX,
                             poll_interval=poll_interval)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m example_site", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--registry", type=Path, default=DEFAULT_REGISTRY)
    parser.add_argument("--upstream-port", type=int, default=0, help="port of the mock upstream API (0: any free)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    upstream = Upstream(args.upstream_port).start()
    try:
        for tag in deploy_examples(args.registry, upstream.url):
            print(f"deployed {tag}")
    except AirssysError as e:
        raise SystemExit(f"error: {e}") from None
    secret = os.environ.get("AIRSSYS_SECRET") or None
    site = make_site(args.registry, secret=secret)
    print(f"\nexample site: http://{args.host}:{args.port}/   (registry: {args.registry}; "
          f"mock upstream: {upstream.url})\n"
          f"try: airssys-web list --registry {args.registry}\n"
          f"     airssys-web dev example_site/components/markdown_js --name markdown-js --route /wasm/markdown "
          f"--registry {args.registry}\n", flush=True)
    try:
        uvicorn.run(site, host=args.host, port=args.port, log_level="info")
    finally:
        upstream.stop()


if __name__ == "__main__":
    main()
