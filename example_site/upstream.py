"""A stand-in for a third-party HTTP API, served on 127.0.0.1 next to the site: what ``/wasm/forecast`` calls.

It answers ``GET /forecast?city=NAME`` with a made-up, deterministic three-day forecast (JSON) and ``GET /health``.
It binds an ephemeral loopback port, so nothing outside this machine can reach it and nothing else is needed.
"""

from __future__ import annotations

import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

SKIES = ["sunny", "partly cloudy", "cloudy", "light rain", "showers", "windy", "fog"]
DAYS = ["today", "tomorrow", "the day after"]


def forecast(city: str) -> dict[str, object]:
    seed = hashlib.sha256(city.strip().lower().encode()).digest()
    days = []
    for i, day in enumerate(DAYS):
        low = seed[i] % 15
        days.append({"day": day, "sky": SKIES[seed[i + 3] % len(SKIES)], "low": low, "high": low + 4 + seed[i + 6] % 9})
    return {"city": city.strip() or "nowhere", "days": days, "source": "example upstream"}


class _Handler(BaseHTTPRequestHandler):
    server_version = "ExampleUpstream/1.0"

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        if url.path == "/health":
            self._send(200, {"ok": True})
        elif url.path == "/forecast":
            city = parse_qs(url.query).get("city", ["Paris"])[0][:100]
            self._send(200, forecast(city))
        else:
            self._send(404, {"error": f"no such resource {url.path}"})

    def _send(self, status: int, data: object) -> None:
        body = json.dumps(data).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # keep the site's log readable
        pass


class Upstream:
    """The mock API in a daemon thread: ``with Upstream() as up: up.url``."""

    def __init__(self, port: int = 0) -> None:
        self._server = ThreadingHTTPServer(("127.0.0.1", port), _Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="example-upstream", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> Upstream:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> Upstream:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
