// @airssys/guest/middleware: a middleware stage in JavaScript, a function of the request and `next`.
//
//   import { middleware, Response } from "@airssys/guest/middleware";
//   export const handler = middleware((request, next) => {
//     if (request.headers.get("authorization") !== "Bearer let-me-in") {
//       return Response.json({ error: "unauthorized" }, 401);   // answers itself: next is never called
//     }
//     request.headers.set("x-user", "alice");                   // seen by the stages after it and the route
//     const response = next(request);
//     response.headers.set("x-auth", "checked");                // on the way back
//     return response;
//   });
//
// Build it for the middleware world (kind = "middleware" in airssys.toml, or `airssys-web build --kind
// middleware`): this module imports the next handler, which only that world provides, so route components never
// import it. `next` calls the next stage or the route's own component; if what comes after fails, the host fails
// the whole request with that error and `next` does not return. Everything of "@airssys/guest" is re-exported.

import nextHandler from "airssys:web/handler@0.1.1";
import { HTTPError, Headers, Request, Response, toResponse } from "@airssys/guest";

export * from "@airssys/guest";

/** Pass `request` to the rest of the chain; its Response. */
export function callNext(request) {
  const answer = nextHandler.handle({
    method: request.method,
    path: request.path,
    query: request.query,
    headers: request.headers.raw(),
    body: request.body,
  });
  return new Response(answer.body, { status: answer.status, headers: new Headers(answer.headers) });
}

/**
 * Make `fn(request, next)` a stage; its value is the airssys:web/handler export. `fn` returns a Response or
 * anything toResponse accepts. HTTPError answers its status with a JSON body; any other exception traps the
 * instance (the host logs it and answers 500), or with { debug: true } answers 500 with the message and stack.
 */
export function middleware(fn, { debug = false } = {}) {
  if (typeof fn !== "function") throw new TypeError("middleware takes a function (request, next) => Response");
  const run = (request, next) => {
    try {
      return toResponse(fn(request, next));
    } catch (e) {
      if (e instanceof HTTPError) return Response.json({ error: e.detail }, e.status, e.headers.raw());
      if (debug) return Response.json({ error: String(e), stack: e && e.stack }, 500);
      throw e;
    }
  };
  return {
    /** Run the stage outside the host (a test): `next` stands for the rest of the chain. */
    run,
    handle(req) {
      const response = run(new Request(req.method, req.path, req.query, req.headers, req.body), callNext);
      return { status: response.status, headers: response.headers.raw(), body: response.body };
    },
  };
}
