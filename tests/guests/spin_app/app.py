"""A Spin component written against the public spin-sdk 5.0.0 only (nothing of airssys-web), one route per case.

Routes go by the last path segment, so it answers at any mount point:

* ``/hello``: ``Hello from Python!`` (Spin's own hello world);
* ``/var?name=N``: ``spin_sdk.variables.get(N)``; ``/config?name=N``: ``wasi:config/store.get(N)``;
* ``/kv?key=K[&store=S]``: GET reads, PUT writes the body, DELETE deletes, in store ``default`` or ``S``;
  ``/keys[?store=S]``: the store's keys, one a line; ``/wasi-kv?key=K``: ``wasi:keyvalue/store`` on ``default``;
* ``/fetch?url=U``: ``spin_sdk.http.send`` a GET (its status and body, or 502 with the error);
* ``/echo``: the request body back, whole;
* ``/mysql``: opens a MySQL connection (an interface the host does not provide);
* anything else: 404.

A key-value error answers 403 with its repr (``Err(Error_AccessDenied())``), a variable error 404.
"""

from urllib.parse import parse_qs, urlsplit

from componentize_py_types import Err
from spin_sdk import http, key_value, mysql, variables
from spin_sdk.http import Request, Response
from spin_sdk.wit.imports import wasi_config_store_0_2_0_draft_2024_09_27 as wasi_config
from spin_sdk.wit.imports import wasi_keyvalue_store_0_2_0_draft2 as wasi_kv

TEXT = {"content-type": "text/plain"}


def text(status: int, body: str | bytes) -> Response:
    return Response(status, dict(TEXT), body.encode() if isinstance(body, str) else body)


class HttpHandler(http.Handler):
    async def handle_request(self, request: Request) -> Response:
        parts = urlsplit(request.uri)
        route = parts.path.rstrip("/").rsplit("/", 1)[-1]
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        if route == "hello":
            return text(200, "Hello from Python!")
        if route == "var":
            try:
                return text(200, await variables.get(query["name"]))
            except Err as e:
                return text(404, repr(e.value))
        if route == "config":
            value = wasi_config.get(query["name"])
            return text(200, value) if value is not None else text(404, "none")
        if route in ("kv", "keys"):
            try:
                return await kv(request, route, query)
            except Err as e:
                return text(403, repr(e.value))
        if route == "wasi-kv":
            try:
                bucket = wasi_kv.open(query.get("store", "default"))
                if request.method == "PUT":
                    bucket.set(query["key"], request.body or b"")
                    return text(201, "stored")
                value = bucket.get(query["key"])
                return text(200, value) if value is not None else text(404, "none")
            except Err as e:
                return text(403, repr(e.value))
        if route == "fetch":
            try:
                answer = await http.send(Request("GET", query["url"], {}, None))
            except Err as e:
                return text(502, repr(e.value))
            return text(answer.status, answer.body or b"")
        if route == "echo":
            return Response(200, {"content-type": "application/octet-stream"}, request.body or b"")
        if route == "mysql":
            await mysql.open("mysql://127.0.0.1/db")
            return text(200, "unexpected: mysql opened")
        return text(404, f"no route {route!r}")


async def kv(request: Request, route: str, query: dict[str, str]) -> Response:
    with await key_value.open(query.get("store", "default")) as store:
        if route == "keys":
            keys, done = await store.get_keys()
            names: list[str] = []
            with keys:
                while not keys.writer_dropped:
                    names += await keys.read(100)
            with done:
                outcome = await done.read()
            if isinstance(outcome, Err):
                return text(403, repr(outcome.value))
            return text(200, "\n".join(names))
        key = query["key"]
        if request.method == "PUT":
            await store.set(key, request.body or b"")
            return text(201, "stored")
        if request.method == "DELETE":
            await store.delete(key)
            return text(204, "")
        if not await store.exists(key):
            return text(404, "none")
        value = await store.get(key)
        return text(200, value or b"")
