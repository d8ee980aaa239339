// @airssys/guest: write airssys-web components in JavaScript (componentize-qjs / QuickJS) without the raw WIT.
//
//   import { App, Response, config, fetch, kv } from "@airssys/guest";
//   const app = new App();
//   app.get("/hello/{name}", (req, { name }) => Response.text(`${config.get("greeting", "Hello")}, ${name}!`));
//   export const handler = app.handler;   // the airssys:web/handler export
//
// The same shape as the Python SDK (airssys_guest). QuickJS has no TextEncoder, TextDecoder or console: this
// module provides UTF-8 helpers (and installs minimal TextEncoder/TextDecoder if missing) and a console whose
// output is discarded (a guest has no stdout). An exception escaping a route traps the instance: the host logs
// its message and stack, answers 500 with a request id, and replaces the instance.

import outbound from "airssys:web/outbound@0.1.1";
import wasmConfig from "airssys:web/config@0.1.1";
import wasmKv from "airssys:web/kv@0.1.1";

export const version = "0.1.0";

// ---------------------------------------------------------------------------------------------------- UTF-8

/** Encode a string as UTF-8 bytes. */
export function encodeUtf8(text) {
  const s = String(text);
  const out = [];
  for (let i = 0; i < s.length; i++) {
    let c = s.charCodeAt(i);
    if (c >= 0xd800 && c < 0xdc00 && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d < 0xe000) {
        c = 0x10000 + ((c - 0xd800) << 10) + (d - 0xdc00);
        i++;
      }
    }
    if (c >= 0xd800 && c < 0xe000) c = 0xfffd; // a lone surrogate
    if (c < 0x80) out.push(c);
    else if (c < 0x800) out.push(0xc0 | (c >> 6), 0x80 | (c & 63));
    else if (c < 0x10000) out.push(0xe0 | (c >> 12), 0x80 | ((c >> 6) & 63), 0x80 | (c & 63));
    else out.push(0xf0 | (c >> 18), 0x80 | ((c >> 12) & 63), 0x80 | ((c >> 6) & 63), 0x80 | (c & 63));
  }
  return new Uint8Array(out);
}

/** Decode UTF-8 bytes to a string; invalid sequences become U+FFFD. */
export function decodeUtf8(bytes) {
  const b = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes || []);
  let out = "";
  let chunk = [];
  const flush = () => {
    out += String.fromCharCode.apply(null, chunk);
    chunk = [];
  };
  for (let i = 0; i < b.length; ) {
    const x = b[i];
    let c = 0xfffd;
    let n = 1;
    if (x < 0x80) c = x;
    else if (x >= 0xc2 && x < 0xe0 && i + 1 < b.length && (b[i + 1] & 0xc0) === 0x80) {
      c = ((x & 31) << 6) | (b[i + 1] & 63);
      n = 2;
    } else if (x >= 0xe0 && x < 0xf0 && i + 2 < b.length && (b[i + 1] & 0xc0) === 0x80 && (b[i + 2] & 0xc0) === 0x80) {
      c = ((x & 15) << 12) | ((b[i + 1] & 63) << 6) | (b[i + 2] & 63);
      n = 3;
      if (c < 0x800 || (c >= 0xd800 && c < 0xe000)) c = 0xfffd;
    } else if (x >= 0xf0 && x < 0xf5 && i + 3 < b.length && (b[i + 1] & 0xc0) === 0x80 &&
               (b[i + 2] & 0xc0) === 0x80 && (b[i + 3] & 0xc0) === 0x80) {
      c = ((x & 7) << 18) | ((b[i + 1] & 63) << 12) | ((b[i + 2] & 63) << 6) | (b[i + 3] & 63);
      n = 4;
      if (c < 0x10000 || c > 0x10ffff) c = 0xfffd;
    }
    if (c >= 0x10000) {
      c -= 0x10000;
      chunk.push(0xd800 + (c >> 10), 0xdc00 + (c & 1023));
    } else chunk.push(c);
    if (chunk.length > 4096) flush();
    i += n;
  }
  flush();
  return out;
}

if (typeof globalThis.TextEncoder === "undefined") {
  globalThis.TextEncoder = class TextEncoder {
    get encoding() { return "utf-8"; }
    encode(text = "") { return encodeUtf8(text); }
  };
}
if (typeof globalThis.TextDecoder === "undefined") {
  globalThis.TextDecoder = class TextDecoder {
    get encoding() { return "utf-8"; }
    decode(bytes) { return decodeUtf8(bytes); }
  };
}
if (typeof globalThis.console === "undefined") {
  const discard = () => {};
  globalThis.console = { log: discard, info: discard, warn: discard, error: discard, debug: discard };
}

function toBytes(body) {
  if (body === undefined || body === null) return new Uint8Array(0);
  if (body instanceof Uint8Array) return body;
  if (body instanceof ArrayBuffer) return new Uint8Array(body);
  if (ArrayBuffer.isView(body)) return new Uint8Array(body.buffer, body.byteOffset, body.byteLength);
  if (Array.isArray(body)) return new Uint8Array(body);
  return encodeUtf8(String(body));
}

// -------------------------------------------------------------------------------------------------- headers

/** Case-insensitive, order-keeping headers that may repeat a name (names are kept lower-case). */
export class Headers {
  constructor(init) {
    this._items = [];
    if (init instanceof Headers) init = init.raw();
    if (Array.isArray(init)) for (const [k, v] of init) this.append(k, v);
    else if (init) for (const k of Object.keys(init)) this.append(k, init[k]);
  }
  get(name, fallback = null) {
    const key = String(name).toLowerCase();
    const hit = this._items.find(([k]) => k === key);
    return hit ? hit[1] : fallback;
  }
  getAll(name) {
    const key = String(name).toLowerCase();
    return this._items.filter(([k]) => k === key).map(([, v]) => v);
  }
  has(name) {
    const key = String(name).toLowerCase();
    return this._items.some(([k]) => k === key);
  }
  set(name, value) {
    const key = String(name).toLowerCase();
    this._items = this._items.filter(([k]) => k !== key);
    this._items.push([key, String(value)]);
  }
  append(name, value) {
    this._items.push([String(name).toLowerCase(), String(value)]);
  }
  delete(name) {
    const key = String(name).toLowerCase();
    this._items = this._items.filter(([k]) => k !== key);
  }
  keys() { return [...new Set(this._items.map(([k]) => k))]; }
  entries() { return this.keys().map((k) => [k, this.get(k)]); }
  [Symbol.iterator]() { return this.entries()[Symbol.iterator](); }
  /** Every [name, value] pair in order, repeats included: what goes on the wire. */
  raw() { return this._items.map(([k, v]) => [k, v]); }
  toJSON() { return Object.fromEntries(this.entries()); }
}

/** The decoded query string: get(name) is the first value, getAll(name) every value. */
export class QueryParams {
  constructor(query = "") {
    this._items = [];
    for (const part of String(query).split("&")) {
      if (!part) continue;
      const eq = part.indexOf("=");
      const key = eq < 0 ? part : part.slice(0, eq);
      const value = eq < 0 ? "" : part.slice(eq + 1);
      this._items.push([decodeQuery(key), decodeQuery(value)]);
    }
  }
  get(name, fallback = null) {
    const hit = this._items.find(([k]) => k === name);
    return hit ? hit[1] : fallback;
  }
  getAll(name) { return this._items.filter(([k]) => k === name).map(([, v]) => v); }
  has(name) { return this._items.some(([k]) => k === name); }
  keys() { return [...new Set(this._items.map(([k]) => k))]; }
  toJSON() { return Object.fromEntries(this.keys().map((k) => [k, this.get(k)])); }
}

function decodeQuery(text) {
  const s = text.replace(/\+/g, " ");
  try {
    return decodeURIComponent(s);
  } catch (e) {
    return s;
  }
}

// ------------------------------------------------------------------------------------- request and response

export class HTTPError extends Error {
  /** Throw it from a route to answer `status` with a JSON body {"error": detail}. */
  constructor(status, detail, headers) {
    super(`${status}: ${detail === undefined ? REASONS[status] || "error" : detail}`);
    this.name = "HTTPError";
    this.status = checkStatus(status);
    this.detail = detail === undefined ? REASONS[status] || "error" : detail;
    this.headers = new Headers(headers);
  }
}

export class Request {
  constructor(method, path, query = "", headers = [], body = new Uint8Array(0)) {
    this.method = String(method).toUpperCase();
    this.path = path;
    this.query = query;
    this.headers = headers instanceof Headers ? headers : new Headers(headers);
    this.body = toBytes(body);
    this.pathParams = {};
    this.rootPath = ""; // the component's mount point (its deploy route), set by App
    this.routePath = path; // the path below the mount point: what routes are matched against
  }
  get queryParams() { return new QueryParams(this.query); }
  /** The body decoded as UTF-8. */
  get text() { return decodeUtf8(this.body); }
  /** The body parsed as JSON; a body that is not JSON answers 400. */
  json() {
    try {
      return JSON.parse(this.text);
    } catch (e) {
      throw new HTTPError(400, `the request body is not valid JSON: ${e.message}`);
    }
  }
}

export class Response {
  /** new Response(body, { status, headers, contentType }); body is a string, bytes or nothing. */
  constructor(body = "", { status = 200, headers, contentType } = {}) {
    this.status = checkStatus(status);
    this.headers = new Headers(headers);
    this.body = toBytes(body);
    if (contentType && !this.headers.has("content-type")) this.headers.set("content-type", contentType);
  }
  static text(text, status = 200, headers) {
    return new Response(String(text), { status, headers, contentType: "text/plain; charset=utf-8" });
  }
  static html(html, status = 200, headers) {
    return new Response(String(html), { status, headers, contentType: "text/html; charset=utf-8" });
  }
  static json(data, status = 200, headers) {
    return new Response(JSON.stringify(data), { status, headers, contentType: "application/json" });
  }
  static redirect(location, status = 307) {
    return new Response("", { status, headers: [["location", location]] });
  }
}

function checkStatus(status) {
  if (!Number.isInteger(status) || status < 100 || status > 599) {
    throw new TypeError(`HTTP status must be an integer from 100 to 599, got ${status}`);
  }
  return status;
}

const REASONS = { 400: "bad request", 401: "unauthorized", 403: "forbidden", 404: "not found",
  405: "method not allowed", 409: "conflict", 413: "payload too large", 422: "unprocessable entity",
  429: "too many requests", 500: "internal error", 502: "bad gateway", 503: "unavailable" };

/** What a route returned -> Response: a Response, string (text), bytes, object/array (JSON), null (204). */
export function toResponse(value) {
  if (value instanceof Response) return value;
  if (value === undefined || value === null) return new Response("", { status: 204 });
  if (typeof value === "string") return Response.text(value);
  if (value instanceof Uint8Array || value instanceof ArrayBuffer) {
    return new Response(value, { contentType: "application/octet-stream" });
  }
  if (typeof value === "object") return Response.json(value);
  throw new TypeError(`a route returned ${typeof value}; return a Response, string, bytes, object or null`);
}

// ------------------------------------------------------------------------------------------------- routing

const PARAM = /{([A-Za-z_][A-Za-z0-9_]*)(?::(str|int|float|path))?}/g;
const CONVERTERS = {
  str: ["[^/]+", (v) => v],
  int: ["[0-9]+", (v) => parseInt(v, 10)],
  float: ["[0-9]+(?:\\.[0-9]+)?", (v) => parseFloat(v)],
  path: [".*", (v) => v],
};

function escapeRegex(text) {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

function compileRoute(pattern, methods, endpoint) {
  if (!pattern.startsWith("/")) throw new Error(`route ${pattern} must start with '/'`);
  let regex = "^";
  let pos = 0;
  const converters = {};
  for (const m of pattern.matchAll(PARAM)) {
    const [whole, name, kind = "str"] = m;
    if (name in converters) throw new Error(`route ${pattern} names {${name}} twice`);
    regex += escapeRegex(pattern.slice(pos, m.index)) + `(?<${name}>${CONVERTERS[kind][0]})`;
    converters[name] = CONVERTERS[kind][1];
    pos = m.index + whole.length;
  }
  const rest = pattern.slice(pos);
  if (rest.includes("{") || rest.includes("}")) {
    throw new Error(`route ${pattern}: a parameter is written {name} or {name:int|float|str|path}`);
  }
  regex += escapeRegex(rest) + "$";
  const names = new Set(methods.map((m) => m.toUpperCase()));
  if (names.has("GET")) names.add("HEAD");
  return { pattern, methods: names, endpoint, regex: new RegExp(regex), converters };
}

/** The request header in which the host names the route the component was reached through. */
export const ROUTE_HEADER = "x-airssys-route";

/**
 * A component's routes. Export it with `export const handler = app.handler;` in app.js.
 *
 * Routes are matched below the component's mount point, which the host names in the x-airssys-route request
 * header: deployed at /api, app.get("/items/{id}") serves /api/items/3, and the same build deployed elsewhere
 * serves below that route. new App({ prefix: "/api" }) fixes the mount point instead (kept for compatibility; the
 * component then answers 404 at any other route). Without either, routes see the full path.
 *
 * A route function gets (request, params) and returns a Response or anything toResponse accepts. HTTPError
 * becomes its status with a JSON body; any other exception propagates (the host logs it and answers 500), or,
 * with { debug: true }, answers 500 with the message and stack in the body.
 */
export class App {
  constructor({ prefix = "", debug = false } = {}) {
    if (prefix && (!prefix.startsWith("/") || prefix.endsWith("/"))) {
      throw new Error(`prefix ${prefix} must start with '/' and not end with one, e.g. '/api'`);
    }
    this.prefix = prefix;
    this.debug = debug;
    this.routes = [];
    const app = this;
    /** The airssys:web/handler export. */
    this.handler = {
      handle(req) {
        const response = app.handle(new Request(req.method, req.path, req.query, req.headers, req.body));
        return { status: response.status, headers: response.headers.raw(), body: response.body };
      },
    };
  }
  route(pattern, methods, endpoint) {
    this.routes.push(compileRoute(pattern, methods, endpoint));
    return this;
  }
  get(pattern, endpoint) { return this.route(pattern, ["GET"], endpoint); }
  post(pattern, endpoint) { return this.route(pattern, ["POST"], endpoint); }
  put(pattern, endpoint) { return this.route(pattern, ["PUT"], endpoint); }
  patch(pattern, endpoint) { return this.route(pattern, ["PATCH"], endpoint); }
  delete(pattern, endpoint) { return this.route(pattern, ["DELETE"], endpoint); }

  /** Answer one Request (what the exported handle does, minus the WIT conversion). */
  handle(request) {
    let response;
    try {
      response = this.dispatch(request);
    } catch (e) {
      if (e instanceof HTTPError) {
        response = Response.json({ error: e.detail }, e.status, e.headers.raw());
      } else if (this.debug) {
        response = Response.json({ error: String(e), stack: e && e.stack }, 500);
      } else {
        throw e;
      }
    }
    if (request.method === "HEAD") response.body = new Uint8Array(0);
    return response;
  }

  dispatch(request) {
    let path = request.path;
    const prefix = this.prefix || request.headers.get(ROUTE_HEADER, "");
    if (prefix) {
      if (path !== prefix && !path.startsWith(prefix + "/")) {
        throw new HTTPError(404, `${path} is outside this component's prefix ${prefix}`);
      }
      path = path.slice(prefix.length) || "/";
    }
    request.rootPath = prefix;
    request.routePath = path;
    const allowed = new Set();
    for (const route of this.routes) {
      const m = route.regex.exec(path);
      if (!m) continue;
      if (!route.methods.has(request.method)) {
        for (const method of route.methods) allowed.add(method);
        continue;
      }
      const params = {};
      for (const [name, value] of Object.entries(m.groups || {})) params[name] = route.converters[name](value);
      request.pathParams = params;
      return toResponse(route.endpoint(request, params));
    }
    if (allowed.size) {
      throw new HTTPError(405, `${request.method} is not allowed here`, [["allow", [...allowed].sort().join(", ")]]);
    }
    throw new HTTPError(404, `no route matches ${request.method} ${path}`);
  }
}

// --------------------------------------------------------------------------------------------- host calls

export class GuestSDKError extends Error {
  constructor(message) {
    super(message);
    this.name = this.constructor.name;
  }
}
/** fetch failed: the host could not complete the request (connection, timeout, size cap, ...). */
export class FetchError extends GuestSDKError {}
/** fetch was refused: the URL's origin was not granted to this component (--allow-host). */
export class FetchDenied extends FetchError {}
/** A KV call failed: KV was not granted (--kv), a quota was exceeded, or the key is invalid. */
export class KVError extends GuestSDKError {}

function hostMessage(e) {
  return e instanceof Error ? e.message : String(e);
}

export class FetchResponse {
  constructor(url, status, headers, body) {
    this.url = url;
    this.status = status;
    this.headers = new Headers(headers);
    this.body = toBytes(body);
  }
  get ok() { return this.status >= 200 && this.status < 300; }
  get text() { return decodeUtf8(this.body); }
  json() { return JSON.parse(this.text); }
}

/**
 * Send an HTTP request through the host (synchronously); only origins granted to the component are reachable.
 * Throws FetchDenied when the origin is not granted, FetchError when the request fails; redirects are returned.
 */
export function fetch(url, { method = "GET", headers, body, json } = {}) {
  const sent = new Headers(headers);
  let data = body;
  if (json !== undefined) {
    data = JSON.stringify(json);
    if (!sent.has("content-type")) sent.set("content-type", "application/json");
  }
  let answer;
  try {
    answer = outbound.fetch(String(method).toUpperCase(), String(url), sent.raw(), toBytes(data));
  } catch (e) {
    const message = hostMessage(e);
    if (message.startsWith("denied")) throw new FetchDenied(`fetch ${url}: ${message}`);
    throw new FetchError(`fetch ${url}: ${message}`);
  }
  return new FetchResponse(url, answer.status, answer.headers, answer.body);
}

/** Values the operator granted (--config KEY=VALUE, secrets too). */
export const config = {
  get(key, fallback = null) {
    const value = wasmConfig.get(String(key));
    return value === null || value === undefined ? fallback : value;
  },
  require(key) {
    const value = this.get(key);
    if (value === null) throw new Error(`config ${key} is not set; deploy with --config ${key}=VALUE`);
    return value;
  },
  has(key) { return this.get(key) !== null; },
};

function kvCall(fn) {
  try {
    return fn();
  } catch (e) {
    throw new KVError(hostMessage(e));
  }
}

/** The component's own key-value namespace (granted with --kv); it survives upgrades and restarts. */
export const kv = {
  get(key) {
    const value = kvCall(() => wasmKv.get(String(key)));
    return value === null || value === undefined ? null : toBytes(value);
  },
  getText(key, fallback = null) {
    const value = this.get(key);
    return value === null ? fallback : decodeUtf8(value);
  },
  getJson(key, fallback = null) {
    const value = this.get(key);
    return value === null ? fallback : JSON.parse(decodeUtf8(value));
  },
  set(key, value) { kvCall(() => wasmKv.set(String(key), toBytes(value))); },
  setJson(key, value) { this.set(key, JSON.stringify(value)); },
  /** Remove key; removing a key that does not exist is not an error. */
  delete(key) { kvCall(() => wasmKv.delete(String(key))); },
};
