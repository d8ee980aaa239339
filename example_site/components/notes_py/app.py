"""The /wasm/notes route: a JSON API written in Python with the airssys_guest SDK, storing notes in KV.

    GET    /wasm/notes            {"notes": [...], "count": N}  (newest first)
    POST   /wasm/notes            {"title": "...", "body": "..."} -> 201 and the note, with a Location header
    GET    /wasm/notes/{id}       the note, or 404
    PUT    /wasm/notes/{id}       replace title/body
    DELETE /wasm/notes/{id}       204

The component was granted its own KV namespace (``--kv``), so notes survive upgrades, rollbacks and restarts.
The WIT ``kv`` interface has get/set/delete only (no listing, no atomic update), so the list of ids is kept under
one key; two creates racing on two instances may drop one id from the list (the note itself is kept).
"""

import secrets
import time

from airssys_guest import App, HTTPError, Request, Response, kv

app = App()  # routes below wherever it is deployed (the host names the route in x-airssys-route)
INDEX = "index"
MAX_NOTES = 200


def _note(req: Request, old: dict | None = None) -> dict:
    data = req.json()
    if not isinstance(data, dict):
        raise HTTPError(422, "send a JSON object such as {\"title\": \"...\", \"body\": \"...\"}")
    title = data.get("title", (old or {}).get("title"))
    body = data.get("body", (old or {}).get("body", ""))
    if not isinstance(title, str) or not title.strip() or len(title) > 200:
        raise HTTPError(422, "title must be a non-empty string of at most 200 characters")
    if not isinstance(body, str) or len(body) > 10_000:
        raise HTTPError(422, "body must be a string of at most 10000 characters")
    return {"title": title.strip(), "body": body}


def _load(id: str) -> dict:
    note = kv.get_json(f"note:{id}")
    if note is None:
        raise HTTPError(404, f"no note {id}")
    return note


@app.get("/")
def list_notes(req: Request) -> dict:
    notes = [n for n in (kv.get_json(f"note:{i}") for i in kv.get_json(INDEX, [])) if n is not None]
    return {"notes": notes, "count": len(notes)}


@app.post("/")
def create_note(req: Request) -> Response:
    ids = kv.get_json(INDEX, [])
    if len(ids) >= MAX_NOTES:
        raise HTTPError(409, f"this demo keeps at most {MAX_NOTES} notes; delete some first")
    note = {"id": secrets.token_hex(4), **_note(req), "created": int(time.time())}
    kv.set_json(f"note:{note['id']}", note)
    kv.set_json(INDEX, [note["id"], *ids])
    return Response.json(note, 201, {"location": f"{req.root_path}/{note['id']}"})


@app.get("/{id}")
def get_note(req: Request, id: str) -> dict:
    return _load(id)


@app.put("/{id}")
def replace_note(req: Request, id: str) -> dict:
    note = {**_load(id), **_note(req, _load(id))}
    kv.set_json(f"note:{id}", note)
    return note


@app.delete("/{id}")
def delete_note(req: Request, id: str) -> None:
    _load(id)
    kv.delete(f"note:{id}")
    kv.set_json(INDEX, [i for i in kv.get_json(INDEX, []) if i != id])


Handler = app.Handler
