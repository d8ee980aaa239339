"""A wasi:http/proxy guest in the blocking style (componentize-py's bindings, no SDK).

Routes (by path): /echo streams the request body back; /big?n=N streams N bytes; /trap-mid sends a head and
64 KiB, then raises; /fetch?url=U sends an outbound GET; /rules reports the header rules; /headers?n=N answers
with N headers (as many as its fields accept); anything else: hello.
"""

from urllib.parse import parse_qs, urlparse

from componentize_py_types import Err, Ok
from wit_world import exports
from wit_world.imports import outgoing_handler, poll
from wit_world.imports.streams import StreamError_Closed
from wit_world.imports.types import (
    Fields,
    IncomingRequest,
    OutgoingBody,
    OutgoingRequest,
    OutgoingResponse,
    ResponseOutparam,
    Scheme_Http,
    Scheme_Https,
)


def respond(response_out: ResponseOutparam, status: int, headers: list[tuple[str, bytes]]) -> OutgoingBody:
    response = OutgoingResponse(Fields.from_list(headers))
    response.set_status_code(status)
    body = response.body()
    ResponseOutparam.set(response_out, Ok(response))
    return body


def write_all(stream, data: bytes) -> None:
    view = memoryview(data)
    while view:
        room = stream.check_write()
        if room == 0:
            pollable = stream.subscribe()
            pollable.block()
            pollable.__exit__(None, None, None)
            continue
        n = min(room, len(view))
        stream.write(bytes(view[:n]))
        view = view[n:]
    stream.blocking_flush()


def send_text(response_out: ResponseOutparam, status: int, text: str) -> None:
    body = respond(response_out, status, [("content-type", b"text/plain")])
    with body.write() as stream:
        write_all(stream, text.encode())
    OutgoingBody.finish(body, None)


class IncomingHandler(exports.IncomingHandler):
    def handle(self, request: IncomingRequest, response_out: ResponseOutparam) -> None:
        target = urlparse(request.path_with_query() or "/")
        query = {k: v[0] for k, v in parse_qs(target.query).items()}
        if target.path.endswith("/echo"):
            body = respond(response_out, 200, [("content-type", b"application/octet-stream")])
            incoming = request.consume()
            with incoming.stream() as source, body.write() as sink:
                while True:
                    try:
                        chunk = source.blocking_read(65536)
                    except Err as e:
                        if isinstance(e.value, StreamError_Closed):
                            break
                        raise
                    write_all(sink, chunk)
            OutgoingBody.finish(body, None)
        elif target.path.endswith("/big"):
            n = int(query.get("n", "1048576"))
            body = respond(response_out, 200, [("content-type", b"application/octet-stream")])
            block = bytes(range(256)) * 256
            with body.write() as sink:
                while n > 0:
                    write_all(sink, block[:n])
                    n -= min(n, len(block))
            OutgoingBody.finish(body, None)
        elif target.path.endswith("/trap-mid"):
            body = respond(response_out, 200, [("content-type", b"application/octet-stream")])
            with body.write() as sink:
                write_all(sink, b"x" * 65536)
                raise RuntimeError("failing mid-stream on purpose")
        elif target.path.endswith("/fetch"):
            send_text(response_out, 200, fetch(query["url"]))
        elif target.path.endswith("/headers"):
            fields = Fields()
            for i in range(int(query.get("n", "10"))):
                try:
                    fields.append(f"x-h{i}", b"v")
                except Err:
                    break  # the host's fields size limit: keep what fitted
            response = OutgoingResponse(fields)
            body = response.body()
            ResponseOutparam.set(response_out, Ok(response))
            OutgoingBody.finish(body, None)
        elif target.path.endswith("/rules"):
            send_text(response_out, 200, rules(request))
        else:
            method = type(request.method()).__name__.removeprefix("Method_").upper()
            authority = request.authority() or ""
            send_text(response_out, 200, f"hello from py_sync: {method} {request.path_with_query()} {authority}\n")


def fetch(url: str) -> str:
    parsed = urlparse(url)
    req = OutgoingRequest(Fields())
    req.set_scheme(Scheme_Https() if parsed.scheme == "https" else Scheme_Http())
    req.set_authority(parsed.netloc)
    req.set_path_with_query(parsed.path or "/")
    try:
        future = outgoing_handler.handle(req, None)
    except Err as e:
        return f"error-code: {type(e.value).__name__}"
    while True:
        got = future.get()
        if got is not None:
            break
        pollable = future.subscribe()
        poll.poll([pollable])
        pollable.__exit__(None, None, None)
    if isinstance(got, Err) or isinstance(got.value, Err):
        error = got.value.value if isinstance(got, Ok) else got.value
        return f"error-code: {type(error).__name__}"
    response = got.value.value
    body = response.consume()
    data = b""
    with body.stream() as stream:
        while True:
            try:
                data += stream.blocking_read(65536)
            except Err:
                break
    return f"status {response.status()}: {data.decode(errors='replace')}"


def rules(request: IncomingRequest) -> str:
    out = []
    for name, value in (("connection", b"close"), ("x-ok", b"fine"), ("bad name", b"v"), ("x-bad", b"a\nb")):
        try:
            Fields.from_list([(name, value)])
            out.append(f"{name}=ok")
        except Err as e:
            out.append(f"{name}={type(e.value).__name__}")
    try:
        request.headers().set("x-new", [b"1"])
        out.append("incoming=mutable")
    except Err as e:
        out.append(f"incoming={type(e.value).__name__}")
    return " ".join(out) + "\n"
