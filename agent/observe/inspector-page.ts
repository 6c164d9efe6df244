// The inspector's page: plain HTML and a script, no build step. Kept as strings so the bundled
// agent carries them. Every captured value reaches the DOM as text (textContent), never as markup.

export const INSPECTOR_PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>edge-relay inspector</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
  :root { --bg: #fbfbfc; --line: #e3e5e8; --muted: #6b7280; --accent: #2563eb; --bad: #b91c1c; --ok: #15803d; --warn: #b45309; }
  * { box-sizing: border-box; }
  body { margin: 0; font: 13px/1.4 system-ui, sans-serif; color: #111827; background: var(--bg); }
  header { display: flex; gap: 12px; align-items: center; padding: 10px 16px; border-bottom: 1px solid var(--line); background: #fff; }
  header h1 { font-size: 15px; margin: 0 12px 0 0; }
  #live { color: var(--muted); }
  #live.on { color: var(--ok); }
  #filter { flex: 1; max-width: 360px; padding: 5px 8px; border: 1px solid var(--line); border-radius: 6px; }
  button { padding: 5px 10px; border: 1px solid var(--line); border-radius: 6px; background: #fff; cursor: pointer; }
  button:hover { border-color: var(--accent); }
  main { display: grid; grid-template-columns: minmax(560px, 1.4fr) minmax(380px, 1fr); height: calc(100vh - 49px); }
  #list { overflow: auto; border-right: 1px solid var(--line); }
  table { width: 100%; border-collapse: collapse; }
  th, td { text-align: left; padding: 5px 8px; border-bottom: 1px solid var(--line); white-space: nowrap; }
  th { position: sticky; top: 0; background: #f3f4f6; font-weight: 600; }
  td.path { max-width: 240px; overflow: hidden; text-overflow: ellipsis; font-family: ui-monospace, monospace; }
  td.target { max-width: 170px; overflow: hidden; text-overflow: ellipsis; }
  tr.req { cursor: pointer; }
  tr.req:hover { background: #eef2ff; }
  tr.req.selected { background: #dbeafe; }
  .s2 { color: var(--ok); } .s3 { color: var(--accent); } .s4 { color: var(--warn); } .s5, .err { color: var(--bad); }
  .tag { font-size: 11px; padding: 1px 6px; border-radius: 9px; background: #ede9fe; color: #5b21b6; margin-left: 6px; }
  #detail { overflow: auto; padding: 12px 16px; }
  #detail h2 { font-size: 14px; margin: 0 0 8px; font-family: ui-monospace, monospace; word-break: break-all; }
  #detail h3 { font-size: 12px; text-transform: uppercase; color: var(--muted); margin: 16px 0 6px; }
  dl { display: grid; grid-template-columns: max-content 1fr; gap: 2px 12px; margin: 0; }
  dt { color: var(--muted); } dd { margin: 0; font-family: ui-monospace, monospace; word-break: break-all; }
  pre { background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: 8px; overflow: auto; max-height: 320px; margin: 0; }
  .empty { color: var(--muted); padding: 24px; }
</style>
</head>
<body>
<header>
  <h1>edge-relay inspector</h1>
  <span id="live">connecting…</span>
  <input id="filter" type="search" placeholder="Filter: method, path, status, target…" aria-label="Filter">
  <button id="clear" type="button">Clear</button>
  <span id="count"></span>
</header>
<main>
  <section id="list">
    <table>
      <thead><tr><th>Time</th><th>Method</th><th>Path</th><th>Status</th><th>Head</th><th>Total</th><th>Tunnel</th><th>Target</th></tr></thead>
      <tbody id="rows"></tbody>
    </table>
    <p id="none" class="empty">No requests yet: they appear here as they arrive.</p>
  </section>
  <section id="detail"><p class="empty">Select a request to see its headers and bodies.</p></section>
</main>
<script src="/inspector.js"></script>
</body>
</html>
`;

export const INSPECTOR_SCRIPT = `"use strict";
const API = { "x-edge-relay-inspector": "1" };
const rows = document.getElementById("rows");
const filter = document.getElementById("filter");
const byId = new Map();
let selected = null;

function el(tag, text, cls) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (cls) node.className = cls;
  return node;
}
function ms(v) { return v === null || v === undefined ? "…" : v < 10 ? v.toFixed(1) + " ms" : Math.round(v) + " ms"; }
function statusText(r) { return r.error ? r.error.code : r.status === null ? "…" : String(r.status); }
function statusClass(r) { return r.error ? "err" : r.status ? "s" + String(r.status)[0] : ""; }
function haystack(r) { return [r.method, r.path, statusText(r), r.target, r.backend, r.tunnel, r.replayOf ? "replay" : ""].join(" ").toLowerCase(); }
function applyFilter(tr) { const q = filter.value.trim().toLowerCase(); tr.hidden = q !== "" && !q.split(/\\s+/).every((w) => tr.dataset.text.includes(w)); }
function updateCount() {
  document.getElementById("count").textContent = byId.size + " request" + (byId.size === 1 ? "" : "s");
  document.getElementById("none").hidden = byId.size > 0;
}

function upsert(r) {
  let tr = byId.get(r.id);
  const fresh = !tr;
  if (fresh) {
    tr = el("tr", null, "req");
    tr.dataset.id = r.id;
    tr.addEventListener("click", () => select(r.id));
    byId.set(r.id, tr);
  }
  tr.replaceChildren();
  tr.dataset.text = haystack(r);
  tr.dataset.status = statusText(r);
  tr.appendChild(el("td", new Date(r.time).toLocaleTimeString([], { hour12: false })));
  tr.appendChild(el("td", r.method));
  const path = el("td", r.path, "path");
  path.title = r.path;
  if (r.replayOf) path.appendChild(el("span", "replay of " + r.replayOf, "tag"));
  tr.appendChild(path);
  tr.appendChild(el("td", statusText(r), statusClass(r)));
  tr.appendChild(el("td", ms(r.headMs)));
  tr.appendChild(el("td", ms(r.durationMs)));
  tr.appendChild(el("td", r.tunnel ? r.tunnel.slice(0, 8) : ""));
  const target = el("td", r.target || "", "target");
  target.title = r.target || "";
  tr.appendChild(target);
  if (fresh) rows.prepend(tr);
  if (selected === r.id) tr.classList.add("selected");
  applyFilter(tr);
  updateCount();
  if (selected === r.id && r.state === "done") select(r.id);
}

function headerList(headers, id) {
  const dl = el("dl");
  dl.id = id;
  for (const [name, value] of headers) { dl.appendChild(el("dt", name)); dl.appendChild(el("dd", value)); }
  if (!headers.length) dl.appendChild(el("dd", "none"));
  return dl;
}
function body(view, id) {
  let node;
  if (view.kind === "empty") node = el("p", "No body.", "empty");
  else if (view.kind === "binary") node = el("p", "Binary body, " + view.size + " bytes" + (view.contentType ? " (" + view.contentType + ")" : "") + ".", "empty");
  else node = el("pre", view.text + (view.truncated ? "\\n… (" + view.size + " bytes in all, the first 64 KiB shown)" : ""), "body " + view.kind);
  node.id = id;
  return node;
}

async function select(id) {
  selected = id;
  for (const tr of rows.children) tr.classList.toggle("selected", tr.dataset.id === id);
  const res = await fetch("/api/requests/" + id);
  const detail = document.getElementById("detail");
  if (!res.ok) { detail.replaceChildren(el("p", "This request is no longer kept.", "empty")); return; }
  const r = await res.json();
  if (selected !== id) return;
  const replay = el("button", "Replay");
  replay.id = "replay";
  replay.type = "button";
  replay.disabled = r.state !== "done" || r.protocol !== null;
  replay.addEventListener("click", async () => {
    replay.disabled = true;
    const out = await fetch("/api/requests/" + id + "/replay", { method: "POST", headers: API });
    const result = await out.json();
    replay.textContent = out.ok ? "Replayed: " + (result.status ?? result.error) : result.message;
    replay.disabled = false;
  });
  const facts = el("dl");
  const fact = (k, v) => { facts.appendChild(el("dt", k)); facts.appendChild(el("dd", v)); };
  fact("Status", statusText(r) + (r.error ? " (" + r.error.message + ")" : ""));
  fact("Backend", r.backend);
  fact("Tunnel", r.tunnel);
  fact("Target", r.target || "");
  fact("Time to head", ms(r.headMs));
  fact("Total", ms(r.durationMs));
  fact("Bytes in / out", r.bytesIn + " / " + r.bytesOut);
  if (r.trace) fact("Trace", r.trace);
  if (r.replayOf) fact("Replay of", r.replayOf);
  detail.replaceChildren(
    el("h2", r.method + " " + r.path), replay, el("h3", "Summary"), facts,
    el("h3", "Request headers"), headerList(r.request.headers, "request-headers"),
    el("h3", "Request body"), body(r.request.body, "request-body"),
    el("h3", "Response headers"), headerList(r.response.headers, "response-headers"),
    el("h3", "Response body"), body(r.response.body, "response-body"),
  );
}

filter.addEventListener("input", () => { for (const tr of rows.children) applyFilter(tr); });
document.getElementById("clear").addEventListener("click", async () => {
  await fetch("/api/requests", { method: "DELETE", headers: API });
});

function reset() {
  rows.replaceChildren();
  byId.clear();
  selected = null;
  document.getElementById("detail").replaceChildren(el("p", "Select a request to see its headers and bodies.", "empty"));
  updateCount();
}

async function start() {
  const events = new EventSource("/api/events");
  const live = document.getElementById("live");
  events.onopen = async () => {
    live.textContent = "live";
    live.className = "on";
    const list = await (await fetch("/api/requests")).json();
    for (const r of list.requests.reverse()) upsert(r);
    document.body.dataset.live = "1";
  };
  events.onerror = () => { live.textContent = "reconnecting…"; live.className = ""; };
  events.onmessage = (e) => upsert(JSON.parse(e.data));
  events.addEventListener("clear", reset);
  updateCount();
}
start();
`;
