"""``airssys-web new NAME --lang python|js|wat``: scaffold a component with a test and a manifest."""

from __future__ import annotations

from pathlib import Path

import click

from ...guest import KINDS, LANGUAGES

_TOOLCHAIN = {"python": "componentize-py (installed with airssys-web)",
              "js": "componentize-qjs (installed from npm into a cache by the first build; needs node and npm)",
              "wat": "nothing: WAT is assembled in-process"}


@click.command("new")
@click.argument("name")
@click.option("--lang", "language", type=click.Choice(list(LANGUAGES)), default="python", show_default=True,
              help="The language to write the component in.")
@click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where to create it (default: ./NAME).")
@click.option("--kind", type=click.Choice(KINDS), default="route", show_default=True,
              help="A route component, or a middleware stage that runs in front of routes (python, js).")
@click.option("--force", is_flag=True, help="Write into an existing, non-empty directory.")
def new_cmd(name: str, language: str, directory: Path | None, force: bool, kind: str) -> None:
    """Create component NAME: source, airssys.toml (grants and limits) and a pytest file."""
    from ...guest.scaffold import scaffold

    made = scaffold(name, language, directory=directory, force=force, kind=kind)
    where = made.directory
    what = language if kind == "route" else f"{language} middleware"
    click.echo(f"created {where}/ ({what}): {', '.join(p.relative_to(where).as_posix() for p in made.files)}")
    click.echo(f"toolchain: {_TOOLCHAIN[language]}\n\nnext:")
    if kind == "middleware":
        _echo_steps([
            (f"cd {where}", ""),
            ("airssys-web build", f"# -> {name}.wasm, checked against airssys:web/middleware"),
            ("pytest", "# builds (cached) and calls it in-process, with a stand-in route"),
            (f"airssys-web deploy {name} {name}.wasm --version 0.1.0 --registry ../airssys-data", "# no route"),
            (f"airssys-web pipeline set ROUTE_COMPONENT {name} --registry ../airssys-data", "# in front of it"),
        ])
        return
    _echo_steps([
        (f"cd {where}", ""),
        ("airssys-web build", f"# -> {name}.wasm, checked against the WIT"),
        ("pytest", "# builds (cached) and calls it in-process"),
        (f"airssys-web call {name}.wasm GET /{name}", "# one request, no server"),
        (f"airssys-web deploy {name} {name}.wasm --route /{name} --version 0.1.0 --registry ../airssys-data", ""),
        (f"airssys-web dev . --route /{name} --registry ../airssys-data", "# rebuild and hot-swap on save"),
    ])


def _echo_steps(steps: list[tuple[str, str]]) -> None:
    width = max(len(cmd) for cmd, _ in steps)
    for cmd, note in steps:
        click.echo(f"  {cmd.ljust(width)}  {note}".rstrip())
