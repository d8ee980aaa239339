"""``airssys-web pipeline set|show|clear``: the middleware stages in front of a route component.

Like the other lifecycle commands, each acts on a registry directory or through a server's admin API
(``--server``), and prints the record the lifecycle returns (``--json``: its JSON).
"""

from __future__ import annotations

import click

from .lifecycle import open_lifecycle, where_options
from .output import show, show_change


@click.group()
def pipeline() -> None:
    """Put middleware stages in front of a route component, show them, or clear them.

    A stage is a component built for the middleware world (airssys-web build --kind middleware) and deployed
    without a route. Each keeps its own sandbox, grants, limits and versions. Pipeline changes are in the route's
    history, and `airssys-web rollback COMPONENT` undoes the last one.
    """


@pipeline.command("set")
@click.argument("component")
@click.argument("stages", nargs=-1, required=True)
@where_options
def set_cmd(component: str, stages: tuple[str, ...], registry: str, server: str | None, token: str | None,
            as_json: bool) -> None:
    """Put STAGES in front of COMPONENT's route: the first sees each request first and its response last."""
    from ...lifecycle.pipeline import Pipeline

    wanted = Pipeline(component, stages)
    with open_lifecycle(registry, server, token) as lifecycle:
        change = lifecycle.set_pipeline(wanted)
    show_change(change, "piped", as_json)


@pipeline.command("show")
@click.argument("component")
@where_options
def show_cmd(component: str, registry: str, server: str | None, token: str | None, as_json: bool) -> None:
    """Show the stages in front of COMPONENT, in the order a request passes them."""
    from ...lifecycle.pipeline import Pipeline

    with open_lifecycle(registry, server, token) as lifecycle:
        status = lifecycle.component(component)
    stages = list(status.component.stages)
    if as_json:
        show({"component": component, "stages": stages})
    else:
        click.echo(Pipeline(component, stages).describe())


@pipeline.command("clear")
@click.argument("component")
@where_options
def clear_cmd(component: str, registry: str, server: str | None, token: str | None, as_json: bool) -> None:
    """Remove every stage in front of COMPONENT."""
    from ...lifecycle.pipeline import Pipeline

    with open_lifecycle(registry, server, token) as lifecycle:
        change = lifecycle.set_pipeline(Pipeline(component))
    show_change(change, "cleared the pipeline of", as_json)
