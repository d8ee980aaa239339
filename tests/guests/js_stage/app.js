// A middleware stage written with the JavaScript SDK: the same behaviour as stage.wat and py_stage/.
import { config, decodeUtf8, encodeUtf8, middleware, Response } from "@airssys/guest/middleware";

export const handler = middleware((request, next) => {
  const name = config.get("name", "stage");
  const required = config.get("require");
  if (required && !request.headers.has(required)) return Response.text(`unauthorized by ${name}`, 401);
  request.headers.append("x-stages", name);
  const response = next(request);
  response.headers.append("x-seen-by", name);
  if (config.get("upper") !== null) response.body = encodeUtf8(decodeUtf8(response.body).toUpperCase());
  return response;
});
