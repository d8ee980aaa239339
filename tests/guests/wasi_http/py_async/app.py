"""A wasi:http/proxy guest in the asyncio style of componentize-py's examples/http (poll_loop, bundled with it).

/echo streams the request body back through Stream/Sink; /fetch?url=U fetches with poll_loop.send; else hello.
"""

import asyncio
from urllib.parse import parse_qs, urlparse

import poll_loop
from componentize_py_types import Ok
from poll_loop import PollLoop, Sink, Stream
from wit_world import exports
from wit_world.imports.types import (
    Fields,
    IncomingRequest,
    OutgoingRequest,
    OutgoingResponse,
    ResponseOutparam,
    Scheme_Http,
)


class IncomingHandler(exports.IncomingHandler):
    def handle(self, request: IncomingRequest, response_out: ResponseOutparam) -> None:
        loop = PollLoop()
        asyncio.set_event_loop(loop)
        loop.run_until_complete(handle_async(request, response_out))


async def handle_async(request: IncomingRequest, response_out: ResponseOutparam) -> None:
    target = urlparse(request.path_with_query() or "/")
    response = OutgoingResponse(Fields.from_list([("content-type", b"application/octet-stream")]))
    body = response.body()
    ResponseOutparam.set(response_out, Ok(response))
    sink = Sink(body)
    if target.path.endswith("/echo"):
        stream = Stream(request.consume())
        while True:
            chunk = await stream.next()
            if chunk is None:
                break
            await sink.send(chunk)
    elif target.path.endswith("/fetch"):
        url = urlparse(parse_qs(target.query)["url"][0])
        outgoing = OutgoingRequest(Fields())
        outgoing.set_scheme(Scheme_Http())
        outgoing.set_authority(url.netloc)
        outgoing.set_path_with_query(url.path or "/")
        try:
            answer = await poll_loop.send(outgoing)
            data = b""
            incoming = Stream(answer.consume())
            while (chunk := await incoming.next()) is not None:
                data += chunk
            await sink.send(f"status {answer.status()}: ".encode() + data)
        except Exception as e:  # an error-code raised by poll_loop.send
            await sink.send(f"error-code: {type(getattr(e, 'value', e)).__name__}".encode())
    else:
        await asyncio.sleep(0)
        await sink.send(b"hello from py_async\n")
    sink.close()
