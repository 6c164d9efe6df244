// Watches tunnelled requests and tunnel events for the agent's observers (metrics, the request
// log, the inspector): one Exchange per request, told to every sink as its heads and bytes pass.
import { ErrorCode, type HeaderList } from "../../src/protocol/frame.ts";
import type { RequestHead } from "../../src/protocol/head.ts";
import type { Stream, StreamReset } from "../../src/protocol/session.ts";
import type { Target } from "../target.ts";

/** One tunnelled request as the observers see it. */
export interface Exchange {
  /** Unique in this process. */
  id: string;
  backend: string;
  /** The relay's id of the tunnel that carried it ("replay" for a replayed request). */
  tunnel: string;
  method: string;
  /** Path and query as the public client sent them. */
  path: string;
  authority: string;
  /** "websocket" for an upgrade. */
  protocol?: string;
  /** The trace id of a W3C traceparent header, when the request carried one. */
  trace?: string;
  requestHeaders: HeaderList;
  /** Wall-clock start (ms since the epoch) and the monotonic clock's reading then. */
  startedAt: number;
  startMono: number;
  /** The target that answered (as --to names it), once the ingress rules chose it. */
  target?: string;
  status?: number;
  responseHeaders?: HeaderList;
  /** Milliseconds from the request's arrival to the response head, and to its end. */
  headMs?: number;
  durationMs?: number;
  /** Body bytes from the client, and to it. */
  bytesIn: number;
  bytesOut: number;
  /** Set when the stream was reset: the tunnel error code's name and the message. */
  error?: { code: string; message: string };
  /** The exchange this one replays. */
  replayOf?: string;
  /** What served it, for a replay. */
  via: Target;
}

/** What an observer implements; every method is optional. */
export interface ObserverSink {
  /** True when the sink wants body chunks (requestBody and responseBody). */
  readonly bodies?: boolean;
  start?(x: Exchange): void;
  requestBody?(x: Exchange, chunk: Uint8Array): void;
  head?(x: Exchange): void;
  responseBody?(x: Exchange, chunk: Uint8Array): void;
  end?(x: Exchange): void;
  /** A tunnel of `backend` came up or went down. */
  tunnelUp?(backend: string): void;
  tunnelDown?(backend: string): void;
  /** A tunnel of `backend` is being opened again after one was lost. */
  reconnect?(backend: string): void;
  /** A stream refused because the tunnel was draining. */
  refused?(backend: string): void;
  /** A request sent to the target again on a new connection (a stale pooled one broke). */
  retried?(backend: string): void;
  /** A request the target could not take or broke off; `kind` is the errno (ECONNREFUSED) or the error code. */
  targetError?(backend: string, kind: string): void;
}

/** Exchanges by stream, for the hooks deeper in the request path (ingress, targets). */
const exchanges = new WeakMap<Stream, Exchange>();
/** False until an Observer exists, so the hooks cost nothing when every observer is off. */
let active = false;
let nextId = 0;

/** The exchange watching `stream`, if any. */
export function exchangeOf(stream: Stream): Exchange | undefined {
  return active ? exchanges.get(stream) : undefined;
}

/** Records which target answers `stream` (a no-op unless something observes). */
export function noteTarget(stream: Stream, target: string): void {
  if (!active) return;
  const x = exchanges.get(stream);
  if (x) x.target = target;
}

/** Records that `stream`'s request went to the target a second time. */
export function noteRetry(stream: Stream): void {
  if (!active) return;
  const x = exchanges.get(stream);
  if (x) observerOf.get(x)?.emit("retried", x.backend);
}

const observerOf = new WeakMap<Exchange, Observer>();

/** Names of the tunnel error codes, lowercase with underscores (origin_unreachable). */
function codeName(code: ErrorCode): string {
  const name = ErrorCode[code] ?? `code_${code}`;
  return name.replace(/([a-z])([A-Z])/g, "$1_$2").toLowerCase();
}

/** The trace id of a valid W3C traceparent (version 00), else undefined. */
function traceOf(headers: HeaderList): string | undefined {
  for (const [name, value] of headers) {
    if (name !== "traceparent") continue;
    const m = /^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$/.exec(value.trim());
    return m && !/^0+$/.test(m[1]) ? m[1] : undefined;
  }
  return undefined;
}

type TunnelEvent = "tunnelUp" | "tunnelDown" | "reconnect" | "refused" | "retried";

/** Fans each request's events and the tunnels' events out to the sinks. */
export class Observer {
  private readonly sinks: ObserverSink[];
  private readonly bodySinks: ObserverSink[];

  constructor(sinks: ObserverSink[]) {
    this.sinks = sinks;
    this.bodySinks = sinks.filter((s) => s.bodies);
    active = true;
  }

  /** Tells every sink about a tunnel event. */
  emit(event: TunnelEvent, backend: string): void {
    for (const s of this.sinks) s[event]?.(backend);
  }

  /**
   * Starts an Exchange for a request arriving on `stream` and wraps the stream's methods and
   * handlers so its heads, bytes and end reach the sinks. Returns the same stream.
   */
  watch(stream: Stream, head: RequestHead, backend: string, tunnel: string, via: Target, replayOf?: string): Stream {
    const x: Exchange = {
      id: (++nextId).toString(36),
      backend,
      tunnel,
      method: head.method,
      path: head.path,
      authority: head.authority,
      requestHeaders: head.headers,
      startedAt: Date.now(),
      startMono: performance.now(),
      bytesIn: 0,
      bytesOut: 0,
      via,
    };
    if (head.protocol) x.protocol = head.protocol;
    const trace = traceOf(head.headers);
    if (trace) x.trace = trace;
    if (replayOf) x.replayOf = replayOf;
    exchanges.set(stream, x);
    observerOf.set(x, this);
    const sinks = this.sinks;
    const bodySinks = this.bodySinks;
    for (const s of sinks) s.start?.(x);

    let ended = false;
    const finish = (error?: { code: ErrorCode; message: string }) => {
      if (ended) return;
      ended = true;
      x.durationMs = performance.now() - x.startMono;
      if (error) {
        x.error = { code: codeName(error.code), message: error.message };
        if (error.code === ErrorCode.OriginUnreachable || error.code === ErrorCode.OriginReset) {
          const kind = /^(E[A-Z0-9_]+)\b/.exec(error.message)?.[1] ?? x.error.code;
          for (const s of sinks) s.targetError?.(backend, kind);
        }
      }
      for (const s of sinks) s.end?.(x);
    };
    const sent = (chunk: Uint8Array | undefined) => {
      if (!chunk?.byteLength) return;
      x.bytesOut += chunk.byteLength;
      for (const s of bodySinks) s.responseBody!(x, chunk);
    };

    if (bodySinks.length) {
      // Request body: whichever handler the target sets is wrapped. A handler that hands a held
      // chunk on to the next handler (see `hold`) passes the same chunk again: counted once.
      let onData = stream.onData;
      let last: Uint8Array | undefined;
      Object.defineProperty(stream, "onData", {
        configurable: true,
        get: () => onData,
        set: (handler: Stream["onData"]) => {
          onData = (chunk, flags) => {
            if (chunk !== last) {
              last = chunk;
              x.bytesIn += chunk.byteLength;
              for (const s of bodySinks) s.requestBody!(x, chunk);
            }
            handler(chunk, flags);
          };
        },
      });
    } else {
      // Without a sink for the bytes themselves, counting them as the target hands them on is enough.
      const consumed = stream.consumed.bind(stream);
      Object.assign(stream, {
        consumed: (n: number, all?: boolean) => {
          x.bytesIn += n;
          consumed(n, all);
        },
      } satisfies Partial<Stream>);
    }

    const { sendHeaders, write, writeMessage, end, close, reset, fail } = bound(stream);
    // Through Object.assign, not `stream.write = (chunk) => ...`: see Stream.handle.
    return Object.assign(stream, {
      sendHeaders: (list: HeaderList, fin = false) => {
        sendHeaders(list, fin);
        if (x.status === undefined) {
          x.headMs = performance.now() - x.startMono;
          let i = 0;
          for (; i < list.length && list[i][0].startsWith(":"); i++) if (list[i][0] === ":status") x.status = Number(list[i][1]);
          x.responseHeaders = i === 0 ? list : list.slice(i);
          for (const s of sinks) s.head?.(x);
        }
        if (fin) finish();
      },
      write: (chunk: Uint8Array) => {
        sent(chunk);
        return write(chunk);
      },
      writeMessage: (data: Uint8Array, text: boolean) => {
        sent(data);
        return writeMessage(data, text);
      },
      end: (lastChunk?: Uint8Array) => {
        sent(lastChunk);
        const done = end(lastChunk);
        done.then(() => finish(), ignore);
        return done;
      },
      close: (code: number, reason?: string) => {
        const done = close(code, reason);
        done.then(() => finish(), ignore);
        return done;
      },
      reset: (code: ErrorCode, message = "") => {
        reset(code, message);
        finish({ code, message });
      },
      fail: (r: StreamReset) => {
        fail(r);
        finish({ code: r.code, message: r.message });
      },
    } satisfies Partial<Stream>);
  }
}

const ignore = (): void => {};

/** The stream's methods the observer wraps, bound to it as they were before. */
function bound(stream: Stream) {
  return {
    sendHeaders: stream.sendHeaders.bind(stream),
    write: stream.write.bind(stream),
    writeMessage: stream.writeMessage.bind(stream),
    end: stream.end.bind(stream),
    close: stream.close.bind(stream),
    reset: stream.reset.bind(stream),
    fail: stream.fail.bind(stream),
  };
}
