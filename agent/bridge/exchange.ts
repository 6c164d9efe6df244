// One public request through a bridge plugin: runs its hooks in order for each direction, opens
// the request's own TCP connection when first needed, keeps both directions under backpressure,
// and turns every plugin failure into a BRIDGE_ERROR reset instead of an agent crash.
import type net from "node:net";
import { endToEnd } from "../../src/http-headers.ts";
import { ErrorCode, type HeaderList } from "../../src/protocol/frame.ts";
import { encodeResponseHead, type RequestHead } from "../../src/protocol/head.ts";
import type { Stream } from "../../src/protocol/session.ts";
import { describeError } from "../targets/http.ts";
import {
  BRIDGE_STATUSES,
  type BridgeContext,
  type BridgeHeaders,
  type BridgePlugin,
  type BridgeRequest,
  type BridgeSettings,
  type BridgeStatus,
  type HookResult,
} from "./plugin.ts";

/** Most bytes the bridge holds for a plugin in either direction ("buffer"). */
export const MAX_BUFFERED = 64 * 1024 * 1024;
/** Longest reset message; the relay quotes it in its 502. */
export const MAX_ERROR_MESSAGE = 300;

const EMPTY = new Uint8Array(0);
const encoder = new TextEncoder();
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const BAD_VALUE = /[\r\n\0]/;

type Hook = "encodeHeaders" | "encodeData" | "onUpstreamData";

/** A plugin ready to serve, with the name errors give it. */
export interface LoadedPlugin {
  plugin: BridgePlugin;
  name: string;
}

export interface ExchangeOptions {
  /** Opens the request's TCP connection (net.connect with allowHalfOpen). */
  dial: () => net.Socket;
  settings: BridgeSettings;
}

/** Bytes gathered across hook calls; views handed out are never written again. */
class Accumulator {
  private buf: Uint8Array = EMPTY;
  private length = 0;
  private owned = false;

  get size(): number {
    return this.length;
  }

  append(chunk: Uint8Array): void {
    if (chunk.byteLength === 0) return;
    if (this.length === 0) {
      this.buf = chunk;
      this.length = chunk.byteLength;
      this.owned = false;
      return;
    }
    const need = this.length + chunk.byteLength;
    if (!this.owned || need > this.buf.byteLength) {
      const grown = new Uint8Array(Math.max(need, this.owned ? this.buf.byteLength * 2 : need * 2));
      grown.set(this.buf.subarray(0, this.length));
      this.buf = grown;
      this.owned = true;
    }
    this.buf.set(chunk, this.length);
    this.length = need;
  }

  view(): Uint8Array {
    return this.buf.subarray(0, this.length);
  }

  reset(): void {
    this.buf = EMPTY;
    this.length = 0;
    this.owned = false;
  }
}

/** Runs one request through `plugin`; set up by `start()`, which installs the stream's handlers. */
export class BridgeExchange {
  private plugin!: BridgePlugin;
  private name = "?";
  private readonly ctx: BridgeContext;
  private requestTail: Promise<void> = Promise.resolve();
  private upstreamTail: Promise<void> = Promise.resolve();
  /** Request side: which hook the body goes to next ("done" once the request is over for the plugin). */
  private requestMode: "headers" | "chunks" | "whole" | "done" = "headers";
  private readonly requestBytes = new Accumulator();
  private readonly replyBytes = new Accumulator();
  private socket?: net.Socket;
  private connected = false;
  private upstreamEnded = false;
  private halfClosed = false;
  private drained?: Promise<void>;
  private response: "none" | "streaming" | "complete" = "none";
  /** The response head carried FIN (HEAD, 204, 304): body bytes are dropped. */
  private bodyless = false;
  /** Completed, failed or reset: no hook runs again. */
  private finished = false;
  private idleMs?: number;
  private idleTimer?: NodeJS.Timeout;
  private lastWrite: Promise<void> = Promise.resolve();

  constructor(
    private readonly stream: Stream,
    private readonly head: RequestHead,
    hasBody: boolean,
    private readonly loading: Promise<LoadedPlugin>,
    private readonly options: ExchangeOptions,
  ) {
    const request: BridgeRequest = {
      method: head.method,
      path: head.path,
      authority: head.authority,
      headers: head.headers,
      hasBody,
      header: (name) => head.headers.find(([n]) => n === name.toLowerCase())?.[1],
    };
    const self = this;
    this.ctx = {
      request,
      state: {},
      settings: options.settings,
      get headersSent() {
        return self.response !== "none";
      },
      write: (bytes) => this.write(bytes),
      halfClose: () => this.halfClose(),
      endOnIdle: (ms) => this.endOnIdle(ms),
      sendHeaders: (status, headers) => this.sendHeaders(status, headers),
      sendData: (bytes) => this.sendData(bytes),
      respond: (status, headers, body) => this.respond(status, headers, body),
    };
  }

  /** Installs the stream's handlers and calls encodeHeaders. */
  start(): void {
    this.stream.handle({
      onData: (chunk) => this.queueRequest(chunk, false),
      onEnd: () => this.queueRequest(EMPTY, true),
      onReset: () => this.stop(),
    });
    this.requestTail = this.begin();
  }

  private async begin(): Promise<void> {
    try {
      ({ plugin: this.plugin, name: this.name } = await this.loading);
    } catch (err) {
      // The loader's ConfigError already names the plugin.
      this.finish();
      return this.stream.reset(ErrorCode.BridgeError, truncate(messageOf(err)));
    }
    const status = await this.call("encodeHeaders", () => this.plugin.encodeHeaders(this.ctx.request, this.ctx));
    if (status === "continue") this.requestMode = "chunks";
    else if (status === "buffer") this.requestMode = "whole";
    else if (status === "end") this.requestDone();
  }

  private queueRequest(chunk: Uint8Array, end: boolean): void {
    this.requestTail = this.requestTail.then(() => this.onRequestData(chunk, end));
  }

  private async onRequestData(chunk: Uint8Array, end: boolean): Promise<void> {
    const n = chunk.byteLength;
    if (this.finished || this.requestMode === "done") return this.stream.consumed(n);
    this.requestBytes.append(chunk);
    if (this.requestBytes.size > MAX_BUFFERED) return this.tooLarge();
    if (this.requestMode === "whole" && !end) return this.stream.consumed(n);
    const status = await this.call("encodeData", () => this.plugin.encodeData(this.requestBytes.view(), end, this.ctx));
    if (status !== "buffer") this.requestBytes.reset();
    if (status === "buffer" && end) {
      this.fail(`returned "buffer" from encodeData at the end of the request`);
    } else if (status === "end" || (status !== undefined && end)) {
      this.requestDone();
    }
    // Credit goes back once the TCP side took the bytes, so a slow server holds the client.
    if (status === "continue" && this.drained) await this.drained;
    this.stream.consumed(n);
  }

  /** The request is over for the plugin: the reply is awaited on the TCP connection. */
  private requestDone(): void {
    this.requestMode = "done";
    if (this.finished) return;
    this.connect();
    this.armIdle();
  }

  private connect(): void {
    if (this.socket || this.finished) return;
    const socket = this.options.dial();
    this.socket = socket;
    socket.setNoDelay(true);
    socket.on("connect", () => {
      this.connected = true;
      this.armIdle();
    });
    socket.on("data", (chunk: Buffer) => {
      if (this.upstreamEnded || this.finished) return;
      clearTimeout(this.idleTimer);
      socket.pause();
      this.queueUpstream(chunk, false);
    });
    socket.on("end", () => this.queueUpstream(EMPTY, true));
    socket.on("error", (err: NodeJS.ErrnoException) => this.upstreamFailed(err));
    socket.on("close", () => this.queueUpstream(EMPTY, true));
  }

  private queueUpstream(chunk: Uint8Array, end: boolean): void {
    if (this.finished || this.upstreamEnded) return;
    if (end) {
      this.upstreamEnded = true;
      clearTimeout(this.idleTimer);
    }
    this.upstreamTail = this.upstreamTail.then(() => this.onUpstreamData(chunk, end));
  }

  private async onUpstreamData(chunk: Uint8Array, end: boolean): Promise<void> {
    if (this.finished) return;
    this.replyBytes.append(chunk);
    if (this.replyBytes.size > MAX_BUFFERED) return this.fail(`buffered more than ${MAX_BUFFERED / 1048576} MiB of reply`);
    const status = await this.call("onUpstreamData", () => this.plugin.onUpstreamData(this.replyBytes.view(), end, this.ctx));
    if (status === undefined) return;
    if (status !== "buffer") this.replyBytes.reset();
    if (status === "buffer" && end) {
      return this.fail(`returned "buffer" from onUpstreamData at the end of the TCP stream (the server closed before a whole reply)`);
    }
    if (status === "end" || end) return this.complete(status === "end" ? 'returned "end" from onUpstreamData' : "let the TCP stream end");
    // Read on once what was sent up the tunnel has credit.
    await this.lastWrite;
    if (this.finished) return;
    this.socket?.resume();
    this.armIdle();
  }

  /** Calls a hook; undefined when it failed or the exchange finished meanwhile. */
  private async call(hook: Hook, run: () => HookResult): Promise<BridgeStatus | undefined> {
    if (this.finished) return undefined;
    let status: unknown;
    try {
      status = await run();
    } catch (err) {
      this.fail(`failed in ${hook}: ${messageOf(err)}`);
      return undefined;
    }
    if (this.finished) return undefined;
    if (!BRIDGE_STATUSES.includes(status as BridgeStatus)) {
      this.fail(`returned ${describeValue(status)} from ${hook}, not "continue", "buffer" or "end"`);
      return undefined;
    }
    return status as BridgeStatus;
  }

  /** The response is over: end it and the TCP connection. */
  private complete(why: string): void {
    if (this.response === "none") return this.fail(`${why} without sending a response`);
    this.finish();
    if (!this.bodyless) this.stream.end().catch(() => {});
  }

  /** Fails the request with BRIDGE_ERROR: a 502 `bridge_error` before the response headers, a reset after. */
  private fail(reason: string): void {
    if (this.finished) return;
    this.finish();
    const message = truncate(`plugin "${this.name}" ${reason}`.replace(/\.+$/, ""));
    this.stream.reset(ErrorCode.BridgeError, message);
  }

  private upstreamFailed(err: NodeJS.ErrnoException): void {
    if (this.finished) return;
    const code = this.response === "none" && !this.connected ? ErrorCode.OriginUnreachable : ErrorCode.OriginReset;
    this.finish();
    this.stream.reset(code, describeError(err));
  }

  /** The public side went away. */
  private stop(): void {
    this.finish();
  }

  private finish(): void {
    this.finished = true;
    clearTimeout(this.idleTimer);
    this.socket?.destroy();
  }

  /** A request body over MAX_BUFFERED while the plugin buffers it: 413 when nothing was answered yet. */
  private tooLarge(): void {
    const message = `The request body is larger than the ${MAX_BUFFERED / 1048576} MiB the bridge buffers.`;
    if (this.response !== "none") return this.fail(message);
    this.respond(413, { "content-type": "application/json" }, JSON.stringify({ error: "body_too_large", message }));
  }

  private armIdle(): void {
    if (this.idleMs === undefined || this.requestMode !== "done" || this.finished || this.upstreamEnded || !this.connected) return;
    clearTimeout(this.idleTimer);
    this.idleTimer = setTimeout(() => {
      this.socket?.pause();
      this.queueUpstream(EMPTY, true);
    }, this.idleMs);
  }

  // The context's methods. After the exchange finished they do nothing: the request is over.

  private write(bytes: Uint8Array | string): void {
    if (this.finished) return;
    if (this.halfClosed) throw new Error("write was called after halfClose");
    this.connect();
    const socket = this.socket!;
    if (socket.write(toBytes(bytes)) || this.drained) return;
    this.drained = new Promise<void>((resolve) => {
      const done = () => {
        socket.off("drain", done);
        socket.off("close", done);
        this.drained = undefined;
        resolve();
      };
      socket.on("drain", done);
      socket.on("close", done);
    });
  }

  private halfClose(): void {
    if (this.finished || this.halfClosed) return;
    this.connect();
    this.halfClosed = true;
    this.socket!.end();
  }

  private endOnIdle(ms = this.options.settings.idleMs): void {
    if (!(typeof ms === "number" && ms > 0 && Number.isFinite(ms)))
      throw new Error(`endOnIdle needs a positive number of milliseconds, not ${describeValue(ms)}`);
    this.idleMs = ms;
    this.armIdle();
  }

  private sendHeaders(status: number, headers?: BridgeHeaders, fin = false): void {
    if (this.finished) return;
    if (this.response !== "none") throw new Error("the response headers were already sent");
    if (!(Number.isInteger(status) && status >= 200 && status <= 599))
      throw new Error(`the status must be a whole number from 200 to 599, not ${describeValue(status)}`);
    this.bodyless = this.head.method === "HEAD" || status === 204 || status === 304;
    this.response = "streaming";
    this.stream.sendHeaders(encodeResponseHead({ status, headers: headerList(headers) }), fin || this.bodyless);
  }

  private sendData(bytes: Uint8Array | string): void {
    if (this.finished) return;
    if (this.response !== "streaming") throw new Error("sendData was called before sendHeaders");
    const chunk = toBytes(bytes);
    if (this.bodyless || chunk.byteLength === 0) return;
    this.lastWrite = this.stream.write(chunk).catch(() => {});
  }

  private respond(status: number, headers?: BridgeHeaders, body?: Uint8Array | string): void {
    if (this.finished) return;
    if (this.response !== "none") throw new Error("respond was called after the response headers were sent");
    const bytes = toBytes(body ?? EMPTY);
    const list = headerList(headers);
    if (!list.some(([name]) => name === "content-length")) list.push(["content-length", String(bytes.byteLength)]);
    this.sendHeaders(status, list, bytes.byteLength === 0);
    if (!this.bodyless && bytes.byteLength > 0) {
      this.stream.write(bytes).catch(() => {});
      this.stream.end().catch(() => {});
    }
    this.response = "complete";
    this.finish();
  }
}

/** A plugin's headers as an end-to-end list with lower-case names; bad names or values throw. */
function headerList(headers: BridgeHeaders | undefined): HeaderList {
  const entries: Array<[string, string]> = [];
  const given = headers === undefined ? [] : Array.isArray(headers) ? headers : Object.entries(headers);
  for (const [name, value] of given as Iterable<readonly [unknown, unknown]>) {
    if (typeof name !== "string" || !TOKEN.test(name)) throw new Error(`${describeValue(name)} is not a valid header name`);
    if (typeof value !== "string" || BAD_VALUE.test(value))
      throw new Error(`the value of header ${name} must be a string without CR, LF or NUL`);
    entries.push([name, value]);
  }
  return endToEnd(entries);
}

function toBytes(bytes: Uint8Array | string): Uint8Array {
  if (typeof bytes === "string") return encoder.encode(bytes);
  if (bytes instanceof Uint8Array) return bytes;
  throw new Error(`expected a Uint8Array or a string, not ${describeValue(bytes)}`);
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message || err.name : String(err);
}

function describeValue(value: unknown): string {
  if (typeof value === "string") return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value);
  return value === null ? "null" : Array.isArray(value) ? "an array" : typeof value === "object" ? "an object" : String(value);
}

function truncate(text: string): string {
  return text.length <= MAX_ERROR_MESSAGE ? text : `${text.slice(0, MAX_ERROR_MESSAGE - 1)}…`;
}
