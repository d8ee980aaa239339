"""``airssys-web serve``: wrap an ASGI app (or the landing app) in the middleware and run it with uvicorn."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import click
import uvicorn
from starlette.types import ASGIApp
from uvicorn.importer import ImportFromStringError, import_from_string

from .errors import AirssysError
from .host import AirssysHost
from .landing import landing_app
from .middleware import AirssysMiddleware


def build_app(registry: str | Path, app: str | ASGIApp | None = None, *, version_header: bool = True,
              poll_interval: float = 0.2, **admin: Any) -> AirssysMiddleware:
    """The ASGI app ``serve`` runs: ``app`` (an object or a ``module:attr`` string) behind the middleware.

    ``admin`` takes the middleware's admin API options (``secret``, ``admin_prefix``, ``max_upload``)."""
    holder: list[AirssysHost] = []
    if app is None:
        inner: ASGIApp = landing_app(lambda: holder[0] if holder else None)
    elif isinstance(app, str):
        try:
            inner = import_from_string(app)
        except ImportFromStringError as e:
            raise AirssysError(f"--app {app!r}: {e}") from None
    else:
        inner = app
    mw = AirssysMiddleware(inner, registry=registry, version_header=version_header, poll_interval=poll_interval,
                           **admin)
    holder.append(mw.host)
    return mw


def run(*, registry: str | Path, host: str = "127.0.0.1", port: int = 8000, app: str | None = None,
        version_header: bool = True, log_level: str = "info", **admin: Any) -> None:
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asgi = build_app(registry, app, version_header=version_header, **admin)
    shown = "localhost" if host in ("127.0.0.1", "0.0.0.0") else host
    click.echo(f"airssys-web serving registry {registry} at http://{shown}:{port}/", err=True)
    uvicorn.run(asgi, host=host, port=port, log_level=log_level, lifespan="on")
