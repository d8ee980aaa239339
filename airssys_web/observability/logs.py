"""Logs: the request a log line belongs to, request ids, and one JSON object per line when asked for.

The package logs through the standard ``logging`` module only. What a line is about comes from two places:

* the request being served, which the middleware puts in a context variable (:data:`REQUEST`: request id,
  component, version, route) for as long as it serves it. Worker threads run guest calls in a copy of the
  caller's context (``runtime.dispatch``), so a guest's output, an outbound denial or a pipeline stage's failure
  logged there carries the request's fields too;
* ``extra=`` on the call (``status``, ``duration_ms``, or any of the above), which wins.

:class:`JSONFormatter` writes ``ts``, ``level``, ``logger``, ``message`` and those fields when known (plus
``exception`` with the traceback); :func:`configure_logging` installs it (``serve --log-format json``, or
``AirssysMiddleware(..., log_format="json")``). Text stays the default.

Request ids: every response from a component carries ``x-request-id``. A client's own id is reused when it is
well-formed (at most :data:`MAX_REQUEST_ID` characters of letters, digits and ``._:+=@/-``), so a proxy's id
follows the request through; otherwise the process makes one (a random prefix per process and a counter: unique
without a syscall per request).
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import re
import sys
import time
from contextvars import ContextVar
from typing import IO, Any, Protocol


class Served(Protocol):
    """What serves a request (a generation): its component and version."""

    @property
    def name(self) -> str: ...
    @property
    def version(self) -> str: ...


#: The request being served: ``(request id, what serves it, route)``; None outside a request. The id stays bytes
#: and the component and version are read from the generation only when a line is written: the request path
#: pays for one tuple and one ``ContextVar.set``.
REQUEST: ContextVar[tuple[bytes, Served, str] | None] = ContextVar("airssys_request", default=None)
REQUEST_ID_HEADER = b"x-request-id"
MAX_REQUEST_ID = 128
_WELL_FORMED = re.compile(rb"[A-Za-z0-9._:+=@/-]{1,%d}" % MAX_REQUEST_ID)
#: The fields a line may carry beyond the four every line has, in the order they are written.
FIELDS = ("request_id", "component", "version", "route", "status", "duration_ms")
FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class RequestIds:
    """Makes request ids: 8 random hex digits per process (drawn again in a forked child), then a counter in hex."""

    __slots__ = ("_counter", "_prefix")

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self._prefix = os.urandom(4).hex().encode()
        self._counter = itertools.count(1)

    def new(self) -> bytes:
        return b"%s%08x" % (self._prefix, next(self._counter))

    def accept(self, raw: bytes | None) -> bytes:
        """The client's id if it is well-formed, else a new one (ASCII bytes, as in the header)."""
        if raw is not None and _WELL_FORMED.fullmatch(raw):
            return raw
        return self.new()


REQUEST_IDS = RequestIds()
os.register_at_fork(after_in_child=REQUEST_IDS._reset)  # a forked child must not repeat its parent's ids


def current_request_id() -> str | None:
    """The id of the request being served in this context, if any."""
    info = REQUEST.get()
    return None if info is None else info[0].decode("ascii")


class JSONFormatter(logging.Formatter):
    """One JSON object per record, on one line: ``ts`` (UTC, ISO 8601 with milliseconds), ``level``, ``logger``,
    ``message``, then :data:`FIELDS` where known, and ``exception``/``stack`` when the record has them."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        info = REQUEST.get()
        if info is not None:
            request_id, served, route = info
            out["request_id"] = request_id.decode("ascii")
            out["component"], out["version"], out["route"] = served.name, served.version, route
        for key in FIELDS:
            value = record.__dict__.get(key)
            if value is not None:
                out[key] = value
        if record.name == "uvicorn.access" and isinstance(record.args, tuple) and len(record.args) == 5:
            out.setdefault("status", record.args[4])  # uvicorn's access line: client, method, path, version, status
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        return json.dumps(out, default=str, ensure_ascii=False)


def formatter(log_format: str) -> logging.Formatter:
    """The formatter for ``"text"`` (the default format) or ``"json"``."""
    if log_format == "json":
        return JSONFormatter()
    if log_format == "text":
        return logging.Formatter(TEXT_FORMAT)
    raise ValueError(f"log format must be one of {', '.join(FORMATS)}, not {log_format!r}")


def configure_logging(log_format: str = "json", *, level: int | str | None = None, logger: str = "airssys_web",
                      stream: IO[str] | None = None) -> logging.Handler:
    """Send ``logger``'s records (default: everything airssys-web logs; ``""``: the root logger, everything) to
    ``stream`` (default: stderr) in ``log_format``. Replaces a handler this function installed before, so calling
    it twice is harmless. A named logger then stops propagating to the root, so a line is not written twice.
    Returns the handler."""
    target = logging.getLogger(logger)
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(formatter(log_format))
    handler.set_name("airssys-web")
    for old in [h for h in target.handlers if h.get_name() == "airssys-web"]:
        target.removeHandler(old)
    target.addHandler(handler)
    if level is not None:
        target.setLevel(level.upper() if isinstance(level, str) else level)
    elif target.level == logging.NOTSET and logger:
        target.setLevel(logging.INFO)
    if logger:
        target.propagate = False
    return handler


def logging_config(log_format: str, level: str) -> dict[str, Any]:
    """A ``logging.config.dictConfig`` for ``serve``: the root logger (airssys-web and the wrapped app) and
    uvicorn's loggers, all in ``log_format``. uvicorn applies it in every worker process."""
    kind = {"()": f"{__name__}.JSONFormatter"} if log_format == "json" else {"format": TEXT_FORMAT}
    formatter(log_format)  # validate
    handler = {"class": "logging.StreamHandler", "formatter": "airssys", "stream": "ext://sys.stderr"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"airssys": kind},
        "handlers": {"airssys": handler},
        "root": {"handlers": ["airssys"], "level": level.upper()},
        "loggers": {name: {"handlers": [], "level": level.upper(), "propagate": True}
                    for name in ("uvicorn", "uvicorn.error", "uvicorn.access")},
    }


__all__ = ["FIELDS", "FORMATS", "MAX_REQUEST_ID", "REQUEST", "REQUEST_IDS", "REQUEST_ID_HEADER", "JSONFormatter",
           "RequestIds", "configure_logging", "current_request_id", "formatter", "logging_config"]
