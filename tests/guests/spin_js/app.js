// Spin's JavaScript HTTP component (the fetch-event style of its http-js template), built with Spin's own
// build tool: `j2w -i app.js -o app.wasm` from @spinframework/build-tools (with @spinframework/wasi-http-proxy).
addEventListener("fetch", (event) => {
  const url = new URL(event.request.url);
  event.respondWith(new Response(`Hello from Spin JS at ${url.pathname}`, {
    headers: { "content-type": "text/plain" },
  }));
});
