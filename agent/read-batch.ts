// Joins what a socket reads in one turn of the event loop into fewer, larger messages: every
// message on a public WebSocket costs the relay an event and a flow-control reply, whatever its size.
import { DEFAULT_MAX_FRAME, HEADER_BYTES } from "../src/protocol/frame.ts";

/**
 * Largest message a batch makes: one DATA frame at the tunnel's default maxFrame, four of which
 * with their headers fill one tunnel message (MAX_MESSAGE_BYTES). A message stream's message in
 * one frame keeps all its credit until it was handed on (src/protocol/messages.ts).
 */
export const READ_BATCH_BYTES = DEFAULT_MAX_FRAME - HEADER_BYTES;

/** Gathers socket reads until the end of the turn or `limit` bytes, then emits them as one buffer. */
export class ReadBatch {
  private parts: Buffer[] = [];
  private bytes = 0;
  private scheduled = false;
  private readonly onTurnEnd = () => {
    this.scheduled = false;
    this.flush();
  };

  constructor(
    private readonly emit: (data: Buffer) => void,
    private readonly limit: number = READ_BATCH_BYTES,
  ) {}

  /** Adds one read; emits every batch it fills, the rest at the end of this turn. */
  push(chunk: Buffer): void {
    let at = 0;
    while (chunk.byteLength - at >= this.limit - this.bytes) {
      const end = at + this.limit - this.bytes;
      this.add(chunk.subarray(at, end));
      at = end;
      this.flush();
    }
    if (at < chunk.byteLength) this.add(at === 0 ? chunk : chunk.subarray(at));
    if (this.bytes > 0 && !this.scheduled) {
      this.scheduled = true;
      setImmediate(this.onTurnEnd);
    }
  }

  /** Emits what waits now (before a FIN, which must follow the data). */
  flush(): void {
    if (this.bytes === 0) return;
    const data = this.parts.length === 1 ? this.parts[0] : Buffer.concat(this.parts, this.bytes);
    this.parts = [];
    this.bytes = 0;
    this.emit(data);
  }

  private add(part: Buffer): void {
    this.parts.push(part);
    this.bytes += part.byteLength;
  }
}
