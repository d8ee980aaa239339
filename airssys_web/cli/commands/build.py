"""``airssys-web build [SOURCE]``: detect the language, build (cached), validate against the WIT, report."""

from __future__ import annotations

import json
from contextlib import nullcontext
from pathlib import Path

import click

from ...guest import KINDS, LANGUAGES


def _size(n: int) -> str:
    return f"{n / (1024 * 1024):.1f} MiB" if n >= 1024 * 1024 else f"{n / 1024:.1f} KiB"


def _interfaces(imports: tuple[str, ...]) -> str:
    ours = sorted(i.split("/", 1)[1].split("@", 1)[0] for i in imports if i.startswith("airssys:web/")
                  and "/types@" not in i)
    wasi = sum(1 for i in imports if i.startswith("wasi:"))
    parts = [f"airssys:web/{{{','.join(ours)}}}"] if ours else []
    if wasi:
        parts.append(f"{wasi} WASI interface{'s' if wasi != 1 else ''} (nothing granted unless deployed with files)")
    return "; ".join(parts) or "nothing"


@click.command("build")
@click.argument("source", type=click.Path(path_type=Path), default=Path("."))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Where to write the component (default: SOURCE/NAME.wasm, or FILE.wasm for a .wat file).")
@click.option("--lang", "language", type=click.Choice(sorted(LANGUAGES)), default=None,
              help="The guest's language (default: detected from app.py, app.js or a .wat file).")
@click.option("--kind", type=click.Choice(KINDS), default=None,
              help="Build a route component or a middleware stage (default: [component] kind in airssys.toml, "
                   "else route). A .wat file declares its own imports.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def build_cmd(source: Path, output: Path | None, language: str | None, kind: str | None, as_json: bool) -> None:
    """Build a component from SOURCE (a guest directory or a .wat file) and check it fits airssys:web/route
    (or airssys:web/middleware for a stage).

    Python guests are built with componentize-py, JavaScript guests with componentize-qjs (installed from npm
    into a cache on first use), WAT is assembled. Unchanged sources come from the build cache.
    """
    from rich.console import Console

    from ...guest.build import build_component, default_cache_dir
    from ...lifecycle.deploy import check_component
    from ...runtime.artifacts import ArtifactCache
    from ...runtime.engine import Runtime
    from ...runtime.worlds import is_middleware

    console = Console(stderr=True)
    with console.status(f"building {source} ...") if console.is_terminal and not as_json else nullcontext():
        result = build_component(source, out=output, language=language, console=console, kind=kind)
        with Runtime(threads=1) as runtime:
            cache = ArtifactCache(default_cache_dir(source).parent / "artifacts", runtime)
            _, report = check_component(result.path.read_bytes(), cache, label=result.path.name)
    if report.world != "airssys:web":
        world = report.world
    else:
        world = "airssys:web/middleware" if is_middleware(report.imports) else "airssys:web/route"
    if as_json:
        click.echo(json.dumps({"path": str(result.path), "language": result.language, "size": result.size,
                               "seconds": round(result.seconds, 3), "cached": result.cached,
                               "sha256": report.sha256, "world": world, "imports": list(report.imports)}, indent=2))
        return
    how = "from the build cache" if result.cached else f"in {result.seconds:.1f} s"
    click.echo(f"built {result.path} ({result.language}, {_size(result.size)}, {how})")
    click.echo(f"  satisfies {world}; imports {_interfaces(report.imports)}")

