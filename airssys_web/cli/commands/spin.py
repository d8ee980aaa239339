"""``airssys-web spin deploy spin.toml``: bring a Spin app across in one step.

The command only parses and calls the layers below (imported when it runs, so ``--help`` stays light):
:mod:`airssys_web.lifecycle.spin_manifest` turns the manifest into a plan (a route and grants per HTTP component,
and what could not be mapped), and each component is deployed through the :class:`~airssys_web.lifecycle.api.
Lifecycle`, on a registry directory or through a server's admin API, like ``deploy``. The plan is printed first, so
what was left out is always visible; ``--dry-run`` stops there. Every component's ``.wasm`` and settings are checked
before the first deploy, so a bad manifest or grant changes nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ...errors import AirssysError, DeployError
from .lifecycle import open_lifecycle, where_options
from .options import limit_options
from .output import describe, show

if TYPE_CHECKING:
    from ...lifecycle.deploy import CapabilityPlan
    from ...lifecycle.spin_manifest import SpinApp, SpinComponent

Staged = list[tuple["SpinComponent", "CapabilityPlan", bytes]]


@click.group()
def spin() -> None:
    """Run Spin apps: their HTTP components, with their grants mapped onto airssys-web's."""


@spin.command("deploy")
@click.argument("manifest", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--version", "version", default=None,
              help="Version of every component (default: [application] version of the manifest).")
@click.option("--base", default=None, metavar="/PREFIX",
              help="Mount every route under this prefix (needed for a component routed at /...).")
@click.option("--dry-run", is_flag=True, help="Print what would be deployed; deploy nothing.")
@limit_options
@where_options
def deploy(manifest: Path, version: str | None, base: str | None, dry_run: bool, registry: str, server: str | None,
           token: str | None, as_json: bool, **options: Any) -> None:
    """Deploy every HTTP component of the Spin app MANIFEST (spin.toml) with its route, outbound hosts,
    key-value stores, variables and files; print what could not be mapped.

    As in Spin, every request gets a fresh instance (--isolation request) unless --isolation pooled is given.
    """
    from ...lifecycle.deploy import plan_capabilities, read_wasm
    from ...lifecycle.registry import validate_version
    from ...lifecycle.settings import VersionSettings
    from ...lifecycle.spin_manifest import load_spin_manifest
    from .options import CapabilityOptions

    app = load_spin_manifest(manifest, base=base)
    chosen = version or app.version
    if chosen is None:
        raise DeployError(f"{manifest} has no [application] version; give one with --version")
    validate_version(chosen)
    # Spin gives every request a fresh instance (some SDK runtimes answer only one request per instance).
    limits = {"isolation": "request", **CapabilityOptions.pop_from(options).limits}
    staged: Staged = []
    for component in app.components:
        wasm = read_wasm(component.wasm)
        staged.append((component, plan_capabilities(wasm, settings=VersionSettings(component.grants, limits)), wasm))
    report = _report(app, staged, chosen)
    if not as_json:
        click.echo("\n".join(_plan_lines(app, staged, chosen)))
    if not dry_run:
        _deploy_all(staged, chosen, report, registry, server, token, as_json)
    if as_json:
        show(report)


def _report(app: SpinApp, staged: Staged, version: str) -> dict[str, Any]:
    """The plan as JSON (``--json``); ``deployed`` is filled in as components are deployed."""
    return {"app": app.name, "version": version, "notes": list(app.notes), "deployed": [],
            "components": [{"component": c.name, "route": c.route, "source": str(c.wasm),
                            "grants": [f"{k} {t}" for k, t in c.grants.describe()],
                            "unavailable": [r.need for r in p.check.unavailable], "notes": list(c.notes)}
                           for c, p, _ in staged]}


def _plan_lines(app: SpinApp, staged: Staged, version: str) -> list[str]:
    lines = [f"Spin app {app.name} ({app.path}), version {version}:"]
    for component, plan, _ in staged:
        lines.append(f"  {component.name} at {component.route} ({component.wasm})")
        grants = [f"{kind} {text}" for kind, text in component.grants.describe()]
        lines.append(f"    grants: {', '.join(grants) if grants else 'none'}")
        lines.append("    limits: " + ", ".join(f"{k} {v}" for k, v in plan.settings.limits.describe()))
        if plan.check.unavailable:
            lines.append("    unavailable (imports this host does not provide; calling one fails):")
            lines += [f"      {row.need}" for row in plan.check.unavailable]
        if component.notes:
            lines.append("    left out:")
            lines += [f"      {note}" for note in component.notes]
    if app.notes:
        lines.append("  left out:")
        lines += [f"    {note}" for note in app.notes]
    return lines


def _deploy_all(staged: Staged, version: str, report: dict[str, Any], registry: str, server: str | None,
                token: str | None, as_json: bool) -> None:
    """Deploy each component in turn; on a failure, say which were deployed before it (they stay)."""
    from ...lifecycle.api import DeployRequest

    done: list[str] = []
    with open_lifecycle(registry, server, token) as lifecycle:
        for component, plan, wasm in staged:
            request = DeployRequest(component.name, wasm, version=version, route=component.route,
                                    settings=plan.settings)
            try:
                change = lifecycle.deploy(request)
            except AirssysError as e:
                if not done:
                    raise
                raise DeployError(f"component {component.name}: {e}; deployed before it (they stay): "
                                  f"{', '.join(done)}") from None
            done.append(f"{component.name}@{version}")
            report["deployed"].append(change.to_json())
            if not as_json:
                for warning in change.warnings:
                    click.echo(f"warning: {warning}", err=True)
                click.echo(describe(change.deployment, "deployed"))
