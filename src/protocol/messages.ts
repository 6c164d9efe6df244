// Message streams: reassembles WebSocket messages from DATA fragments (EOM/TEXT flags) and
// names the close codes each runtime may send. Pure, shared by relay and agent.
import { ErrorCode, Flag, MAX_WS_MESSAGE } from "./frame.ts";
import type { Stream } from "./session.ts";

/** One whole WebSocket message. */
export interface Message {
  data: Uint8Array;
  text: boolean;
}

/** Joins byte arrays into one (`total` when the caller already knows the length). */
export function concat(parts: readonly Uint8Array[], total = parts.reduce((n, p) => n + p.byteLength, 0)): Uint8Array {
  const out = new Uint8Array(total);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.byteLength;
  }
  return out;
}

/** Collects DATA fragments until EOM; refuses messages over `limit` bytes. */
export class MessageAssembler {
  private parts: Uint8Array[] = [];
  private bytes = 0;

  constructor(private readonly limit: number = MAX_WS_MESSAGE) {}

  /** Bytes held for the message being assembled. */
  get pending(): number {
    return this.bytes;
  }

  /**
   * Adds a fragment. Returns the message when `flags` has EOM, else undefined. Throws
   * MessageTooBig when the message grows past the limit.
   */
  push(chunk: Uint8Array, flags: number): Message | undefined {
    this.bytes += chunk.byteLength;
    if (this.bytes > this.limit) {
      this.parts = [];
      this.bytes = 0;
      throw new MessageTooBig(this.limit);
    }
    if (chunk.byteLength > 0) this.parts.push(chunk);
    if (!(flags & Flag.EOM)) return undefined;
    const data = this.parts.length === 1 ? this.parts[0] : concat(this.parts, this.bytes);
    this.parts = [];
    this.bytes = 0;
    return { data, text: (flags & Flag.TEXT) !== 0 };
  }
}

/** A message over the limit: close with 1009. */
export class MessageTooBig extends Error {
  readonly closeCode = 1009;
  constructor(limit: number) {
    super(`message exceeds ${limit} bytes`);
    this.name = "MessageTooBig";
  }
}

/**
 * Receives a message stream: reassembles messages, returns each fragment's credit while a message
 * is assembled (a message may be larger than the window), and the last fragment's once `deliver`
 * calls `handedOn`. A message over the limit resets the stream and calls `tooBig`.
 */
export function receiveMessages(
  stream: Stream,
  deliver: (message: Message, handedOn: () => void) => void,
  tooBig: (error: MessageTooBig) => void,
): void {
  const assembler = new MessageAssembler();
  stream.handle({
    onData: (chunk, flags) => {
      let message: Message | undefined;
      try {
        message = assembler.push(chunk, flags);
      } catch (err) {
        if (!(err instanceof MessageTooBig)) throw err;
        stream.reset(ErrorCode.MessageTooBig, err.message);
        return tooBig(err);
      }
      if (!message) return stream.consumed(chunk.byteLength);
      deliver(message, () => stream.consumed(chunk.byteLength, true));
    },
  });
}

/**
 * The close code to send on a WebSocket for one received in CLOSE. 1005 (no code) becomes
 * `undefined` (close without a code); codes no endpoint may send (1006, 1015, out of range)
 * become 1011 for a drop or 1000.
 */
export function sendableClose(code: number): number | undefined {
  if (code === 1005) return undefined;
  if (code === 1000 || (code >= 1001 && code <= 1003) || (code >= 1007 && code <= 1014) || (code >= 3000 && code <= 4999)) return code;
  return code === 1006 || code === 1015 ? 1011 : 1000;
}

/** WebSocket close reasons are at most 123 bytes of UTF-8. */
export function closeReason(reason: string): string {
  const bytes = new TextEncoder().encode(reason);
  if (bytes.byteLength <= 123) return reason;
  return new TextDecoder().decode(bytes.subarray(0, 120)).replace(/\uFFFD$/, "");
}
