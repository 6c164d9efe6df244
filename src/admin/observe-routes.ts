// The admin API's relay-wide views: GET /_relay/backends (every backend with tunnels) and
// GET /_relay/metrics (Prometheus text), both behind the admin token.
import type { Hono } from "hono";
import type { Env } from "../env.ts";
import { observeBackends } from "../observe/backends.ts";
import { PROMETHEUS_CONTENT_TYPE, renderMetrics } from "../observe/prometheus.ts";
import { requireAdmin } from "./admin-token.ts";

/** Adds the routes to the relay's app. */
export function mountObserveRoutes(app: Hono<{ Bindings: Env }>): void {
  app.get("/_relay/backends", async (c) => {
    await requireAdmin(c);
    const views = await observeBackends(c.env, c.req.url);
    return c.json({ backends: views.map(({ counters: _, ...view }) => view) }, 200, { "cache-control": "no-store" });
  });

  app.get("/_relay/metrics", async (c) => {
    await requireAdmin(c);
    const views = await observeBackends(c.env, c.req.url, true);
    return c.body(renderMetrics(views), 200, { "content-type": PROMETHEUS_CONTENT_TYPE, "cache-control": "no-store" });
  });
}
