// Agent tunnels as the Durable Object sees them: the socket attachment schema, the session
// rebuilt around a socket (after hibernation too), and the choice of tunnel for a new stream.
import { DEFAULT_MAX_FRAME, PROTOCOL_VERSION, type ProtocolError, type Hello } from "../protocol/frame.ts";
import { Session } from "../protocol/session.ts";
import type { AccessGate } from "../access/compose.ts";
import type { AccessScope } from "../access/policy.ts";

/** Socket tag every agent tunnel carries (ctx.getWebSockets(TUNNEL_TAG)). */
export const TUNNEL_TAG = "tunnel";

/** Tag naming one tunnel's socket, so public WebSockets can find their tunnel after hibernation. */
export const tunnelTag = (tunnelId: string) => `tid:${tunnelId}`;

/** What survives hibernation with the socket (serializeAttachment; must stay well under 16 KiB). */
export interface TunnelAttachment {
  tunnelId: string;
  backend: string;
  connectedAt: number;
  /** The agent token's id (absent for tokens minted before ids) and issue time, unix seconds: revocations match on them. */
  tokenId?: string;
  tokenIat?: number;
  /** The agent's hello, once it arrived: the tunnel is usable from then on. */
  hello?: Hello;
  /** The agent sent GOAWAY: open no new streams, after a hibernation too. */
  goingAway?: boolean;
  /** The agent's hello carried access policies, kept in storage (accessKey) rather than here. */
  access?: true;
}

/** Storage key of a tunnel's access policies (JSON of its hello's `access`). */
export const accessKey = (tunnelId: string) => `access:${tunnelId}`;

/**
 * The relay's window: what an agent may send on one stream (a response body, a message stream
 * toward a public client) before the relay returns credit, which it does as the runtime hands the
 * bytes on. At the protocol's 1 MiB default one window was one tunnel message, so the agent and
 * the object took turns on a download (the agent waiting for credit most of the time) instead of
 * working at once; 4 MiB, as Go's HTTP/2 client gives a stream, lets them overlap. It is also what
 * a public client that stops reading holds in the object per stream (docs/limits.md).
 */
export const RELAY_WINDOW = 4 * 1024 * 1024;

/** The relay's hello: what it supports and accepts. */
export function relayHello(tunnelId: string): Hello {
  return {
    v: PROTOCOL_VERSION,
    software: "edge-relay/0.1.0",
    id: tunnelId,
    // "access": this relay enforces the access policies an agent's hello carries.
    caps: ["http", "access"],
    window: RELAY_WINDOW,
    maxFrame: DEFAULT_MAX_FRAME,
  };
}

/** One agent WebSocket and the session over it. */
export class Tunnel {
  readonly session: Session;
  /** Compiled access policies, once known (after a hibernation, read back from storage). */
  access?: AccessGate;

  constructor(
    readonly ws: WebSocket,
    readonly meta: TunnelAttachment,
    onError: (tunnel: Tunnel, error: ProtocolError) => void,
    onAccess: (tunnel: Tunnel, scopes: AccessScope[]) => void,
    /** Counts the bytes sent (src/observe/). */
    watch?: { sent(bytes: number): void },
  ) {
    this.session = new Session({
      role: "relay",
      hello: relayHello(meta.tunnelId),
      remoteHello: meta.hello,
      // After eviction the old counter is gone: start at a random odd id (protocol README "Streams").
      firstStreamId: meta.hello ? Math.floor(Math.random() * 0x3fffffff) * 2 + 1 : 1,
      send: watch
        ? (message) => {
            watch.sent(message.byteLength);
            ws.send(message);
          }
        : (message) => ws.send(message),
      // A lone request goes out with the event that made it; many wait for a timer and share a message.
      scheduleAlone: (flush) => queueMicrotask(flush),
      // Under load a burst of requests leaves once it is 8 strong (a quarter of the streams in
      // flight when they are more) instead of when the timer fires, which under load fires late:
      // the agent starts on the burst sooner and keeps the object busy (docs/performance.md).
      headsPerMessage: 8,
      onHello: ({ access, ...hello }) => {
        // The policies can be far larger than an attachment may be: they go to storage.
        this.meta.hello = hello;
        if (access) {
          this.meta.access = true;
          onAccess(this, access);
        }
        ws.serializeAttachment(this.meta);
        this.session.sendHello();
      },
      onGoAway: () => {
        this.meta.goingAway = true;
        ws.serializeAttachment(this.meta);
      },
      onError: (error) => onError(this, error),
    });
    this.session.remoteGoingAway = !!meta.goingAway;
  }

  /** Streams in flight on this tunnel. */
  get load(): number {
    return this.session.activeStreams;
  }
}

/** Picks the ready tunnel with the fewest streams in flight; ties are broken at random. */
export function pickTunnel<T extends { load: number; session: { ready: boolean } }>(
  tunnels: Iterable<T>,
  random: () => number = Math.random,
): T | undefined {
  let best: T[] = [];
  for (const t of tunnels) {
    if (!t.session.ready) continue;
    if (best.length === 0 || t.load < best[0].load) best = [t];
    else if (t.load === best[0].load) best.push(t);
  }
  return best.length ? best[Math.floor(random() * best.length)] : undefined;
}
