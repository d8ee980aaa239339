"""``airssys-web dev DIR (--server URL | --registry DIR)``: rebuild on save and hot-swap without a restart."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from ...guest import LANGUAGES
from .options import grant_options, limit_options


@click.command("dev")
@click.argument("source", type=click.Path(exists=True, path_type=Path), default=Path("."))
@click.option("--registry", default=None, metavar="DIR|URL",
              help="Deploy into this registry: a directory or redis://host:port/db (a server watching it swaps "
                   "within a second).")
@click.option("--server", default=None, metavar="URL", help="Deploy through this server's admin API instead.")
@click.option("--token", envvar="AIRSSYS_TOKEN", default=None, help="Admin token for --server [$AIRSSYS_TOKEN].")
@click.option("--name", default=None, help="Component name (default: the directory's name).")
@click.option("--route", default=None, help="Route to serve it at (default: /NAME).")
@click.option("--nested", is_flag=True, help="Allow a route under or above another component's route.")
@click.option("--lang", "language", type=click.Choice(sorted(LANGUAGES)), default=None,
              help="The guest's language (default: detected).")
@grant_options
@limit_options
def dev_cmd(source: Path, registry: str | None, server: str | None, token: str | None, name: str | None,
            route: str | None, nested: bool, language: str | None, **options: Any) -> None:
    """Watch SOURCE, rebuild on every save and deploy each good build as a new version, live.

    The server keeps running: the route switches to the new build once it is warm, and requests in flight finish
    on the old one. A failed build is shown and the last good version keeps serving. airssys.toml is re-read on
    every change; grant and limit flags are applied on top of it. Stop with Ctrl-C.
    """
    from rich.console import Console

    from ...errors import AirssysError
    from ...guest.dev import DevSession, guest_files
    from ...lifecycle.api import Lifecycle
    from ...lifecycle.local import LocalLifecycle
    from ...lifecycle.manifest import manifest_kind
    from ...lifecycle.registry import validate_name, validate_route
    from ...lifecycle.remote import RemoteLifecycle
    from .options import CapabilityOptions

    if (registry is None) == (server is None):
        raise AirssysError("give exactly one of --registry DIR (a server watching it) or --server URL (its admin API)")
    resolved = source.resolve()
    name = name or (resolved.stem if resolved.is_file() else resolved.name).replace("_", "-").lower()
    stage = manifest_kind(source) == "middleware"
    try:
        validate_name(name)
        if stage and route is not None:
            raise AirssysError(f"{source} is a middleware stage (airssys.toml says kind = \"middleware\"): it has no "
                               "route; run dev without --route, and put it in front of a route with pipeline set")
        where = None if stage else validate_route(route or f"/{name}")
    except AirssysError as e:
        raise AirssysError(f"{e} (pass --name/--route)" if "name" in str(e) else str(e)) from None
    opts = CapabilityOptions.pop_from(options)
    target: Lifecycle = (LocalLifecycle(registry, actor="dev") if registry is not None
                         else RemoteLifecycle(str(server), token))
    console = Console(stderr=True)
    session = DevSession(source, target, name, where, grants=opts.grants, limits=opts.limits, language=language,
                         console=console, nested=nested)
    count = len(list(guest_files(source)))
    at = "as a middleware stage" if where is None else f"at {where}"
    console.print(f"[bold]airssys-web dev[/bold]: {name} {at} -> {target.describe()}; "
                  f"watching {source} ({count} file{'s' if count != 1 else ''}). Ctrl-C stops.")

    def report(cycle: Any) -> None:
        stamp = f"[dim]{cycle.seconds:5.1f}s[/dim]"
        if not cycle.ok:
            keep = f"{cycle.serving} keeps serving" if cycle.serving else "nothing deployed yet"
            console.print(f"{stamp} [red]build failed[/red] ({keep}):\n{cycle.error}", highlight=False)
        elif cycle.deployed:
            b = cycle.build
            console.print(f"{stamp} [green]serving {cycle.serving}[/green] {at} "
                          f"({b.language}, {b.size / 1024:.0f} KiB{', cached build' if b.cached else ''})")
        else:
            console.print(f"{stamp} no change to the component or its settings; {cycle.serving} serves")

    try:
        session.watch(report)
    except KeyboardInterrupt:  # pragma: no cover - interactive
        pass
    finally:
        target.close()
    console.print(f"stopped; {session.serving or 'nothing'} stays deployed")
