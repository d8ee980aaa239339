"""The ``airssys-web`` command: a thin layer that parses arguments and calls the Python API."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from ..errors import AirssysError, DeployError
from .commands.lifecycle import list_from_server, run_deploy, server_options, strategy_options
from .commands.options import capability_options

if TYPE_CHECKING:
    from ..capabilities.needs import NeedsCheck

from ..runtime.imports import WIT_FILE as WIT_PATH


def _fail(message: str, code: int = 2) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


registry_option = click.option("--registry", "registry", type=click.Path(file_okay=False, path_type=Path),
                               default=Path("./airssys-data"), show_default=True,
                               help="Registry directory (created if missing).")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="airssys-web")
def cli() -> None:
    """Serve and hot-swap WebAssembly component routes inside a Python web app."""


@cli.command()
@registry_option
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, type=int, show_default=True)
@click.option("--app", "app_path", default=None, metavar="MODULE:ATTR",
              help="The ASGI app to wrap (default: a small landing app).")
@click.option("--no-version-header", is_flag=True, help="Do not add x-airssys-version to responses.")
@click.option("--secret-file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="File with the admin API secret (default: $AIRSSYS_SECRET; neither: the admin API is off).")
@click.option("--admin-prefix", default="/_airssys/api", show_default=True, help="Where the admin API answers.")
@click.option("--max-upload", type=int, default=128, show_default=True, help="Largest .wasm upload, in MiB.")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
              help="Server processes (each runs its own host and registry watcher); use one per core.")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="Worker threads per process for guest calls [default: 4 per core + 4, at most 32].")
@click.option("--no-inline", is_flag=True,
              help="Run every guest call on a worker thread, even those measured to be short.")
@click.option("--body-timeout", default="10s", show_default=True, metavar="DURATION",
              help="Longest wait for the next byte of a request body to a component (408 beyond), e.g. 10s.")
@click.option("--log-level", default="info", show_default=True,
              type=click.Choice(["critical", "error", "warning", "info", "debug"]))
def serve(registry: Path, host: str, port: int, app_path: str | None, no_version_header: bool,
          secret_file: Path | None, admin_prefix: str, max_upload: int, workers: int, threads: int | None,
          no_inline: bool, body_timeout: str, log_level: str) -> None:
    """Serve the wrapped app with every active component route (uvicorn)."""
    from ..units import parse_duration
    from ..web.auth import load_secret
    from ..web.serve import run

    try:
        run(registry=registry, host=host, port=port, app=app_path, version_header=not no_version_header,
            log_level=log_level, secret=load_secret(secret_file), admin_prefix=admin_prefix,
            max_upload=max_upload * 1024 * 1024, workers=workers, threads=threads, inline=not no_inline,
            body_timeout=parse_duration(body_timeout, what="--body-timeout"))
    except AirssysError as e:
        _fail(str(e))


@cli.command()
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
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def deploy(name: str, file: Path, route: str | None, nested: bool, version: str, registry: Path, strategy: str,
           percent: int | None, probe: str | None, auto_rollback: str | None, server: str | None,
           token: str | None, as_json: bool, **options: Any) -> None:
    """Validate, compile and activate FILE as version VERSION of component NAME.

    The component gets only what is granted (flags, or the airssys.toml next to FILE); deploy shows what it
    declares it needs next to what it is granted, and refuses to deploy if a declared need is not granted.
    """
    from ..lifecycle.deploy import plan_capabilities, read_wasm
    from ..lifecycle.manifest import find_manifest, load_manifest
    from ..lifecycle.registry import validate_name, validate_route, validate_version
    from .commands.options import CapabilityOptions

    try:
        validate_name(name)
        validate_version(version)
        if route is not None:
            validate_route(route)
        opts = CapabilityOptions.pop_from(options)
        wasm = read_wasm(file)
        manifest_path = opts.manifest or find_manifest(file)
        manifest = load_manifest(manifest_path) if manifest_path is not None else None
        plan = plan_capabilities(wasm, grants=opts.grants, limits=opts.limits, manifest=manifest,
                                 grant_declared_needs=opts.grant_declared, enforce=False)
        if not as_json and (plan.check.declared or plan.check.rows):
            click.echo(render_needs(plan.check, manifest_path))
        plan.check.raise_for_missing()
    except AirssysError as e:
        _fail(str(e))
    run_deploy(name, file, version=version, route=route, settings=plan.settings, registry=registry, server=server,
               token=token, strategy=strategy, percent=percent, probe=probe, auto_rollback=auto_rollback,
               as_json=as_json, nested=nested)


def render_needs(check: NeedsCheck, manifest: Path | None) -> str:
    """The declared-vs-granted table ``deploy`` prints (secrets redacted), then the imports the host lacks."""
    source = f" (manifest {manifest})" if manifest is not None else ""
    rows = [r for r in check.rows if r.status != "unavailable"]
    lines: list[str] = []
    if not check.declared and rows:
        lines = [f"capabilities: the component declares no needs{source}; granted:"]
        lines += [f"  {r.kind:<9} {r.grant}" for r in rows]
    elif check.declared:
        width = max([len(r.need) for r in rows] + [8])
        lines = [f"capabilities{source}:", f"  {'kind':<9} {'declared':<{width}}  {'granted':<30}  status"]
        for r in rows:
            lines.append(f"  {r.kind:<9} {r.need or '-':<{width}}  {r.grant or '-':<30}  {r.status}")
    if check.unavailable:
        lines.append("unavailable: imports this host does not provide (a call to one fails; the rest is served):")
        lines += [f"  {r.need}" for r in check.unavailable]
    return "\n".join(lines)


@cli.command(name="list")
@registry_option
@server_options
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def list_cmd(registry: Path, server: str | None, token: str | None, as_json: bool) -> None:
    """Show components, their versions and routes, and which version is active."""
    from ..lifecycle.registry import EmbeddedRegistry
    from ..lifecycle.summary import settings_summary
    from ..runtime.platform import group_interfaces, unavailable_imports

    rows: list[dict[str, Any]] = []
    try:
        if server is not None:
            rows = list_from_server(server, token)
        else:
            with EmbeddedRegistry(registry) as reg:
                active = {d.component: d for d in reg.active()}
                for comp in reg.components():
                    dep = active.get(comp.name)
                    rows.append({
                        "component": comp.name,
                        "route": comp.route,
                        "nested": comp.nested,
                        "active": dep.active_version if dep else None,
                        "versions": [v.version for v in reg.versions(comp.name)],
                        **(settings_summary(dep.settings) if dep else {}),
                        "unavailable": (group_interfaces(unavailable_imports(reg.read_blob(dep.sha256)))
                                        if dep else []),
                    })
    except AirssysError as e:
        _fail(str(e))
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo("no components deployed")
        return
    from rich.markup import escape
    from rich.table import Table

    from .commands.output import print_table

    table = Table("component", "route", "active", "versions", "grants of the active version")
    for r in rows:
        versions = ", ".join(f"[bold]{v}[/bold]" if v == r["active"] else v for v in r["versions"])
        grants = "\n".join(escape(g) for g in r.get("grants") or []) or ("none" if "grants" in r else "-")
        if r.get("unavailable"):  # imports the host does not provide: a call to one fails
            grants += "\n" + "\n".join(escape(f"unavailable {u}") for u in r["unavailable"])
        route = r["route"] + (" (nested)" if r.get("nested") else "")
        table.add_row(r["component"], route, r["active"] or "-", versions, grants)
    print_table(table)


@cli.command()
@click.option("--path", "show_path", is_flag=True, help="Print the file's location instead of its text.")
def wit(show_path: bool) -> None:
    """Print the airssys:web WIT contract components are built against."""
    click.echo(str(WIT_PATH) if show_path else WIT_PATH.read_text(), nl=show_path)


from .commands.lifecycle import register as _register_lifecycle  # noqa: E402 - needs ``cli`` and ``deploy`` above

_register_lifecycle(cli, deploy, registry_option)

from .commands import build_cmd, call_cmd, dev_cmd, new_cmd  # noqa: E402 - the guest author's commands
from .commands.spin import register as _register_spin  # noqa: E402 - needs ``cli`` above

_register_spin(cli, registry_option)
cli.add_command(new_cmd)
cli.add_command(build_cmd)
cli.add_command(dev_cmd)
cli.add_command(call_cmd)


def main() -> None:
    try:
        cli.main(standalone_mode=True)
    except DeployError as e:  # pragma: no cover - commands handle their own
        _fail(str(e))


if __name__ == "__main__":  # pragma: no cover
    main()
