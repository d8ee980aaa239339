"""How the CLI prints: records as one line, as tables, or as their JSON; tables sized for where they go.

The commands get typed records from the lifecycle API and only choose how to show them: ``--json`` prints the
record's own ``to_json()`` (the same JSON the admin API answers with), otherwise the functions here render text.

rich lays a table out to the console's width, which is 80 columns when output goes to a pipe, a file or a test
runner; a wide table then squeezes its last column to one character per line. Off a terminal the table is laid out
as wide as its content needs and each line's trailing padding is dropped, so ``history | grep`` and CI logs read
like the terminal does.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from rich.table import Table

    from ...capabilities.needs import NeedsCheck
    from ...lifecycle.api import Change, ComponentStatus
    from ...lifecycle.registry import Deployment, HistoryEntry

#: Wide enough for any row: off a terminal a table takes the width its content needs, not this.
_UNBOUNDED = 100_000


def show(result: str | dict[str, Any] | list[Any]) -> None:
    """Print a line of text, or a JSON value (a record's ``to_json()``) indented."""
    click.echo(result if isinstance(result, str) else json.dumps(result, indent=2))


def show_change(change: Change, verb: str, as_json: bool) -> None:
    """A deploy's, promote's or rollback's outcome: its JSON, or one line (``deployed hello@1.1.0 at /hello ...``)."""
    show(change.to_json() if as_json else describe(change.deployment, verb))


def where(route: str | None, nested: bool, stages: Sequence[str]) -> str:
    """Where a component serves: ``at /api``, ``at /api behind auth > log``, or ``as a middleware stage``."""
    if route is None:
        return "as a middleware stage"
    behind = f" behind {' > '.join(stages)}" if stages else ""
    return f"at {route}{' (nested)' if nested else ''}{behind}"


def describe(dep: Deployment, verb: str) -> str:
    """One line saying what serves a component now."""
    name, route = dep.component, where(dep.route, dep.nested, dep.stages)
    if dep.canary_version:
        return (f"canary {name}@{dep.canary_version} serves {dep.canary_percent}% of clients {route}; "
                f"{dep.active_version} serves the rest")
    watch = f"; auto-rollback {dep.auto_rollback}" if dep.auto_rollback else ""
    return f"{verb} {name}@{dep.active_version} {route} (sha256 {dep.sha256[:12]}){watch}"


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


def list_table(components: Sequence[ComponentStatus]) -> None:
    """``list``: a row per component, its versions (the active one bold) and the grants of the active version."""
    from rich.markup import escape
    from rich.table import Table

    table = Table("component", "route", "active", "versions", "grants of the active version")
    for c in components:
        info, active = c.component, c.component.active_version
        versions = ", ".join(f"[bold]{v.version}[/bold]" if v.version == active else v.version for v in c.versions)
        granted = c.deployment.settings.grants.describe() if c.deployment is not None else None
        grants = "-" if granted is None else "\n".join(escape(f"{k} {t}") for k, t in granted) or "none"
        if c.unavailable:  # imports the host does not provide: a call to one fails
            grants += "\n" + "\n".join(escape(f"unavailable {u}") for u in c.unavailable)
        table.add_row(info.name, where(info.route, info.nested, info.stages).removeprefix("at "), active or "-",
                      versions, grants)
    print_table(table)


def history_table(entries: Sequence[HistoryEntry]) -> None:
    """``history``: a row per change, oldest first."""
    from rich.table import Table

    table = Table(box=None, pad_edge=False)
    for column in ("#", "version", "action", "strategy", "who", "when (UTC)", "outcome"):
        table.add_column(column, no_wrap=True)
    table.add_column("detail", overflow="fold", ratio=1)
    for h in entries:
        table.add_row(str(h.id), h.version, h.action, h.strategy, h.actor, h.at.isoformat()[:19].replace("T", " "),
                      h.outcome, h.detail)
    print_table(table)


def print_table(table: Table) -> None:
    from rich.console import Console

    console = Console()
    if console.is_terminal:
        console.print(table)
        return
    wide = Console(width=_UNBOUNDED, no_color=True)
    with wide.capture() as captured:
        wide.print(table)
    click.echo("\n".join(line.rstrip() for line in captured.get().splitlines()))
