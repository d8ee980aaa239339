// The /wasm/forecast route: JavaScript (QuickJS) that calls an upstream HTTP API through a granted host.
//
// The upstream's address comes from config ("upstream"); the component may reach exactly that origin, because
// the operator granted it (--allow-host). Any other URL is refused by the host before a connection is made:
// try /wasm/forecast/denied, which asks for https://example.com/ and shows the host's answer.
import { App, FetchDenied, FetchError, HTTPError, Response, config, fetch } from "@airssys/guest";

const app = new App(); // routes below wherever it is deployed (the host names the route in x-airssys-route)

function escape(text) {
  return String(text).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}

function upstream(path) {
  const base = config.get("upstream");
  if (!base) throw new HTTPError(503, "no upstream configured (config key 'upstream')");
  try {
    return fetch(`${base}${path}`, { headers: { accept: "application/json" } });
  } catch (e) {
    if (e instanceof FetchError) throw new HTTPError(502, e.message);
    throw e;
  }
}

app.get("/", (req) => {
  const city = req.queryParams.get("city", "Paris");
  const answer = upstream(`/forecast?city=${encodeURIComponent(city)}`);
  if (!answer.ok) throw new HTTPError(502, `the upstream answered ${answer.status}`);
  const forecast = answer.json();
  if (req.queryParams.get("format") === "json" || (req.headers.get("accept") || "").includes("application/json")) {
    return { ...forecast, via: "wasm:forecast-js" };
  }
  const rows = forecast.days.map((d) => `<tr><td>${escape(d.day)}</td><td>${escape(d.sky)}</td>` +
    `<td>${d.low}&deg; / ${d.high}&deg;</td></tr>`).join("");
  return Response.html(`<!doctype html><meta charset="utf-8"><title>Forecast for ${escape(forecast.city)}</title>
<body style="font: 16px/1.5 system-ui, sans-serif; max-width: 40rem; margin: 3rem auto">
<h1>Forecast for ${escape(forecast.city)}</h1>
<p>Fetched by a JavaScript component from <code>${escape(config.get("upstream"))}</code>, the one origin it was granted.</p>
<table>${rows}</table>
<form><input name="city" value="${escape(forecast.city)}"> <button>Look up</button></form>
<p><a href="${escape(req.rootPath)}/denied">What happens when it asks for another host?</a> &middot; <a href="/">Home</a></p>`);
});

app.get("/denied", () => {
  try {
    fetch("https://example.com/");
  } catch (e) {
    if (e instanceof FetchDenied) {
      return Response.json({ asked_for: "https://example.com/", denied: true, reason: e.message }, 403);
    }
    throw e;
  }
  return Response.json({ asked_for: "https://example.com/", denied: false }, 500);
});

export const handler = app.handler;
