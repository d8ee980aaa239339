"""The lifecycle commands: ``deploy``, ``update``, ``promote``, ``rollback``, ``history``, ``status``, ``list`` and
``token``.

Each works on a registry (``--registry DIR`` or ``--registry redis://...``; a running server watching it applies the
change) or against
a running server's admin API (``--server URL`` with ``--token``/``AIRSSYS_TOKEN``): :func:`open_lifecycle` picks the
:class:`~airssys_web.lifecycle.api.Lifecycle` implementation, and the command calls it and renders the record it
returns (``--json``: the record's own JSON). Nothing here knows which implementation it talks to. Refusals are
raised, and the CLI's error boundary prints them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from ...errors import AirssysError
from ...web.auth import TOKEN_ENV
from .options import capability_options
from .output import describe, history_table, list_table, render_needs, show, show_change

if TYPE_CHECKING:
    from ...lifecycle.api import Lifecycle

F = TypeVar("F", bound=Callable[..., Any])

registry_option = click.option("--registry", "registry", default="./airssys-data", show_default=True,
                               metavar="DIR|URL",
                               help="Registry directory (created if missing), or Redis: redis://host:port/db.")
json_option = click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")


def server_options(f: F) -> F:
    """``--server URL`` and ``--token`` (alternatives to ``--registry``)."""
    f = click.option("--token", envvar=TOKEN_ENV, default=None, metavar="TOKEN",
                     help=f"Admin token for --server (default: ${TOKEN_ENV}).")(f)
    return click.option("--server", default=None, metavar="URL",
                        help="Act through a running server's admin API instead of --registry, "
                             "e.g. http://127.0.0.1:8000.")(f)


def where_options(f: F) -> F:
    """``--registry`` or ``--server``/``--token`` (where a lifecycle command acts), and ``--json``."""
    return registry_option(server_options(json_option(f)))


def strategy_options(f: F) -> F:
    """``--strategy``, ``--percent``, ``--probe``, ``--auto-rollback``."""
    for option in reversed([
        click.option("--strategy", type=click.Choice(["immediate", "blue-green", "canary"]), default="immediate",
                     show_default=True, help="How the new version replaces the active one."),
        click.option("--percent", type=int, default=None,
                     help="Canary: share of clients (1-100) sent to the new version. [default: 10]"),
        click.option("--probe", default=None, metavar="PATH",
                     help="blue-green/canary: GET PATH through the new version before the switch; must be 2xx."),
        click.option("--auto-rollback", "auto_rollback", default=None, metavar="POLICY",
                     help="Roll back by itself on failures, e.g. error-rate=5%,window=30s,min-requests=20."),
    ]):
        f = option(f)
    return f


def open_lifecycle(registry: str, server: str | None, token: str | None) -> Lifecycle:
    """The registry directory or the server's admin API, whichever the command line names."""
    ctx = click.get_current_context()
    if server is not None and ctx.get_parameter_source("registry") is click.core.ParameterSource.COMMANDLINE:
        raise AirssysError("give either --registry or --server, not both")
    if server is not None:
        from ...lifecycle.remote import RemoteLifecycle

        return RemoteLifecycle(server, token)
    from ...lifecycle.local import LocalLifecycle

    return LocalLifecycle(registry)


@click.command()
@click.argument("name")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--route", default=None,
              help="Path prefix the component owns, e.g. /hello (required on its first deploy; default: keep it).")
@click.option("--nested", is_flag=True,
              help="Allow a route under or above another component's route (the longer prefix wins its paths).")
@click.option("--version", "version", required=True, help="SemVer version, e.g. 1.0.0.")
@registry_option
@capability_options
@strategy_options
@server_options
@json_option
def deploy(name: str, file: Path, route: str | None, nested: bool, version: str, registry: str, strategy: str,
           percent: int | None, probe: str | None, auto_rollback: str | None, server: str | None,
           token: str | None, as_json: bool, **options: Any) -> None:
    """Validate, compile and activate FILE as version VERSION of component NAME.

    The component gets only what is granted (flags, or the airssys.toml next to FILE); deploy shows what it
    declares it needs next to what it is granted, and refuses to deploy if a declared need is not granted.
    """
    from ...lifecycle.api import DeployRequest, Plan
    from ...lifecycle.deploy import plan_capabilities, read_wasm
    from ...lifecycle.manifest import find_manifest, load_manifest
    from ...lifecycle.registry import validate_name, validate_route, validate_version
    from ...lifecycle.settings import VersionSettings
    from .options import CapabilityOptions

    validate_name(name)
    validate_version(version)
    if route is not None:
        validate_route(route)
    opts = CapabilityOptions.pop_from(options)
    wasm = read_wasm(file)
    manifest_path = opts.manifest or find_manifest(file)
    manifest = load_manifest(manifest_path) if manifest_path is not None else None
    capabilities = plan_capabilities(wasm, settings=VersionSettings(opts.grants, opts.limits), manifest=manifest,
                                     grant_declared_needs=opts.grant_declared, enforce=False)
    if not as_json and (capabilities.check.declared or capabilities.check.rows):
        click.echo(render_needs(capabilities.check, manifest_path))
    capabilities.check.raise_for_missing()
    request = DeployRequest(name, wasm, version=version, route=route, settings=capabilities.settings, nested=nested,
                            plan=Plan.parse(strategy, percent=percent, probe=probe, auto_rollback=auto_rollback))
    with open_lifecycle(registry, server, token) as lifecycle:
        change = lifecycle.deploy(request)
    for warning in change.warnings:
        click.echo(f"warning: {warning}", err=True)
    show_change(change, "deployed", as_json)


update = click.Command(
    "update", callback=deploy.callback, context_settings=deploy.context_settings,
    params=[click.Option(["--route"], default=None, help="Move the component to this path prefix (default: keep).")
            if p.name == "route" else p for p in deploy.params],
    help="Replace the active version of NAME with FILE as VERSION, using a strategy.\n\n"
         "Same options as deploy; --route is optional (the component keeps its route).")


@click.command()
@click.argument("name")
@where_options
def promote(name: str, registry: str, server: str | None, token: str | None, as_json: bool) -> None:
    """Make the canary of NAME the active version (100 % of clients)."""
    with open_lifecycle(registry, server, token) as lifecycle:
        change = lifecycle.promote(name)
    show_change(change, "promoted", as_json)


@click.command()
@click.argument("name")
@click.option("--to-version", default=None, metavar="VERSION",
              help="Activate this version (default: undo the last change: a canary goes to 0 %, else the "
                   "previous active version).")
@where_options
def rollback(name: str, to_version: str | None, registry: str, server: str | None, token: str | None,
             as_json: bool) -> None:
    """Roll NAME back; the version comes back with the settings it was deployed with, without recompiling."""
    with open_lifecycle(registry, server, token) as lifecycle:
        change = lifecycle.rollback(name, to_version)
    show_change(change, "rolled back to", as_json)


@click.command()
@click.argument("name")
@where_options
def history(name: str, registry: str, server: str | None, token: str | None, as_json: bool) -> None:
    """Show every change of NAME: version, action, strategy, who, when, outcome."""
    with open_lifecycle(registry, server, token) as lifecycle:
        entries = lifecycle.history(name)
    if as_json:
        show([h.to_json() for h in entries])
    else:
        history_table(entries)


@click.command()
@where_options
def status(registry: str, server: str | None, token: str | None, as_json: bool) -> None:
    """Show what serves each component: active version, canary split, auto-rollback watch; with --server, also
    whether that server reaches its registry (and, if it does not, what it keeps serving)."""
    from ...errors import RegistryError
    from ...lifecycle.remote import RemoteLifecycle

    with open_lifecycle(registry, server, token) as lifecycle:
        process = lifecycle.server_status() if isinstance(lifecycle, RemoteLifecycle) else None
        try:
            serving = [s for s in lifecycle.components() if s.deployment is not None]
        except RegistryError:
            if process is None or process["registry"]["state"] == "ok":
                raise
            serving = None
    health = process["registry"] if process is not None else None
    if as_json:
        if serving is None:
            assert process is not None
            show(process)
        else:
            show([s.to_json() for s in serving])
        return
    if health is not None and health["state"] != "ok":
        click.echo(f"warning: the server cannot reach its registry {health['location']} since {health['since']} "
                   f"({health['retries']} retries): {health['error']}; it keeps serving what it had loaded",
                   err=True)
    if serving is None:
        assert process is not None
        for name, row in sorted(process["components"].items()):
            canary = f" and {row['canary']} to {row['canary_percent']}% of clients" if row["canary"] else ""
            click.echo(f"serving {name}@{row['active']}{canary} (as loaded before the registry became unreachable)")
        return
    if not serving:
        click.echo("no components deployed")
    for s in serving:
        assert s.deployment is not None
        click.echo(describe(s.deployment, "serving"))
        for line in s.deployment.settings.summary_lines():
            click.echo(f"  {line}")


@click.command(name="list")
@where_options
def list_cmd(registry: str, server: str | None, token: str | None, as_json: bool) -> None:
    """Show components, their versions and routes, and which version is active."""
    with open_lifecycle(registry, server, token) as lifecycle:
        components = lifecycle.components()
    if as_json:
        show([c.to_json() for c in components])
    elif not components:
        click.echo("no components deployed")
    else:
        list_table(components)


@click.command()
@click.option("--scope", type=click.Choice(["read", "deploy"]), default="read", show_default=True,
              help="read: inspect only; deploy: also upload, deploy, promote and roll back.")
@click.option("--ttl", default="1h", show_default=True, metavar="DURATION",
              help="Lifetime, e.g. 30m, 1h, 7d (a bare number is seconds; at most 366d).")
@click.option("--secret-file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="File with the server secret (default: $AIRSSYS_SECRET).")
@click.option("--json", "as_json", is_flag=True, help="Print the token with its id and expiry as JSON.")
def token(scope: str, ttl: str, secret_file: Path | None, as_json: bool) -> None:
    """Mint an admin API token signed with the server's secret."""
    from ...units import parse_duration
    from ...web.auth import MAX_TTL, TokenAuthority, load_secret

    secret = load_secret(secret_file)
    if secret is None:
        raise AirssysError("no secret: set AIRSSYS_SECRET or pass --secret-file (the same one the server uses)")
    bearer, info = TokenAuthority(secret).mint(scope, parse_duration(ttl, what="--ttl", maximum=MAX_TTL))
    show({"token": bearer, **info.as_json()} if as_json else bearer)


COMMANDS = (deploy, update, promote, rollback, history, status, list_cmd, token)
