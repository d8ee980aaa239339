"""A Python SDK guest with no fixed prefix: it routes below wherever it is deployed (tests/test_sdk_python.py)."""

from airssys_guest import App, Request

app = App()


@app.get("/")
def index(req: Request) -> dict:
    return {"root_path": req.root_path, "route_path": req.route_path, "seen": req.headers.get_all("x-airssys-route")}


@app.get("/items/{id:int}")
def item(req: Request, id: int) -> dict:
    return {"id": id, "root_path": req.root_path, "link": f"{req.root_path}/items/{id}"}


Handler = app.Handler
