// The /wasm/markdown route: a text transform written in JavaScript (QuickJS) with the @airssys/guest SDK.
//
//   POST /wasm/markdown        body: Markdown text -> an HTML fragment (text/html)
//   GET  /wasm/markdown?text=  a page with the rendered text and a form to edit it
//
// It imports nothing from the host: it needs no grants, only CPU time (and the host stops it past its deadline).
import { App, HTTPError, Response } from "@airssys/guest";
import { escapeHtml, render } from "./markdown.js";

const SAMPLE = `# Hello from *JavaScript*

This page was rendered by a **WebAssembly component** written in JavaScript:

- it runs in [QuickJS](https://github.com/quickjs-ng/quickjs), compiled into the component;
- it sees only the request, and answers \`text/html\`;
- a new version can be deployed while the site serves.

> Edit the text below and press *Render*.`;

const app = new App(); // routes below wherever it is deployed (the host names the route in x-airssys-route)
const MAX = 64 * 1024;

app.post("/", (req) => {
  if (req.body.length > MAX) throw new HTTPError(413, `at most ${MAX} bytes of Markdown`);
  return Response.html(render(req.text));
});

app.get("/", (req) => {
  const text = req.queryParams.get("text", SAMPLE);
  if (text.length > MAX) throw new HTTPError(413, `at most ${MAX} characters of Markdown`);
  return Response.html(`<!doctype html><meta charset="utf-8"><title>Markdown, rendered in WebAssembly</title>
<body style="font: 16px/1.5 system-ui, sans-serif; max-width: 44rem; margin: 3rem auto">
<article style="border: 1px solid #ddd; padding: 0 1rem; border-radius: 6px">${render(text)}</article>
<form><p><textarea name="text" rows="10" style="width: 100%">${escapeHtml(text)}</textarea></p>
<button>Render</button></form>
<p>Or: <code>curl --data-binary @README.md http://${escapeHtml(req.headers.get("host", "127.0.0.1:8000"))}${escapeHtml(req.rootPath)}</code>
&middot; <a href="/">Home</a></p>`);
});

export const handler = app.handler;
