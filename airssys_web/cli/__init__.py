"""The ``airssys-web`` command: parses arguments, calls the Python API, renders what it returns.

Errors meet one boundary, the group's :meth:`Commands.invoke`: a refusal (any ``AirssysError``: bad input, nothing
changed) is one line, ``error: ...``, on stderr and exit code 2; a guest that fails while ``call`` runs it is
``error: the component failed: ...`` and exit code 1; anything else is a bug, shown with its traceback and a line
saying so, exit code 1. Commands raise; none prints its own errors, so every command fails the same way.

Only click and a few constants are imported up front: each command imports what it uses when it runs, so
``airssys-web --help`` and ``airssys-web deploy --help`` stay fast (``tests/test_cli.py`` pins which modules they
load).
"""

from __future__ import annotations

import traceback
from pathlib import Path
from typing import Any

import click

from ..errors import AirssysError, GuestError
from ..lifecycle.routing import ADMIN_PREFIX
from .commands import build_cmd, call_cmd, dev_cmd, new_cmd
from .commands.lifecycle import COMMANDS as LIFECYCLE_COMMANDS
from .commands.lifecycle import registry_option
from .commands.pipeline import pipeline
from .commands.spin import spin

__all__ = ["WIT_PATH", "cli", "main"]


class Commands(click.Group):
    """A click group whose ``invoke`` is the CLI's one error boundary (see the module docstring)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise  # click's own: usage errors, --help, Ctrl-C
        except GuestError as e:
            click.echo(f"error: the component failed: {e}", err=True)
            ctx.exit(1)
        except AirssysError as e:
            click.echo(f"error: {e}", err=True)
            ctx.exit(2)
        except Exception as e:
            traceback.print_exc()
            click.echo(f"error: unexpected {type(e).__name__}: {e} (a bug in airssys-web; please report it with "
                       "the traceback above)", err=True)
            ctx.exit(1)


@click.group(cls=Commands, context_settings={"help_option_names": ["-h", "--help"]})
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
@click.option("--admin-prefix", default=ADMIN_PREFIX, show_default=True, help="Where the admin API answers.")
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
@click.option("--log-format", default="text", show_default=True, type=click.Choice(["text", "json"]),
              help="json: one JSON object per line (ts, level, logger, message, request_id, component, ...).")
@click.option("--metrics-path", default="/_airssys/metrics", show_default=True,
              help="Where the Prometheus metrics answer (no token needed).")
@click.option("--no-metrics", is_flag=True, help="Do not serve the Prometheus metrics.")
def serve(registry: str, host: str, port: int, app_path: str | None, no_version_header: bool,
          secret_file: Path | None, admin_prefix: str, max_upload: int, workers: int, threads: int | None,
          no_inline: bool, body_timeout: str, log_level: str, log_format: str, metrics_path: str,
          no_metrics: bool) -> None:
    """Serve the wrapped app with every active component route (uvicorn)."""
    from ..units import parse_duration
    from ..web.auth import load_secret
    from ..web.serve import run

    run(registry=registry, host=host, port=port, app=app_path, version_header=not no_version_header,
        log_level=log_level, secret=load_secret(secret_file), admin_prefix=admin_prefix,
        max_upload=max_upload * 1024 * 1024, workers=workers, threads=threads, inline=not no_inline,
        body_timeout=parse_duration(body_timeout, what="--body-timeout"), log_format=log_format,
        metrics_path=None if no_metrics else metrics_path)


@cli.command()
@click.option("--path", "show_path", is_flag=True, help="Print the file's location instead of its text.")
def wit(show_path: bool) -> None:
    """Print the airssys:web WIT contract components are built against."""
    path = wit_path()
    click.echo(str(path) if show_path else path.read_text(), nl=show_path)


def wit_path() -> Path:
    """The WIT contract file (its module loads the runtime, so it is imported only when asked for)."""
    from ..runtime.imports import WIT_FILE

    return WIT_FILE


for _command in (*LIFECYCLE_COMMANDS, pipeline, spin, new_cmd, build_cmd, dev_cmd, call_cmd):
    cli.add_command(_command)


def __getattr__(name: str) -> Any:
    if name == "WIT_PATH":  # PEP 562: the path without loading the runtime on ``import airssys_web.cli``
        return wit_path()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def main() -> None:
    cli.main(standalone_mode=True)


if __name__ == "__main__":  # pragma: no cover
    main()
