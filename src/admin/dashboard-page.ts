// The dashboard's HTML and script, static text: the script reads everything it shows from
// /_relay/dashboard/api/backends with the session cookie, so no secret is ever part of them.

const STYLE = `
  body { font: 14px/1.4 system-ui, sans-serif; margin: 2rem; color: #1d2330; background: #f6f7f9; }
  h1 { font-size: 1.3rem; margin: 0 0 1rem; } h2 { font-size: 1.05rem; margin: 0; }
  header { display: flex; justify-content: space-between; align-items: center; }
  section.backend { background: #fff; border: 1px solid #d8dce3; border-radius: 6px; padding: 1rem; margin: 1rem 0; }
  .head { display: flex; gap: 1rem; align-items: baseline; flex-wrap: wrap; }
  .rates span { margin-right: 1rem; color: #445; }
  table { border-collapse: collapse; width: 100%; margin-top: .6rem; }
  th, td { text-align: left; padding: .25rem .6rem; border-bottom: 1px solid #eceef2; font-variant-numeric: tabular-nums; }
  th { font-weight: 600; color: #556; }
  button { font: inherit; padding: .25rem .8rem; border: 1px solid #8892a6; border-radius: 4px; background: #fff; cursor: pointer; }
  .draining { color: #a55a00; } .muted { color: #889; } .error { color: #b00020; }
  form.signin { background: #fff; border: 1px solid #d8dce3; border-radius: 6px; padding: 1.5rem; max-width: 26rem; }
  form.signin input { width: 100%; box-sizing: border-box; padding: .4rem; margin: .4rem 0 1rem; font: inherit; }
`;

function page(title: string, body: string): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${title}</title>
<style>${STYLE}</style>
</head>
<body>
${body}
</body>
</html>
`;
}

/** The sign-in form; `problem` is a fixed sentence, never user input. */
export function signInPage(problem?: string): string {
  return page(
    "edge-relay: sign in",
    `<h1>edge-relay dashboard</h1>
<form class="signin" method="post" action="/_relay/dashboard/login">
  ${problem ? `<p class="error" id="problem">${problem}</p>` : ""}
  <label for="token">Admin token (RELAY_ADMIN_TOKEN)</label>
  <input id="token" name="token" type="password" autocomplete="current-password" required autofocus>
  <button type="submit" id="sign-in">Sign in</button>
</form>`,
  );
}

/** The dashboard shell; app.js fills it. */
export function dashboardPage(): string {
  return page(
    "edge-relay dashboard",
    `<header>
  <h1>edge-relay dashboard</h1>
  <form method="post" action="/_relay/dashboard/logout"><button type="submit" id="sign-out">Sign out</button></form>
</header>
<p class="muted" id="status">Loading…</p>
<p id="notice" role="status"></p>
<main id="backends"></main>
<script src="/_relay/dashboard/app.js"></script>`,
  );
}

/** The page's script: polls the view every 2 s, shows rates from the counters' differences, drains. */
export const DASHBOARD_SCRIPT = `"use strict";
const EVERY_MS = 2000;
const previous = new Map();
const main = document.getElementById("backends");
const status = document.getElementById("status");
// What the last action (a drain) answered: it stays until the next one, while polls rewrite status.
const notice = document.getElementById("notice");

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  for (const c of children) node.append(c);
  return node;
}

function sum(record) {
  return Object.values(record).reduce((a, b) => a + b, 0);
}

function rate(now, before, key, seconds) {
  if (!before || seconds <= 0) return "–";
  const r = (now[key] - before[key]) / seconds;
  return r >= 100 ? r.toFixed(0) : r.toFixed(1);
}

function bytes(n) {
  if (n === "–") return n;
  const v = Number(n);
  return v >= 1048576 ? (v / 1048576).toFixed(1) + " MiB" : v >= 1024 ? (v / 1024).toFixed(1) + " KiB" : v.toFixed(0) + " B";
}

function render(view) {
  const seen = new Set();
  main.replaceChildren();
  if (view.backends.length === 0) main.append(el("p", { class: "muted", id: "empty" }, "No backend has a tunnel."));
  for (const b of view.backends) {
    seen.add(b.backend);
    const totals = {
      at: view.at,
      requests: sum(b.counters.requests),
      errors: sum(b.counters.errors),
      toAgent: b.counters.bytes.toAgent,
      fromAgent: b.counters.bytes.fromAgent,
    };
    const before = previous.get(b.backend);
    const seconds = before ? (totals.at - before.at) / 1000 : 0;
    previous.set(b.backend, totals);
    const drain = el("button", { type: "button", "data-drain": b.backend }, "Drain");
    drain.addEventListener("click", () => drainBackend(b.backend, drain));
    const rates = el(
      "div",
      { class: "rates" },
      el("span", { "data-rate": "requests" }, rate(totals, before, "requests", seconds) + " req/s"),
      el("span", { "data-rate": "errors" }, rate(totals, before, "errors", seconds) + " errors/s"),
      el("span", {}, bytes(rate(totals, before, "toAgent", seconds)) + "/s to agents"),
      el("span", {}, bytes(rate(totals, before, "fromAgent", seconds)) + "/s from agents"),
      el("span", {}, b.streams + " streams, " + b.websockets + " WebSockets"),
    );
    const table = el(
      "table",
      {},
      el("tr", {}, ...["Tunnel", "Agent version", "Targets", "Streams", "Connected", "State"].map((h) => el("th", {}, h))),
    );
    for (const t of b.tunnels) {
      table.append(
        el(
          "tr",
          { "data-tunnel-id": t.tunnelId },
          el("td", { title: t.tunnelId }, t.tunnelId.slice(0, 8)),
          el("td", { class: "agent-version" }, t.agentVersion || "?"),
          el("td", {}, t.targets.join(", ") || "–"),
          el("td", {}, String(t.streams)),
          el("td", {}, new Date(t.connectedAt).toLocaleTimeString()),
          el("td", t.draining ? { class: "draining" } : {}, t.draining ? "draining" : "up"),
        ),
      );
    }
    main.append(
      el(
        "section",
        { class: "backend", "data-backend": b.backend },
        el("div", { class: "head" }, el("h2", {}, b.backend), el("span", { class: "muted" }, b.tunnels.length + (b.tunnels.length === 1 ? " tunnel" : " tunnels")), drain),
        rates,
        table,
      ),
    );
  }
  for (const name of previous.keys()) if (!seen.has(name)) previous.delete(name);
  status.textContent = "Updated " + new Date(view.at).toLocaleTimeString() + " · " + view.backends.length + " backends";
}

async function drainBackend(name, button) {
  button.disabled = true;
  try {
    const res = await fetch("/_relay/dashboard/api/backends/" + encodeURIComponent(name) + "/drain", {
      method: "POST",
      headers: { "x-relay-dashboard": "1" },
      credentials: "same-origin",
    });
    const body = await res.json();
    notice.textContent = res.ok ? "Draining " + body.draining + " tunnels of " + name : body.message;
  } finally {
    button.disabled = false;
    refresh();
  }
}

async function refresh() {
  try {
    const res = await fetch("/_relay/dashboard/api/backends", { credentials: "same-origin" });
    if (res.status === 401) return location.reload();
    render(await res.json());
  } catch (err) {
    status.textContent = "Cannot reach the relay: " + err.message;
  }
}

refresh();
setInterval(refresh, EVERY_MS);
`;
