// A middleware stage in front of /wasm/markdown: it refuses documents over its configured size before the
// renderer ever runs (413, answered here: the route is not called), and marks every answer that went through it.
// Deployed without a route; `airssys-web pipeline set markdown-js guard-js` puts it in front of the route.
import { config, middleware, Response } from "@airssys/guest/middleware";

export const handler = middleware((request, next) => {
  const limit = Number(config.get("max_bytes", "65536"));
  if (request.body.length > limit) {
    return Response.json({ error: `documents are limited to ${limit} bytes`, size: request.body.length }, 413);
  }
  const response = next(request);
  response.headers.set("x-guarded-by", "guard-js");
  return response;
});
