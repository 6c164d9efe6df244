// The one codec of the tunnel protocol, shared by relay and agent: frames, header blocks,
// hello and error payloads to and from bytes. Pure: Uint8Array only, no runtime imports.
import {
  ALLOWED_FLAGS,
  FrameType,
  HEADER_BYTES,
  MAX_HEADER_BLOCK,
  ProtocolError,
  TunnelClose,
  type Frame,
  type HeaderList,
  type Hello,
} from "./frame.ts";

const utf8 = new TextEncoder();
const fromUtf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** Types whose frames belong to the whole tunnel (stream id 0). */
const SESSION_TYPES = new Set<number>([FrameType.Hello, FrameType.Ping, FrameType.GoAway]);

/** Encodes frames back to back into one buffer (one WebSocket message). */
export function encodeFrames(frames: readonly Frame[]): Uint8Array {
  let total = 0;
  for (const f of frames) total += HEADER_BYTES + f.payload.byteLength;
  const out = new Uint8Array(total);
  const view = new DataView(out.buffer);
  let at = 0;
  for (const f of frames) {
    view.setUint8(at, f.type);
    view.setUint8(at + 1, f.flags);
    view.setUint32(at + 2, f.streamId);
    view.setUint32(at + 6, f.payload.byteLength);
    out.set(f.payload, at + HEADER_BYTES);
    at += HEADER_BYTES + f.payload.byteLength;
  }
  return out;
}

/** Encodes one frame. */
export function encodeFrame(frame: Frame): Uint8Array {
  return encodeFrames([frame]);
}

/** Checks a frame header against the spec; throws ProtocolError. */
function checkHeader(type: number, flags: number, streamId: number, length: number, maxPayload: number): void {
  if (!(type in ALLOWED_FLAGS)) throw new ProtocolError(`unknown frame type 0x${type.toString(16)}`);
  const allowed = ALLOWED_FLAGS[type as FrameType];
  if ((flags & ~allowed) !== 0) {
    throw new ProtocolError(`flags 0x${flags.toString(16)} are not allowed on ${FrameType[type]}`);
  }
  if (SESSION_TYPES.has(type) !== (streamId === 0)) {
    throw new ProtocolError(`${FrameType[type]} on stream ${streamId}`);
  }
  const limit = type === FrameType.Headers ? MAX_HEADER_BLOCK : maxPayload;
  if (length > limit) throw new ProtocolError(`${FrameType[type]} payload of ${length} bytes exceeds ${limit}`);
  const exact = type === FrameType.WindowUpdate ? 4 : type === FrameType.Ping ? 8 : -1;
  if (exact >= 0 && length !== exact) throw new ProtocolError(`${FrameType[type]} payload must be ${exact} bytes, not ${length}`);
  if ((type === FrameType.RstStream || type === FrameType.GoAway) && length < 4) {
    throw new ProtocolError(`${FrameType[type]} payload must hold a 4-byte error code`);
  }
  if (type === FrameType.Close && length < 2) throw new ProtocolError("CLOSE payload must hold a 2-byte close code");
}

/**
 * Incremental decoder for a byte stream of frames: push bytes as they arrive, get whole frames.
 * Payloads are views into the pushed bytes when a frame arrived in one piece.
 */
export class FrameDecoder {
  private pending: Uint8Array = new Uint8Array(0);

  /** `maxPayload` bounds DATA and session frames; HEADERS are bounded by MAX_HEADER_BLOCK. */
  constructor(private readonly maxPayload: number = MAX_HEADER_BLOCK) {}

  /** Bytes held back waiting for the rest of a frame. */
  get buffered(): number {
    return this.pending.byteLength;
  }

  /** Feeds bytes; returns every frame they complete. Throws ProtocolError on a bad frame. */
  push(bytes: Uint8Array): Frame[] {
    let buf = bytes;
    if (this.pending.byteLength > 0) {
      buf = new Uint8Array(this.pending.byteLength + bytes.byteLength);
      buf.set(this.pending);
      buf.set(bytes, this.pending.byteLength);
    }
    const frames: Frame[] = [];
    const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    let at = 0;
    while (buf.byteLength - at >= HEADER_BYTES) {
      const type = view.getUint8(at);
      const flags = view.getUint8(at + 1);
      const streamId = view.getUint32(at + 2);
      const length = view.getUint32(at + 6);
      checkHeader(type, flags, streamId, length, this.maxPayload);
      if (buf.byteLength - at - HEADER_BYTES < length) break;
      const start = at + HEADER_BYTES;
      frames.push({ type, flags, streamId, payload: buf.subarray(start, start + length) });
      at = start + length;
    }
    this.pending = at === buf.byteLength ? new Uint8Array(0) : buf.slice(at);
    return frames;
  }
}

/** Decodes one WebSocket message, which must hold whole frames only. */
export function decodeMessage(message: Uint8Array, maxPayload: number = MAX_HEADER_BLOCK): Frame[] {
  const decoder = new FrameDecoder(maxPayload);
  const frames = decoder.push(message);
  if (decoder.buffered > 0) throw new ProtocolError(`message ends inside a frame (${decoder.buffered} bytes left over)`);
  return frames;
}

/** The UTF-8 length of `s` when it is all ASCII (one byte per char), else -1. */
function asciiLength(s: string): number {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) > 0x7f) return -1;
  return s.length;
}

/** Writes `s` at `at`: ASCII char by char, anything else as its UTF-8 `bytes`. */
function putText(out: Uint8Array, at: number, s: string, bytes: Uint8Array | undefined): void {
  if (bytes) return out.set(bytes, at);
  for (let i = 0; i < s.length; i++) out[at + i] = s.charCodeAt(i);
}

/**
 * Encodes a header block: u16 count, then (u16 name length, name, u32 value length, value).
 * Fields are nearly always ASCII and are copied char by char: a TextEncoder call per name and
 * value was the largest share of the relay's per-request time (`npm run bench`).
 */
export function encodeHeaderBlock(fields: HeaderList): Uint8Array {
  const utf8Bytes: Array<Uint8Array | undefined> = [];
  const lengths: number[] = [];
  let total = 2;
  for (const [name, value] of fields) {
    for (const text of [name, value]) {
      let n = asciiLength(text);
      let bytes: Uint8Array | undefined;
      if (n < 0) {
        bytes = utf8.encode(text);
        n = bytes.byteLength;
      }
      utf8Bytes.push(bytes);
      lengths.push(n);
      total += n;
    }
    total += 6;
  }
  const out = new Uint8Array(total);
  const view = new DataView(out.buffer);
  view.setUint16(0, fields.length);
  let at = 2;
  for (let i = 0; i < fields.length; i++) {
    const [name, value] = fields[i];
    const nameLen = lengths[2 * i];
    const valueLen = lengths[2 * i + 1];
    view.setUint16(at, nameLen);
    putText(out, at + 2, name, utf8Bytes[2 * i]);
    at += 2 + nameLen;
    view.setUint32(at, valueLen);
    putText(out, at + 4, value, utf8Bytes[2 * i + 1]);
    at += 4 + valueLen;
  }
  return out;
}

/** Throws unless `n` bytes from `at` lie inside the header block. */
function need(bytes: Uint8Array, at: number, n: number): void {
  if (at + n > bytes.byteLength) throw new ProtocolError("header block is truncated");
}

/** Decodes UTF-8 bytes strictly; short ASCII runs without a TextDecoder call. */
function decodeText(bytes: Uint8Array, start: number, end: number): string {
  if (end - start <= 1024) {
    let ascii = true;
    for (let i = start; i < end; i++) {
      if (bytes[i] > 0x7f) {
        ascii = false;
        break;
      }
    }
    if (ascii) return String.fromCharCode.apply(null, bytes.subarray(start, end) as unknown as number[]);
  }
  return fromUtf8.decode(bytes.subarray(start, end));
}

/** Decodes a header block; throws ProtocolError when it is malformed. */
export function decodeHeaderBlock(bytes: Uint8Array): HeaderList {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  need(bytes, 0, 2);
  const count = view.getUint16(0);
  const fields: HeaderList = [];
  let at = 2;
  try {
    for (let i = 0; i < count; i++) {
      need(bytes, at, 2);
      const nameLen = view.getUint16(at);
      need(bytes, at + 2, nameLen + 4);
      const name = decodeText(bytes, at + 2, at + 2 + nameLen);
      at += 2 + nameLen;
      const valueLen = view.getUint32(at);
      need(bytes, at + 4, valueLen);
      const value = decodeText(bytes, at + 4, at + 4 + valueLen);
      at += 4 + valueLen;
      fields.push([name, value]);
    }
  } catch (err) {
    if (err instanceof ProtocolError) throw err;
    throw new ProtocolError("header block holds invalid UTF-8");
  }
  if (at !== bytes.byteLength) throw new ProtocolError(`header block has ${bytes.byteLength - at} trailing bytes`);
  return fields;
}

/** Encodes a HELLO payload. */
export function encodeHello(hello: Hello): Uint8Array {
  return utf8.encode(JSON.stringify(hello));
}

/** Decodes and validates a HELLO payload; unknown fields are kept, wrong types are errors. */
export function decodeHello(bytes: Uint8Array): Hello {
  let value: unknown;
  try {
    value = JSON.parse(fromUtf8.decode(bytes));
  } catch {
    throw new ProtocolError("hello is not UTF-8 JSON", TunnelClose.BadHello);
  }
  const h = value as Partial<Hello> | null;
  const positive = (n: unknown) => typeof n === "number" && Number.isInteger(n) && n > 0 && n <= 0x7fffffff;
  if (
    !h ||
    typeof h !== "object" ||
    typeof h.v !== "number" ||
    typeof h.software !== "string" ||
    typeof h.id !== "string" ||
    !Array.isArray(h.caps) ||
    !h.caps.every((c) => typeof c === "string") ||
    !positive(h.window) ||
    !positive(h.maxFrame)
  ) {
    throw new ProtocolError("hello lacks v, software, id, caps, window or maxFrame", TunnelClose.BadHello);
  }
  return h as Hello;
}

/** Encodes the payload of RST_STREAM and GOAWAY: u32 code, then a UTF-8 message. */
export function encodeError(code: number, message = ""): Uint8Array {
  const text = utf8.encode(message);
  const out = new Uint8Array(4 + text.byteLength);
  new DataView(out.buffer).setUint32(0, code);
  out.set(text, 4);
  return out;
}

/** Decodes the payload of RST_STREAM and GOAWAY. Invalid UTF-8 in the message is replaced. */
export function decodeError(bytes: Uint8Array): { code: number; message: string } {
  const code = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(0);
  return { code, message: new TextDecoder().decode(bytes.subarray(4)) };
}

/** Encodes a u32 (the WINDOW_UPDATE payload). */
export function encodeU32(n: number): Uint8Array {
  const out = new Uint8Array(4);
  new DataView(out.buffer).setUint32(0, n);
  return out;
}

/** Decodes a u32 (the WINDOW_UPDATE payload). */
export function decodeU32(bytes: Uint8Array): number {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(0);
}

/** Encodes the CLOSE payload: u16 WebSocket close code, then a UTF-8 reason. */
export function encodeClose(code: number, reason = ""): Uint8Array {
  const text = utf8.encode(reason);
  const out = new Uint8Array(2 + text.byteLength);
  new DataView(out.buffer).setUint16(0, code);
  out.set(text, 2);
  return out;
}

/** Decodes the CLOSE payload. Invalid UTF-8 in the reason is replaced. */
export function decodeClose(bytes: Uint8Array): { code: number; reason: string } {
  const code = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint16(0);
  return { code, reason: new TextDecoder().decode(bytes.subarray(2)) };
}
