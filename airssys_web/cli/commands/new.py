"""``airssys-web new NAME --lang python|js|wat``: scaffold a component with a test and a manifest."""

from __future__ import annotations

from pathlib import Path

import click

from ...guest.scaffold import LANGUAGES

_TOOLCHAIN = {"python": "componentize-py (installed with airssys-web)",
              "js": "componentize-qjs (installed from npm into a cache by the first build; needs node and npm)",
              "wat": "nothing: WAT is assembled in-process"}


@click.command("new")
@click.argument("name")
@click.option("--lang", "language", type=click.Choice(LANGUAGES), default="python", show_default=True,
              help="The language to write the component in.")
@click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where to create it (default: ./NAME).")
@click.option("--force", is_flag=True, help="Write into an existing, non-empty directory.")
def new_cmd(name: str, language: str, directory: Path | None, force: bool) -> None:
    """Create component NAME: source, airssys.toml (grants and limits) and a pytest file."""
    from ...errors import AirssysError
    from ...guest.scaffold import scaffold
    from . import fail

    try:
        made = scaffold(name, language, directory=directory, force=force)
    except AirssysError as e:
        fail(str(e))
    where = made.directory
    click.echo(f"created {where}/ ({language}): {', '.join(p.relative_to(where).as_posix() for p in made.files)}")
    click.echo(f"toolchain: {_TOOLCHAIN[language]}\n\nnext:")
    steps = [
        (f"cd {where}", ""),
        ("airssys-web build", f"# -> {name}.wasm, checked against the WIT"),
        ("pytest", "# builds (cached) and calls it in-process"),
        (f"airssys-web call {name}.wasm GET /{name}", "# one request, no server"),
        (f"airssys-web deploy {name} {name}.wasm --route /{name} --version 0.1.0 --registry ../airssys-data", ""),
        (f"airssys-web dev . --route /{name} --registry ../airssys-data", "# rebuild and hot-swap on save"),
    ]
    width = max(len(cmd) for cmd, _ in steps)
    for cmd, note in steps:
        click.echo(f"  {cmd.ljust(width)}  {note}".rstrip())
