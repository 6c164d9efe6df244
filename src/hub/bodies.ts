// Bodies between the runtime's web streams and tunnel streams, both directions under
// credit: the relay never holds more than a window per stream (docs/platform-notes.md "No
// backpressure on WebSockets").
import { contentLength as parseContentLength } from "../http-headers.ts";
import { ErrorCode } from "../protocol/frame.ts";
import { StreamReset, type Stream } from "../protocol/session.ts";

/**
 * A response body fed by a tunnel stream. Credit goes back to the agent only as the runtime
 * hands bytes to the public client, so a client that stops reading stops the agent.
 *
 * The body is a runtime-native stream, not a JS ReadableStream: the runtime never calls a JS
 * source's cancel() when the public client disconnects, but a pending write to a native stream
 * fails, which resets the tunnel stream and so closes the backend's request. With the backend's
 * Content-Length the body is a FixedLengthStream: the length reaches the client, and a body that
 * breaks off ends the client's response with an error. Without one the runtime ends an aborted
 * body like a complete chunked one (workerd issue 6818), so a truncation there cannot be told.
 */
export class TunnelBody {
  private writer?: WritableStreamDefaultWriter<Uint8Array>;
  /** Chunks that came before open(). */
  private early: Uint8Array[] = [];
  private ended = false;
  private failure?: Error;

  constructor(private readonly stream: Stream) {}

  /** The public response's body; `contentLength` is the backend's Content-Length header, if any. */
  open(contentLength?: string | null): ReadableStream<Uint8Array> {
    const length = parseContentLength(contentLength);
    const pipe = length === undefined ? new IdentityTransformStream() : new FixedLengthStream(length);
    const writer = pipe.writable.getWriter();
    this.writer = writer;
    writer.closed.catch(() => this.gone());
    for (const chunk of this.early) this.write(chunk);
    this.early = [];
    if (this.failure) this.fail(this.failure);
    else if (this.ended) this.end();
    return pipe.readable;
  }

  /**
   * The body as bytes when all of it already arrived and matches `contentLength` (the backend's
   * Content-Length header); undefined otherwise, or once open() was called.
   */
  whole(contentLength?: string | null): Uint8Array | undefined {
    if (!this.ended || this.failure || this.writer || !contentLength) return undefined;
    let n = 0;
    for (const chunk of this.early) n += chunk.byteLength;
    if (String(n) !== contentLength) return undefined;
    if (this.early.length === 1) return this.early[0];
    const bytes = new Uint8Array(n);
    n = 0;
    for (const chunk of this.early) {
      bytes.set(chunk, n);
      n += chunk.byteLength;
    }
    return bytes;
  }

  push(chunk: Uint8Array): void {
    if (this.writer) this.write(chunk);
    else this.early.push(chunk);
  }

  end(): void {
    this.ended = true;
    this.writer?.close().catch(() => this.gone());
  }

  fail(error: Error): void {
    this.failure = error;
    this.writer?.abort(error).catch(() => {});
  }

  private write(chunk: Uint8Array): void {
    if (chunk.byteLength === 0) return;
    // A write settles once the runtime took the bytes for the client: then the credit goes back.
    this.writer!.write(chunk).then(
      () => this.stream.consumed(chunk.byteLength),
      () => this.gone(),
    );
  }

  /** The public client went away (or the body could not be delivered): stop the backend. */
  private gone(): void {
    if (!this.failure) this.stream.reset(ErrorCode.Cancel, "the public client went away");
  }
}

/** Request bodies up to this Content-Length are read whole before their stream opens. */
export const SMALL_BODY_BYTES = 64 * 1024;

/**
 * Whether a public request's body is small by its Content-Length (at most SMALL_BODY_BYTES): the
 * relay then reads it whole, so that its HEADERS and its one DATA frame (with FIN) leave in one
 * tunnel message and a small POST costs the relay about what a GET does, with no stream, reader
 * or credit wait of its own. Other bodies stream (figures: docs/performance.md).
 */
export function isSmallBody(contentLength: string | undefined): boolean {
  const n = parseContentLength(contentLength);
  return n !== undefined && n <= SMALL_BODY_BYTES;
}

/** Bytes asked for per read of a public request body; down to MIN_READ_BYTES after short reads. */
const READ_BYTES = 64 * 1024;
const MIN_READ_BYTES = 64;

/**
 * Reads a body in chunks of up to READ_BYTES where the runtime allows it (a BYOB reader on a
 * byte stream, as request bodies are), so an upload costs a frame and its promise hops per
 * large chunk rather than per small one the default reader would hand out. Reads never wait
 * for more bytes than are there, so bodies still stream.
 */
class ChunkReader {
  private readonly byob?: ReadableStreamBYOBReader;
  private readonly plain?: ReadableStreamDefaultReader<Uint8Array>;
  /** A buffer whose bytes were copied out, for the next read. */
  private spare?: ArrayBuffer;
  /** Bytes asked for by the next read. */
  private size = READ_BYTES;

  constructor(body: ReadableStream<Uint8Array>) {
    try {
      this.byob = body.getReader({ mode: "byob" });
    } catch {
      // Not a byte stream (a body built from a JS ReadableStream): read it as it comes.
      this.plain = body.getReader();
    }
  }

  async read(): Promise<ReadableStreamReadResult<Uint8Array>> {
    if (!this.byob) return this.plain!.read();
    const buffer = this.spare ?? new ArrayBuffer(this.size);
    this.spare = undefined;
    const result = await this.byob.read(new Uint8Array(buffer));
    if (result.done) return { done: true, value: undefined };
    const view = result.value;
    // The next read's buffer follows this one's fill: tiny reads (a client sending 1-byte
    // chunks) then cost a small buffer each, not READ_BYTES.
    const size = Math.min(READ_BYTES, Math.max(MIN_READ_BYTES, 2 ** Math.ceil(Math.log2(view.byteLength * 2 || 1))));
    if (view.byteLength >= READ_BYTES / 2) return { done: false, value: view };
    // A short read: hand out a right-sized copy (chunks may be kept for a replay) and reuse the buffer.
    if (size === view.buffer.byteLength) this.spare = view.buffer as ArrayBuffer;
    this.size = size;
    return { done: false, value: view.slice() };
  }

  cancel(): Promise<void> {
    return (this.byob ?? this.plain)!.cancel();
  }
}

/** Chunks kept for a replay below this size are copied together (RequestBody.keep). */
const KEEP_SMALL_BYTES = 1024;
const KEEP_BUFFER_BYTES = 16 * 1024;

/**
 * A public request body sent up a tunnel stream as fast as the agent's credit allows, and sent
 * again on another tunnel when an attempt fails before the response headers (README "High
 * availability"). Bytes sent are kept until the attempt is committed, at most `replayLimit`:
 * no agent can have taken more than one window without returning credit.
 */
export class RequestBody {
  private readonly reader: ChunkReader;
  private sent: Uint8Array[] = [];
  /** Small chunks kept for a replay are copied together here (see keep()). */
  private tail?: Uint8Array;
  private tailBytes = 0;
  private sentBytes = 0;
  private committed = false;
  private finished = false;
  private aborted = false;
  private running = false;
  private stream?: Stream;
  private nextAttempt?: () => void;

  constructor(
    body: ReadableStream<Uint8Array>,
    private readonly replayLimit: number,
  ) {
    this.reader = new ChunkReader(body);
  }

  /** True while everything sent so far could be sent again. */
  get replayable(): boolean {
    return !this.committed && this.sentBytes <= this.replayLimit;
  }

  /** Sends the body on `stream` (an attempt), replaying what an earlier attempt sent. */
  attach(stream: Stream): void {
    this.stream = stream;
    this.sealTail();
    for (const chunk of this.sent) stream.write(chunk).catch(() => {});
    if (this.finished) stream.end().catch(() => {});
    this.wake();
    if (!this.running) {
      this.running = true;
      void this.run();
    }
  }

  /** The response head arrived: this attempt is final, nothing needs keeping. */
  commit(): void {
    this.committed = true;
    this.forget();
  }

  /** No more attempts: stop reading the public client's body. */
  abort(): void {
    this.aborted = true;
    this.forget();
    this.reader.cancel().catch(() => {});
    this.wake();
  }

  /**
   * Keeps a chunk for a replay. Chunks under KEEP_SMALL_BYTES are copied into one buffer of
   * KEEP_BUFFER_BYTES, so what is kept costs its bytes, not an object per chunk however finely
   * the client sliced the body.
   */
  private keep(chunk: Uint8Array): void {
    this.sentBytes += chunk.byteLength;
    if (chunk.byteLength >= KEEP_SMALL_BYTES) {
      this.sealTail();
      this.sent.push(chunk);
      return;
    }
    if (this.tail && this.tailBytes + chunk.byteLength > this.tail.byteLength) this.sealTail();
    this.tail ??= new Uint8Array(KEEP_BUFFER_BYTES);
    this.tail.set(chunk, this.tailBytes);
    this.tailBytes += chunk.byteLength;
  }

  /** Moves the small chunks kept so far into `sent`, in order. */
  private sealTail(): void {
    if (this.tail && this.tailBytes > 0) this.sent.push(this.tail.slice(0, this.tailBytes));
    this.tail = undefined;
    this.tailBytes = 0;
  }

  private forget(): void {
    this.sent = [];
    this.tail = undefined;
    this.tailBytes = 0;
  }

  private wake(): void {
    const next = this.nextAttempt;
    this.nextAttempt = undefined;
    next?.();
  }

  private async run(): Promise<void> {
    try {
      for (;;) {
        const { done, value } = await this.reader.read();
        if (this.aborted) return;
        if (done) {
          this.finished = true;
          return await this.onCurrent((s) => s.end());
        }
        if (!this.committed) {
          this.keep(value);
          if (this.sentBytes > this.replayLimit) this.forget();
        }
        await this.onCurrent((s) => s.write(value));
      }
    } catch (err) {
      if (!(err instanceof StreamReset)) this.stream?.reset(ErrorCode.Cancel, "the public client's request body broke off");
      if (!this.aborted) this.reader.cancel().catch(() => {});
    }
  }

  /**
   * Runs `op` on the current attempt's stream. When that stream dies and the body can still be
   * replayed, waits for the next attempt, whose attach() replays everything including this chunk.
   */
  private async onCurrent(op: (stream: Stream) => Promise<void>): Promise<void> {
    const stream = this.stream!;
    try {
      await op(stream);
    } catch (err) {
      if (!(err instanceof StreamReset) || !this.replayable) throw err;
      if (this.stream === stream) await new Promise<void>((resolve) => (this.nextAttempt = resolve));
      if (this.aborted) throw err;
    }
  }
}
