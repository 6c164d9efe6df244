// HBONE transport: HTTP/2 CONNECT streams over mutual TLS to a mesh proxy (Istio ambient's
// port 15008). One HTTP/2 connection per (proxy, client identity, expected identities) carries
// up to 100 streams, or fewer when the peer's SETTINGS say so, before another one opens.
import http2 from "node:http2";
import tls from "node:tls";
import type { Duplex } from "node:stream";
import { ErrorCode } from "../../src/protocol/frame.ts";
import { identityProblem } from "./identity.ts";

/** TLS and transport settings for one mesh proxy. */
export interface HboneSettings {
  /** host:port of the proxy (default: the target's ip on 15008). */
  proxy: { host: string; port: number };
  cert: string;
  key: string;
  ca: string;
  /** SPIFFE identities the proxy's certificate must carry one of (none: any, chained to the CA). */
  identities: string[];
  /** Extra CONNECT headers (--hbone-header). */
  headers: Array<[string, string]>;
  /** Allow TLS 1.2 (default: TLS 1.3 only). */
  tls12: boolean;
}

export const STREAMS_PER_CONNECTION = 100;
export const STREAM_WINDOW = 4 * 1024 * 1024;
export const CONNECTION_WINDOW = 16 * 1024 * 1024;
export const IDLE_CLOSE_MS = 5 * 60_000;
export const PING_EVERY_MS = 10_000;
export const PING_DEADLINE_MS = 20_000;

/** A CONNECT that failed, with the tunnel error code the relay turns into its HTTP error. */
export class HboneError extends Error {
  constructor(
    /** The RST_STREAM code for the relay (README "Errors"). */
    readonly tunnelCode: ErrorCode,
    message: string,
  ) {
    super(message);
    this.name = "HboneError";
  }
}

/** TLS alerts by which a proxy rejects our client certificate (under TLS 1.3 they arrive late). */
const REJECTED =
  /ALERT_(UNKNOWN_CA|BAD_CERTIFICATE|CERTIFICATE_REQUIRED|CERTIFICATE_UNKNOWN|ACCESS_DENIED|UNSUPPORTED_CERTIFICATE|CERTIFICATE_REVOKED|CERTIFICATE_EXPIRED|DECRYPT_ERROR|HANDSHAKE_FAILURE)/;

/** Maps a connection-level failure to the relay's error. */
export function classify(err: NodeJS.ErrnoException): HboneError {
  if (err instanceof HboneError) return err;
  const text = `${err.code ?? ""} ${err.message}`;
  if (REJECTED.test(text))
    return new HboneError(ErrorCode.MeshDenied, `the mesh proxy rejected the agent's certificate (${err.code ?? err.message})`);
  return new HboneError(ErrorCode.OriginUnreachable, `cannot reach the mesh proxy: ${err.code ? `${err.code}: ` : ""}${err.message}`);
}

/** Maps a CONNECT answer other than 200 (docs/hbone.md "What the agent sends and expects"). */
export function connectFailure(status: number, authority: string): HboneError {
  if (status === 401 || status === 403) return new HboneError(ErrorCode.MeshDenied, `the mesh denied CONNECT ${authority} (${status})`);
  if (status === 502 || status === 503 || status === 504) {
    return new HboneError(ErrorCode.OriginUnreachable, `the mesh could not connect to ${authority} (${status})`);
  }
  return new HboneError(ErrorCode.MeshRefused, `the mesh proxy answered CONNECT ${authority} with ${status}`);
}

interface Conn {
  session: http2.ClientHttp2Session;
  /** The session's error, if it failed (a late TLS 1.3 alert arrives this way). */
  error?: Error;
  /** The proxy answered a CONNECT on it: the connection itself works. */
  answered?: boolean;
  active: number;
  usable: boolean;
  idle?: NodeJS.Timeout;
  ping: NodeJS.Timeout;
  lastAck: number;
  ready: Promise<void>;
}

/** HTTP/2 connections to one mesh proxy, shared by every tunnelled request of the agent. */
export class HbonePool {
  private conns: Conn[] = [];
  /** Connections opened so far (tests count them). */
  opened = 0;

  constructor(private readonly settings: HboneSettings) {}

  /** Live connections. */
  get size(): number {
    return this.conns.length;
  }

  /**
   * Opens a CONNECT stream to `authority` (ip:port) and resolves once the proxy answered 200;
   * nothing is sent on it before. `extra` adds request-derived headers (traceparent, forwarded).
   */
  async connect(authority: string, extra: Array<[string, string]> = []): Promise<Duplex> {
    const conn = this.pick();
    await conn.ready;
    const headers: http2.OutgoingHttpHeaders = { ":method": "CONNECT", ":authority": authority };
    for (const [name, value] of [...this.settings.headers, ...extra]) headers[name.toLowerCase()] = value;
    this.claim(conn);
    let stream: http2.ClientHttp2Stream;
    try {
      stream = conn.session.request(headers, { endStream: false });
    } catch (err) {
      this.release(conn);
      throw classify(err as NodeJS.ErrnoException);
    }
    stream.once("close", () => this.release(conn));
    return new Promise<Duplex>((resolve, reject) => {
      let settled = false;
      const fail = (err: Error) => {
        if (settled) return;
        settled = true;
        stream.destroy();
        reject(classify(err as NodeJS.ErrnoException));
      };
      stream.once("error", fail);
      // A session that dies under the stream (a proxy rejecting our certificate under TLS 1.3
      // does so after the handshake) may close it with no error of its own: answer with the
      // session's error, which Node reports before the session's own "close". Only a connection
      // that answered a CONNECT before is known to be alive; on a new one the stream can close
      // (HTTP/2 code 8) before the session has failed, so its close is awaited there too.
      stream.once("close", () => {
        if (settled) return;
        const closed = () => fail(conn.error ?? new Error(`the mesh proxy closed the CONNECT stream (HTTP/2 code ${stream.rstCode})`));
        if (conn.answered && !conn.session.destroyed && !conn.session.closed) return closed();
        if (conn.error) return closed();
        const fallback = setTimeout(closed, 2000);
        conn.session.once("close", () => {
          clearTimeout(fallback);
          closed();
        });
      });
      stream.once("response", (h) => {
        conn.answered = true;
        if (settled) return;
        settled = true;
        stream.off("error", fail);
        const status = Number(h[":status"]);
        if (status === 200) return resolve(stream);
        stream.destroy();
        reject(connectFailure(status, authority));
      });
    });
  }

  /** Whether `stream` is on a connection that still takes work (none that got GOAWAY or failed). */
  carries(stream: Duplex): boolean {
    const session = (stream as http2.ClientHttp2Stream).session;
    return this.conns.some((c) => c.usable && c.session === session);
  }

  /** Closes every connection. */
  close(): void {
    for (const c of this.conns) this.retire(c, true);
    this.conns = [];
  }

  private pick(): Conn {
    for (const c of this.conns) {
      const limit = Math.min(STREAMS_PER_CONNECTION, c.session.remoteSettings?.maxConcurrentStreams ?? STREAMS_PER_CONNECTION);
      if (c.usable && c.active < limit) return c;
    }
    const c = this.open();
    this.conns.push(c);
    return c;
  }

  private open(): Conn {
    const s = this.settings;
    this.opened++;
    const session = http2.connect(`https://${s.proxy.host.includes(":") ? `[${s.proxy.host}]` : s.proxy.host}:${s.proxy.port}`, {
      settings: { initialWindowSize: STREAM_WINDOW, enablePush: false },
      createConnection: () =>
        tls.connect({
          host: s.proxy.host,
          port: s.proxy.port,
          cert: s.cert,
          key: s.key,
          ca: s.ca,
          ALPNProtocols: ["h2"],
          minVersion: s.tls12 ? "TLSv1.2" : "TLSv1.3",
          // No SNI (Istio's HBONE clients send none); the peer is checked by SPIFFE URI SAN.
          servername: "",
          checkServerIdentity: (_host, cert) => {
            const problem = identityProblem(cert.subjectaltname, s.identities);
            return problem ? new HboneError(ErrorCode.MeshIdentity, problem) : undefined;
          },
        }),
    });
    const conn: Conn = {
      session,
      active: 0,
      usable: true,
      lastAck: Date.now(),
      ping: setInterval(() => {
        if (Date.now() - conn.lastAck > PING_DEADLINE_MS) return this.retire(conn, true);
        session.ping((err) => {
          if (!err) conn.lastAck = Date.now();
        });
      }, PING_EVERY_MS).unref(),
      ready: new Promise<void>((resolve, reject) => {
        session.once("connect", () => {
          session.setLocalWindowSize(CONNECTION_WINDOW);
          resolve();
        });
        session.once("error", (err) => reject(classify(err)));
      }),
    };
    conn.ready.catch(() => {});
    session.on("error", (err) => {
      conn.error = err;
      this.retire(conn, true);
    });
    session.on("goaway", () => this.retire(conn, false));
    session.on("close", () => this.retire(conn, true));
    this.armIdle(conn);
    return conn;
  }

  private claim(conn: Conn): void {
    conn.active++;
    clearTimeout(conn.idle);
  }

  private release(conn: Conn): void {
    conn.active--;
    if (conn.active === 0 && !conn.usable) return this.retire(conn, true);
    if (conn.active === 0) this.armIdle(conn);
  }

  private armIdle(conn: Conn): void {
    clearTimeout(conn.idle);
    conn.idle = setTimeout(() => conn.active === 0 && this.retire(conn, true), IDLE_CLOSE_MS).unref();
  }

  /** Stops new streams on a connection (after GOAWAY), and closes it when idle or `now`. */
  private retire(conn: Conn, now: boolean): void {
    conn.usable = false;
    this.conns = this.conns.filter((c) => c !== conn);
    if (now || conn.active === 0) {
      clearInterval(conn.ping);
      clearTimeout(conn.idle);
      if (conn.session.destroyed) return;
      if (conn.active > 0) conn.session.destroy();
      else conn.session.close();
    }
  }
}
