// The public response to one relayed request, assembled from what the agent sends on its
// stream: a small state machine from the stream's open to its answer, then the body under credit.
import { RelayError } from "../errors.ts";
import { endToEnd, isHopByHop } from "../http-headers.ts";
import { ErrorCode, ProtocolError, type HeaderList } from "../protocol/frame.ts";
import { decodeResponseHead } from "../protocol/head.ts";
import type { Stream, StreamReset } from "../protocol/session.ts";
import { TunnelBody } from "./bodies.ts";
import type { Deadlines } from "./deadlines.ts";

/** Statuses whose responses never have a body (the Response constructor refuses one). */
const NULL_BODY = new Set([101, 204, 205, 304]);

/**
 * Work put off to the end of the tunnel message being read. A response head is answered only
 * once the rest of its message is read, so a body that came with it is answered as bytes.
 */
export class MessageTurn {
  private pending?: Array<() => void>;

  /** Reads one tunnel message with `read`; what was put off meanwhile runs after it, even when it throws. */
  run(read: () => void): void {
    const pending: Array<() => void> = [];
    this.pending = pending;
    try {
      read();
    } finally {
      this.pending = undefined;
      for (const work of pending) work();
    }
  }

  /** Runs `work` at the end of the message being read, or in a microtask outside one. */
  defer(work: () => void): void {
    if (this.pending) this.pending.push(work);
    else queueMicrotask(work);
  }
}

/** Where a response stands. */
export enum ResponseState {
  /** The stream is open and no head came yet: a reset now goes back to the relay, to retry or answer. */
  AwaitingHead = "awaiting-head",
  /** A head with a body to come arrived: the Response is built once its tunnel message is read. */
  AwaitingMessageEnd = "awaiting-message-end",
  /** The request has its answer (a response, a timeout, a 502, or the reset); a body streams on. */
  Answered = "answered",
}

export interface ResponseOptions {
  method: string;
  backend: string;
  /** For a WebSocket upgrade: turns the agent's 101 into the public client's socket. */
  upgrade?: (stream: Stream, chosen: string | null) => Response;
  /** The shared response-head timer, of `seconds`. */
  deadlines: Deadlines;
  seconds: number;
  turn: MessageTurn;
}

/**
 * Waits for the agent's response head on `stream` and answers with the public Response. A
 * reset before the head answers with the StreamReset itself, for the relay to retry or turn into
 * an error; after the head, a reset ends the body.
 */
export class ResponseAssembly {
  state = ResponseState.AwaitingHead;
  readonly answer: Promise<Response | StreamReset>;
  private resolve!: (answer: Response | StreamReset) => void;
  private readonly body: TunnelBody;
  private readonly deadline: number;

  constructor(
    private readonly stream: Stream,
    private readonly opts: ResponseOptions,
  ) {
    this.answer = new Promise((resolve) => (this.resolve = resolve));
    this.body = new TunnelBody(stream);
    this.deadline = opts.deadlines.add(() => this.timedOut());
    stream.handle({
      onHeaders: (list, fin) => this.head(list, fin),
      onData: (chunk) => this.body.push(chunk),
      onEnd: () => this.body.end(),
      onReset: (reset) => (this.state === ResponseState.AwaitingHead ? this.settle(reset) : this.body.fail(reset)),
    });
  }

  private settle(answer: Response | StreamReset): void {
    if (this.state === ResponseState.Answered) return;
    this.state = ResponseState.Answered;
    this.opts.deadlines.cancel(this.deadline);
    this.resolve(answer);
  }

  private timedOut(): void {
    const { seconds, backend } = this.opts;
    this.stream.reset(ErrorCode.Timeout, `no response headers within ${seconds} s`);
    this.settle(new RelayError("timeout", `The agent sent no response headers within ${seconds} seconds.`, backend).toResponse());
  }

  private head(list: HeaderList, fin: boolean): void {
    if (this.state !== ResponseState.AwaitingHead) return;
    try {
      const { status, headers } = decodeResponseHead(list);
      if (status === 101) {
        if (!this.opts.upgrade) throw new ProtocolError("101 to a request that asked for no upgrade");
        const chosen = headers.find(([name]) => name === "sec-websocket-protocol")?.[1] ?? null;
        return this.settle(this.opts.upgrade(this.stream, chosen));
      }
      const { init, length } = responseHeaders(headers);
      const empty = fin || NULL_BODY.has(status) || this.opts.method === "HEAD";
      if (empty && !fin) this.stream.reset(ErrorCode.NoError, "no body expected");
      // encodeBody "manual": pass the backend's bytes and Content-Encoding through untouched,
      // never gzipped again and never buffered by the runtime's compression (docs/platform-notes.md
      // "The runtime compresses responses without Content-Encoding").
      if (empty) return this.settle(new Response(null, { status, headers: init, encodeBody: "manual" }));
      // The rest of this tunnel message may hold the whole body: answering it as bytes spares
      // the runtime a stream for every small response.
      this.state = ResponseState.AwaitingMessageEnd;
      this.opts.turn.defer(() => this.respond(status, init, length));
    } catch (err) {
      this.malformed(err);
    }
  }

  /** Runs after the head's handler returned, so it answers its own failure: the client is never left waiting. */
  private respond(status: number, headers: HeadersInit, length: string | null): void {
    try {
      this.settle(new Response(this.body.whole(length) ?? this.body.open(length), { status, headers, encodeBody: "manual" }));
    } catch (err) {
      this.malformed(err);
    }
  }

  /** The agent's head cannot become a response: reset that stream alone and answer 502. */
  private malformed(err: unknown): void {
    const message = err instanceof Error ? err.message : String(err);
    this.stream.reset(ErrorCode.ProtocolError, message);
    this.settle(new RelayError("protocol_error", `The agent sent a malformed response: ${message}.`, this.opts.backend).toResponse());
  }
}

/**
 * The public response's headers from the agent's list (end-to-end fields only), and its
 * Content-Length. A plain object when no name repeats: the runtime takes that in one call,
 * where a Headers built by appends crosses into it once per field.
 * One pass, with no list in between; a Connection header (it names more fields to drop) or a
 * repeated name (Set-Cookie) takes the general path.
 */
export function responseHeaders(list: HeaderList): { init: HeadersInit; length: string | null } {
  const record: Record<string, string> = Object.create(null);
  for (let i = 0; i < list.length; i++) {
    const name = list[i][0].toLowerCase();
    if (name === "connection" || name in record) return headersByAppends(endToEnd(list));
    if (!isHopByHop(name)) record[name] = list[i][1];
  }
  // The runtime gzips responses without a Content-Encoding for clients that accept gzip,
  // buffering the whole body first (docs/platform-notes.md "The runtime compresses responses
  // without Content-Encoding"). "identity" with encodeBody manual keeps streams streaming and
  // bytes untouched.
  record["content-encoding"] ??= "identity";
  return { init: record, length: record["content-length"] ?? null };
}

function headersByAppends(list: HeaderList): { init: Headers; length: string | null } {
  const headers = new Headers();
  for (const [name, value] of list) headers.append(name, value);
  if (!headers.has("content-encoding")) headers.set("content-encoding", "identity");
  return { init: headers, length: headers.get("content-length") };
}
