"""The Python guest SDK exercised end to end (tests/test_sdk_python.py): routing, helpers, host calls, errors."""

from airssys_guest import App, FetchDenied, FetchError, HTTPError, KVError, Request, Response, config, fetch, kv

app = App(prefix="/sdk")


@app.get("/")
def index(req: Request) -> str:
    return "index"


@app.get("/items/{id:int}")
def get_item(req: Request, id: int) -> dict:
    return {"id": id, "type": type(id).__name__, "q": dict(req.query_params), "tags": req.query_params.get_all("t")}


@app.route("/echo", methods=["POST", "PUT"])
def echo(req: Request) -> Response:
    resp = Response(req.body, 201, content_type=req.headers.get("Content-Type", "application/octet-stream"))
    resp.headers.add("x-seen", req.headers.get("X-MIXED-case", "-"))
    resp.headers.add("x-seen", req.method)
    return resp


@app.post("/json")
def parse_json(req: Request) -> dict:
    return {"got": req.json()}


@app.get("/files/{rest:path}")
def files(req: Request, rest: str) -> tuple:
    return f"file {rest}", 203


@app.get("/html")
def html(req: Request) -> Response:
    return Response.html("<p>héllo</p>", headers={"X-Extra": "1"})


@app.get("/redirect")
def redirect(req: Request) -> Response:
    return Response.redirect("/sdk/")


@app.get("/empty")
def empty(req: Request) -> None:
    return None


@app.get("/teapot")
def teapot(req: Request) -> Response:
    raise HTTPError(418, "short and stout")


@app.get("/boom")
def boom(req: Request) -> Response:
    raise RuntimeError("kaboom")


@app.get("/config/{key}")
def get_config(req: Request, key: str) -> dict:
    return {"value": config.get(key), "default": config.get(key, "dflt"), "present": key in config}


@app.get("/fetch")
def do_fetch(req: Request) -> Response:
    url = req.query_params["url"]
    try:
        r = fetch(url, headers={"x-from": "guest"})
    except FetchDenied as exc:
        return Response.text(f"denied: {exc}", 403)
    except FetchError as exc:
        return Response.text(f"failed: {exc}", 502)
    return Response.json({"status": r.status, "body": r.text, "type": r.headers.get("content-type")})


@app.route("/kv/{key}", methods=["GET", "PUT", "DELETE"])
def kv_item(req: Request, key: str) -> Response:
    try:
        if req.method == "PUT":
            kv.set_json(key, req.json())
            return Response.text("stored", 201)
        if req.method == "DELETE":
            kv.delete(key)
            return Response(b"", 204)
        value = kv.get_json(key)
    except KVError as exc:
        return Response.json({"kv_error": str(exc)}, 507)
    if value is None:
        raise HTTPError(404, f"no key {key}")
    return Response.json(value)


Handler = app.Handler
