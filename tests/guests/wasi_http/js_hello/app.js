// A wasi:http/proxy guest in JavaScript, built with componentize-js (StarlingMonkey) from its own documentation:
// no SDK, only the wasi:http@0.2.0 bindings componentize-js generates from the WIT.
import { Fields, OutgoingBody, OutgoingResponse, ResponseOutparam } from "wasi:http/types@0.2.0";

const encoder = new TextEncoder();

export const incomingHandler = {
  handle(request, responseOut) {
    const response = new OutgoingResponse(Fields.fromList([["content-type", encoder.encode("text/plain")]]));
    const body = response.body();
    ResponseOutparam.set(responseOut, { tag: "ok", val: response });
    const stream = body.write();
    stream.blockingWriteAndFlush(encoder.encode(`hello from componentize-js ${request.pathWithQuery()}\n`));
    stream[Symbol.dispose]();
    OutgoingBody.finish(body, undefined);
  },
};
