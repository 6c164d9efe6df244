// HTTP/2 to a target: h2c:// (cleartext, prior knowledge), https:// when ALPN picks h2, and h2
// inside an HBONE CONNECT stream. One session per target, reused until it closes or GOAWAYs.
import http2 from "node:http2";
import type { Duplex, Readable } from "node:stream";
import tls from "node:tls";
import { endToEnd } from "../../src/http-headers.ts";
import { ErrorCode } from "../../src/protocol/frame.ts";
import type { RequestHead } from "../../src/protocol/head.ts";
import type { Stream } from "../../src/protocol/session.ts";
import { CONNECTION_WINDOW, STREAM_WINDOW } from "../hbone/pool.ts";
import { sendResponseHead } from "../response-head.ts";
import { noteRetry } from "../observe/observer.ts";
import { describeError, hold, sendBody } from "./http.ts";

/** Fields HTTP/2 forbids (RFC 9113 8.2.2) beyond the hop-by-hop ones endToEnd already drops. */
const H2_FORBIDDEN = new Set(["host", "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "te"]);

/** Opens the transport for a new session: a connected socket (TLS with ALPN h2, a CONNECT stream) or undefined for plain TCP. */
export type SessionTransport = () => Promise<Duplex | undefined>;

/** The target's HTTP/2 session, opened on first use and again after it closed or was GOAWAYed. */
export class H2Sessions {
  private current?: Promise<http2.ClientHttp2Session>;
  /** The current session once open. */
  private opened?: http2.ClientHttp2Session;

  constructor(
    private readonly origin: string,
    private readonly transport: SessionTransport,
  ) {}

  /** A usable session. */
  get(): Promise<http2.ClientHttp2Session> {
    // Closing or GOAWAYed already, before its events came: not one to start a stream on.
    if (this.opened && (this.opened.closed || this.opened.destroyed)) this.current = this.opened = undefined;
    if (!this.current) {
      const opening = this.open();
      this.current = opening;
      opening.then(
        (session) => {
          if (this.current === opening) this.opened = session;
          const forget = () => {
            if (this.opened === session) this.opened = undefined;
            if (this.current === opening) this.current = undefined;
          };
          session.once("close", forget);
          session.once("goaway", forget);
          session.once("error", forget);
        },
        () => {
          if (this.current === opening) this.current = undefined;
        },
      );
    }
    return this.current;
  }

  close(): void {
    void this.current?.then(
      (s) => s.close(),
      () => {},
    );
    this.current = this.opened = undefined;
  }

  private async open(): Promise<http2.ClientHttp2Session> {
    const socket = await this.transport();
    const session = http2.connect(this.origin, {
      // Windows wide enough for streaming bodies (Node's default stream window is 64 KiB).
      settings: { initialWindowSize: STREAM_WINDOW, enablePush: false },
      ...(socket ? { createConnection: () => socket } : {}),
    });
    await new Promise<void>((resolve, reject) => {
      session.once("connect", () => {
        session.setLocalWindowSize(CONNECTION_WINDOW);
        resolve();
      });
      session.once("error", reject);
    });
    session.on("error", () => {});
    return session;
  }
}

/** Connects TLS offering `protocols` by ALPN; resolves with the socket and what was picked. */
export function alpnConnect(options: tls.ConnectionOptions, protocols: string[]): Promise<{ socket: tls.TLSSocket; protocol: string }> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ ...options, ALPNProtocols: protocols });
    socket.once("secureConnect", () => resolve({ socket, protocol: socket.alpnProtocol || "http/1.1" }));
    socket.once("error", reject);
  });
}

/**
 * Answers one tunnelled request over an HTTP/2 session to the target. A request the target
 * refused unprocessed (REFUSED_STREAM, or a session GOAWAYed or closed as the request went out)
 * goes again once on `again()`'s session, when none of its body has gone out yet.
 */
export function serveH2(
  stream: Stream,
  head: RequestHead,
  hasBody: boolean,
  session: http2.ClientHttp2Session,
  authority: string,
  scheme: string,
  again?: () => Promise<http2.ClientHttp2Session | undefined>,
): void {
  const headers: http2.OutgoingHttpHeaders = { ":method": head.method, ":path": head.path, ":scheme": scheme, ":authority": authority };
  for (const [name, value] of endToEnd(head.headers)) {
    if (H2_FORBIDDEN.has(name)) continue;
    const prior = headers[name];
    headers[name] = prior === undefined ? value : ([] as string[]).concat(prior as string | string[], value);
  }
  let responded = false;
  /** Some of the body, or its end, went to the target: lost with a refused stream, so not sent again. */
  let bodySent = false;
  /** Sends the request again on a new session; false when it may not go again. */
  const retry = (err: NodeJS.ErrnoException): boolean => {
    if (!again || responded || bodySent) return false;
    noteRetry(stream);
    const release = hold(stream);
    again().then(
      (next) => {
        if (next) serveH2(stream, head, hasBody, next, authority, scheme);
        else stream.reset(ErrorCode.OriginUnreachable, describeError(err));
        release();
      },
      (failed: NodeJS.ErrnoException) => {
        release();
        stream.reset(ErrorCode.OriginUnreachable, describeError(failed));
      },
    );
    return true;
  };
  let req: http2.ClientHttp2Stream;
  try {
    req = session.request(headers, { endStream: !hasBody });
  } catch (err) {
    // The session closed or was GOAWAYed before this request: nothing of it went out.
    const code = (err as NodeJS.ErrnoException).code;
    if ((code === "ERR_HTTP2_GOAWAY_SESSION" || code === "ERR_HTTP2_INVALID_SESSION") && retry(err as NodeJS.ErrnoException)) return;
    return stream.reset(ErrorCode.OriginUnreachable, describeError(err as NodeJS.ErrnoException));
  }
  req.on("error", (err: NodeJS.ErrnoException) => {
    // REFUSED_STREAM (also how a GOAWAY ends streams it did not take): the target did not
    // process the request (RFC 9113 8.7).
    if (req.rstCode === http2.constants.NGHTTP2_REFUSED_STREAM && retry(err)) return;
    stream.reset(responded ? ErrorCode.OriginReset : ErrorCode.OriginUnreachable, describeError(err));
  });
  req.on("response", (h) => {
    responded = true;
    const status = Number(h[":status"]);
    const list: Array<[string, string]> = [];
    for (const [name, value] of Object.entries(h)) {
      if (name.startsWith(":") || value === undefined) continue;
      for (const v of Array.isArray(value) ? value : [value]) list.push([name, String(v)]);
    }
    const noBody = head.method === "HEAD" || status === 204 || status === 304;
    if (!sendResponseHead(stream, status, endToEnd(list), noBody)) return void req.close(http2.constants.NGHTTP2_CANCEL);
    if (noBody) return void req.resume();
    void sendBody(req as unknown as Readable, stream);
  });
  stream.handle({
    onReset: () => req.close(http2.constants.NGHTTP2_CANCEL),
    onData: (chunk) => {
      if (req.destroyed) return;
      bodySent = true;
      req.write(chunk, () => stream.consumed(chunk.byteLength));
    },
    onEnd: () => {
      if (!hasBody) return;
      bodySent = true;
      req.end();
    },
  });
}
