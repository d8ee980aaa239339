// The airssys-web dashboard: plain JavaScript, no build step, no third-party code. It talks to the admin API
// only (a bearer token kept in this tab's sessionStorage), polls it every 2 s and updates the page in place.
// Rates and percentiles come from the differences between polls of GET /metrics, the same counters the
// Prometheus endpoint exposes (as rate() and histogram_quantile() would compute them).
"use strict";

(() => {
  const API = document.body.dataset.api;
  const POLL_MS = 2000;
  const WINDOW_MS = 10000;
  const TOKEN_KEY = "airssys-web-token";

  const state = {
    token: sessionStorage.getItem(TOKEN_KEY) || "",
    scope: null,
    components: [],
    pipelines: new Map(), // route component -> [stage names]
    pipelineApi: true, // false once the server says it has no pipeline endpoint
    samples: [], // [{at, rows: Map("name@version" -> summary row)}]
    selected: null,
    draft: null, // the pipeline being edited (stage names), or null
    history: [],
    timer: null,
    busy: false,
  };

  const $ = (id) => document.getElementById(id);

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else if (key.startsWith("data-")) node.setAttribute(key, value);
      else if (key === "width") node.style.width = value; // through the CSSOM: the CSP allows no style attribute
      else node[key] = value;
    }
    for (const child of children.flat(Infinity)) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  // -- the admin API ---------------------------------------------------------------------------------------------
  async function api(method, path, body) {
    const headers = { authorization: `Bearer ${state.token}` };
    let payload;
    if (body instanceof ArrayBuffer) {
      payload = body;
      headers["content-type"] = "application/wasm";
    } else if (body !== undefined) {
      payload = JSON.stringify(body);
      headers["content-type"] = "application/json";
    }
    const response = await fetch(API + path, { method, headers, body: payload });
    const text = await response.text();
    let data = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch (_) {
      data = text;
    }
    if (!response.ok) {
      const error = new Error((data && (data.detail || data.error)) || `${response.status} ${response.statusText}`);
      error.status = response.status;
      error.reason = data && data.error;
      throw error;
    }
    return data;
  }

  const enc = encodeURIComponent;

  function say(text, kind) {
    const node = $("message");
    node.textContent = text;
    node.className = `message ${kind || ""}`;
  }

  // -- logging in -------------------------------------------------------------------------------------------------
  async function login(token) {
    state.token = token;
    const me = await api("GET", "/token");
    state.scope = me.scope;
    sessionStorage.setItem(TOKEN_KEY, token);
    $("who").textContent = `token ${me.id} (${me.scope}), expires ${me.expires_at}`;
    document.body.classList.toggle("read-only", me.scope !== "deploy");
    $("login").hidden = true;
    $("app").hidden = false;
    $("logout").hidden = false;
    $("window").textContent = String(WINDOW_MS / 1000);
    await refresh();
    clearInterval(state.timer);
    state.timer = setInterval(() => refresh().catch(() => {}), POLL_MS);
  }

  function logout(reason) {
    clearInterval(state.timer);
    sessionStorage.removeItem(TOKEN_KEY);
    Object.assign(state, { token: "", scope: null, samples: [], selected: null, draft: null });
    $("app").hidden = true;
    $("logout").hidden = true;
    $("login").hidden = false;
    $("who").textContent = "";
    $("live").textContent = "";
    $("login-error").textContent = reason || "";
  }

  $("login-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const token = $("token").value.trim();
    login(token).catch((e) => logout(e.status === 401 ? `not a valid token: ${e.message}` : e.message));
  });
  $("logout").addEventListener("click", () => logout());

  // -- polling ----------------------------------------------------------------------------------------------------
  async function refresh() {
    if (state.busy) return;
    state.busy = true;
    try {
      const [components, metrics] = await Promise.all([api("GET", "/components"), api("GET", "/metrics")]);
      state.components = components;
      record(metrics);
      await loadPipelines();
      render();
      if (state.selected) await loadHistory();
      $("live").textContent = `updated ${new Date().toLocaleTimeString()}`;
    } catch (e) {
      if (e.status === 401) logout(`logged out: ${e.message}`);
      else $("live").textContent = `update failed: ${e.message}`;
    } finally {
      state.busy = false;
    }
  }

  function kindOf(c) {
    return c.kind || "route";
  }

  async function loadPipelines() {
    if (!state.pipelineApi) return;
    const routes = state.components.filter((c) => kindOf(c) === "route");
    await Promise.all(routes.map(async (c) => {
      try {
        const data = await api("GET", `/components/${enc(c.component)}/pipeline`);
        state.pipelines.set(c.component, stageNames(data));
      } catch (e) {
        if (e.status === 404 && e.message.startsWith("no admin endpoint")) state.pipelineApi = false;
        else state.pipelines.set(c.component, []);
      }
    }));
  }

  function stageNames(data) {
    const stages = (data && data.stages) || [];
    return stages.map((s) => (typeof s === "string" ? s : s.component || s.name));
  }

  // -- rates and percentiles from two polls ------------------------------------------------------------------------
  function record(metrics) {
    const rows = new Map(metrics.versions.map((v) => [`${v.component}@${v.version}`, v]));
    state.samples.push({ at: Date.now(), bounds: metrics.bounds, rows });
    const now = Date.now();
    while (state.samples.length > 2 && now - state.samples[1].at >= WINDOW_MS) state.samples.shift();
  }

  const sum = (object, keep) =>
    Object.entries(object || {}).reduce((total, [key, n]) => total + (keep(key) ? n : 0), 0);

  function windowed(key, stage) {
    const samples = state.samples;
    if (samples.length < 2) return null;
    const first = samples[0];
    const last = samples[samples.length - 1];
    const pick = (row) => (row ? (stage ? row.stage : row) : null);
    const a = pick(first.rows.get(key));
    const b = pick(last.rows.get(key));
    if (!b) return null;
    const seconds = (last.at - first.at) / 1000;
    const all = () => true;
    const failed = (status) => Number(status) >= 500;
    let n = sum(b.requests, all) - (a ? sum(a.requests, all) : 0);
    let errors = sum(b.requests, failed) - (a ? sum(a.requests, failed) : 0);
    let buckets = b.duration.buckets.map((count, i) => count - (a ? a.duration.buckets[i] : 0));
    if (n < 0 || buckets.some((c) => c < 0)) { // counters reset (the version came back): count from zero
      n = sum(b.requests, all);
      errors = sum(b.requests, failed);
      buckets = b.duration.buckets.slice();
    }
    return {
      total: sum(b.requests, all),
      rate: n / seconds,
      errorRate: n > 0 ? errors / n : null,
      p50: quantile(0.5, last.bounds, buckets),
      p99: quantile(0.99, last.bounds, buckets),
    };
  }

  function quantile(q, bounds, cumulative) {
    const total = cumulative[cumulative.length - 1];
    if (!total) return null;
    const rank = q * total;
    let i = cumulative.findIndex((c) => c >= rank);
    if (i >= bounds.length) return bounds[bounds.length - 1]; // in +Inf: the last bound is all we know
    const lower = i > 0 ? bounds[i - 1] : 0;
    const below = i > 0 ? cumulative[i - 1] : 0;
    const inBucket = cumulative[i] - below;
    return lower + (bounds[i] - lower) * (inBucket ? (rank - below) / inBucket : 1);
  }

  const fmtRate = (s) => (s ? s.rate.toFixed(1) : "–");
  const fmtErr = (s) => (s && s.errorRate !== null ? `${(s.errorRate * 100).toFixed(1)}%` : "–");
  const fmtMs = (v) => (v === null || v === undefined ? "–" : v < 0.001 ? `${(v * 1e6).toFixed(0)} µs`
    : `${(v * 1e3).toFixed(v < 0.01 ? 2 : 1)} ms`);

  // -- rendering --------------------------------------------------------------------------------------------------
  function serving(c) {
    const s = c.serving || {};
    const d = c.deployment || {};
    const active = s.active || c.active_version;
    const canary = s.canary !== undefined && s.canary !== null ? s.canary : d.canary_version;
    const percent = canary ? (s.canary_percent || d.canary_percent || 0) : 0;
    const rows = [];
    if (active) rows.push({ version: active, percent: 100 - percent, role: "active" });
    if (canary) rows.push({ version: canary, percent, role: "canary" });
    return rows;
  }

  function versionRow(c, v, stage) {
    const key = `${c.component}@${v.version}`;
    const s = windowed(key, stage);
    const latest = state.samples.length ? state.samples[state.samples.length - 1].rows.get(key) : null;
    const instances = latest ? `${latest.instances.idle} idle, ${latest.instances.busy} busy` : "–";
    const errorClass = s && s.errorRate ? "num rate-bad" : "num";
    return el("tr", { "data-version": v.version },
      el("td", {}, v.version, " ", el("span", { class: `badge ${v.role}`, text: v.role })),
      el("td", {}, el("div", { class: "split", title: `${v.percent}% of clients` },
        el("div", { class: v.role === "canary" ? "canary" : "stable", width: `${v.percent}%` })),
      " ", el("span", { "data-field": "percent", text: `${v.percent}%` })),
      el("td", { class: "num", "data-field": "rate", text: fmtRate(s) }),
      el("td", { class: errorClass, "data-field": "errors", text: fmtErr(s) }),
      el("td", { class: "num", "data-field": "p50", text: fmtMs(s && s.p50) }),
      el("td", { class: "num", "data-field": "p99", text: fmtMs(s && s.p99) }),
      el("td", { class: "num", "data-field": "total", text: s ? String(s.total) : "0" }),
      el("td", { "data-field": "instances", text: instances }));
  }

  function versionTable(c, stage) {
    return el("table", { class: "versions" },
      el("thead", {}, el("tr", {}, ["version", "clients", "req/s", "errors", "p50", "p99", "requests",
        "instances"].map((h) => el("th", { text: h })))),
      el("tbody", {}, serving(c).map((v) => versionRow(c, v, stage))));
  }

  function action(label, handler, cls) {
    return el("button", { type: "button", class: `small ${cls || ""} deploy-only`, "data-action": label,
      onclick: () => run(handler) }, label);
  }

  function render() {
    const routes = state.components.filter((c) => kindOf(c) === "route");
    const middleware = state.components.filter((c) => kindOf(c) === "middleware");
    $("routes").replaceChildren(...(routes.length ? routes.map((c) => {
      const stages = state.pipelines.get(c.component) || [];
      const canary = serving(c).some((v) => v.role === "canary");
      return el("div", { class: "route", "data-component": c.component },
        el("div", { class: "route-head" },
          el("span", { class: "path", text: c.route }),
          el("span", { class: "chain", "data-field": "chain" },
            stages.map((s) => [el("span", { class: "chip", text: s }), "→"]),
            el("span", { class: "chip route-chip", text: c.component })),
          el("button", { type: "button", class: "small secondary", "data-action": "details",
            onclick: () => select(c.component) }, "history & pipeline"),
          canary ? action("promote", () => promote(c.component)) : null,
          action("roll back", () => rollback(c.component), "secondary")),
        versionTable(c, false));
    }) : [el("p", { class: "muted", text: "No routes deployed." })]));
    $("middleware").replaceChildren(...(middleware.length ? middleware.map((c) => {
      const users = routes.filter((r) => (state.pipelines.get(r.component) || []).includes(c.component));
      return el("div", { class: "route", "data-component": c.component },
        el("div", { class: "route-head" },
          el("span", { class: "path", text: c.component }),
          el("span", { class: "muted", text: users.length ? `in front of ${users.map((r) => r.route).join(", ")}`
            : "in no pipeline" }),
          action("roll back", () => rollback(c.component), "secondary")),
        versionTable(c, true));
    }) : [el("p", { class: "muted", text: "No middleware deployed." })]));
    $("up-names").replaceChildren(...state.components.map((c) => el("option", { value: c.component })));
    renderPipeline();
  }

  // -- details: history and the pipeline editor --------------------------------------------------------------------
  async function select(name) {
    state.selected = name;
    state.draft = null;
    $("details").hidden = false;
    $("details-name").textContent = name;
    renderPipeline();
    await loadHistory();
    $("details").scrollIntoView({ block: "nearest" });
  }

  async function loadHistory() {
    const name = state.selected;
    const entries = await api("GET", `/components/${enc(name)}/history`);
    if (name !== state.selected) return;
    const c = state.components.find((x) => x.component === name);
    const active = c ? c.active_version : null;
    $("history").replaceChildren(...entries.slice().reverse().map((h) => el("tr", { "data-version": h.version },
      el("td", { text: new Date(h.at).toLocaleString() }),
      el("td", { text: h.version }),
      el("td", { text: h.action }),
      el("td", { text: h.strategy }),
      el("td", { text: h.actor }),
      el("td", { text: h.outcome }),
      el("td", {}, h.version !== active && h.outcome === "ok"
        ? action("roll back to", () => rollback(name, h.version), "secondary") : null))));
  }

  function currentStages() {
    return state.pipelines.get(state.selected) || [];
  }

  function renderPipeline() {
    const name = state.selected;
    if (!name) return;
    const c = state.components.find((x) => x.component === name);
    const isRoute = c && kindOf(c) === "route";
    const editable = isRoute && state.pipelineApi;
    $("pipeline-note").textContent = !isRoute ? "A middleware component has no pipeline of its own."
      : state.pipelineApi ? "Stages in the order a request goes through them, then the route."
        : "This server has no pipeline API.";
    for (const id of ["pipeline-add", "pipeline-add-button", "pipeline-apply", "pipeline-reset"]) {
      $(id).disabled = !editable;
    }
    const stages = state.draft || currentStages();
    const last = stages.length - 1;
    $("pipeline-stages").replaceChildren(...(isRoute ? stages.map((s, i) => el("li", { "data-stage": s },
      el("span", { class: "name", text: s }),
      action("↑", () => move(i, -1)), action("↓", () => move(i, 1)), action("remove", () => removeStage(i)),
    )) : []), ...(isRoute ? [el("li", { class: "route-end", text: `→ ${name} (the route)` })] : []));
    for (const button of $("pipeline-stages").querySelectorAll("button")) {
      const label = button.dataset.action;
      const index = [...button.closest("ol").children].indexOf(button.closest("li"));
      if ((label === "↑" && index === 0) || (label === "↓" && index === last)) button.disabled = true;
    }
    const middleware = state.components.filter((x) => kindOf(x) === "middleware").map((x) => x.component);
    const chosen = $("pipeline-add").value;
    $("pipeline-add").replaceChildren(...middleware.map((m) => el("option", { value: m, text: m })));
    if (middleware.includes(chosen)) $("pipeline-add").value = chosen;
    $("pipeline-apply").disabled = !editable || state.draft === null;
    $("pipeline-reset").disabled = !editable || state.draft === null;
  }

  function edit(change) {
    const stages = (state.draft || currentStages()).slice();
    change(stages);
    state.draft = stages;
    renderPipeline();
  }

  const move = (i, by) => edit((s) => { [s[i], s[i + by]] = [s[i + by], s[i]]; });
  const removeStage = (i) => edit((s) => { s.splice(i, 1); });
  $("pipeline-add-button").addEventListener("click", () => {
    const name = $("pipeline-add").value;
    if (name) edit((s) => { s.push(name); });
  });
  $("pipeline-reset").addEventListener("click", () => { state.draft = null; renderPipeline(); });
  $("pipeline-apply").addEventListener("click", () => run(async () => {
    const name = state.selected;
    const stages = state.draft || [];
    if (stages.length) await api("PUT", `/components/${enc(name)}/pipeline`, { stages });
    else await api("DELETE", `/components/${enc(name)}/pipeline`);
    state.pipelines.set(name, stages);
    state.draft = null;
    say(stages.length ? `${name}: pipeline is now ${stages.join(" → ")} → ${name}` : `${name}: no stages`, "ok");
  }));

  // -- actions ----------------------------------------------------------------------------------------------------
  async function run(handler) {
    try {
      await handler();
    } catch (e) {
      say(e.message, "bad");
      if (e.status === 401) logout(`logged out: ${e.message}`);
      return;
    }
    await refresh();
  }

  async function promote(name) {
    const change = await api("POST", `/components/${enc(name)}/promote`, {});
    say(`${name}: ${change.deployment.active_version} now serves every client`, "ok");
  }

  async function rollback(name, version) {
    const change = await api("POST", `/components/${enc(name)}/rollback`, version ? { to_version: version } : {});
    say(`${name}: rolled back; ${change.deployment.active_version} serves`, "ok");
  }

  $("upload-form").addEventListener("submit", (event) => {
    event.preventDefault();
    run(async () => {
      const file = $("up-file").files[0];
      const name = $("up-name").value.trim();
      const version = $("up-version").value.trim();
      const bytes = await file.arrayBuffer();
      const sha = await sha256(bytes);
      say(`uploading ${file.name} (${bytes.byteLength} bytes)…`);
      try {
        await api("GET", `/blobs/${sha}`);
      } catch (e) {
        if (e.status !== 404) throw e;
        await api("PUT", `/blobs/${sha}`, bytes);
      }
      const body = { version, sha256: sha, strategy: $("up-strategy").value };
      if ($("up-route").value.trim()) body.route = $("up-route").value.trim();
      if (body.strategy === "canary") body.percent = Number($("up-percent").value);
      const change = await api("POST", `/components/${enc(name)}/deploy`, body);
      const s = change.serving || {};
      say(`${name}@${version} deployed (${body.strategy}); serving ${s.active || "-"}` +
        (s.canary ? ` and canary ${s.canary} at ${s.canary_percent}%` : ""), "ok");
      $("upload-form").reset();
    });
  });

  // SHA-256 of the upload: the browser's (in a secure context: https, localhost) or this small implementation.
  async function sha256(buffer) {
    if (window.crypto && crypto.subtle) {
      const digest = await crypto.subtle.digest("SHA-256", buffer);
      return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
    }
    return sha256Plain(new Uint8Array(buffer));
  }

  function sha256Plain(data) {
    const K = new Uint32Array([
      0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
      0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
      0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
      0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
      0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
      0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
      0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
      0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2]);
    const h = new Uint32Array([0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c,
      0x1f83d9ab, 0x5be0cd19]);
    const length = data.length;
    const padded = new Uint8Array(((length + 9 + 63) >> 6) << 6);
    padded.set(data);
    padded[length] = 0x80;
    const view = new DataView(padded.buffer);
    view.setUint32(padded.length - 8, Math.floor(length / 0x20000000));
    view.setUint32(padded.length - 4, (length << 3) >>> 0);
    const w = new Uint32Array(64);
    const rotr = (x, n) => (x >>> n) | (x << (32 - n));
    for (let offset = 0; offset < padded.length; offset += 64) {
      for (let i = 0; i < 16; i++) w[i] = view.getUint32(offset + 4 * i);
      for (let i = 16; i < 64; i++) {
        const s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >>> 3);
        const s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >>> 10);
        w[i] = (w[i - 16] + s0 + w[i - 7] + s1) >>> 0;
      }
      let [a, b, c, d, e, f, g, hh] = h;
      for (let i = 0; i < 64; i++) {
        const t1 = (hh + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + K[i] + w[i]) >>> 0;
        const t2 = ((rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c))) >>> 0;
        [hh, g, f, e, d, c, b, a] = [g, f, e, (d + t1) >>> 0, c, b, a, (t1 + t2) >>> 0];
      }
      const next = [a, b, c, d, e, f, g, hh];
      for (let i = 0; i < 8; i++) h[i] = (h[i] + next[i]) >>> 0;
    }
    return [...h].map((x) => x.toString(16).padStart(8, "0")).join("");
  }
  window.airssysSha256 = sha256Plain; // for the tests: checked against Python's hashlib

  // -- start ------------------------------------------------------------------------------------------------------
  if (state.token) login(state.token).catch(() => logout());
  else logout();
})();
