"""airssys_guest: write airssys-web components in Python without touching the raw WIT.

::

    from airssys_guest import App, Request, Response, config, fetch, kv

    app = App()

    @app.get("/hello/{name}")
    def hello(req: Request, name: str) -> Response:
        return Response.text(f"{config.get('greeting', 'Hello')}, {name}!")

    Handler = app.Handler   # what componentize-py exports as airssys:web/handler

A middleware stage (in front of a route) is a function of the request and ``next``: see :mod:`.middleware`.

``airssys-web build`` (or :func:`airssys_web.guest.build.build_python_guest`) makes this package importable in the
guest; nothing needs installing.
"""

from .host import FetchDenied, FetchError, FetchResponse, GuestSDKError, KVError, config, fetch, kv
from .http import Headers, HTTPError, QueryParams, Request, Response
from .middleware import Middleware, Next, middleware
from .routing import App, Route, to_response

__version__ = "0.1.0"

__all__ = [
    "App",
    "FetchDenied",
    "FetchError",
    "FetchResponse",
    "GuestSDKError",
    "HTTPError",
    "Headers",
    "KVError",
    "Middleware",
    "Next",
    "QueryParams",
    "Request",
    "Response",
    "Route",
    "__version__",
    "config",
    "fetch",
    "kv",
    "middleware",
    "to_response",
]
