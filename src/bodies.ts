// Bodies between the runtime's web streams and tunnel streams, both directions under
// credit: the relay never holds more than a window per stream (PLATFORM-NOTES: no backpressure).
import { ErrorCode } from "./protocol/frame.ts";
import { StreamReset, type Stream } from "./protocol/session.ts";

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
    const length = contentLength && /^\d{1,15}$/.test(contentLength) ? Number(contentLength) : undefined;
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

/** Sends a public request body up a tunnel stream, as fast as the agent's credit allows. */
export async function pumpBody(body: ReadableStream<Uint8Array>, stream: Stream): Promise<void> {
  const reader = body.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      await stream.write(value);
    }
    await stream.end();
  } catch (err) {
    if (!(err instanceof StreamReset)) stream.reset(ErrorCode.Cancel, "the public client's request body broke off");
    reader.cancel().catch(() => {});
  }
}
