// The relay Worker: routes public requests to their backend's Durable Object, accepts agent
// tunnels at /_relay/connect, and answers /_relay/health. Exports the Durable Object class.
import { Hono } from "hono";
import { isValidBackendName, sameSecret, tokenBackends, verifyToken } from "./auth.ts";
import { ACCESS_HEADER } from "./access.ts";
import type { Env } from "./env.ts";
import { ERROR_STATUS, RelayError } from "./errors.ts";
import { ROUTE_HEADER, encodeRoute, type HubRoute } from "./hub-route.ts";
import { pathAndQuery, route, schemeAndHost } from "./routing.ts";

export { BackendHub } from "./backend-hub.ts";

const app = new Hono<{ Bindings: Env }>();

/** Forwards anything not the relay's own to a backend, before the relay's routes match. */
app.use("*", async (c, next) => {
  const request = c.req.raw;
  const r = route(request.url, request.headers.get("host"), request.headers.get("x-relay-backend"), c.env.RELAY_DOMAIN);
  if (r.kind === "redirect") return c.redirect(r.location, 308);
  if (r.kind === "relay" || (r.via === "header" && new URL(request.url).pathname.startsWith("/_relay/"))) return next();
  return forward(request, c.env, r.backend, r.path);
});

app.get("/_relay/health", (c) => c.json({ ok: true }));

/** Admin API: the backend's tunnels (GET), or ask its agents to replace their tunnels (POST .../drain). */
app.on(["GET", "POST"], ["/_relay/backends/:name", "/_relay/backends/:name/drain"], async (c) => {
  const admin = c.env.RELAY_ADMIN_TOKEN;
  if (!admin) throw new RelayError("not_found", "The admin API is off: set the RELAY_ADMIN_TOKEN secret to turn it on.");
  const bearer = /^Bearer\s+(\S+)\s*$/i.exec(c.req.header("authorization") ?? "")?.[1] ?? "";
  if (!(await sameSecret(bearer, admin))) throw new RelayError("admin_unauthorized", "The admin API needs Authorization: Bearer <RELAY_ADMIN_TOKEN>.");
  const name = c.req.param("name");
  if (!isValidBackendName(name)) throw new RelayError("bad_backend_name", `"${name.slice(0, 80)}" is not a backend name.`);
  const drain = c.req.path.endsWith("/drain");
  if (drain !== (c.req.method === "POST")) throw new RelayError("not_found", "Use GET /_relay/backends/<name> or POST /_relay/backends/<name>/drain.", name);
  const headers = new Headers({ [ROUTE_HEADER]: encodeRoute({ op: drain ? "drain" : "status", backend: name }) });
  return hub(c.env, name).fetch(new Request(c.req.url, { method: "POST", headers }));
});

app.get("/_relay/connect", async (c) => {
  const secret = c.env.RELAY_SECRET;
  if (!secret) throw new RelayError("relay_misconfigured", "The relay has no RELAY_SECRET: set it with `wrangler secret put RELAY_SECRET`.");
  const bearer = /^Bearer\s+(\S+)\s*$/i.exec(c.req.header("authorization") ?? "");
  const verdict = await verifyToken(secret, bearer?.[1] ?? "");
  if (!verdict.ok) {
    const code = verdict.reason === "expired" ? "token_expired" : verdict.reason === "missing" ? "token_missing" : "token_invalid";
    throw new RelayError(code, verdict.message);
  }
  if (verdict.scope !== "agent") throw new RelayError("token_invalid", "This is an access token: agents connect with an agent token from `edge-relay token <name>`.");
  // A token for several backends connects one tunnel per backend, each naming it with ?backend=.
  const asked = c.req.query("backend");
  const allowed = tokenBackends(verdict);
  if (asked !== undefined && !allowed.includes(asked)) {
    const names = allowed.map((b) => `"${b}"`).join(", ");
    throw new RelayError("token_backend_mismatch", `The token is for backend${allowed.length > 1 ? "s" : ""} ${names}, not "${asked.slice(0, 80)}".`, asked.slice(0, 80));
  }
  if (asked === undefined && allowed.length > 1) {
    throw new RelayError("token_backend_mismatch", `The token is for several backends: name one with ?backend=<name>.`);
  }
  const backend = asked ?? verdict.backend;
  if (c.req.header("upgrade")?.toLowerCase() !== "websocket") {
    throw new RelayError("upgrade_required", "Connect with a WebSocket upgrade.", backend);
  }
  const headers = new Headers(c.req.raw.headers);
  headers.set(ROUTE_HEADER, encodeRoute({ op: "connect", backend }));
  return hub(c.env, backend).fetch(new Request(c.req.raw, { headers }));
});

/** Benchmark only (var RELAY_BENCH=1, never deployed): the backend's Durable Object answers itself. */
app.all("/_relay/bench/:name/*", (c) => {
  const name = c.req.param("name");
  if (c.env.RELAY_BENCH !== "1" || !isValidBackendName(name)) return c.notFound();
  const path = pathAndQuery(c.req.url).slice(`/_relay/bench/${name}`.length);
  return forward(c.req.raw, c.env, name, path, "bench");
});

app.notFound(() =>
  new RelayError("not_found", "No backend route matched: use <name>.<relay domain>, /r/<name>/, or the X-Relay-Backend header.").toResponse(),
);

app.onError((err) => {
  if (err instanceof RelayError) return err.toResponse();
  if ((err as { overloaded?: boolean }).overloaded) return new RelayError("overloaded", "The backend's relay is overloaded; try again shortly.").toResponse();
  console.error("relay error", err);
  return new RelayError("internal_error", "The relay failed to handle the request.").toResponse();
});

function hub(env: Env, backend: string) {
  return env.BACKEND_HUB.get(env.BACKEND_HUB.idFromName(backend));
}

/**
 * Sends a public request to its backend's Durable Object with the route header set (replacing
 * any public one: src/hub-route.ts). The object drops every other x-relay- field and adds
 * X-Forwarded-Proto and -Host from the route; X-Forwarded-For needs the edge's client address,
 * so it is set here.
 */
async function forward(request: Request, env: Env, backend: string, path: string, op?: "bench"): Promise<Response> {
  const { scheme, host: urlHost } = schemeAndHost(request.url);
  // One native copy of the headers (a Request built from a Request), then a few sets: copying
  // field by field in JavaScript cost tens of µs per request (`npm run bench -- --profile`).
  const forwarded = new Request(request, { redirect: "manual" });
  const headers = forwarded.headers;
  const host = headers.get("host") ?? urlHost;
  const clientIp = headers.get("cf-connecting-ip");
  if (clientIp) {
    const prior = headers.get("x-forwarded-for");
    // The edge appends the client to X-Forwarded-For already; add it only where it is missing.
    const last = prior?.split(",").pop()?.trim();
    headers.set("x-forwarded-for", !prior ? clientIp : last === clientIp ? prior : `${prior}, ${clientIp}`);
  }
  const target: HubRoute = { backend, path, scheme, authority: host };
  const access = headers.get(ACCESS_HEADER);
  if (access && env.RELAY_SECRET) {
    const verdict = await verifyToken(env.RELAY_SECRET, access);
    if (verdict.ok && verdict.scope === "access" && tokenBackends(verdict).includes(backend)) target.access = true;
  }
  if (op) target.op = op;
  headers.set(ROUTE_HEADER, encodeRoute(target));
  try {
    return await hub(env, backend).fetch(forwarded);
  } catch (err) {
    if ((err as { overloaded?: boolean }).overloaded) {
      throw new RelayError("overloaded", "The backend's relay is overloaded; try again shortly.", backend);
    }
    throw err;
  }
}

export default app satisfies ExportedHandler<Env>;
