"""``airssys-web spin deploy spin.toml``: bring a Spin app across in one step.

The command only parses and calls the layers below (imported when it runs, so ``--help`` stays fast):
:mod:`airssys_web.lifecycle.spin_manifest` turns the manifest into a plan (a route and grants per HTTP component,
and what could not be mapped), and each component is deployed as ``deploy`` would, to a registry directory or
through a server's admin API. The plan is printed first, so what
was left out is always visible; ``--dry-run`` stops there. Every component's ``.wasm`` and settings are checked
before the first deploy, so a bad manifest or grant changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from ...errors import AirssysError
from .lifecycle import _from_api, actor, deployment_json, describe, fail, server_options, target
from .options import CapabilityOptions, limit_options


def _plan_lines(app: Any, plans: list[tuple[Any, Any]], version: str) -> list[str]:
    from ...runtime.limits import Limits

    lines = [f"Spin app {app.name} ({app.path}), version {version}:"]
    for component, plan in plans:
        lines.append(f"  {component.name} at {component.route} ({component.wasm})")
        grants = [f"{kind} {text}" for kind, text in component.grants.describe()]
        lines.append(f"    grants: {', '.join(grants) if grants else 'none'}")
        limits = Limits.from_dict(plan.settings.get("limits")).describe()
        lines.append("    limits: " + ", ".join(f"{k} {v}" for k, v in limits))
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


def register(cli: click.Group, registry_option: Callable[[Any], Any]) -> None:
    """Add the ``spin`` command group to ``cli``."""

    @cli.group(name="spin")
    def spin() -> None:
        """Run Spin apps: their HTTP components, with their grants mapped onto airssys-web's."""

    @spin.command(name="deploy")
    @click.argument("manifest", type=click.Path(dir_okay=False, path_type=Path))
    @click.option("--version", "version", default=None,
                  help="Version of every component (default: [application] version of the manifest).")
    @click.option("--base", default=None, metavar="/PREFIX",
                  help="Mount every route under this prefix (needed for a component routed at /...).")
    @click.option("--dry-run", is_flag=True, help="Print what would be deployed; deploy nothing.")
    @limit_options
    @registry_option
    @server_options
    @click.option("--json", "as_json", is_flag=True, help="Print the plan and the results as JSON.")
    def deploy(manifest: Path, version: str | None, base: str | None, dry_run: bool, registry: Path,
               server: str | None, token: str | None, as_json: bool, **options: Any) -> None:
        """Deploy every HTTP component of the Spin app MANIFEST (spin.toml) with its route, outbound hosts,
        key-value stores, variables and files; print what could not be mapped.

        As in Spin, every request gets a fresh instance (--isolation request) unless --isolation pooled is given.
        """
        from ...lifecycle.deploy import plan_capabilities, read_wasm
        from ...lifecycle.registry import validate_version
        from ...lifecycle.spin_manifest import load_spin_manifest

        try:
            app = load_spin_manifest(manifest, base=base)
            chosen = version or app.version
            if chosen is None:
                raise AirssysError(f"{manifest} has no [application] version; give one with --version")
            validate_version(chosen)
            # Spin gives every request a fresh instance (some SDK runtimes answer only one request per instance).
            limits = {"isolation": "request", **CapabilityOptions.pop_from(options).limits}
            staged = []
            for component in app.components:
                wasm = read_wasm(component.wasm)
                plan = plan_capabilities(wasm, grants=component.grants, limits=limits)
                staged.append((component, plan, wasm))
        except AirssysError as e:
            fail(str(e))
        plans = [(c, p) for c, p, _ in staged]
        report: dict[str, Any] = {
            "app": app.name, "version": chosen, "notes": list(app.notes),
            "components": [{"component": c.name, "route": c.route, "source": str(c.wasm),
                            "grants": [f"{k} {t}" for k, t in c.grants.describe()],
                            "unavailable": [r.need for r in p.check.unavailable], "notes": list(c.notes)}
                           for c, p in plans],
            "deployed": [],
        }
        if not as_json:
            click.echo("\n".join(_plan_lines(app, plans, chosen)))
        if not dry_run:
            _deploy_all(staged, chosen, report, registry, server, token, as_json)
        if as_json:
            import json

            click.echo(json.dumps(report, indent=2))


def _deploy_all(staged: list[tuple[Any, Any, bytes]], version: str, report: dict[str, Any], registry: Path,
                server: str | None, token: str | None, as_json: bool) -> None:
    """Deploy each component in turn; on a failure, say which were deployed before it (they stay)."""
    from ...lifecycle.deploy import deploy as plain_deploy
    from ...lifecycle.remote import AdminClient

    done: list[str] = []
    with target(registry, server, token) as where:
        for component, plan, wasm in staged:
            try:
                if isinstance(where, AdminClient):
                    result = _from_api(where.deploy(component.name, wasm, version=version, route=component.route,
                                                    settings=plan.settings))
                else:
                    result = deployment_json(plain_deploy(where, component.name, wasm, version=version,
                                                          route=component.route, settings=plan.settings,
                                                          manifest=False, actor=actor()))
            except AirssysError as e:
                before = f"; deployed before it (they stay): {', '.join(done)}" if done else ""
                fail(f"component {component.name}: {e}{before}")
            done.append(f"{component.name}@{version}")
            report["deployed"].append(result)
            if not as_json:
                click.echo(describe(result, "deployed"))
