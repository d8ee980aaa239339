"""How the CLI prints a table: to the terminal's width in a terminal, at its natural width everywhere else.

rich lays a table out to the console's width, which is 80 columns when output goes to a pipe, a file or a test
runner; a wide table then squeezes its last column to one character per line. Off a terminal the table is laid out
as wide as its content needs and each line's trailing padding is dropped, so ``history | grep`` and CI logs read
like the terminal does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from rich.table import Table

#: Wide enough for any row: off a terminal a table takes the width its content needs, not this.
_UNBOUNDED = 100_000


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
