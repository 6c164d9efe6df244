// The relay Worker: routes public requests to their backend's Durable Object, accepts agent
// tunnels at /_relay/connect, serves the admin API (its relay-wide views and the dashboard in
// src/admin/) and answers /_relay/health. Exports the Durable Object classes.
import { Hono } from "hono";
import { requireAdmin } from "./admin/admin-token.ts";
import { mountDashboard } from "./admin/dashboard.ts";
import { mountObserveRoutes } from "./admin/observe-routes.ts";
import { isValidBackendName, tokenBackends, verifyToken } from "./auth.ts";
import { ACCESS_HEADER } from "./access.ts";
import type { Env } from "./env.ts";
import { RelayError } from "./errors.ts";
import { ROUTE_HEADER, askHub, backendHub as hub, encodeRoute, type HubRoute } from "./hub-route.ts";
import { readRevokeRequest, tokenRevoked } from "./revocations.ts";
import { clientAddress } from "./worker/client-address.ts";
import { type Route, route, schemeAndHost } from "./worker/routing.ts";
import { tokenRegistry } from "./token-registry.ts";

export { BackendHub } from "./hub/backend-hub.ts";
export { TokenRegistry } from "./token-registry.ts";
export { BackendDirectory } from "./observe/directory.ts";

/** A route to a backend. */
type BackendRoute = Extract<Route, { kind: "backend" }>;

const app = new Hono<{ Bindings: Env }>();

/** Forwards anything not the relay's own to a backend, before the relay's routes match. */
app.use("*", async (c, next) => {
  const request = c.req.raw;
  const url = request.url;
  const host = request.headers.get("host");
  const r = publicRoute(request, url, host, c.env);
  if (r.kind === "redirect") return c.redirect(r.location, 308);
  if (r.kind === "relay") return next();
  return forward(request, c.env, r, url, host);
});

app.get("/_relay/health", (c) => c.json({ ok: true }));

mountObserveRoutes(app);
mountDashboard(app);

/** Admin API: the backend's tunnels (GET), or ask its agents to replace their tunnels (POST .../drain). */
app.on(["GET", "POST"], ["/_relay/backends/:name", "/_relay/backends/:name/drain"], async (c) => {
  await requireAdmin(c);
  const name = c.req.param("name");
  if (!isValidBackendName(name)) throw new RelayError("bad_backend_name", `"${name.slice(0, 80)}" is not a backend name.`);
  const drain = c.req.path.endsWith("/drain");
  if (drain !== (c.req.method === "POST"))
    throw new RelayError("not_found", "Use GET /_relay/backends/<name> or POST /_relay/backends/<name>/drain.", name);
  return askHub(c.env, c.req.url, { op: drain ? "drain" : "status", backend: name });
});

/**
 * Admin API: revoke one agent token by id, or every token of a backend issued before a time
 * (docs/tokens.md). Live tunnels on a revoked token close with 4401.
 */
app.post("/_relay/tokens/revoke", async (c) => {
  await requireAdmin(c);
  const revocation = await readRevokeRequest(c.req.raw);
  if ("id" in revocation) return c.json(await tokenRegistry(c.env).revoke(revocation.id));
  const { backend, before } = revocation;
  const headers = new Headers({ [ROUTE_HEADER]: encodeRoute({ op: "revoke", backend, revoke: { before } }) });
  const response = await hub(c.env, backend).fetch(new Request(c.req.url, { method: "POST", headers }));
  const { closed } = (await response.json()) as { closed: number };
  return c.json({ backend, before: new Date(before * 1000).toISOString(), closed });
});

app.get("/_relay/connect", async (c) => {
  const bearer = /^Bearer\s+(\S+)\s*$/i.exec(c.req.header("authorization") ?? "");
  const verdict = await verifyToken(signingSecrets(c.env), bearer?.[1] ?? "");
  if (!verdict.ok) {
    const code = verdict.reason === "expired" ? "token_expired" : verdict.reason === "missing" ? "token_missing" : "token_invalid";
    throw new RelayError(code, verdict.message);
  }
  if (verdict.scope !== "agent")
    throw new RelayError("token_invalid", "This is an access token: agents connect with an agent token from `edge-relay token <name>`.");
  // A token for several backends connects one tunnel per backend, each naming it with ?backend=.
  const asked = c.req.query("backend");
  const allowed = tokenBackends(verdict);
  if (asked !== undefined && !allowed.includes(asked)) {
    const names = allowed.map((b) => `"${b}"`).join(", ");
    throw new RelayError(
      "token_backend_mismatch",
      `The token is for backend${allowed.length > 1 ? "s" : ""} ${names}, not "${asked.slice(0, 80)}".`,
      asked.slice(0, 80),
    );
  }
  if (asked === undefined && allowed.length > 1) {
    throw new RelayError("token_backend_mismatch", `The token is for several backends: name one with ?backend=<name>.`);
  }
  const backend = asked ?? verdict.backend;
  if (c.req.header("upgrade")?.toLowerCase() !== "websocket") {
    throw new RelayError("upgrade_required", "Connect with a WebSocket upgrade.", backend);
  }
  // Only connects with an id ask the registry; public requests never do.
  if (verdict.id !== undefined && !(await tokenRegistry(c.env).admit(verdict.id, backend))) throw tokenRevoked(backend);
  const headers = new Headers(c.req.raw.headers);
  const token = verdict.id === undefined ? { iat: verdict.iat } : { iat: verdict.iat, id: verdict.id };
  headers.set(ROUTE_HEADER, encodeRoute({ op: "connect", backend, token }));
  return hub(c.env, backend).fetch(new Request(c.req.raw, { headers }));
});

app.notFound(() =>
  new RelayError(
    "not_found",
    "No backend route matched: use <name>.<relay domain>, /r/<name>/, or the X-Relay-Backend header.",
  ).toResponse(),
);

/** The answer for an error a route threw: RelayErrors as they are, anything else as internal_error. */
function errorResponse(err: unknown, backend?: string): Response {
  if (err instanceof RelayError) return err.toResponse();
  if ((err as { overloaded?: boolean }).overloaded)
    return new RelayError("overloaded", "The backend's relay is overloaded; try again shortly.", backend).toResponse();
  console.error("relay error", err);
  return new RelayError("internal_error", "The relay failed to handle the request.").toResponse();
}

app.onError((err) => errorResponse(err));

/** The secrets a token may be signed with: RELAY_SECRET, then RELAY_SECRET_PREVIOUS during a rotation. */
function signingSecrets(env: Env): string[] {
  if (!env.RELAY_SECRET)
    throw new RelayError("relay_misconfigured", "The relay has no RELAY_SECRET: set it with `wrangler secret put RELAY_SECRET`.");
  return env.RELAY_SECRET_PREVIOUS ? [env.RELAY_SECRET, env.RELAY_SECRET_PREVIOUS] : [env.RELAY_SECRET];
}

/**
 * Sends a public request to its backend's Durable Object with the route header set (replacing
 * any public one: src/hub-route.ts). The route carries the client's address from the edge; the
 * object adds it to X-Forwarded-For, a traceparent where the request has no valid one, and
 * X-Forwarded-Proto and -Host, and drops every other x-relay- field (src/hub/request-head.ts).
 */
function forward(request: Request, env: Env, r: BackendRoute, url: string, host: string | null): Promise<Response> {
  const { backend, path } = r;
  const { scheme, host: urlHost } = schemeAndHost(url);
  // One native copy of the headers (a Request built from a Request) and one set: never a copy
  // field by field in JavaScript, which runs on every request (docs/performance.md).
  const forwarded = new Request(request, { redirect: "manual" });
  const headers = forwarded.headers;
  const clientIp = clientAddress(headers, request.cf);
  const target: HubRoute = { backend, path, scheme, authority: host ?? urlHost };
  if (clientIp) target.client = clientIp;
  if (r.via === "path") target.base = `/r/${backend}`;
  const access = headers.get(ACCESS_HEADER);
  if (access && env.RELAY_SECRET) return withAccessToken(env, access, target, forwarded);
  return send(env, target, forwarded);
}

/** Marks the route when `access` is a valid access token for its backend, then sends the request. */
async function withAccessToken(env: Env, access: string, target: HubRoute, forwarded: Request): Promise<Response> {
  const verdict = await verifyToken(signingSecrets(env), access);
  if (verdict.ok && verdict.scope === "access" && tokenBackends(verdict).includes(target.backend)) target.access = true;
  return send(env, target, forwarded);
}

/**
 * Sets the route header on `forwarded` and sends it to the backend's object. Its errors reach
 * the caller's errorResponse as they are (an overloaded object's included).
 */
function send(env: Env, target: HubRoute, forwarded: Request): Promise<Response> {
  forwarded.headers.set(ROUTE_HEADER, encodeRoute(target));
  return hub(env, target.backend).fetch(forwarded);
}

/**
 * Where a public request goes; a header-routed request for a /_relay/ path is the relay's own
 * (its routes are never a backend's).
 */
function publicRoute(request: Request, url: string, host: string | null, env: Env): Route {
  let r = route(url, host, null, env.RELAY_DOMAIN);
  // X-Relay-Backend names the backend only of a request that neither its Host nor its path
  // routes, so it is read only for those (each header read is a call into the runtime).
  if (r.kind === "relay") {
    const named = request.headers.get("x-relay-backend");
    if (named !== null) r = route(url, host, named, env.RELAY_DOMAIN);
  }
  // A header route's path is the request's own path and query.
  if (r.kind === "backend" && r.via === "header" && r.path.startsWith("/_relay/")) return { kind: "relay" };
  return r;
}

export default {
  /**
   * A request for a backend goes straight to forward(): the app's routing and context are for
   * the relay's own routes. Redirects and HEAD (whose answer the app gives without a body) go
   * through the app, whose first handler routes them the same way.
   */
  fetch(request, env, ctx) {
    // No async function around forward(): a promise less between the object's answer and the client.
    try {
      if (request.method === "HEAD") return Promise.resolve(app.fetch(request, env, ctx)).catch(errorResponse);
      // The URL and Host are read once, for the route and for forward().
      const url = request.url;
      const host = request.headers.get("host");
      const r = publicRoute(request, url, host, env);
      if (r.kind !== "backend") return Promise.resolve(app.fetch(request, env, ctx)).catch(errorResponse);
      return forward(request, env, r, url, host).catch((err) => errorResponse(err, r.backend));
    } catch (err) {
      return errorResponse(err);
    }
  },
} satisfies ExportedHandler<Env>;
