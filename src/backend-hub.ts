// The Durable Object, one per backend name: accepts agent tunnels (hibernatable WebSockets)
// and relays every public request for the backend over them.
import { DurableObject } from "cloudflare:workers";
import { TunnelBody, pumpBody } from "./bodies.ts";
import type { Env } from "./env.ts";
import { RelayError } from "./errors.ts";
import { endToEnd } from "./http-headers.ts";
import { ErrorCode, HEARTBEAT_PING, HEARTBEAT_PONG, ProtocolError, TunnelClose } from "./protocol/frame.ts";
import { decodeResponseHead, encodeRequestHead } from "./protocol/head.ts";
import { StreamReset, type Stream } from "./protocol/session.ts";
import { TUNNEL_TAG, Tunnel, pickTunnel, type TunnelAttachment } from "./tunnels.ts";

/** Internal headers the Worker sets on requests it forwards here (public ones are stripped). */
export const Internal = {
  op: "x-relay-op",
  backend: "x-relay-backend",
  path: "x-relay-path",
  scheme: "x-relay-scheme",
  authority: "x-relay-authority",
} as const;

/** Statuses whose responses never have a body (the Response constructor refuses one). */
const NULL_BODY = new Set([101, 204, 205, 304]);

const DEFAULT_TIMEOUT_SECONDS = 100;

/** Maps a close code we may not send (1005, 1006, reserved) to one we may. */
function sendableCloseCode(code: number): number {
  if (code === 1000 || (code >= 1001 && code <= 1003) || (code >= 1007 && code <= 1014) || (code >= 3000 && code <= 4999)) return code;
  return code === 1005 ? 1000 : 1011;
}

export class BackendHub extends DurableObject<Env> {
  /** Sessions by socket; empty again after hibernation, refilled lazily from attachments. */
  private tunnels = new Map<WebSocket, Tunnel>();

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    // The runtime answers heartbeats itself, so idle tunnels let the object hibernate.
    ctx.setWebSocketAutoResponse(new WebSocketRequestResponsePair(HEARTBEAT_PING, HEARTBEAT_PONG));
  }

  async fetch(request: Request): Promise<Response> {
    if (request.headers.get(Internal.op) === "connect") return this.acceptTunnel(request);
    return this.relay(request);
  }

  /** Accepts an agent's (already authenticated) WebSocket as a hibernatable tunnel. */
  private acceptTunnel(request: Request): Response {
    const backend = request.headers.get(Internal.backend)!;
    const { 0: client, 1: server } = new WebSocketPair();
    const meta: TunnelAttachment = { tunnelId: crypto.randomUUID(), backend, connectedAt: Date.now() };
    this.ctx.acceptWebSocket(server, [TUNNEL_TAG]);
    server.serializeAttachment(meta);
    this.tunnels.set(server, this.makeTunnel(server, meta));
    return new Response(null, { status: 101, webSocket: client });
  }

  private makeTunnel(ws: WebSocket, meta: TunnelAttachment): Tunnel {
    return new Tunnel(ws, meta, (tunnel, error) => this.closeTunnel(tunnel.ws, error.closeCode, error.message));
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

  /** Every tunnel of this backend, including ones accepted before a hibernation. */
  private allTunnels(): Tunnel[] {
    return this.ctx.getWebSockets(TUNNEL_TAG).map((ws) => this.tunnelFor(ws));
  }

  private closeTunnel(ws: WebSocket, code: number, reason: string): void {
    this.tunnels.get(ws)?.session.destroy(reason || "the tunnel closed");
    this.tunnels.delete(ws);
    try {
      ws.close(sendableCloseCode(code), reason.slice(0, 120));
    } catch {
      // Already closed: nothing to tell the agent.
    }
  }

  async webSocketMessage(ws: WebSocket, message: string | ArrayBuffer): Promise<void> {
    try {
      if (typeof message === "string") {
        throw new ProtocolError(`unexpected text message (only "${HEARTBEAT_PING}" is allowed)`);
      }
      this.tunnelFor(ws).session.receive(message);
    } catch (err) {
      const protocol = err instanceof ProtocolError;
      if (!protocol) console.error("tunnel message failed", err);
      this.closeTunnel(ws, protocol ? err.closeCode : TunnelClose.InternalError, protocol ? err.message : "internal error");
    }
  }

  async webSocketClose(ws: WebSocket, code: number, reason: string): Promise<void> {
    // Close our side too, or the agent waits ~10 s and sees 1006 (PLATFORM-NOTES).
    this.closeTunnel(ws, code, reason);
  }

  async webSocketError(ws: WebSocket): Promise<void> {
    this.closeTunnel(ws, TunnelClose.InternalError, "socket error");
  }

  /** Relays one public request over the least-loaded tunnel. */
  private async relay(request: Request): Promise<Response> {
    const h = request.headers;
    const backend = h.get(Internal.backend) ?? "";
    const tunnel = pickTunnel(this.allTunnels());
    if (!tunnel) {
      return new RelayError("no_agent", `No agent is connected for backend "${backend}".`, backend).toResponse();
    }
    const head = encodeRequestHead({
      method: request.method,
      path: h.get(Internal.path) ?? "/",
      scheme: h.get(Internal.scheme) ?? "https",
      authority: h.get(Internal.authority) ?? "",
      headers: endToEnd(h, true),
    });
    const stream = tunnel.session.open(head, request.body === null);
    if (request.body) void pumpBody(request.body, stream);
    return this.awaitResponse(stream, request.method, backend);
  }

  /** Waits for the agent's response head and streams the body under credit. */
  private awaitResponse(stream: Stream, method: string, backend: string): Promise<Response> {
    const seconds = Number(this.env.RELAY_RESPONSE_TIMEOUT) || DEFAULT_TIMEOUT_SECONDS;
    return new Promise<Response>((resolve) => {
      const body = new TunnelBody(stream);
      let answered = false;
      const answer = (response: Response) => {
        if (answered) return;
        answered = true;
        clearTimeout(timer);
        resolve(response);
      };
      const timer = setTimeout(() => {
        stream.reset(ErrorCode.Timeout, `no response headers within ${seconds} s`);
        answer(new RelayError("timeout", `The agent sent no response headers within ${seconds} seconds.`, backend).toResponse());
      }, seconds * 1000);

      stream.onHeaders = (list, fin) => {
        try {
          const { status, headers } = decodeResponseHead(list);
          const out = new Headers();
          for (const [name, value] of endToEnd(headers)) out.append(name, value);
          // The runtime gzips responses without a Content-Encoding for clients that accept gzip,
          // buffering the whole body first (PLATFORM-NOTES). "identity" with encodeBody manual
          // keeps streams streaming and bytes untouched.
          if (!out.has("content-encoding")) out.set("content-encoding", "identity");
          const empty = fin || NULL_BODY.has(status) || method === "HEAD";
          if (empty && !fin) stream.reset(ErrorCode.NoError, "no body expected");
          // encodeBody "manual": pass the backend's bytes and Content-Encoding through untouched,
          // never gzipped again and never buffered by the runtime's compression (PLATFORM-NOTES).
          answer(new Response(empty ? null : body.readable, { status, headers: out, encodeBody: "manual" }));
        } catch (err) {
          const message = err instanceof Error ? err.message : String(err);
          stream.reset(ErrorCode.ProtocolError, message);
          answer(new RelayError("protocol_error", `The agent sent a malformed response: ${message}.`, backend).toResponse());
        }
      };
      stream.onData = (chunk) => body.push(chunk);
      stream.onEnd = () => body.end();
      stream.onReset = (reset) => {
        if (answered) return body.fail(reset);
        answer(errorForReset(reset, backend).toResponse());
      };
    });
  }
}

/** The HTTP error for a stream that ended before its response headers. */
export function errorForReset(reset: StreamReset, backend: string): RelayError {
  if (reset.tunnelLost) return new RelayError("tunnel_lost", `The agent's tunnel closed before it answered (${reset.message}).`, backend);
  switch (reset.code) {
    case ErrorCode.OriginUnreachable:
      return new RelayError("origin_unreachable", `The agent could not reach its target: ${reset.message}.`, backend);
    case ErrorCode.RefusedStream:
      return new RelayError("no_agent", `The agent refused the request: ${reset.message || "it is shutting down"}.`, backend);
    default:
      return new RelayError("origin_error", `The agent reset the request (${ErrorCode[reset.code] ?? reset.code}${reset.message ? `: ${reset.message}` : ""}).`, backend);
  }
}
