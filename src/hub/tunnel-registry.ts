// The agent tunnels of one backend's Durable Object: accepted as hibernatable sockets, rebuilt
// from their attachments after hibernation, dropped when their heartbeat stops, listed for the
// admin API, drained, and closed when their token is revoked.
import type { Env } from "../env.ts";
import type { HubRoute } from "../hub-route.ts";
import { ErrorCode, HEARTBEAT_PING, ProtocolError, TunnelClose } from "../protocol/frame.ts";
import type { Stream } from "../protocol/session.ts";
import { BackendRevocations, revokes, tokenRevoked } from "../revocations.ts";
import type { TunnelWatch } from "../observe/tunnel-watch.ts";
import { limitsOf, tooManyTunnels } from "./limits.ts";
import { CLIENT_TAG, bindClient, clientsOf, type ClientAttachment } from "./public-websockets.ts";
import type { MessageTurn } from "./response.ts";
import { TUNNEL_TAG, Tunnel, accessKey, tunnelTag, type TunnelAttachment } from "./tunnels.ts";
import type { AccessGate } from "../access/compose.ts";
import { AccessTables } from "./access-gate.ts";

/** Seconds without a heartbeat after which a tunnel is dropped: three missed 15 s pings. */
const DEFAULT_HEARTBEAT_DEADLINE_SECONDS = 45;

/** Maps a close code we may not send (1005, 1006, reserved) to one we may. */
function sendableCloseCode(code: number): number {
  if (code === 1000 || (code >= 1001 && code <= 1003) || (code >= 1007 && code <= 1014) || (code >= 3000 && code <= 4999)) return code;
  return code === 1005 ? 1000 : 1011;
}

export class TunnelRegistry {
  /** Sessions by socket; empty again after hibernation, refilled lazily from attachments. */
  private readonly tunnels = new Map<WebSocket, Tunnel>();
  /** all() between changes: dropped whenever a tunnel is accepted or closed. */
  private live?: Tunnel[];
  /** When the earliest live tunnel's heartbeat falls due: no tunnel can be overdue before. */
  private heartbeatDue = 0;
  private readonly revocations: BackendRevocations;
  /** Compiled access tables, shared by the tunnels that sent the same policies. */
  private readonly tables = new AccessTables();

  constructor(
    private readonly ctx: DurableObjectState,
    private readonly env: Env,
    /** Told about tunnel bytes, connects and closes (src/observe/). */
    private readonly watch?: TunnelWatch,
  ) {
    this.revocations = new BackendRevocations(ctx.storage);
  }

  /**
   * The access table a tunnel's requests must pass: its hello's policies (read back from
   * storage after a hibernation; lost ones refuse everything), the access-token check of
   * --require-access-token, or none.
   */
  async accessOf(tunnel: Tunnel): Promise<AccessGate | undefined> {
    if (tunnel.access || !(tunnel.meta.access || tunnel.meta.hello?.requireAccess)) return tunnel.access;
    const json = tunnel.meta.access ? ((await this.ctx.storage.get<string>(accessKey(tunnel.meta.tunnelId))) ?? null) : undefined;
    tunnel.access = this.tables.of(json, tunnel.meta.hello?.requireAccess);
    return tunnel.access;
  }

  /** Tunnels with a session in memory: none right after hibernation, until each is used. */
  get size(): number {
    return this.tunnels.size;
  }

  /**
   * Accepts an agent's (already authenticated) WebSocket as a hibernatable tunnel, unless its
   * token was revoked here or the backend has its limit of tunnels. Storage reads hold other
   * events back (input gate), so a revocation cannot slip in between the check and the accept.
   */
  async accept(route: HubRoute): Promise<Response> {
    const { backend, token } = route;
    if (token && (await this.revocations.refuses(token))) return tokenRevoked(backend).toResponse();
    const { tunnels: limit } = limitsOf(this.env);
    if (this.openSockets(TUNNEL_TAG) >= limit) return tooManyTunnels(backend, limit).toResponse();
    const { 0: client, 1: server } = new WebSocketPair();
    const meta: TunnelAttachment = {
      tunnelId: crypto.randomUUID(),
      backend,
      connectedAt: Date.now(),
      tokenId: token?.id,
      tokenIat: token?.iat,
    };
    this.ctx.acceptWebSocket(server, [TUNNEL_TAG, tunnelTag(meta.tunnelId)]);
    server.serializeAttachment(meta);
    this.tunnels.set(server, this.makeTunnel(server, meta));
    this.live = undefined;
    this.watch?.changed(backend, this.openSockets(TUNNEL_TAG));
    return new Response(null, { status: 101, webSocket: client });
  }

  private makeTunnel(ws: WebSocket, meta: TunnelAttachment): Tunnel {
    const tunnel = new Tunnel(
      ws,
      meta,
      (t, error) => this.close(t.ws, error.closeCode, error.message),
      (t, scopes) => {
        const json = JSON.stringify(scopes);
        t.access = this.tables.of(json, t.meta.hello?.requireAccess);
        void this.ctx.storage.put(accessKey(t.meta.tunnelId), json);
      },
      this.watch,
    );
    if (meta.hello) {
      // Rebuilt after hibernation: public WebSockets it carried are idle streams with full windows.
      for (const client of this.ctx.getWebSockets(clientsOf(meta.tunnelId))) {
        const att = client.deserializeAttachment() as ClientAttachment;
        bindClient(client, tunnel.session.adopt(att.streamId), att.flow);
      }
    }
    return tunnel;
  }

  /** The tunnel for a socket, rebuilt from its attachment after hibernation. */
  private tunnelFor(ws: WebSocket): Tunnel {
    let tunnel = this.tunnels.get(ws);
    if (!tunnel) {
      tunnel = this.makeTunnel(ws, ws.deserializeAttachment() as TunnelAttachment);
      this.tunnels.set(ws, tunnel);
    }
    return tunnel;
  }

  /**
   * Every live tunnel of this backend, including ones accepted before a hibernation. A tunnel
   * whose heartbeat is overdue is closed here: the agent pings every 15 s and the runtime's
   * auto-response records when it last answered, even while the object hibernates.
   *
   * Runs for every request, so the list is kept between changes and heartbeats are read only
   * once the earliest of them falls due.
   */
  all(): Tunnel[] {
    const now = Date.now();
    if (this.live && now < this.heartbeatDue && this.live.every((t) => t.ws.readyState === WebSocket.OPEN)) return this.live;
    const deadline = (Number(this.env.RELAY_HEARTBEAT_DEADLINE) || DEFAULT_HEARTBEAT_DEADLINE_SECONDS) * 1000;
    const live: Tunnel[] = [];
    let due = Infinity;
    // A socket we closed stays in getWebSockets (CLOSING) until the agent answers the close;
    // rebuilding a tunnel for it would open streams on a dead socket.
    for (const ws of this.ctx.getWebSockets(TUNNEL_TAG)) {
      if (ws.readyState !== WebSocket.OPEN) continue;
      const tunnel = this.tunnelFor(ws);
      const heard = this.lastHeartbeat(ws, tunnel);
      if (now - heard > deadline) {
        this.close(ws, 1001, "heartbeat missed");
        continue;
      }
      due = Math.min(due, heard + deadline);
      live.push(tunnel);
    }
    this.live = live;
    this.heartbeatDue = due;
    return live;
  }

  /** When the agent was last heard from: its last auto-answered ping, or the connect. */
  private lastHeartbeat(ws: WebSocket, tunnel: Tunnel): number {
    return Math.max(this.ctx.getWebSocketAutoResponseTimestamp(ws)?.getTime() ?? 0, tunnel.meta.connectedAt);
  }

  /** Open sockets with `tag` (a closed one lingers in getWebSockets until the peer answers its close). */
  openSockets(tag: string): number {
    let n = 0;
    for (const ws of this.ctx.getWebSockets(tag)) if (ws.readyState === WebSocket.OPEN) n++;
    return n;
  }

  /** The admin view of this backend's tunnels. */
  status(backend: string) {
    const tunnels = this.ctx.getWebSockets(TUNNEL_TAG).map((ws) => {
      const tunnel = this.tunnelFor(ws);
      const { meta } = tunnel;
      return {
        tunnelId: meta.tunnelId,
        agentId: meta.hello?.id ?? null,
        software: meta.hello?.software ?? null,
        caps: meta.hello?.caps ?? [],
        targetProtocols: meta.hello?.targetProtocols ?? [],
        tokenId: meta.tokenId ?? null,
        connectedAt: new Date(meta.connectedAt).toISOString(),
        lastHeartbeat: new Date(this.lastHeartbeat(ws, tunnel)).toISOString(),
        streams: tunnel.load,
        draining: !!meta.goingAway || tunnel.session.localGoingAway,
        open: ws.readyState === WebSocket.OPEN,
      };
    });
    return { backend, tunnels };
  }

  /** Asks every agent of this backend to replace its tunnels (GOAWAY): in-flight streams finish. */
  drain(backend: string) {
    const tunnels = this.all();
    for (const t of tunnels) {
      t.session.goAway(ErrorCode.NoError, "relay drain");
      t.meta.goingAway = true;
      t.ws.serializeAttachment(t.meta);
    }
    return { backend, draining: tunnels.length };
  }

  /** Records a revocation and closes the tunnels whose token it covers (after hibernation too). */
  async revoke(route: HubRoute) {
    const revocation = route.revoke;
    if (!revocation) return { backend: route.backend, closed: 0 };
    await this.revocations.add(revocation);
    let closed = 0;
    for (const ws of this.ctx.getWebSockets(TUNNEL_TAG)) {
      if (ws.readyState !== WebSocket.OPEN || !revokes(revocation, ws.deserializeAttachment() as TunnelAttachment)) continue;
      this.close(ws, TunnelClose.TokenRevoked, "token revoked");
      closed++;
    }
    return { backend: route.backend, closed };
  }

  /** Reads one tunnel message within `turn`; anything it breaks closes that tunnel alone. */
  receive(ws: WebSocket, message: string | ArrayBuffer, turn: MessageTurn): void {
    try {
      if (typeof message === "string") {
        throw new ProtocolError(`unexpected text message (only "${HEARTBEAT_PING}" is allowed)`);
      }
      this.watch?.received(message.byteLength);
      turn.run(() => this.tunnelFor(ws).session.receive(message));
    } catch (err) {
      const protocol = err instanceof ProtocolError;
      if (!protocol) console.error("tunnel message failed", err);
      this.close(ws, protocol ? err.closeCode : TunnelClose.InternalError, protocol ? err.message : "internal error");
    }
  }

  /** Closes a tunnel's socket, ending every stream (and public WebSocket) it carried. */
  close(ws: WebSocket, code: number, reason: string): void {
    // tunnelFor, not tunnels.get: after hibernation the session must be rebuilt so that the
    // public WebSockets it carried are closed too.
    const meta = ws.deserializeAttachment() as TunnelAttachment | null;
    if (meta) this.tunnelFor(ws).session.destroy(reason || "the tunnel closed");
    if (meta?.access) void this.ctx.storage.delete(accessKey(meta.tunnelId));
    this.tunnels.delete(ws);
    this.live = undefined;
    try {
      ws.close(sendableCloseCode(code), reason.slice(0, 120));
    } catch {
      // Already closed: nothing to tell the agent.
    }
    if (meta) this.watch?.changed(meta.backend, this.openSockets(TUNNEL_TAG));
  }

  /** Whether a socket is a public client's rather than a tunnel. */
  isClient(ws: WebSocket): boolean {
    // Tunnel sockets are in the map unless the object was rebuilt: skip the tag list for them.
    if (this.tunnels.has(ws)) return false;
    return this.ctx.getTags(ws).includes(CLIENT_TAG);
  }

  /**
   * What `ws` is to this instance, read once for a close or an error; undefined for a socket it
   * does not hold. The runtime refuses to read the tags of such a socket: an object that was
   * aborted (the workers test pool does it between tests) gets its old sockets' closes in the new
   * instance, with nothing of ours left to clean up.
   */
  kindOf(ws: WebSocket): "tunnel" | "client" | undefined {
    try {
      return this.isClient(ws) ? "client" : "tunnel";
    } catch {
      return undefined;
    }
  }

  /** The stream a public client socket is bridged to (rebuilding its tunnel if needed). */
  clientStream(ws: WebSocket): Stream | undefined {
    const att = ws.deserializeAttachment() as ClientAttachment | null;
    const tunnelWs = att && this.ctx.getWebSockets(tunnelTag(att.tunnelId))[0];
    return tunnelWs ? this.tunnelFor(tunnelWs).session.streams.get(att.streamId) : undefined;
  }
}
