// A JavaScript SDK guest with no fixed prefix: it routes below wherever it is deployed (tests/test_sdk_js.py).
import { App } from "@airssys/guest";

const app = new App();

app.get("/", (req) => ({ root_path: req.rootPath, route_path: req.routePath, seen: req.headers.getAll("x-airssys-route") }));

app.get("/items/{id:int}", (req, { id }) => ({ id, root_path: req.rootPath, link: `${req.rootPath}/items/${id}` }));

export const handler = app.handler;
