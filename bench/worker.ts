// The relay Worker as `npm run bench` builds it (bench/wrangler.toml): the production app and
// Durable Objects, plus `/_relay/bench/<name>/...` answered inside the backend's Durable Object
// with no tunnel (the do-ceiling row), or after a WebSocket round trip to an echoing peer that
// `/_relay/bench/<name>/floor-peer` connects (the ws-floor row, bench/ws-floor.ts). None of this
// is in the production bundle.
import app from "../src/index.ts";
import type { Env } from "../src/env.ts";
import { isValidBackendName } from "../src/auth.ts";
import { ROUTE_HEADER, backendHub, encodeRoute, type HubRoute } from "../src/hub-route.ts";
import { BackendHub as RelayHub } from "../src/hub/backend-hub.ts";
import { pathAndQuery } from "../src/worker/routing.ts";
import { benchResponse } from "./do-responder.ts";
import { FLOOR_TAG, WsFloor } from "./ws-floor.ts";

export { TokenRegistry } from "../src/index.ts";

const PREFIX = "/_relay/bench/";

/**
 * The route of a bench request: `bench` is the path and query the object answers. Only this
 * Worker sends it; the app replaces any route header a public client sent, so no public
 * request reaches the object with one.
 */
interface BenchRoute extends HubRoute {
  bench?: string;
}

/** The relay's Durable Object, answering bench requests itself. */
export class BackendHub extends RelayHub {
  /** The ws-floor peer's socket: compared by identity, as a tag lookup per message would cost every row. */
  private floorSocket?: WebSocket;
  private readonly floor = new WsFloor(() => this.floorSocket);

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.floorSocket = ctx.getWebSockets(FLOOR_TAG)[0];
  }

  protected relay(request: Request, route: BenchRoute): Promise<Response> {
    if (route.bench === undefined) return super.relay(request, route);
    if (route.bench.startsWith("/floor/")) return this.floor.request();
    if (route.bench === "/floor-peer" && request.headers.get("upgrade") === "websocket") {
      const pair = new WebSocketPair();
      this.ctx.acceptWebSocket(pair[1], [FLOOR_TAG]);
      this.floorSocket = pair[1];
      return Promise.resolve(new Response(null, { status: 101, webSocket: pair[0] }));
    }
    return benchResponse(request, route.bench, this);
  }

  private isFloor(ws: WebSocket): boolean {
    return ws === this.floorSocket;
  }

  async webSocketMessage(ws: WebSocket, message: string | ArrayBuffer): Promise<void> {
    if (this.isFloor(ws)) return this.floor.receive(message);
    return super.webSocketMessage(ws, message);
  }

  async webSocketClose(ws: WebSocket, code: number, reason: string): Promise<void> {
    if (!this.isFloor(ws)) return super.webSocketClose(ws, code, reason);
    this.floorSocket = undefined;
    this.floor.closed();
    ws.close(1000);
  }
}

export default {
  fetch(request, env, ctx) {
    // A string check, not a URL parse: every public request passes here.
    const url = request.url;
    const target = pathAndQuery(url);
    if (!target.startsWith(PREFIX)) return app.fetch(request, env, ctx);
    let end = PREFIX.length;
    while (end < target.length && target[end] !== "/" && target[end] !== "?") end++;
    const name = target.slice(PREFIX.length, end);
    if (!isValidBackendName(name)) return app.fetch(request, env, ctx);
    const rest = target.slice(end);
    // One native copy and a header set, as the app's own forward() does for a public request.
    const forwarded = new Request(request, { redirect: "manual" });
    const route: BenchRoute = { backend: name, bench: rest.startsWith("/") ? rest : `/${rest}` };
    forwarded.headers.set(ROUTE_HEADER, encodeRoute(route));
    return backendHub(env, name).fetch(forwarded);
  },
} satisfies ExportedHandler<Env>;
