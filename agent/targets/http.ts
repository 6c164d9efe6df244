// HTTP/1.1 to a target: http://host:port, https://host:port (own CA or --origin-insecure),
// unix:/path.sock, or over an HBONE CONNECT stream. Bodies stream both ways under credit.
import http from "node:http";
import type http2 from "node:http2";
import net from "node:net";
import https from "node:https";
import type { Readable } from "node:stream";
import { contentLength, endToEnd, fieldValue, pairs } from "../../src/http-headers.ts";
import { ErrorCode } from "../../src/protocol/frame.ts";
import type { RequestHead } from "../../src/protocol/head.ts";
import { StreamReset, type Stream } from "../../src/protocol/session.ts";
import type { TargetSpec } from "../config.ts";
import type { Target } from "../target.ts";
import { noteRetry } from "../observe/observer.ts";
import { sendResponseHead } from "../response-head.ts";
import { H2Sessions, alpnConnect, serveH2 } from "./h2.ts";
import { ConnectionPool } from "./pool.ts";
import { serveWebSocket, type WebSocketTarget } from "./websocket.ts";

/** How long a pooled connection to a target may stay idle before the agent closes it. */
export const POOL_IDLE_MS = 4000;

/**
 * Response bodies of at most this many bytes by their Content-Length are read through data
 * events; longer ones, or of unknown length, one chunk per credited write (streamBody).
 */
const SMALL_BODY_BYTES = 64 * 1024;

/** Body bytes held for sending a request again; an idempotent request with more already written is not. */
const REPLAY_LIMIT = 64 * 1024;

/** Methods a target may receive twice to the same effect (RFC 9110 9.2.2). */
const IDEMPOTENT = new Set(["GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"]);

/** A short, safe description of a connection error (no addresses beyond the code). */
export function describeError(err: NodeJS.ErrnoException): string {
  return err.code ? `${err.code}: ${err.message}` : err.message;
}

/**
 * How an HttpTarget reaches its target: a pooled connection over TCP, TLS, a unix socket or an
 * HBONE CONNECT stream, or one of its own (a retry, an upgrade).
 */
export interface HttpTargetDialer {
  request: typeof http.request;
  /** The Host header when the public one is not preserved. */
  host: string;
  /**
   * Connection options for one request: host and port with a keep-alive agent, or
   * createConnection. `fresh`: a new connection, never a pooled one (a retry after a reused
   * connection broke). `dial` reaches the agent's ConnectionPool for a connection it opens.
   */
  connection(
    head: RequestHead,
    fresh?: boolean,
  ): Pick<http.RequestOptions, "hostname" | "port" | "socketPath" | "agent" | "createConnection"> & { dial?: unknown };
  /** The same for the target's WebSocket server. */
  websocket: Omit<WebSocketTarget, "host" | "createConnection"> & { connection?(head: RequestHead): WebSocketTarget["createConnection"] };
  /**
   * When the target speaks HTTP/2 (h2c, ALPN h2, h2 over HBONE): its session for a request;
   * undefined when HTTP/1.1 is to be used (e.g. ALPN chose it).
   */
  h2?(head: RequestHead): Promise<{ session: http2.ClientHttp2Session; scheme: string } | undefined>;
  /** What the target speaks, for the agent's hello (e.g. ["http/1.1"], ["h2"]). */
  protocols(): Promise<string[]>;
  /** Releases pooled connections and sessions. */
  close(): void;
  /** How long a new connection may take to open before its request fails (originRequest.connectTimeout). */
  connectTimeoutMs?: number;
}

/**
 * The dialer for an http, https or unix target. `protocol` (--origin-protocol): `auto` offers
 * ALPN h2 and http/1.1 to https targets and speaks what the target picks (asked once, on first
 * use); `h2c` speaks cleartext HTTP/2 with prior knowledge; `h2` and `http1` force one.
 */
export function directDialer(
  target: Extract<TargetSpec, { kind: "http" | "https" | "unix" }>,
  protocol: OriginProtocol = "auto",
  connectTimeoutMs?: number,
): HttpTargetDialer {
  // A pooled connection idle for POOL_IDLE_MS closes (a second under what a target's Keep-Alive:
  // timeout= announces, when that is less): below the 5 s of Node's servers and the longer ones
  // of most others, so the agent closes its idle connections before its targets do. Plain
  // connections come from a ConnectionPool, which costs each request less than node:http's
  // Agent; TLS ones from https.Agent with the same settings.
  const options = { keepAlive: true, maxSockets: Infinity, scheduling: "lifo" as const, timeout: POOL_IDLE_MS };
  if (target.kind === "unix") {
    const agent = new ConnectionPool({ path: target.path }, POOL_IDLE_MS) as unknown as http.Agent;
    const fresh = new http.Agent({ keepAlive: false });
    return {
      connectTimeoutMs,
      request: http.request,
      host: "localhost",
      connection: (_head, isFresh) => ({ socketPath: target.path, agent: isFresh ? fresh : agent }),
      websocket: { base: `ws+unix:${target.path}` },
      protocols: async () => ["http/1.1"],
      close: () => (agent.destroy(), fresh.destroy()),
    };
  }
  const secure = target.kind === "https";
  const hostname = target.url.hostname.replace(/^\[|\]$/g, "");
  const port = Number(target.url.port || (secure ? 443 : 80));
  const tlsOptions = target.kind === "https" ? { ca: target.ca, rejectUnauthorized: !target.insecure } : undefined;
  const agent = tlsOptions
    ? new https.Agent({ ...options, ...tlsOptions })
    : (new ConnectionPool({ host: hostname, port }, POOL_IDLE_MS) as unknown as http.Agent);
  const fresh = tlsOptions ? new https.Agent({ keepAlive: false, ...tlsOptions }) : new http.Agent({ keepAlive: false });
  const closePools = () => (agent.destroy(), fresh.destroy());
  const dialer: HttpTargetDialer = {
    connectTimeoutMs,
    request: secure ? https.request : http.request,
    host: target.url.host,
    connection: (_head, isFresh) => ({ hostname, port, agent: isFresh ? fresh : agent }),
    websocket: { base: `${secure ? "wss" : "ws"}://${target.url.host}`, ...(tlsOptions ? { tls: tlsOptions } : {}) },
    protocols: async () => [secure ? "http/1.1" : protocol === "h2c" ? "h2c" : "http/1.1"],
    close: closePools,
  };
  const origin = `${secure ? "https" : "http"}://${target.url.host}`;
  if (!secure && protocol === "h2c") {
    const sessions = new H2Sessions(origin, async () => undefined);
    dialer.h2 = async () => ({ session: await sessions.get(), scheme: "http" });
    dialer.close = () => (closePools(), sessions.close());
  }
  if (secure && protocol !== "http1") {
    const tlsTo = { host: hostname, port, servername: net.isIP(hostname) ? undefined : hostname, ...tlsOptions };
    // ALPN decides once, on first use; a session then reuses fresh TLS connections offering only h2.
    let chosen: Promise<string> | undefined;
    const choose = () =>
      (chosen ??= alpnConnect(tlsTo, protocol === "h2" ? ["h2"] : ["h2", "http/1.1"]).then(
        ({ socket, protocol: picked }) => (socket.destroy(), picked),
        (err) => ((chosen = undefined), Promise.reject(err)),
      ));
    const sessions = new H2Sessions(origin, async () => (await alpnConnect(tlsTo, ["h2"])).socket);
    dialer.h2 = async () => ((await choose()) === "h2" ? { session: await sessions.get(), scheme: "https" } : undefined);
    dialer.protocols = async () => [await choose().catch(() => "unknown")];
    dialer.close = () => (closePools(), sessions.close());
  }
  return dialer;
}

/** --origin-protocol: how the agent speaks HTTP to its target. */
export type OriginProtocol = "auto" | "http1" | "h2" | "h2c";

/**
 * Holds a stream's events while the agent decides how to reach the target (ALPN, a new
 * session), then hands them to the handlers set by then.
 */
export function hold(stream: Stream): () => void {
  const events: Array<() => void> = [];
  stream.handle({
    onData: (chunk, flags) => events.push(() => stream.onData(chunk, flags)),
    onEnd: () => events.push(() => stream.onEnd()),
    onReset: (reset) => events.push(() => stream.onReset(reset)),
  });
  return () => {
    // A copy: a handler left unset would hold its event again, not replay it forever.
    for (const replay of events.splice(0)) replay();
  };
}

export class HttpTarget implements Target {
  constructor(
    private readonly dialer: HttpTargetDialer,
    private readonly preserveHost: boolean,
    readonly caps: string[] = ["http", "ws"],
  ) {}

  serve(stream: Stream, head: RequestHead, hasBody: boolean): void {
    const host = this.preserveHost && head.authority ? head.authority : this.dialer.host;
    if (head.protocol === "websocket") {
      const { connection, h2: _h2, ...ws } = { ...this.dialer.websocket, h2: undefined };
      return serveWebSocket(stream, head, { ...ws, host, createConnection: connection?.(head) });
    }
    if (this.dialer.h2) {
      const release = hold(stream);
      this.dialer.h2(head).then(
        (h2) => {
          if (h2) serveH2(stream, head, hasBody, h2.session, host, h2.scheme, async () => (await this.dialer.h2?.(head))?.session);
          else this.serveHttp1(stream, head, hasBody, host);
          release();
        },
        (err: NodeJS.ErrnoException & { tunnelCode?: ErrorCode }) => {
          release();
          stream.reset(err.tunnelCode ?? ErrorCode.OriginUnreachable, err.tunnelCode !== undefined ? err.message : describeError(err));
        },
      );
      return;
    }
    this.serveHttp1(stream, head, hasBody, host);
  }

  /** What the target speaks (for the agent's hello). */
  protocols(): Promise<string[]> {
    return this.dialer.protocols();
  }

  private serveHttp1(stream: Stream, head: RequestHead, hasBody: boolean, host: string): void {
    const headers: string[] = [];
    let length = false;
    for (const [name, value] of head.headers) {
      if (name === "host") continue;
      if (name === "content-length") length = true;
      headers.push(name, value);
    }
    // Node frames bodies of DELETE and OPTIONS only when told: say chunked for any body of
    // unknown length (the relay's runtime may have turned a Content-Length into chunks).
    if (hasBody && !length) headers.push("transfer-encoding", "chunked");
    headers.push("host", host);
    const idempotent = IDEMPOTENT.has(head.method) || head.headers.some(([name]) => name === "idempotency-key");
    let responded = false;
    let retried = false;
    /** Body chunks written so far with their credit, kept while the request may go again. */
    let held: Array<[Uint8Array, () => void]> | undefined = idempotent ? [] : undefined;
    let heldBytes = 0;
    /** Some of the body, or its end, went to the target. */
    let sent = false;
    let ended = false;
    let req: http.ClientRequest;
    const send = (fresh: boolean) => {
      // Added to the fresh connection options, not spread into a new literal: on Node 20 an object
      // literal that opens with a spread (`{ ...connection(), method }`) here kept every request's
      // options and headers for young-generation collections until the next full one
      // (docs/performance.md "Closures assigned to properties").
      const current = this.dialer.request(
        Object.assign(this.dialer.connection(head, fresh), { method: head.method, path: head.path, headers }),
      );
      req = current;
      let socket: net.Socket | undefined;
      let readBefore = 0;
      current.on("socket", (s) => ((socket = s), (readBefore = s.bytesRead)));
      const limit = this.dialer.connectTimeoutMs;
      if (limit !== undefined) {
        current.once("socket", (s) => {
          if (!s.connecting) return;
          const timer = setTimeout(
            () => current.destroy(Object.assign(new Error(`connecting took longer than ${limit} ms`), { code: "ETIMEDOUT" })),
            limit,
          );
          s.once("connect", () => clearTimeout(timer));
          s.once("close", () => clearTimeout(timer));
        });
      }
      // A head with no body bytes ready to go with it (they come with it in the same tunnel
      // message, or not yet) goes alone: a pooled connection kept silent while a slow body comes
      // is one the target's keep-alive timer closes. Without a body, end() sends the head now.
      if (hasBody) {
        process.nextTick(() => {
          if (!sent && !current.destroyed) current.flushHeaders();
        });
      }
      current.on("error", (err: NodeJS.ErrnoException & { tunnelCode?: ErrorCode }) => {
        if (current !== req) return;
        // A reused connection the target closed or reset before any response byte: the target
        // dropped it idle as the request went out. Sent again once, on a new connection, when the
        // target cannot act on it twice: an idempotent request with its body so far held, or any
        // request none of whose body has gone out.
        const stale = current.reusedSocket && (err.code === "ECONNRESET" || err.code === "EPIPE") && socket?.bytesRead === readBefore;
        if (!responded && !retried && stale && (idempotent ? held !== undefined : !sent)) {
          retried = true;
          noteRetry(stream);
          const replay = held ?? [];
          held = undefined;
          send(true);
          for (const [chunk, credit] of replay) req.write(chunk, credit);
          if (ended) req.end();
          return;
        }
        if (err.tunnelCode !== undefined && !responded) return stream.reset(err.tunnelCode, err.message);
        if (responded) stream.reset(ErrorCode.OriginReset, describeError(err));
        else stream.reset(ErrorCode.OriginUnreachable, describeError(err));
      });
      current.on("response", (res) => {
        responded = true;
        held = undefined;
        const status = res.statusCode ?? 502;
        const noBody = head.method === "HEAD" || status === 204 || status === 304;
        const headers = endToEnd(pairs(res.rawHeaders));
        if (!sendResponseHead(stream, status, headers, noBody)) return void res.destroy();
        if (noBody) return void res.resume();
        sendBody(res, stream, contentLength(fieldValue(headers, "content-length")));
      });
    };
    send(false);
    stream.handle({
      onReset: () => req.destroy(),
      onData: (chunk) => {
        if (req.destroyed) return;
        sent = true;
        let credited = false;
        // Credit once, whichever write of the chunk (first or replayed) completes first.
        const credit = () => {
          if (credited) return;
          credited = true;
          stream.consumed(chunk.byteLength);
        };
        if (held && heldBytes + chunk.byteLength <= REPLAY_LIMIT) {
          held.push([chunk, credit]);
          heldBytes += chunk.byteLength;
        } else held = undefined;
        req.write(chunk, credit);
      },
      onEnd: () => {
        sent = ended = true;
        req.end();
      },
    });
  }

  close(): void {
    this.dialer.close();
  }
}

/**
 * Streams a target's response body into a tunnel stream; a target that breaks off resets it.
 * With the body's length known (Content-Length), FIN rides on the frame with its last bytes: a
 * small response then crosses the tunnel as HEADERS and one DATA frame.
 */
export function sendBody(res: Readable, stream: Stream, length?: number): void {
  if (length === undefined || length > SMALL_BODY_BYTES) return void streamBody(res, stream, length);
  const body = new BodySender(res, stream, length);
  // Event handlers rather than an async iterator: no promise or iterator step per chunk. The
  // body is read to its end even after FIN went: leaving it early would destroy the response, and
  // with it the target's keep-alive connection.
  res.on("data", (chunk: Uint8Array) => body.data(chunk));
  res.on("end", () => body.end());
  res.on("error", (err) => body.fail(err));
  res.on("close", () => {
    if (!res.readableEnded) body.fail(Object.assign(new Error("Premature close"), { code: "ERR_STREAM_PREMATURE_CLOSE" }));
  });
}

/**
 * A body of unknown or larger length, one chunk at a time: the next is read once the stream took
 * the last (which waits for credit), so the target's socket is held back with the stream.
 */
async function streamBody(res: Readable, stream: Stream, length?: number): Promise<void> {
  const body = new BodySender(res, stream, length);
  try {
    // The loop runs to the body's end even after FIN went (see sendBody).
    for await (const chunk of res) await body.write(chunk as Uint8Array);
    body.end();
  } catch (err) {
    body.fail(err);
  }
}

/**
 * One response body on its way into a stream. Methods, not closures made per response or per
 * chunk: the agent's request path makes as few functions per request as it can.
 */
class BodySender {
  private sent = 0;
  private ended = false;
  private failed = false;
  /** Bytes handed to the stream whose write has not completed. */
  private pending = 0;

  constructor(
    private readonly res: Readable,
    private readonly stream: Stream,
    private readonly length: number | undefined,
  ) {}

  /** Hands one chunk to the stream, with FIN when it completes the announced length. */
  write(chunk: Uint8Array): Promise<void> {
    this.sent += chunk.byteLength;
    if (this.sent !== this.length) return this.stream.write(chunk);
    this.ended = true;
    return this.stream.end(chunk);
  }

  /** A chunk from the data event: written without waiting, the socket paused while credit lacks. */
  data(chunk: Uint8Array): void {
    const n = chunk.byteLength;
    this.pending += n;
    this.write(chunk).then(
      () => this.written(n),
      (err) => this.fail(err),
    );
    // The socket waits while the stream's credit cannot take what is handed to it.
    if (this.pending > this.stream.sendWindow.available) this.res.pause();
  }

  end(): void {
    if (!this.ended) this.stream.end().catch((err) => this.fail(err));
  }

  fail(err: unknown): void {
    if (this.failed) return;
    this.failed = true;
    if (err instanceof StreamReset) return void this.res.destroy();
    this.stream.reset(ErrorCode.OriginReset, describeError(err as NodeJS.ErrnoException));
  }

  private written(n: number): void {
    this.pending -= n;
    if (this.pending === 0 && this.res.isPaused() && !this.failed) this.res.resume();
  }
}
