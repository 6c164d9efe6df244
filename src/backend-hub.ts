// The Durable Object, one per backend name: accepts agent tunnels (hibernatable WebSockets)
// and relays every public request for the backend over them.
import { DurableObject } from "cloudflare:workers";
import { benchResponse } from "./bench.ts";
import { RequestBody, TunnelBody, isSmallBody } from "./bodies.ts";
import type { Env } from "./env.ts";
import { Deadlines } from "./deadlines.ts";
import { RelayError } from "./errors.ts";
import { RELAY_PREFIX, endToEnd, isHopByHop } from "./http-headers.ts";
import { ROUTE_HEADER, decodeRoute, type HubRoute } from "./hub-route.ts";
import { DEFAULT_WINDOW, ErrorCode, HEARTBEAT_PING, HEARTBEAT_PONG, ProtocolError, TunnelClose, type HeaderList } from "./protocol/frame.ts";
import { decodeResponseHead, headSizeProblem } from "./protocol/head.ts";
import { StreamReset, type Stream } from "./protocol/session.ts";
import { BackendRevocations, revokes, tokenRevoked } from "./revocations.ts";
import { TUNNEL_TAG, Tunnel, pickTunnel, tunnelTag, type TunnelAttachment } from "./tunnels.ts";
import { FLOW_SUBPROTOCOL, takeFlowOffer } from "./client-flow.ts";
import {
  CLIENT_TAG,
  Backlog,
  HANDSHAKE_HEADERS,
  bindClient,
  clientClosed,
  clientMessage,
  clientsOf,
  type ClientAttachment,
} from "./public-websockets.ts";

/** Statuses whose responses never have a body (the Response constructor refuses one). */
const NULL_BODY = new Set([101, 204, 205, 304]);

const DEFAULT_TIMEOUT_SECONDS = 100;

/** Seconds without a heartbeat after which a tunnel is dropped: three missed 15 s pings. */
const DEFAULT_HEARTBEAT_DEADLINE_SECONDS = 45;

/** Attempts after an agent refused a request (REFUSED_STREAM: draining), each on another tunnel. */
const MAX_REFUSED_RETRIES = 2;

/** Whether a request may be sent again after its tunnel died before answering (GET, HEAD, OPTIONS, Idempotency-Key). */
function isRepeatable(method: string, idempotencyKey: boolean): boolean {
  return method === "GET" || method === "HEAD" || method === "OPTIONS" || idempotencyKey;
}

/** Maps a close code we may not send (1005, 1006, reserved) to one we may. */
function sendableCloseCode(code: number): number {
  if (code === 1000 || (code >= 1001 && code <= 1003) || (code >= 1007 && code <= 1014) || (code >= 3000 && code <= 4999)) return code;
  return code === 1005 ? 1000 : 1011;
}

export class BackendHub extends DurableObject<Env> {
  /** Sessions by socket; empty again after hibernation, refilled lazily from attachments. */
  private tunnels = new Map<WebSocket, Tunnel>();
  /** Response-head timeouts of requests in flight, on one timer. */
  private deadlines?: Deadlines;
  /** allTunnels() between changes: dropped whenever a tunnel is accepted or closed. */
  private live?: Tunnel[];
  /** When the earliest live tunnel's heartbeat falls due: no tunnel can be overdue before. */
  private heartbeatDue = 0;
  /** Set while a tunnel message is dispatched: response heads wait in `heads` until its end. */
  private receiving = false;
  private heads: Array<() => void> = [];
  private readonly revocations: BackendRevocations;
  /** What the public WebSocket clients of this object sent that waits for the tunnels. */
  private clientBacklog = new Backlog();

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.revocations = new BackendRevocations(ctx.storage);
    // The runtime answers heartbeats itself, so idle tunnels let the object hibernate.
    ctx.setWebSocketAutoResponse(new WebSocketRequestResponsePair(HEARTBEAT_PING, HEARTBEAT_PONG));
  }

  async fetch(request: Request): Promise<Response> {
    const route = decodeRoute(request.headers.get(ROUTE_HEADER));
    // Only the Worker calls this object, and it always sets the route.
    if (!route) return new RelayError("internal_error", "The request reached the relay's Durable Object without its route.").toResponse();
    switch (route.op) {
      case "connect":
        return this.acceptTunnel(route);
      case "revoke":
        return Response.json(await this.revoke(route));
      case "status":
        return Response.json(this.status(route.backend));
      case "drain":
        return Response.json(this.drain(route.backend));
      case "bench":
        if (this.env.RELAY_BENCH === "1") return benchResponse(request, route.path ?? "/", this);
    }
    return this.relay(request, route);
  }

  /**
   * Accepts an agent's (already authenticated) WebSocket as a hibernatable tunnel, unless its
   * token was revoked here. Storage reads hold other events back (input gate), so a revocation
   * cannot slip in between the check and the accept.
   */
  private async acceptTunnel(route: HubRoute): Promise<Response> {
    const { backend, token } = route;
    if (token && (await this.revocations.refuses(token))) return tokenRevoked(backend).toResponse();
    const { 0: client, 1: server } = new WebSocketPair();
    const meta: TunnelAttachment = { tunnelId: crypto.randomUUID(), backend, connectedAt: Date.now(), tokenId: token?.id, tokenIat: token?.iat };
    this.ctx.acceptWebSocket(server, [TUNNEL_TAG, tunnelTag(meta.tunnelId)]);
    server.serializeAttachment(meta);
    this.tunnels.set(server, this.makeTunnel(server, meta));
    this.live = undefined;
    return new Response(null, { status: 101, webSocket: client });
  }

  private makeTunnel(ws: WebSocket, meta: TunnelAttachment): Tunnel {
    const tunnel = new Tunnel(ws, meta, (t, error) => this.closeTunnel(t.ws, error.closeCode, error.message));
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
  private allTunnels(): Tunnel[] {
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
        this.closeTunnel(ws, 1001, "heartbeat missed");
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

  /** The admin view of this backend's tunnels. */
  private status(backend: string) {
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
  private drain(backend: string) {
    const tunnels = this.allTunnels();
    for (const t of tunnels) {
      t.session.goAway(ErrorCode.NoError, "relay drain");
      t.meta.goingAway = true;
      t.ws.serializeAttachment(t.meta);
    }
    return { backend, draining: tunnels.length };
  }

  /** Records a revocation and closes the tunnels whose token it covers (after hibernation too). */
  private async revoke(route: HubRoute) {
    const revocation = route.revoke;
    if (!revocation) return { backend: route.backend, closed: 0 };
    await this.revocations.add(revocation);
    let closed = 0;
    for (const ws of this.ctx.getWebSockets(TUNNEL_TAG)) {
      if (ws.readyState !== WebSocket.OPEN || !revokes(revocation, ws.deserializeAttachment() as TunnelAttachment)) continue;
      this.closeTunnel(ws, TunnelClose.TokenRevoked, "token revoked");
      closed++;
    }
    return { backend: route.backend, closed };
  }

  private closeTunnel(ws: WebSocket, code: number, reason: string): void {
    // tunnelFor, not tunnels.get: after hibernation the session must be rebuilt so that the
    // public WebSockets it carried are closed too.
    if (ws.deserializeAttachment()) this.tunnelFor(ws).session.destroy(reason || "the tunnel closed");
    this.tunnels.delete(ws);
    this.live = undefined;
    try {
      ws.close(sendableCloseCode(code), reason.slice(0, 120));
    } catch {
      // Already closed: nothing to tell the agent.
    }
  }

  /** The stream a public client socket is bridged to (rebuilding its tunnel if needed). */
  private clientStream(ws: WebSocket): Stream | undefined {
    const att = ws.deserializeAttachment() as ClientAttachment | null;
    const tunnelWs = att && this.ctx.getWebSockets(tunnelTag(att.tunnelId))[0];
    return tunnelWs ? this.tunnelFor(tunnelWs).session.streams.get(att.streamId) : undefined;
  }

  private isClient(ws: WebSocket): boolean {
    // Tunnel sockets are in the map unless the object was rebuilt: skip the tag list for them.
    if (this.tunnels.has(ws)) return false;
    return this.ctx.getTags(ws).includes(CLIENT_TAG);
  }

  async webSocketMessage(ws: WebSocket, message: string | ArrayBuffer): Promise<void> {
    if (this.isClient(ws)) {
      try {
        const att = ws.deserializeAttachment() as ClientAttachment | null;
        return clientMessage(ws, this.clientStream(ws), message, this.clientBacklog, att?.flow);
      } catch (err) {
        console.error("client message failed", err);
        return ws.close(1011, "internal error");
      }
    }
    try {
      if (typeof message === "string") {
        throw new ProtocolError(`unexpected text message (only "${HEARTBEAT_PING}" is allowed)`);
      }
      this.receiving = true;
      this.tunnelFor(ws).session.receive(message);
      this.answerHeads();
    } catch (err) {
      this.answerHeads();
      const protocol = err instanceof ProtocolError;
      if (!protocol) console.error("tunnel message failed", err);
      this.closeTunnel(ws, protocol ? err.closeCode : TunnelClose.InternalError, protocol ? err.message : "internal error");
    }
  }

  /** Builds the responses whose heads the last tunnel message carried, now that all its body bytes are in. */
  private answerHeads(): void {
    this.receiving = false;
    const heads = this.heads;
    if (heads.length === 0) return;
    this.heads = [];
    for (const answer of heads) answer();
  }

  async webSocketClose(ws: WebSocket, code: number, reason: string): Promise<void> {
    try {
      // Close our side too, or the peer waits ~10 s and sees 1006 (docs/platform-notes.md "Close
      // our side of every WebSocket").
      if (this.isClient(ws)) clientClosed(ws, this.clientStream(ws), code, reason);
      else this.closeTunnel(ws, code, reason);
    } catch (err) {
      console.error("close handling failed", err);
    }
  }

  async webSocketError(ws: WebSocket): Promise<void> {
    try {
      if (this.isClient(ws)) clientClosed(ws, this.clientStream(ws), 1006, "socket error");
      else this.closeTunnel(ws, TunnelClose.InternalError, "socket error");
    } catch (err) {
      console.error("error handling failed", err);
    }
  }

  /**
   * Relays one public request over the least-loaded tunnel. An attempt that fails before the
   * response head is tried again on another tunnel when that cannot duplicate work: the agent
   * refused it (REFUSED_STREAM: it took no action), or its tunnel died and the request is safe
   * to repeat (README "High availability").
   */
  private async relay(request: Request, route: HubRoute): Promise<Response> {
    const { backend } = route;
    const tunnels = this.allTunnels();
    // No tunnel: answered before the head is built or the body read, so a storm of requests
    // for a backend whose agent is away costs each one a lookup and nothing it could wait on.
    if (tunnels.length === 0) return noAgent(backend);
    if (!route.access && tunnels.some((t) => t.meta.hello?.requireAccess)) {
      return new RelayError(
        "access_denied",
        `Backend "${backend}" requires an access token in the X-Relay-Access-Token header (mint one with \`edge-relay token ${backend} --access\`).`,
        backend,
      ).toResponse();
    }
    const { head, upgrade, flow, idempotencyKey, contentLength } = requestHead(request, route);
    // Refused here, before any frame: a head the agent could not accept would end the whole tunnel.
    const tooLarge = headSizeProblem(head);
    if (tooLarge) {
      return new RelayError("request_header_fields_too_large", `The request's head cannot be relayed: ${tooLarge} (path, Host and headers together).`, backend).toResponse();
    }
    // A small body is read whole and goes with the HEADERS; any other streams under credit.
    const raw = upgrade ? null : request.body;
    const whole = raw && isSmallBody(contentLength) ? await readWhole(request, backend) : undefined;
    if (whole instanceof RelayError) return whole.toResponse();
    const body = raw && !whole ? new RequestBody(raw, DEFAULT_WINDOW) : undefined;
    const repeatable = isRepeatable(request.method, idempotencyKey);
    const tried = new Set<Tunnel>();
    let refusals = 0;
    let losses = 0;
    let lastReset: StreamReset | undefined;
    /** The agent that refused this request or whose tunnel was lost under it. */
    let avoidAgent: string | undefined;
    for (;;) {
      const untried = tried.size === 0 ? tunnels : this.allTunnels().filter((t) => !tried.has(t));
      // Retry on another agent's tunnel while there is one: a draining agent refuses on all its
      // tunnels, and a crash or a cut network takes them all at once while the runtime delivers
      // their closes one by one (the others still look open).
      const elsewhere = avoidAgent === undefined ? [] : untried.filter((t) => t.meta.hello?.id !== avoidAgent);
      const tunnel = pickTunnel(elsewhere.length ? elsewhere : untried);
      if (!tunnel) {
        body?.abort();
        if (lastReset) return errorForReset(lastReset, backend).toResponse();
        return noAgent(backend);
      }
      tried.add(tunnel);
      const stream = whole?.byteLength ? tunnel.session.open(head, false, whole) : tunnel.session.open(head, !upgrade && !body);
      body?.attach(stream);
      const outcome = await this.awaitResponse(stream, request.method, backend, upgrade ? { tunnelId: tunnel.meta.tunnelId, flow } : undefined);
      if (outcome instanceof Response) {
        body?.commit();
        return outcome;
      }
      lastReset = outcome;
      avoidAgent = tunnel.meta.hello?.id;
      const again =
        (outcome.code === ErrorCode.RefusedStream && !outcome.tunnelLost && refusals++ < MAX_REFUSED_RETRIES) ||
        (outcome.tunnelLost && repeatable && losses++ < 1);
      if (!again || (body && !body.replayable)) {
        body?.abort();
        return errorForReset(outcome, backend).toResponse();
      }
    }
  }

  /** The response-head deadlines for a timeout of `seconds` (a var: the same for every request). */
  private responseDeadlines(seconds: number): Deadlines {
    if (this.deadlines?.ms !== seconds * 1000) this.deadlines = new Deadlines(seconds * 1000);
    return this.deadlines;
  }

  /** Answers a WebSocket upgrade the agent accepted: a hibernatable client socket on the stream. */
  private acceptClient(stream: Stream, upgrade: { tunnelId: string; flow: boolean }, backend: string, chosen: string | null): Response {
    const { 0: client, 1: server } = new WebSocketPair();
    const { tunnelId } = upgrade;
    // Flow control only when the backend chose no subprotocol of its own: a socket has one.
    const flow = upgrade.flow && !chosen;
    const protocol = flow ? FLOW_SUBPROTOCOL : chosen;
    this.ctx.acceptWebSocket(server, [CLIENT_TAG, clientsOf(tunnelId)]);
    server.serializeAttachment({ tunnelId, streamId: stream.id, backend, flow } satisfies ClientAttachment);
    bindClient(server, stream, flow);
    const headers = new Headers();
    if (protocol) headers.set("sec-websocket-protocol", protocol);
    return new Response(null, { status: 101, webSocket: client, headers });
  }

  /**
   * Waits for the agent's response head and streams the body under credit; for an upgrade
   * (`wsTunnel` set) a 101 becomes the public client's WebSocket. A reset before the head
   * resolves as the StreamReset itself, for relay() to retry or turn into an error.
   */
  private awaitResponse(
    stream: Stream,
    method: string,
    backend: string,
    wsTunnel?: { tunnelId: string; flow: boolean },
  ): Promise<Response | StreamReset> {
    const seconds = Number(this.env.RELAY_RESPONSE_TIMEOUT) || DEFAULT_TIMEOUT_SECONDS;
    return new Promise<Response | StreamReset>((resolve) => {
      const body = new TunnelBody(stream);
      let answered = false;
      /** The response head arrived (its Response is built a microtask later). */
      let headed = false;
      const answer = (response: Response | StreamReset) => {
        if (answered) return;
        answered = true;
        deadlines.cancel(deadline);
        resolve(response);
      };
      const deadlines = this.responseDeadlines(seconds);
      const deadline = deadlines.add(() => {
        stream.reset(ErrorCode.Timeout, `no response headers within ${seconds} s`);
        answer(new RelayError("timeout", `The agent sent no response headers within ${seconds} seconds.`, backend).toResponse());
      });

      stream.onHeaders = (list, fin) => {
        try {
          const { status, headers } = decodeResponseHead(list);
          if (status === 101) {
            if (!wsTunnel) throw new ProtocolError("101 to a request that asked for no upgrade");
            const chosen = headers.find(([name]) => name === "sec-websocket-protocol")?.[1] ?? null;
            return answer(this.acceptClient(stream, wsTunnel, backend, chosen));
          }
          const { init: out, length } = responseHeaders(headers);
          const empty = fin || NULL_BODY.has(status) || method === "HEAD";
          if (empty && !fin) stream.reset(ErrorCode.NoError, "no body expected");
          // encodeBody "manual": pass the backend's bytes and Content-Encoding through untouched,
          // never gzipped again and never buffered by the runtime's compression (docs/platform-notes.md
          // "The runtime compresses responses without Content-Encoding").
          if (empty) return answer(new Response(null, { status, headers: out, encodeBody: "manual" }));
          // The rest of this tunnel message may hold the whole body: answered as bytes once the
          // message is read, a small body costs the runtime far less than a stream (`npm run bench`).
          headed = true;
          // Runs after this handler returns, so it answers its own failure: the client is never left waiting.
          const respond = () => {
            try {
              answer(new Response(body.whole(length) ?? body.open(length), { status, headers: out, encodeBody: "manual" }));
            } catch (err) {
              malformed(err);
            }
          };
          if (this.receiving) this.heads.push(respond);
          else queueMicrotask(respond);
        } catch (err) {
          malformed(err);
        }
      };
      /** The agent's head cannot become a response: reset that stream alone and answer 502. */
      const malformed = (err: unknown) => {
        const message = err instanceof Error ? err.message : String(err);
        stream.reset(ErrorCode.ProtocolError, message);
        answer(new RelayError("protocol_error", `The agent sent a malformed response: ${message}.`, backend).toResponse());
      };
      stream.onData = (chunk) => body.push(chunk);
      stream.onEnd = () => body.end();
      stream.onReset = (reset) => {
        if (answered || headed) return body.fail(reset);
        answer(reset);
      };
    });
  }
}

/**
 * The public response's headers from the agent's list (end-to-end fields only), and its
 * Content-Length. A plain object when no name repeats: the runtime takes that in one call, far
 * cheaper than a Headers built by appends or a list of pairs (docs/performance.md).
 * One pass, with no list in between; a Connection header (it names more fields to drop) or a
 * repeated name (Set-Cookie) takes the general path.
 */
function responseHeaders(list: HeaderList): { init: HeadersInit; length: string | null } {
  const record: Record<string, string> = Object.create(null);
  for (let i = 0; i < list.length; i++) {
    const name = list[i][0].toLowerCase();
    if (name === "connection" || name in record) return headersByAppends(endToEnd(list));
    if (!isHopByHop(name)) record[name] = list[i][1];
  }
  // The runtime gzips responses without a Content-Encoding for clients that accept gzip,
  // buffering the whole body first (docs/platform-notes.md "The runtime compresses responses
  // without Content-Encoding"). "identity" with encodeBody manual keeps streams streaming and
  // bytes untouched.
  record["content-encoding"] ??= "identity";
  return { init: record, length: record["content-length"] ?? null };
}

function headersByAppends(list: HeaderList): { init: Headers; length: string | null } {
  const headers = new Headers();
  for (const [name, value] of list) headers.append(name, value);
  if (!headers.has("content-encoding")) headers.set("content-encoding", "identity");
  return { init: headers, length: headers.get("content-length") };
}

/**
 * The head an agent gets for a public request (README "Header block"), in one pass over its
 * headers: each Headers call crosses into the runtime, and this runs for every request (`npm
 * run bench`). Dropped: hop-by-hop fields, every x-relay- field (the route came in its own
 * header, the rest are the public client's), and X-Forwarded-Proto and -Host, which are set
 * here from the route. For a WebSocket upgrade the handshake's own fields go too, and the
 * relay's flow subprotocol is taken out of the offer (src/client-flow.ts).
 */
function requestHead(
  request: Request,
  route: HubRoute,
): { head: HeaderList; upgrade: boolean; flow: boolean; idempotencyKey: boolean; contentLength?: string } {
  const scheme = route.scheme ?? "https";
  const authority = route.authority ?? "";
  const head: HeaderList = [[":method", request.method], [":path", route.path ?? "/"], [":scheme", scheme], [":authority", authority]];
  const pseudo = head.length;
  let upgrade: string | undefined;
  let connection: string | undefined;
  let idempotencyKey = false;
  let contentLength: string | undefined;
  for (const field of request.headers) {
    const name = field[0];
    if (name.startsWith(RELAY_PREFIX) || name === "x-forwarded-proto" || name === "x-forwarded-host") continue;
    if (isHopByHop(name)) {
      if (name === "upgrade") upgrade = field[1];
      else if (name === "connection") connection = field[1];
      continue;
    }
    if (name === "idempotency-key") idempotencyKey = true;
    else if (name === "content-length") contentLength = field[1];
    head.push(field);
  }
  head.push(["x-forwarded-proto", scheme], ["x-forwarded-host", authority]);
  const websocket = upgrade?.toLowerCase() === "websocket";
  let flow = false;
  let fields = head;
  if (connection !== undefined || websocket) {
    // Rare: drop what Connection names (the runtime usually strips Connection itself), and the
    // WebSocket handshake's fields, which the agent's own handshake makes anew.
    const named = new Set((connection ?? "").split(",").map((t) => t.trim().toLowerCase()));
    fields = head.filter(([name], i) => i < pseudo || !(named.has(name) || (websocket && (HANDSHAKE_HEADERS.has(name) || name === "sec-websocket-protocol"))));
    if (websocket) {
      fields.splice(pseudo, 0, [":protocol", "websocket"]);
      const offer = takeFlowOffer(request.headers.get("sec-websocket-protocol"));
      flow = offer.flow;
      if (offer.rest) fields.push(["sec-websocket-protocol", offer.rest]);
    }
  }
  return { head: fields, upgrade: websocket, flow, idempotencyKey, contentLength };
}

/**
 * A small request body, read whole; one that breaks off first is a 400 (its client is likely
 * gone). Returned, not thrown: an error thrown in the object reaches the Worker without its class.
 */
async function readWhole(request: Request, backend: string): Promise<Uint8Array | RelayError> {
  try {
    return new Uint8Array(await request.arrayBuffer());
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    return new RelayError("request_body_incomplete", `The request body ended before its Content-Length (${why.slice(0, 200)}).`, backend);
  }
}

/** The answer for a backend with no tunnel to relay over. */
function noAgent(backend: string): Response {
  return new RelayError("no_agent", `No agent is connected for backend "${backend}".`, backend).toResponse();
}

/** The HTTP error for a stream that ended before its response headers. */
export function errorForReset(reset: StreamReset, backend: string): RelayError {
  if (reset.tunnelLost) return new RelayError("tunnel_lost", `The agent's tunnel closed before it answered (${reset.message}).`, backend);
  switch (reset.code) {
    case ErrorCode.OriginUnreachable:
      return new RelayError("origin_unreachable", `The agent could not reach its target: ${reset.message}.`, backend);
    case ErrorCode.MeshDenied:
      return new RelayError("mesh_denied", `The service mesh refused the agent: ${reset.message}.`, backend);
    case ErrorCode.MeshRefused:
      return new RelayError("origin_error", `The mesh refused the request: ${reset.message}.`, backend);
    case ErrorCode.MeshIdentity:
      return new RelayError("mesh_identity_mismatch", `The agent did not trust the mesh proxy: ${reset.message}.`, backend);
    case ErrorCode.BridgeError:
      return new RelayError("bridge_error", `The agent's HTTP-TCP bridge failed: ${reset.message}.`, backend);
    case ErrorCode.RefusedStream:
      return new RelayError("no_agent", `The agent refused the request: ${reset.message || "it is shutting down"}.`, backend);
    default:
      return new RelayError("origin_error", `The agent reset the request (${ErrorCode[reset.code] ?? reset.code}${reset.message ? `: ${reset.message}` : ""}).`, backend);
  }
}
