// HTTP/1.1 targets: http://host:port, https://host:port (own CA or --origin-insecure) and
// unix:/path.sock. Bodies stream both ways under the tunnel's credit.
import http from "node:http";
import https from "node:https";
import { endToEnd, pairs } from "../../src/http-headers.ts";
import { ErrorCode } from "../../src/protocol/frame.ts";
import { encodeResponseHead, type RequestHead } from "../../src/protocol/head.ts";
import { StreamReset, type Stream } from "../../src/protocol/session.ts";
import type { Target } from "../config.ts";
import type { Origin } from "../origin.ts";
import { serveWebSocket, type WebSocketTarget } from "./websocket.ts";

/** A short, safe description of a connection error (no addresses beyond the code). */
export function describeError(err: NodeJS.ErrnoException): string {
  return err.code ? `${err.code}: ${err.message}` : err.message;
}

export class HttpOrigin implements Origin {
  readonly caps = ["http", "ws"];
  private readonly agent: http.Agent;
  private readonly base: http.RequestOptions;
  private readonly request: typeof http.request;
  private readonly ownHost: string;
  private readonly wsTarget: WebSocketTarget;

  constructor(
    target: Exclude<Target, { kind: "tcp" }>,
    private readonly preserveHost: boolean,
  ) {
    const options = { keepAlive: true, maxSockets: Infinity, scheduling: "lifo" as const };
    if (target.kind === "unix") {
      this.agent = new http.Agent(options);
      this.base = { socketPath: target.path };
      this.request = http.request;
      this.ownHost = "localhost";
      this.wsTarget = { base: `ws+unix:${target.path}`, host: this.ownHost };
    } else {
      const { hostname, port } = target.url;
      const secure = target.kind === "https";
      this.base = { hostname: hostname.replace(/^\[|\]$/g, ""), port: port || (secure ? 443 : 80) };
      this.ownHost = target.url.host;
      this.request = secure ? https.request : http.request;
      this.agent = secure
        ? new https.Agent({ ...options, ca: target.ca, rejectUnauthorized: !target.insecure })
        : new http.Agent(options);
      this.wsTarget = {
        base: `${secure ? "wss" : "ws"}://${target.url.host}`,
        host: this.ownHost,
        ...(target.kind === "https" ? { tls: { ca: target.ca, rejectUnauthorized: !target.insecure } } : {}),
      };
    }
  }

  serve(stream: Stream, head: RequestHead, hasBody: boolean): void {
    if (head.protocol === "websocket") {
      const host = this.preserveHost && head.authority ? head.authority : this.ownHost;
      return serveWebSocket(stream, head, { ...this.wsTarget, host });
    }
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
    headers.push("host", this.preserveHost && head.authority ? head.authority : this.ownHost);
    let responded = false;
    const req = this.request({
      ...this.base,
      agent: this.agent,
      method: head.method,
      path: head.path,
      headers,
      setHost: false,
    });
    req.on("error", (err: NodeJS.ErrnoException) => {
      if (responded) stream.reset(ErrorCode.OriginReset, describeError(err));
      else stream.reset(ErrorCode.OriginUnreachable, describeError(err));
    });
    req.on("response", (res) => {
      responded = true;
      const status = res.statusCode ?? 502;
      const noBody = head.method === "HEAD" || status === 204 || status === 304;
      stream.sendHeaders(encodeResponseHead({ status, headers: endToEnd(pairs(res.rawHeaders)) }), noBody);
      if (noBody) return void res.resume();
      void sendBody(res, stream);
    });
    stream.onReset = () => req.destroy();
    stream.onData = (chunk) => {
      if (req.destroyed) return;
      req.write(chunk, () => stream.consumed(chunk.byteLength));
    };
    stream.onEnd = () => req.end();
  }

  close(): void {
    this.agent.destroy();
  }
}

/** Streams a target's response body into a tunnel stream; a target that breaks off resets it. */
export async function sendBody(res: http.IncomingMessage, stream: Stream): Promise<void> {
  try {
    for await (const chunk of res) await stream.write(chunk as Uint8Array);
    await stream.end();
  } catch (err) {
    if (err instanceof StreamReset) return void res.destroy();
    stream.reset(ErrorCode.OriginReset, describeError(err as NodeJS.ErrnoException));
  }
}
