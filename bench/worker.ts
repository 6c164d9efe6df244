// The relay Worker as `npm run bench` builds it (bench/wrangler.toml): the production app and
// Durable Objects, plus `/_relay/bench/<name>/...` answered inside the backend's Durable Object
// with no tunnel (the do-ceiling row). None of this is in the production bundle.
import app from "../src/index.ts";
import type { Env } from "../src/env.ts";
import { isValidBackendName } from "../src/auth.ts";
import { BackendHub as RelayHub } from "../src/hub/backend-hub.ts";
import { benchResponse } from "./do-responder.ts";

export { TokenRegistry } from "../src/index.ts";

/** Path and query a bench request asks the object for; only this Worker sets it. */
const BENCH_PATH = "x-relay-bench-path";
const ROUTE = /^\/_relay\/bench\/([^/]+)(\/.*)?$/;

/** The relay's Durable Object, answering bench requests itself. */
export class BackendHub extends RelayHub {
  async fetch(request: Request): Promise<Response> {
    const path = request.headers.get(BENCH_PATH);
    return path === null ? super.fetch(request) : benchResponse(request, path, this);
  }
}

export default {
  fetch(request, env, ctx) {
    const url = new URL(request.url);
    const bench = ROUTE.exec(url.pathname);
    if (!bench || !isValidBackendName(bench[1])) {
      if (!request.headers.has(BENCH_PATH)) return app.fetch(request, env, ctx);
      const headers = new Headers(request.headers);
      headers.delete(BENCH_PATH);
      return app.fetch(new Request(request, { headers }), env, ctx);
    }
    // One native copy and a header set, as the app's own forward() does for a public request.
    const forwarded = new Request(request, { redirect: "manual" });
    forwarded.headers.set(BENCH_PATH, (bench[2] ?? "/") + url.search);
    return env.BACKEND_HUB.get(env.BACKEND_HUB.idFromName(bench[1])).fetch(forwarded);
  },
} satisfies ExportedHandler<Env>;
