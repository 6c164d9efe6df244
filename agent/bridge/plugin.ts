// The bridge plugin API: what a module named by --bridge-plugin exports and what its three hooks
// see (after Envoy's Golang HTTP-TCP bridge). docs/bridge-plugins.md walks through it.

/**
 * What a hook tells the bridge to do next, as Envoy's HttpTcpBridgeStatus:
 * - `"continue"`: this data is dealt with; go on.
 * - `"buffer"`: keep this data and call the hook again with it and what follows.
 * - `"end"`: this direction is finished (the request: no more encodeData; the reply: it is complete).
 */
export type BridgeStatus = "continue" | "buffer" | "end";

/** Every status, for validating what a hook returned. */
export const BRIDGE_STATUSES: readonly BridgeStatus[] = ["continue", "buffer", "end"];

/** A hook returns its status, or a promise of it. */
export type HookResult = BridgeStatus | Promise<BridgeStatus>;

/** Response headers: a list of pairs (repeats allowed) or an object. Names are sent lower-case. */
export type BridgeHeaders = ReadonlyArray<readonly [string, string]> | Readonly<Record<string, string>>;

/** The public request, as the hooks see it. */
export interface BridgeRequest {
  /** GET, POST, ... */
  readonly method: string;
  /** Path and query, exactly as the public client sent them (after any /r/<name> prefix). */
  readonly path: string;
  /** The public Host. */
  readonly authority: string;
  /** End-to-end request headers, names lower-case, in order; repeated names repeat. */
  readonly headers: ReadonlyArray<readonly [string, string]>;
  /** False when the request has no body (encodeData then sees one empty, final chunk). */
  readonly hasBody: boolean;
  /** The first value of a header (name in any case), or undefined. */
  header(name: string): string | undefined;
}

/** Agent settings a plugin may honour. */
export interface BridgeSettings {
  /** --bridge-idle: how long a reply may pause before `endOnIdle` ends it, in milliseconds. */
  readonly idleMs: number;
}

/**
 * One request's link to the bridge. It lives as long as the request; its methods may be called
 * from any hook. Misuse (sending headers twice, data before headers, writing after halfClose)
 * throws, and like any error thrown in a hook that fails the request with 502 `bridge_error`.
 */
export interface BridgeContext<State extends object = Record<string, unknown>> {
  readonly request: BridgeRequest;
  /** Per-request state for the plugin; starts as an empty object. */
  state: State;
  readonly settings: BridgeSettings;
  /** True once response headers were sent (by sendHeaders or respond). */
  readonly headersSent: boolean;
  /**
   * Sends bytes to the TCP server (strings as UTF-8). The connection opens on the first write,
   * or once the request is complete if nothing was written; never for a request answered locally.
   */
  write(bytes: Uint8Array | string): void;
  /** Half-closes the TCP connection (FIN) after what was written. Off unless called. */
  halfClose(): void;
  /**
   * Ends the reply once the request is complete and the server has then sent nothing for `ms`
   * (default `settings.idleMs`): onUpstreamData is called with endOfStream true, as if the
   * server had closed. For protocols whose replies have no framing (the `raw` plugin).
   */
  endOnIdle(ms?: number): void;
  /** Starts a streamed response: status and headers now, body with sendData. */
  sendHeaders(status: number, headers?: BridgeHeaders): void;
  /** Sends response body bytes, after sendHeaders. */
  sendData(bytes: Uint8Array | string): void;
  /**
   * Sends a whole response (Content-Length added when absent) and completes the exchange: no hook
   * is called again and the TCP connection closes. Works before any TCP byte (a local answer),
   * or from onUpstreamData once a whole reply is in.
   */
  respond(status: number, headers?: BridgeHeaders, body?: Uint8Array | string): void;
}

/**
 * A bridge plugin: the default export of the module given to --bridge-plugin. Hooks may be async;
 * the hooks of one direction are called one at a time, in order. A hook that throws or rejects
 * fails the request: 502 `bridge_error` with its message before response headers, a reset after.
 */
// biome-ignore lint/suspicious/noExplicitAny: a plugin chooses its own state type; the loader cannot name it
export interface BridgePlugin<State extends object = any> {
  /** Shown in errors; default: the module's name. */
  readonly name?: string;
  /**
   * The request head arrived. `"continue"`: encodeData gets the body chunk by chunk;
   * `"buffer"`: encodeData gets the whole body once; `"end"`: the body is not read (answer
   * with respond, or let onUpstreamData answer what was written).
   */
  encodeHeaders(request: BridgeRequest, ctx: BridgeContext<State>): HookResult;
  /**
   * Request body bytes, to turn into TCP bytes with ctx.write. Called last with endOfStream
   * true (an empty chunk when the body ended on a frame boundary). `"buffer"` keeps the chunk
   * for the next call (not allowed with endOfStream); `"end"` ignores the rest of the body.
   */
  encodeData(chunk: Uint8Array, endOfStream: boolean, ctx: BridgeContext<State>): HookResult;
  /**
   * Bytes from the TCP server; endOfStream once it closed (or the idle time passed). `"buffer"`
   * waits for more, and the next call gets these bytes and the new ones; `"continue"` after
   * sendHeaders/sendData streams; `"end"`, or respond, completes the response. At endOfStream
   * a started response is completed; one never started is a `bridge_error`.
   */
  onUpstreamData(chunk: Uint8Array, endOfStream: boolean, ctx: BridgeContext<State>): HookResult;
}
