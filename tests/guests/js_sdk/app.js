// The JavaScript guest SDK exercised end to end (tests/test_sdk_js.py): the same routes as py_sdk/app.py.
import {
  App, FetchDenied, FetchError, HTTPError, KVError, Response, config, fetch, kv, decodeUtf8, encodeUtf8,
} from "@airssys/guest";
import { shout } from "./lib/util.js";

const app = new App({ prefix: "/sdk" });

app.get("/", () => "index");

app.get("/items/{id:int}", (req, { id }) => ({
  id, type: typeof id, q: req.queryParams.toJSON(), tags: req.queryParams.getAll("t"),
}));

app.route("/echo", ["POST", "PUT"], (req) => {
  const resp = new Response(req.body, {
    status: 201, contentType: req.headers.get("Content-Type", "application/octet-stream"),
  });
  resp.headers.append("x-seen", req.headers.get("X-MIXED-case", "-"));
  resp.headers.append("x-seen", req.method);
  return resp;
});

app.post("/json", (req) => ({ got: req.json() }));

app.get("/files/{rest:path}", (req, { rest }) => Response.text(`file ${rest}`, 203));

app.get("/html", () => Response.html("<p>héllo</p>", 200, { "X-Extra": "1" }));

app.get("/redirect", () => Response.redirect("/sdk/"));

app.get("/empty", () => null);

app.get("/teapot", () => { throw new HTTPError(418, "short and stout"); });

app.get("/boom", () => { throw new Error("kaboom"); });

app.get("/utf8", (req) => Response.text(shout(decodeUtf8(encodeUtf8(req.queryParams.get("s", ""))))));

app.get("/config/{key}", (req, { key }) => ({
  value: config.get(key), default: config.get(key, "dflt"), present: config.has(key),
}));

app.get("/fetch", (req) => {
  const url = req.queryParams.get("url");
  let r;
  try {
    r = fetch(url, { headers: { "x-from": "guest" } });
  } catch (e) {
    if (e instanceof FetchDenied) return Response.text(`denied: ${e.message}`, 403);
    if (e instanceof FetchError) return Response.text(`failed: ${e.message}`, 502);
    throw e;
  }
  return { status: r.status, body: r.text, type: r.headers.get("content-type") };
});

app.route("/kv/{key}", ["GET", "PUT", "DELETE"], (req, { key }) => {
  let value;
  try {
    if (req.method === "PUT") {
      kv.setJson(key, req.json());
      return Response.text("stored", 201);
    }
    if (req.method === "DELETE") {
      kv.delete(key);
      return new Response("", { status: 204 });
    }
    value = kv.getJson(key);
  } catch (e) {
    if (e instanceof KVError) return Response.json({ kv_error: e.message }, 507);
    throw e;
  }
  if (value === null) throw new HTTPError(404, `no key ${key}`);
  return Response.json(value);
});

export const handler = app.handler;
