// Bodies between the runtime's web streams and tunnel streams, both directions under
// credit: the relay never holds more than a window per stream (PLATFORM-NOTES: no backpressure).
import { ErrorCode } from "./protocol/frame.ts";
import { StreamReset, type Stream } from "./protocol/session.ts";

/**
 * A response body fed by a tunnel stream. Credit goes back to the agent only as the runtime
 * pulls bytes for the public client, so a client that stops reading stops the agent.
 */
export class TunnelBody {
  private queue: Uint8Array[] = [];
  private done = false;
  private failure?: Error;
  private wake?: () => void;
  readonly readable: ReadableStream<Uint8Array>;

  constructor(private readonly stream: Stream) {
    this.readable = new ReadableStream<Uint8Array>(
      {
        pull: (controller) => this.pull(controller),
        cancel: () => stream.reset(ErrorCode.Cancel, "the public client went away"),
      },
      { highWaterMark: 0 },
    );
  }

  push(chunk: Uint8Array): void {
    this.queue.push(chunk);
    this.notify();
  }

  end(): void {
    this.done = true;
    this.notify();
  }

  fail(error: Error): void {
    this.failure = error;
    this.notify();
  }

  private notify(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }

  private async pull(controller: ReadableStreamDefaultController<Uint8Array>): Promise<void> {
    for (;;) {
      if (this.queue.length > 0) {
        let bytes = 0;
        for (const chunk of this.queue) {
          controller.enqueue(chunk);
          bytes += chunk.byteLength;
        }
        this.queue = [];
        this.stream.consumed(bytes);
        return;
      }
      if (this.failure) return controller.error(this.failure);
      if (this.done) return controller.close();
      await new Promise<void>((resolve) => (this.wake = resolve));
    }
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
