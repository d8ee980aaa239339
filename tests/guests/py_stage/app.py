"""A middleware stage written with the Python SDK; the same behaviour as stage.wat and js_stage/, set by config.

* ``name``: its name (default ``stage``);
* ``require``: a header the request must carry, else it answers 401 itself and the next stage is never called;
* ``upper``: present: the response body comes back upper-cased (a response rewritten on the way back).

Otherwise it appends ``x-stages: NAME`` to the request, passes it on, and appends ``x-seen-by: NAME`` to the
response.
"""

from airssys_guest import Next, Request, Response, config, middleware


@middleware
def stage(request: Request, next: Next) -> Response:
    name = config.get("name", "stage")
    required = config.get("require")
    if required and required not in request.headers:
        return Response.text(f"unauthorized by {name}", 401)
    request.headers.add("x-stages", name)
    response = next(request)
    response.headers.add("x-seen-by", name)
    if config.get("upper") is not None:
        response.body = response.body.upper()
    return response


Handler = stage.Handler
