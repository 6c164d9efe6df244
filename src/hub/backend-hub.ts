// The Durable Object, one per backend name: a thin dispatcher. Agent tunnels live in the
// TunnelRegistry, a public request's relay in relay.ts, public WebSocket clients in
// public-websockets.ts; every handler is guarded so one bad socket cannot break the object.
import { DurableObject } from "cloudflare:workers";
import type { Env } from "../env.ts";
import { RelayError } from "../errors.ts";
import { ROUTE_HEADER, decodeRoute, type HubRoute } from "../hub-route.ts";
import { HEARTBEAT_PING, HEARTBEAT_PONG, TunnelClose } from "../protocol/frame.ts";
import { HubCounters } from "../observe/hub-counters.ts";
import { hubView } from "../observe/hub-view.ts";
import { TunnelReports } from "../observe/tunnel-watch.ts";
import { Backlog, CLIENT_TAG, clientClosed, clientMessage, type ClientAttachment } from "./public-websockets.ts";
import { deadlinesKeeper, relayRequest, type RelayHub } from "./relay.ts";
import { MessageTurn } from "./response.ts";
import { TunnelRegistry } from "./tunnel-registry.ts";
import { TUNNEL_TAG } from "./tunnels.ts";

export class BackendHub extends DurableObject<Env> {
  private readonly tunnels: TunnelRegistry;
  private readonly hub: RelayHub;
  /** What the public WebSocket clients of this object sent that waits for the tunnels. */
  private readonly clientBacklog = new Backlog();
  /** Responses, errors and tunnel bytes, for /_relay/metrics. */
  private readonly counters: HubCounters;
  /** Keeps the backend directory's count of this backend's tunnels current. */
  private readonly reports: TunnelReports;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    const counters = (this.counters = new HubCounters(ctx.storage));
    const reports = (this.reports = new TunnelReports(env));
    this.tunnels = new TunnelRegistry(ctx, env, {
      sent: (bytes) => counters.sent(bytes),
      received: (bytes) => counters.received(bytes),
      changed: (backend, open) => reports.report(backend, open),
    });
    this.hub = { ctx, env, tunnels: this.tunnels, turn: new MessageTurn(), deadlines: deadlinesKeeper(), upgrading: 0 };
    // The runtime answers heartbeats itself, so idle tunnels let the object hibernate.
    ctx.setWebSocketAutoResponse(new WebSocketRequestResponsePair(HEARTBEAT_PING, HEARTBEAT_PONG));
  }

  fetch(request: Request): Promise<Response> {
    const route = decodeRoute(request.headers.get(ROUTE_HEADER));
    // A public request's answer is relay()'s own promise: no async function wraps it in another.
    if (route && route.op === undefined) return this.relay(request, route);
    return this.operate(route);
  }

  /** What the Worker asks of the object besides relaying: tunnels, the admin and observers' views. */
  private async operate(route: HubRoute | undefined): Promise<Response> {
    // Only the Worker calls this object, and it always sets the route.
    if (!route) return new RelayError("internal_error", "The request reached the relay's Durable Object without its route.").toResponse();
    switch (route.op) {
      case "connect":
        return this.tunnels.accept(route);
      case "revoke":
        return Response.json(await this.tunnels.revoke(route));
      case "status":
        return Response.json(this.tunnels.status(route.backend));
      case "drain":
        return Response.json(this.tunnels.drain(route.backend));
      case "observe":
        return Response.json(this.observe(route.backend));
    }
    return new RelayError("internal_error", `The relay's Durable Object has no operation "${route.op}".`).toResponse();
  }

  /** Relays a public request (a route with no op) and counts its answer. */
  protected relay(request: Request, route: HubRoute): Promise<Response> {
    return this.counters.response(relayRequest(request, route, this.hub));
  }

  /** The observers' view; it also corrects the directory's count should a report have been lost. */
  private observe(backend: string) {
    const view = hubView(this.tunnels.status(backend), this.tunnels.openSockets(CLIENT_TAG), this.counters.snapshot());
    this.reports.report(backend, this.tunnels.openSockets(TUNNEL_TAG));
    return view;
  }

  async webSocketMessage(ws: WebSocket, message: string | ArrayBuffer): Promise<void> {
    try {
      if (!this.tunnels.isClient(ws)) return this.tunnels.receive(ws, message, this.hub.turn);
      const att = ws.deserializeAttachment() as ClientAttachment | null;
      return clientMessage(ws, this.tunnels.clientStream(ws), message, this.clientBacklog, att?.flow);
    } catch (err) {
      console.error("client message failed", err);
      return ws.close(1011, "internal error");
    }
  }

  async webSocketClose(ws: WebSocket, code: number, reason: string): Promise<void> {
    try {
      const kind = this.tunnels.kindOf(ws);
      if (!kind) return closeQuietly(ws, code);
      // Close our side too, or the peer waits ~10 s and sees 1006 (docs/platform-notes.md "Close
      // our side of every WebSocket").
      if (kind === "client") clientClosed(ws, this.tunnels.clientStream(ws), code, reason);
      else this.tunnels.close(ws, code, reason);
    } catch (err) {
      console.error("close handling failed", err);
    }
  }

  async webSocketError(ws: WebSocket): Promise<void> {
    try {
      const kind = this.tunnels.kindOf(ws);
      if (!kind) return closeQuietly(ws, 1011);
      if (kind === "client") clientClosed(ws, this.tunnels.clientStream(ws), 1006, "socket error");
      else this.tunnels.close(ws, TunnelClose.InternalError, "socket error");
    } catch (err) {
      console.error("error handling failed", err);
    }
  }
}

/** Closes a socket this instance does not hold; it may be closed already. */
function closeQuietly(ws: WebSocket, code: number): void {
  try {
    ws.close(code === 1005 || code === 1006 ? 1000 : code);
  } catch {
    // Already closed.
  }
}
