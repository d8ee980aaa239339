"""Build the example components (cached), deploy them into a local registry, and serve the site.

``make run`` calls ``python -m example_site``. Each component is deployed as ``1.0.0+<content hash>``, so an edited
source becomes a new version on the next start while an unchanged one is left alone.
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass
from pathlib import Path

import uvicorn

from airssys_web import AirssysMiddleware, EmbeddedRegistry, deploy
from airssys_web.build import build_python_guest, compile_wat
from airssys_web.errors import AirssysError
from airssys_web.runtime.artifacts import sha256_hex

HERE = Path(__file__).resolve().parent
COMPONENTS = HERE / "components"
DEFAULT_REGISTRY = HERE.parent / ".cache" / "example_site" / "registry"


@dataclass(frozen=True)
class ExampleComponent:
    name: str
    route: str
    source: Path
    settings: dict[str, object]

    def build(self) -> bytes:
        if self.source.suffix == ".wat":
            return compile_wat(self.source.read_text())
        return build_python_guest(self.source).read_bytes()


EXAMPLES = [
    ExampleComponent("hello-wat", "/wasm/hello", COMPONENTS / "hello_wat" / "hello.wat", {}),
    ExampleComponent("greeter-py", "/wasm/greet", COMPONENTS / "greeter_py",
                     {"config": {"greeting": "Hello"}, "limits": {"timeout": 5.0}}),
]


def deploy_examples(registry_dir: Path, examples: list[ExampleComponent] = EXAMPLES) -> list[str]:
    """Build and deploy every example that is not already active in this exact version; return what changed."""
    changed = []
    with EmbeddedRegistry(registry_dir) as registry:
        active = {d.component: d for d in registry.active()}
        for example in examples:
            print(f"building {example.name} from {example.source.relative_to(HERE.parent)} ...", flush=True)
            wasm = example.build()
            version = f"1.0.0+{sha256_hex(wasm)[:12]}"
            current = active.get(example.name)
            if current is not None and current.active_version == version:
                continue
            deploy(registry, example.name, wasm, version=version, route=example.route,
                   settings=example.settings, actor="example_site")
            changed.append(f"{example.name}@{version}")
    return changed


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m example_site", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--registry", type=Path, default=DEFAULT_REGISTRY)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        for tag in deploy_examples(args.registry):
            print(f"deployed {tag}")
    except AirssysError as e:
        raise SystemExit(f"error: {e}") from None
    from example_site.app import app

    site = AirssysMiddleware(app, registry=args.registry)
    print(f"\nexample site: http://{args.host}:{args.port}/   (registry: {args.registry})\n"
          f"try: airssys-web list --registry {args.registry}\n", flush=True)
    uvicorn.run(site, host=args.host, port=args.port, log_level="info")


if __name__ == "__main__":
    main()
