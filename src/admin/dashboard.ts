// The relay dashboard at /_relay/dashboard: sign in with the admin token through a form, then a
// page listing the backends, their tunnels and live rates, with the drain action. The browser
// holds only a signed HttpOnly cookie (src/admin/session.ts); no secret reaches the page.
import type { Context, Hono } from "hono";
import { isValidBackendName, sameSecret } from "../auth.ts";
import type { Env } from "../env.ts";
import { RelayError } from "../errors.ts";
import { askHub } from "../hub-route.ts";
import { observeBackends } from "../observe/backends.ts";
import { adminToken } from "./admin-token.ts";
import { DASHBOARD_SCRIPT, dashboardPage, signInPage } from "./dashboard-page.ts";
import { SESSION_COOKIE, SESSION_SECONDS, signSession, verifySession } from "./session.ts";

type Ctx = Context<{ Bindings: Env }>;

const BASE = "/_relay/dashboard";
/** The header the page's script sends with the drain: a cross-site form cannot set it. */
const CSRF_HEADER = "x-relay-dashboard";
/** Only the relay's own script and requests run: no inline script, no third party, no framing. */
const PAGE_HEADERS = {
  "content-type": "text/html; charset=utf-8",
  "cache-control": "no-store",
  "content-security-policy":
    "default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; connect-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
  "x-frame-options": "DENY",
  "referrer-policy": "no-referrer",
};

/** Adds the dashboard's routes to the relay's app. */
export function mountDashboard(app: Hono<{ Bindings: Env }>): void {
  app.get(BASE, async (c) => {
    const signedIn = await hasSession(c);
    return c.body(signedIn ? dashboardPage() : signInPage(), 200, PAGE_HEADERS);
  });

  app.post(`${BASE}/login`, async (c) => {
    const admin = adminToken(c.env);
    const form = await c.req.parseBody().catch(() => ({}) as Record<string, unknown>);
    const given = typeof form.token === "string" ? form.token : "";
    if (!(await sameSecret(given, admin))) return c.body(signInPage("That is not the admin token."), 401, PAGE_HEADERS);
    const cookie = await signSession(relaySecret(c.env), admin);
    const secure = new URL(c.req.url).protocol === "https:" ? "; Secure" : "";
    c.header("set-cookie", `${SESSION_COOKIE}=${cookie}; Path=${BASE}; Max-Age=${SESSION_SECONDS}; HttpOnly; SameSite=Strict${secure}`);
    return c.redirect(BASE, 303);
  });

  app.post(`${BASE}/logout`, (c) => {
    c.header("set-cookie", `${SESSION_COOKIE}=; Path=${BASE}; Max-Age=0; HttpOnly; SameSite=Strict`);
    return c.redirect(BASE, 303);
  });

  app.get(`${BASE}/app.js`, (c) =>
    c.body(DASHBOARD_SCRIPT, 200, { "content-type": "text/javascript; charset=utf-8", "cache-control": "no-store" }),
  );

  app.get(`${BASE}/api/backends`, async (c) => {
    await requireSession(c);
    return c.json({ at: Date.now(), backends: await observeBackends(c.env, c.req.url) }, 200, { "cache-control": "no-store" });
  });

  app.post(`${BASE}/api/backends/:name/drain`, async (c) => {
    await requireSession(c);
    if (c.req.header(CSRF_HEADER) !== "1")
      throw new RelayError("admin_unauthorized", `The dashboard's actions need the ${CSRF_HEADER} header.`);
    const name = c.req.param("name");
    if (!isValidBackendName(name)) throw new RelayError("bad_backend_name", `"${name.slice(0, 80)}" is not a backend name.`);
    return askHub(c.env, c.req.url, { op: "drain", backend: name });
  });
}

function relaySecret(env: Env): string {
  if (!env.RELAY_SECRET)
    throw new RelayError("relay_misconfigured", "The relay has no RELAY_SECRET: set it with `wrangler secret put RELAY_SECRET`.");
  return env.RELAY_SECRET;
}

/** Whether the request carries a valid session cookie (throws not_found while the admin API is off). */
async function hasSession(c: Ctx): Promise<boolean> {
  const admin = adminToken(c.env);
  const cookie = (c.req.header("cookie") ?? "")
    .split(";")
    .map((pair) => pair.trim().split("="))
    .find(([name]) => name === SESSION_COOKIE)?.[1];
  return verifySession(relaySecret(c.env), admin, cookie);
}

async function requireSession(c: Ctx): Promise<void> {
  if (!(await hasSession(c))) throw new RelayError("admin_unauthorized", "Sign in at /_relay/dashboard first.");
}
