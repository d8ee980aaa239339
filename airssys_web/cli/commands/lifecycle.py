"""The lifecycle commands: ``update``, ``promote``, ``rollback``, ``history``, ``status``, ``token``, and the
``--server`` mode shared with ``deploy`` and ``list``.

Each command works on a registry directory (``--registry DIR``; a running server watching it applies the change)
or against a running server's admin API (``--server URL`` with ``--token``/``AIRSSYS_TOKEN``). Bad input gives a
one-line ``error: ...`` and exit code 2, as everywhere in the CLI.
"""

from __future__ import annotations

import getpass
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click

from ...errors import AirssysError
from ...lifecycle.deploy import read_wasm
from ...lifecycle.registry import Deployment, EmbeddedRegistry
from ...lifecycle.remote import AdminClient
from ...lifecycle.summary import settings_summary, summary_lines
from ...units import parse_duration
from ...web.admin import history_json
from ...web.auth import MAX_TTL, TOKEN_ENV, TokenAuthority, load_secret
from .output import print_table

F = TypeVar("F", bound=Callable[..., Any])


def fail(message: str, code: int = 2) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    raise SystemExit(code)


def actor() -> str:
    """Who a registry-mode change is recorded as."""
    try:
        return f"cli:{getpass.getuser()}"
    except (OSError, KeyError):  # pragma: no cover - no user name in this environment
        return "cli"


def server_options(f: F) -> F:
    """``--server URL`` and ``--token`` (alternatives to ``--registry``)."""
    f = click.option("--token", envvar=TOKEN_ENV, default=None, metavar="TOKEN",
                     help=f"Admin token for --server (default: ${TOKEN_ENV}).")(f)
    return click.option("--server", default=None, metavar="URL",
                        help="Act through a running server's admin API instead of --registry, "
                             "e.g. http://127.0.0.1:8000.")(f)


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


@contextmanager
def target(registry: Path, server: str | None, token: str | None) -> Iterator[EmbeddedRegistry | AdminClient]:
    """The registry directory or the server's admin API, whichever the command line names."""
    ctx = click.get_current_context()
    if server is not None and ctx.get_parameter_source("registry") is click.core.ParameterSource.COMMANDLINE:
        fail("give either --registry or --server, not both")
    try:
        if server is not None:
            with AdminClient(server, token) as client:
                yield client
        else:
            with EmbeddedRegistry(registry) as reg:
                yield reg
    except AirssysError as e:
        fail(str(e))


def deployment_json(dep: Deployment) -> dict[str, Any]:
    return {"component": dep.component, "version": dep.active_version, "route": dep.route, "nested": dep.nested,
            "sha256": dep.sha256, "previous_version": dep.previous_version, "canary_version": dep.canary_version,
            "canary_percent": dep.canary_percent, "auto_rollback": dep.auto_rollback,
            **settings_summary(dep.settings)}


def _from_api(data: dict[str, Any]) -> dict[str, Any]:
    d = data["deployment"]
    return {"component": d["component"], "version": d["active_version"], "route": d["route"],
            "nested": d.get("nested", False), "sha256": d["sha256"], "previous_version": d["previous_version"],
            "canary_version": d["canary_version"], "canary_percent": d["canary_percent"],
            "auto_rollback": d["auto_rollback"], "serving": data["serving"], "warnings": data.get("warnings", [])}


def describe(result: dict[str, Any], verb: str) -> str:
    """One line saying what serves now."""
    name, route = result["component"], result["route"] + (" (nested)" if result.get("nested") else "")
    if result.get("canary_version"):
        return (f"canary {name}@{result['canary_version']} serves {result['canary_percent']}% of clients at "
                f"{route}; {result['version']} serves the rest")
    watch = f"; auto-rollback {result['auto_rollback']}" if result.get("auto_rollback") else ""
    return f"{verb} {name}@{result['version']} at {route} (sha256 {result['sha256'][:12]}){watch}"


def emit(result: Any, as_json: bool, text: str) -> None:
    click.echo(json.dumps(result, indent=2) if as_json else text)


def run_deploy(name: str, file: Path, *, version: str, route: str | None, settings: dict[str, Any],
               registry: Path, server: str | None, token: str | None, strategy: str, percent: int | None,
               probe: str | None, auto_rollback: str | None, as_json: bool, nested: bool = False) -> None:
    """The body of ``deploy`` and ``update`` once the settings are parsed."""
    from ...lifecycle.deploy import deploy as plain_deploy
    from ...lifecycle.strategies import Plan, rollout_local

    try:
        plan = Plan.parse(strategy, percent=percent, probe=probe, auto_rollback=auto_rollback)
        wasm = read_wasm(file)
    except AirssysError as e:
        fail(str(e))
    with target(registry, server, token) as where:
        if isinstance(where, AdminClient):
            result = _from_api(where.deploy(name, wasm, version=version, route=route, settings=settings,
                                            strategy=strategy, percent=percent, probe=probe,
                                            auto_rollback=auto_rollback, nested=nested))
        elif plan == Plan():
            result = deployment_json(plain_deploy(where, name, wasm, version=version, route=route,
                                                  settings=settings, actor=actor(), allow_nested=nested))
        else:
            result = deployment_json(rollout_local(where, name, wasm, version=version, route=route,
                                                   settings=settings, plan=plan, actor=actor(),
                                                   allow_nested=nested))
    for warning in result.get("warnings") or ():
        click.echo(f"warning: {warning}", err=True)
    emit(result, as_json, describe(result, "deployed"))


def register(cli: click.Group, deploy: click.Command, registry_option: Callable[[Any], Any]) -> None:
    """Add the lifecycle commands to ``cli``; ``update`` shares every option of ``deploy``."""
    route = click.Option(["--route"], default=None, help="Move the component to this path prefix (default: keep).")
    cli.add_command(click.Command(
        "update", callback=deploy.callback, params=[route if p.name == "route" else p for p in deploy.params],
        help="Replace the active version of NAME with FILE as VERSION, using a strategy.\n\n"
             "Same options as deploy; --route is optional (the component keeps its route).",
        context_settings=deploy.context_settings))

    @cli.command()
    @click.argument("name")
    @registry_option
    @server_options
    @click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
    def promote(name: str, registry: Path, server: str | None, token: str | None, as_json: bool) -> None:
        """Make the canary of NAME the active version (100 % of clients)."""
        with target(registry, server, token) as where:
            if isinstance(where, AdminClient):
                result = _from_api(where.promote(name))
            else:
                result = deployment_json(where.promote(name, actor=actor()))
        emit(result, as_json, describe(result, "promoted"))

    @cli.command()
    @click.argument("name")
    @click.option("--to-version", default=None, metavar="VERSION",
                  help="Activate this version (default: undo the last change: a canary goes to 0 %, else the "
                       "previous active version).")
    @registry_option
    @server_options
    @click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
    def rollback(name: str, to_version: str | None, registry: Path, server: str | None, token: str | None,
                 as_json: bool) -> None:
        """Roll NAME back; the version comes back with the settings it was deployed with, without recompiling."""
        with target(registry, server, token) as where:
            if isinstance(where, AdminClient):
                result = _from_api(where.rollback(name, to_version))
            else:
                result = deployment_json(where.rollback(name, to_version, actor=actor()))
        emit(result, as_json, describe(result, "rolled back to"))

    @cli.command()
    @click.argument("name")
    @registry_option
    @server_options
    @click.option("--json", "as_json", is_flag=True, help="Print JSON.")
    def history(name: str, registry: Path, server: str | None, token: str | None, as_json: bool) -> None:
        """Show every change of NAME: version, action, strategy, who, when, outcome."""
        with target(registry, server, token) as where:
            rows = where.history(name) if isinstance(where, AdminClient) else [
                history_json(h) for h in where.history(name)]
        if as_json:
            emit(rows, True, "")
            return
        from rich.table import Table

        table = Table(box=None, pad_edge=False)
        for column in ("#", "version", "action", "strategy", "who", "when (UTC)", "outcome"):
            table.add_column(column, no_wrap=True)
        table.add_column("detail", overflow="fold", ratio=1)
        for r in rows:
            table.add_row(str(r["id"]), r["version"], r["action"], r["strategy"], r["actor"],
                          r["at"][:19].replace("T", " "), r["outcome"], r["detail"])
        print_table(table)

    @cli.command()
    @registry_option
    @server_options
    @click.option("--json", "as_json", is_flag=True, help="Print JSON.")
    def status(registry: Path, server: str | None, token: str | None, as_json: bool) -> None:
        """Show what serves each component: active version, canary split, auto-rollback watch."""
        with target(registry, server, token) as where:
            if isinstance(where, AdminClient):
                rows = [_status_row(where.component(c["component"])) for c in where.components() if c["active"]]
            else:
                rows = [deployment_json(d) for d in where.active()]
        if as_json:
            emit(rows, True, "")
            return
        if not rows:
            click.echo("no components deployed")
            return
        for r in rows:
            click.echo(describe(r, "serving"))
            for line in summary_lines(r):
                click.echo(f"  {line}")

    @cli.command()
    @click.option("--scope", type=click.Choice(["read", "deploy"]), default="read", show_default=True,
                  help="read: inspect only; deploy: also upload, deploy, promote and roll back.")
    @click.option("--ttl", default="1h", show_default=True, metavar="DURATION",
                  help="Lifetime, e.g. 30m, 1h, 7d (a bare number is seconds; at most 366d).")
    @click.option("--secret-file", type=click.Path(dir_okay=False, path_type=Path), default=None,
                  help="File with the server secret (default: $AIRSSYS_SECRET).")
    @click.option("--json", "as_json", is_flag=True, help="Print the token with its id and expiry as JSON.")
    def token(scope: str, ttl: str, secret_file: Path | None, as_json: bool) -> None:
        """Mint an admin API token signed with the server's secret."""
        try:
            secret = load_secret(secret_file)
            if secret is None:
                fail("no secret: set AIRSSYS_SECRET or pass --secret-file (the same one the server uses)")
            bearer, info = TokenAuthority(secret).mint(scope, parse_duration(ttl, what="--ttl", maximum=MAX_TTL))
        except AirssysError as e:
            fail(str(e))
        emit({"token": bearer, **info.as_json()}, as_json, bearer)


def list_from_server(server: str, token: str | None) -> list[dict[str, Any]]:
    """``list --server``: the same rows as from a registry directory."""
    try:
        with AdminClient(server, token) as client:
            return [{"component": c["component"], "route": c["route"], "nested": c.get("nested", False),
                     "active": c["active"], "versions": c["versions"]} for c in client.components()]
    except AirssysError as e:
        fail(str(e))


def _status_row(component: dict[str, Any]) -> dict[str, Any]:
    dep = component["deployment"] or {}
    return {"component": component["component"], "route": component["route"],
            "nested": component.get("nested", False),
            "version": dep.get("active_version"), "sha256": dep.get("sha256", ""),
            "previous_version": dep.get("previous_version"), "canary_version": dep.get("canary_version"),
            "canary_percent": dep.get("canary_percent", 0), "auto_rollback": dep.get("auto_rollback"),
            "serving": component["serving"], **settings_summary(dep.get("settings") or {})}
