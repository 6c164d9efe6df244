// One WebSocket to the relay carrying one protocol session; hands incoming streams to the target.
import type { AccessScope } from "../src/access/policy.ts";
import { randomBytes, randomUUID } from "node:crypto";
import type { Socket } from "node:net";
import WebSocket from "ws";
import { writeFrames } from "./frame-writer.ts";
import { describeRefusal } from "./relay-refusal.ts";
import type { Hello } from "../src/protocol/frame.ts";
import {
  DEFAULT_MAX_FRAME,
  DEFAULT_WINDOW,
  ErrorCode,
  HEARTBEAT_PING,
  HEARTBEAT_PONG,
  PROTOCOL_VERSION,
  ProtocolError,
  TunnelClose,
} from "../src/protocol/frame.ts";
import { encodeFrames } from "../src/protocol/codec.ts";
import { decodeRequestHead } from "../src/protocol/head.ts";
import { Session } from "../src/protocol/session.ts";
import type { AgentConfig } from "./config.ts";
import type { Observer } from "./observe/observer.ts";
import type { Target } from "./target.ts";
import type { TargetFailureLog } from "./target-failures.ts";
import { sendDisposable } from "./ws-mask.ts";

export const AGENT_VERSION = "0.1.0";
/** One id per agent process, announced in every tunnel's hello. */
export const AGENT_ID = randomUUID();
/** How long the relay may take to send its hello once the WebSocket is open. */
export const HELLO_TIMEOUT_MS = 10_000;

/** What one tunnel connects and announces with: the agent's settings and the backend it serves. */
export type TunnelSettings = Pick<AgentConfig, "relayUrl" | "token" | "backend" | "heartbeatMs" | "requireAccess"> & {
  /** The backend's rules with their access policies, for the hello (absent: no rule has any). */
  access?: AccessScope[];
};

export interface TunnelClosed {
  code: number;
  reason: string;
}

/** True when no intermediary can read the tunnel's bytes: TLS, or a loopback address. */
export function unmaskedPath(url: URL): boolean {
  return url.protocol === "wss:" || url.protocol === "https:" || /^(127\.\d+\.\d+\.\d+|localhost|\[::1\])$/.test(url.hostname);
}

/** A sentence for an https:// or wss:// relay URL whose TLS handshake failed, as with a plain-HTTP server. */
function tlsHint(err: Error, url: URL): string {
  const code = String((err as { code?: unknown }).code ?? "");
  const handshake =
    /EPROTO|WRONG_VERSION_NUMBER|PACKET_LENGTH_TOO_LONG/.test(code) ||
    /before secure TLS connection|wrong version number/i.test(err.message);
  if (url.protocol !== "wss:" || !handshake) return "";
  return ` (the TLS handshake failed: if the relay is a plain-HTTP server, such as a local wrangler dev or \`npm start\`, use --relay http://${url.host} instead of https://)`;
}

/** One tunnel. `open()` resolves once the relay's hello arrived. */
export class AgentTunnel {
  session?: Session;
  /** The relay's tunnel id, from its hello. */
  relayTunnelId?: string;
  readonly closed: Promise<TunnelClosed>;
  /** Resolves when the relay sent GOAWAY: replace this tunnel, let its streams finish. */
  readonly replaced: Promise<string>;
  private resolveReplaced!: (reason: string) => void;
  private ws?: WebSocket;
  /** The WebSocket's own socket, when its messages go unmasked: whole messages are written to it directly. */
  private socket?: Socket;
  private resolveClosed!: (c: TunnelClosed) => void;
  private heartbeat?: NodeJS.Timeout;
  private lastPong = Date.now();
  private draining = false;
  /** The PING sent right after our GOAWAY, until the relay answers it. */
  private drainPing?: Uint8Array;
  /** Set while open() waits: rejects it when the peer turns out not to be a relay. */
  private failOpen?: (error: Error) => void;

  constructor(
    private readonly config: TunnelSettings,
    private readonly target: Target,
    /** What the target speaks, for the hello (the supervisor asks the target once). */
    private readonly targetProtocols: string[] = [],
    /** Told about requests the target could not take (the supervisor logs them, rate-limited). */
    private readonly failures?: TargetFailureLog,
    /** Watches each request for metrics, the request log and the inspector, when any is on. */
    private readonly observer?: Observer,
  ) {
    this.closed = new Promise((resolve) => (this.resolveClosed = resolve));
    this.replaced = new Promise((resolve) => (this.resolveReplaced = resolve));
  }

  /** Streams in flight. */
  get load(): number {
    return this.session?.activeStreams ?? 0;
  }

  /**
   * Connects and exchanges hellos; rejects with a sentence when the relay cannot be used (a
   * RelayRefusal when it answered the upgrade with an error).
   */
  open(): Promise<void> {
    const url = new URL(this.config.relayUrl);
    url.searchParams.set("backend", this.config.backend);
    const unmasked = unmaskedPath(url);
    const ws = new WebSocket(url, {
      headers: { authorization: `Bearer ${this.config.token}` },
      perMessageDeflate: false,
      handshakeTimeout: 10_000,
      maxPayload: 64 * 1024 * 1024,
      // Masking protects cleartext intermediaries (RFC 6455 section 10.3). Over TLS or loopback
      // there are none, and an all-zero mask lets ws skip masking and copying every byte it sends.
      ...(unmasked ? { generateMask: (mask: Buffer) => void mask.fill(0) } : {}),
    });
    this.ws = ws;
    // Unmasked, the session's messages are written to the socket as their frames (frame-writer.ts):
    // a large DATA payload goes out as the target's socket delivered it, not copied into a message.
    if (unmasked) ws.once("upgrade", (res) => (this.socket = res.socket));
    const notRelay = `so it is not an edge-relay relay; check --relay (the Worker's URL, like https://relay.example.com)`;
    return new Promise<void>((resolve, reject) => {
      let settled = false;
      let helloTimer: NodeJS.Timeout | undefined;
      const fail = (error: Error | string) => {
        clearTimeout(helloTimer);
        this.failOpen = undefined;
        if (settled) return;
        settled = true;
        reject(typeof error === "string" ? new Error(error) : error);
      };
      this.failOpen = (error) => fail(`${url.host} does not speak the edge-relay protocol (${error.message}), ${notRelay}.`);
      ws.on("unexpected-response", (_req, res) => {
        void describeRefusal(res, this.config.relayUrl).then((refusal) => {
          fail(refusal);
          ws.terminate();
        });
      });
      ws.on("error", (err) => fail(`cannot reach the relay: ${err.message}${tlsHint(err, url)}`));
      ws.on("open", () => {
        // A relay sends its hello at once; a peer that stays silent is not one.
        helloTimer = setTimeout(() => {
          fail(`${url.host} accepted the WebSocket but sent no edge-relay hello within ${HELLO_TIMEOUT_MS / 1000}s, ${notRelay}.`);
          ws.terminate();
        }, HELLO_TIMEOUT_MS);
        this.session = this.makeSession((hello) => {
          // An echo server sends our own hello back; only a relay's hello counts.
          if (hello.id === AGENT_ID || hello.software.startsWith("edge-relay-agent/")) {
            fail(`${url.host} sent the agent's own hello back (an echo server?), ${notRelay}.`);
            ws.terminate();
            return;
          }
          // A relay that does not announce "access" would ignore the policies: serve nothing through it.
          if (this.config.access && !hello.caps.includes("access")) {
            fail(
              `${url.host} does not enforce access policies (an older relay), so backend ${this.config.backend} with access: is not served; update the relay.`,
            );
            ws.terminate();
            return;
          }
          clearTimeout(helloTimer);
          this.failOpen = undefined;
          settled = true;
          resolve();
        });
        this.session.sendHello();
        this.startHeartbeat();
      });
      ws.on("message", (data, isBinary) => {
        if (isBinary) return this.session?.receive(data as Buffer);
        if (data.toString() === HEARTBEAT_PONG) this.lastPong = Date.now();
      });
      ws.on("close", (code, reason) => {
        clearInterval(this.heartbeat);
        this.session?.destroy();
        fail(`the relay closed the connection before its hello (${code} ${reason.toString()})`);
        this.resolveClosed({ code, reason: reason.toString() });
      });
    });
  }

  private makeSession(onReady: (hello: Hello) => void): Session {
    return new Session({
      role: "agent",
      hello: {
        v: PROTOCOL_VERSION,
        software: `edge-relay-agent/${AGENT_VERSION}`,
        id: AGENT_ID,
        caps: this.target.caps,
        window: DEFAULT_WINDOW,
        maxFrame: DEFAULT_MAX_FRAME,
        ...(this.config.requireAccess ? { requireAccess: true } : {}),
        ...(this.targetProtocols.length ? { targetProtocols: this.targetProtocols } : {}),
        ...(this.config.access ? { access: this.config.access } : {}),
      },
      // Each message is a fresh buffer the session never reads again (Session.flush).
      send: (message) => this.ws && sendDisposable(this.ws, message),
      sendFrames: (frames, bytes) => {
        if (!this.socket) return this.ws && sendDisposable(this.ws, encodeFrames(frames));
        if (this.ws?.readyState === WebSocket.OPEN) writeFrames(this.socket, frames, bytes, this.session?.peerMaxFrame);
      },
      // Coalesce what one turn of the event loop produced without the 1 ms floor of setTimeout(0).
      schedule: (flush) => setImmediate(flush),
      onHello: (hello) => {
        this.relayTunnelId = hello.id;
        onReady(hello);
      },
      onStream: (stream, list, fin) => {
        if (this.draining) {
          this.observer?.emit("refused", this.config.backend);
          return stream.reset(ErrorCode.RefusedStream, "the agent is shutting down");
        }
        try {
          const head = decodeRequestHead(list);
          if (this.observer) stream = this.observer.watch(stream, head, this.config.backend, this.relayTunnelId ?? "", this.target);
          this.target.serve(this.failures ? this.failures.watch(stream) : stream, head, !fin);
        } catch (err) {
          const code = err instanceof ProtocolError ? ErrorCode.ProtocolError : ErrorCode.InternalError;
          stream.reset(code, err instanceof Error ? err.message : String(err));
        }
      },
      onGoAway: (_code, reason) => this.resolveReplaced(reason || "relay goaway"),
      onPingAck: (payload) => {
        if (this.drainPing && payload.every((b, i) => b === this.drainPing![i])) this.drainPing = undefined;
      },
      onError: (error) => {
        this.failOpen?.(error);
        this.close(error.closeCode, error.message);
      },
    });
  }

  private startHeartbeat(): void {
    this.lastPong = Date.now();
    const every = this.config.heartbeatMs;
    this.heartbeat = setInterval(() => {
      if (Date.now() - this.lastPong > 3 * every) {
        this.ws?.terminate();
        return;
      }
      this.ws?.send(HEARTBEAT_PING);
    }, every);
    this.heartbeat.unref();
  }

  /**
   * Stops taking new streams: tells the relay with GOAWAY, followed by a PING; in-flight streams
   * go on. Streams the relay opened before it read the GOAWAY are refused as they arrive.
   */
  drain(): void {
    if (this.draining) return;
    this.draining = true;
    this.session?.goAway(ErrorCode.NoError, "agent shutting down");
    if (this.session && this.ws?.readyState === WebSocket.OPEN) {
      this.drainPing = new Uint8Array(randomBytes(8));
      this.session.ping(this.drainPing);
    }
  }

  /**
   * True once closing cannot lose a request: the relay answered the PING sent after our GOAWAY
   * (so it opens nothing more here, and every stream it opened before has arrived and been
   * refused) and no stream is in flight. Closing right after GOAWAY would drop requests the
   * relay sent meanwhile, which it cannot retry unless they are idempotent.
   */
  get idle(): boolean {
    const open = this.ws?.readyState === WebSocket.OPEN;
    return !open || (!this.drainPing && this.load === 0);
  }

  /** Closes the tunnel. */
  close(code: number = TunnelClose.Normal, reason = "agent shutting down"): void {
    const ws = this.ws;
    if (!ws || ws.readyState === WebSocket.CLOSED) return;
    if (ws.readyState === WebSocket.CONNECTING) return void ws.terminate();
    ws.close(code, reason.slice(0, 120));
  }
}
