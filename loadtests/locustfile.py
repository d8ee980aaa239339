"""A realistic traffic mix over the example site: native pages, and every WebAssembly route in its real use.

Weights follow what a visitor of such a site does: mostly reads (the WAT and Python greetings, the notes list, the
forecast), some writes (notes created, read back and deleted; Markdown rendered). Every WebAssembly response must
carry ``x-airssys-version``; anything else than the expected status is a failure.

Run it against a running site: ``locust -f loadtests/locustfile.py --host http://127.0.0.1:8000``.
"""

from __future__ import annotations

import random

from locust import HttpUser, between, task
from locust.clients import ResponseContextManager

CITIES = ["Lisbon", "Oslo", "Nairobi", "Lima", "Osaka", "Perth"]
MARKDOWN = "# Report\n\nSome *emphasis*, some **strength** and `code`.\n\n- one\n- two\n\n> quoted\n"


def expect(response: ResponseContextManager, status: int = 200, wasm: bool = True) -> None:
    if response.status_code != status:
        response.failure(f"status {response.status_code} (expected {status}): {response.text[:200]}")
    elif wasm and "x-airssys-version" not in response.headers:
        response.failure("no x-airssys-version header: the request did not reach a component")
    else:
        response.success()


class SiteVisitor(HttpUser):
    wait_time = between(0.05, 0.5)

    @task(2)
    def home(self) -> None:
        with self.client.get("/", catch_response=True) as r:
            expect(r, wasm=False)

    @task(2)
    def native(self) -> None:
        with self.client.get(random.choice(["/native/hello", "/native/time"]), catch_response=True) as r:
            expect(r, wasm=False)

    @task(6)
    def wasm_hello(self) -> None:
        with self.client.get("/wasm/hello", catch_response=True) as r:
            expect(r)

    @task(3)
    def greet(self) -> None:
        with self.client.get("/wasm/greet", params={"name": random.choice(CITIES)}, name="/wasm/greet",
                             catch_response=True) as r:
            expect(r)

    @task(3)
    def list_notes(self) -> None:
        with self.client.get("/wasm/notes", catch_response=True) as r:
            expect(r)

    @task(1)
    def note_round_trip(self) -> None:
        with self.client.post("/wasm/notes", json={"title": "load test", "body": "x" * random.randint(0, 500)},
                              catch_response=True) as r:
            expect(r, 201)
            if r.status_code != 201:
                return
            note = r.json()["id"]
        with self.client.get(f"/wasm/notes/{note}", name="/wasm/notes/[id]", catch_response=True) as r:
            expect(r)
        with self.client.delete(f"/wasm/notes/{note}", name="/wasm/notes/[id]", catch_response=True) as r:
            expect(r, 204)

    @task(3)
    def markdown(self) -> None:
        with self.client.post("/wasm/markdown", data=MARKDOWN.encode(), catch_response=True) as r:
            expect(r)
            if r.status_code == 200 and not r.text.startswith("<h1>Report</h1>"):
                r.failure(f"unexpected rendering: {r.text[:80]}")

    @task(2)
    def forecast(self) -> None:
        with self.client.get("/wasm/forecast", params={"city": random.choice(CITIES), "format": "json"},
                             name="/wasm/forecast", catch_response=True) as r:
            expect(r)
