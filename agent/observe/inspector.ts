// The request inspector: a bounded ring of recent requests with their heads and the first 64 KiB
// of each body (copied as they pass), a JSON API, live updates over SSE, replay, and the page.
import type http from "node:http";
import type { HeaderList } from "../../src/protocol/frame.ts";
import { INSPECTOR_PAGE, INSPECTOR_SCRIPT } from "./inspector-page.ts";
import type { Exchange, Observer, ObserverSink } from "./observer.ts";
import { replayExchange } from "./replay.ts";

/** Bytes of each body the inspector keeps. */
export const BODY_LIMIT = 64 * 1024;
/** How often live updates are sent to open pages, at most. */
const PUSH_EVERY_MS = 100;
/** Header names whose values are credentials: masked unless --inspect-unmask. */
const SECRET_HEADERS = new Set([
  "authorization",
  "proxy-authorization",
  "cookie",
  "set-cookie",
  "x-relay-access-token",
  "x-api-key",
  "api-key",
  "x-auth-token",
]);
/** State-changing API calls must carry it: a page on another origin cannot add it without a CORS preflight, which is never granted. */
const CSRF_HEADER = "x-edge-relay-inspector";

/** The first BODY_LIMIT bytes of a body, copied (a tunnel message's buffer is never held), and its full size. */
class BodyCapture {
  private parts: Buffer[] = [];
  kept = 0;
  size = 0;

  add(chunk: Uint8Array): void {
    this.size += chunk.byteLength;
    const room = BODY_LIMIT - this.kept;
    if (room <= 0) return;
    const n = Math.min(room, chunk.byteLength);
    // Buffer.from copies (small copies share Node's pool rather than an ArrayBuffer each).
    this.parts.push(Buffer.from(chunk.subarray(0, n)));
    this.kept += n;
  }

  bytes(): Buffer {
    if (this.parts.length > 1) this.parts = [Buffer.concat(this.parts)];
    return this.parts[0] ?? Buffer.alloc(0);
  }

  get truncated(): boolean {
    return this.size > this.kept;
  }
}

interface Entry {
  x: Exchange;
  request: BodyCapture;
  response: BodyCapture;
  done: boolean;
}

/** A body as the page shows it. */
export type BodyView =
  | { kind: "empty"; size: 0 }
  | { kind: "json" | "text"; size: number; truncated: boolean; text: string }
  | { kind: "binary"; size: number; truncated: boolean; contentType?: string };

function headerValue(headers: HeaderList | undefined, name: string): string | undefined {
  return headers?.find(([n]) => n === name)?.[1];
}

/** Text as text, JSON pretty-printed, anything else (or an encoded body) as its size. */
export function viewBody(capture: BodyCapture, headers: HeaderList | undefined): BodyView {
  if (capture.size === 0) return { kind: "empty", size: 0 };
  const type = (headerValue(headers, "content-type") ?? "").toLowerCase();
  const encoding = (headerValue(headers, "content-encoding") ?? "identity").toLowerCase();
  const base = { size: capture.size, truncated: capture.truncated };
  const binary: BodyView = { kind: "binary", ...base, ...(type ? { contentType: type } : {}) };
  if (encoding !== "identity") return binary;
  const bytes = capture.bytes();
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    // A multi-byte character cut at the limit is still text.
    if (!capture.truncated) return binary;
    text = new TextDecoder("utf-8").decode(bytes);
  }
  const texty = /^text\/|json|xml|javascript|x-www-form-urlencoded|^$/.test(type);
  if (!texty || /[\u0000-\u0008\u000e-\u001f]/.test(text)) return binary;
  if (/json/.test(type) || (type === "" && /^\s*[[{]/.test(text))) {
    try {
      return { kind: "json", ...base, text: JSON.stringify(JSON.parse(text), null, 2) };
    } catch {}
  }
  return { kind: "text", ...base, text };
}

/** Serves the inspector and keeps its ring; an ObserverSink that asks for bodies. */
export class Inspector implements ObserverSink {
  readonly bodies = true;
  private readonly entries = new Map<string, Entry>();
  private readonly live = new Map<Exchange, Entry>();
  private readonly clients = new Set<http.ServerResponse>();
  private dirty = new Set<Entry>();
  private cleared = false;
  private pushTimer?: NodeJS.Timeout;
  observer?: Observer;
  /** The host:port values the page may be asked for by (DNS rebinding guard); empty: any. */
  allowedHosts: string[] = [];

  constructor(
    private readonly capacity: number,
    private readonly unmask: boolean,
  ) {}

  start(x: Exchange): void {
    const entry: Entry = { x, request: new BodyCapture(), response: new BodyCapture(), done: false };
    this.entries.set(x.id, entry);
    this.live.set(x, entry);
    // A Map iterates in insertion order: the first key is the oldest.
    if (this.entries.size > this.capacity) this.entries.delete(this.entries.keys().next().value!);
    this.changed(entry);
  }

  requestBody(x: Exchange, chunk: Uint8Array): void {
    this.live.get(x)?.request.add(chunk);
  }

  head(x: Exchange): void {
    const entry = this.live.get(x);
    if (entry) this.changed(entry);
  }

  responseBody(x: Exchange, chunk: Uint8Array): void {
    this.live.get(x)?.response.add(chunk);
  }

  end(x: Exchange): void {
    const entry = this.live.get(x);
    if (!entry) return;
    this.live.delete(x);
    entry.done = true;
    this.changed(entry);
  }

  /** Drops every kept request (those still in flight finish unrecorded). */
  clear(): void {
    this.entries.clear();
    this.dirty.clear();
    this.cleared = true;
    this.schedulePush();
  }

  private summary(e: Entry): Record<string, unknown> {
    const { x } = e;
    return {
      id: x.id,
      time: new Date(x.startedAt).toISOString(),
      backend: x.backend,
      tunnel: x.tunnel,
      target: x.target ?? null,
      method: x.method,
      path: x.path,
      protocol: x.protocol ?? null,
      status: x.status ?? null,
      headMs: x.headMs ?? null,
      durationMs: x.durationMs ?? null,
      bytesIn: x.bytesIn,
      bytesOut: x.bytesOut,
      state: e.done ? "done" : "pending",
      error: x.error ?? null,
      replayOf: x.replayOf ?? null,
    };
  }

  private headers(list: HeaderList | undefined): Array<[string, string]> {
    if (!list) return [];
    return list.map(([name, value]) => [name, this.unmask || !SECRET_HEADERS.has(name) ? value : mask(name, value)]);
  }

  private detail(e: Entry): Record<string, unknown> {
    return {
      ...this.summary(e),
      authority: e.x.authority,
      trace: e.x.trace ?? null,
      request: { headers: this.headers(e.x.requestHeaders), body: viewBody(e.request, e.x.requestHeaders) },
      response: { headers: this.headers(e.x.responseHeaders), body: viewBody(e.response, e.x.responseHeaders) },
    };
  }

  private changed(entry: Entry): void {
    if (this.clients.size === 0) return;
    this.dirty.add(entry);
    this.schedulePush();
  }

  private schedulePush(): void {
    if (this.pushTimer || this.clients.size === 0) return;
    this.pushTimer = setTimeout(() => this.push(), PUSH_EVERY_MS);
    this.pushTimer.unref();
  }

  /** Sends what changed since the last push to every open page, in one SSE event each. */
  private push(): void {
    this.pushTimer = undefined;
    const events: string[] = [];
    if (this.cleared) events.push(`event: clear\ndata: {}\n\n`);
    this.cleared = false;
    for (const e of this.dirty) if (this.entries.has(e.x.id)) events.push(`data: ${JSON.stringify(this.summary(e))}\n\n`);
    this.dirty.clear();
    if (!events.length) return;
    const text = events.join("");
    for (const res of this.clients) res.write(text);
  }

  /** Answers the page, its script and the API. */
  handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const url = new URL(req.url ?? "/", "http://inspector");
    const json = (status: number, body: unknown) => {
      res.writeHead(status, { "content-type": "application/json", "cache-control": "no-store" });
      res.end(JSON.stringify(body));
    };
    if (this.allowedHosts.length && !this.allowedHosts.includes(req.headers.host ?? "")) {
      return json(403, { error: "wrong_host", message: "the inspector answers only requests to its own address" });
    }
    const method = req.method ?? "GET";
    if (method !== "GET" && method !== "HEAD" && req.headers[CSRF_HEADER] !== "1") {
      return json(403, { error: "missing_header", message: `send ${CSRF_HEADER}: 1 with API calls that change things` });
    }
    const path = url.pathname;
    if (method === "GET" && path === "/") {
      res.writeHead(200, {
        "content-type": "text/html; charset=utf-8",
        "cache-control": "no-store",
        "content-security-policy": "default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; connect-src 'self'; img-src data:",
        "x-frame-options": "DENY",
      });
      return void res.end(INSPECTOR_PAGE);
    }
    if (method === "GET" && path === "/inspector.js") {
      res.writeHead(200, { "content-type": "text/javascript; charset=utf-8", "cache-control": "no-store" });
      return void res.end(INSPECTOR_SCRIPT);
    }
    if (method === "GET" && path === "/api/events") {
      res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-store", connection: "keep-alive" });
      res.write(": live\n\n");
      this.clients.add(res);
      res.on("close", () => this.clients.delete(res));
      return;
    }
    if (path === "/api/requests") {
      if (method === "DELETE") {
        this.clear();
        return json(200, { cleared: true });
      }
      if (method === "GET") return json(200, { requests: [...this.entries.values()].reverse().map((e) => this.summary(e)) });
    }
    const m = /^\/api\/requests\/([0-9a-z]+)(\/replay)?$/.exec(path);
    if (m) {
      const entry = this.entries.get(m[1]);
      if (!entry) return json(404, { error: "not_found", message: `no request ${m[1]} (it may have left the ring)` });
      if (!m[2] && method === "GET") return json(200, this.detail(entry));
      if (m[2] && method === "POST") return void this.replay(entry, json);
    }
    json(404, { error: "not_found", message: "see /, /api/requests, /api/requests/<id> and POST /api/requests/<id>/replay" });
  }

  private replay(entry: Entry, json: (status: number, body: unknown) => void): void {
    const { x } = entry;
    if (!this.observer) return json(503, { error: "not_ready", message: "the inspector is not watching requests" });
    if (x.protocol) return json(409, { error: "not_replayable", message: "a WebSocket upgrade cannot be replayed" });
    if (!entry.done) return json(409, { error: "not_replayable", message: "the request is still in flight" });
    if (entry.request.truncated) {
      return json(409, {
        error: "not_replayable",
        message: `the request body of ${entry.request.size} bytes is larger than the ${BODY_LIMIT} bytes kept`,
      });
    }
    replayExchange(this.observer, x, entry.request.bytes()).then(
      (result) => json(200, result),
      (err: Error) => json(502, { error: "replay_failed", message: err.message }),
    );
  }

  /** Ends the live connections of open pages. */
  close(): void {
    clearTimeout(this.pushTimer);
    for (const res of this.clients) res.end();
    this.clients.clear();
  }
}

/** A masked credential: its scheme (Bearer, Basic) or cookie names stay, values go. */
function mask(name: string, value: string): string {
  if (name === "authorization" || name === "proxy-authorization") {
    const scheme = /^(\S+)\s/.exec(value)?.[1];
    return scheme ? `${scheme} ••••••` : "••••••";
  }
  if (name === "cookie") return value.replace(/=([^;]*)/g, "=••••••");
  if (name === "set-cookie") return value.replace(/^([^=]*)=([^;]*)/, "$1=••••••");
  return "••••••";
}
