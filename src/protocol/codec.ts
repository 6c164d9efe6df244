// The one codec of the tunnel protocol, shared by relay and agent: frames, header blocks,
// hello and error payloads to and from bytes. Pure: Uint8Array only, no runtime imports.
import { MAX_ACCESS_BYTES, PolicyError, validateScopes } from "../access/policy.ts";
import {
  ALLOWED_FLAGS,
  FrameType,
  HEADER_BYTES,
  MAX_HEADER_BLOCK,
  MAX_HELLO_BYTES,
  MAX_HELLO_LIST,
  MAX_HELLO_STRING,
  MAX_MAX_FRAME,
  MAX_WINDOW,
  MIN_MAX_FRAME,
  MIN_WINDOW,
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

/**
 * Encodes frames as the pieces of one message, for a transport that writes several buffers at
 * once (a gathered write): payloads of at least `copyBelow` bytes are handed out as they are,
 * everything else (frame headers, small payloads) is copied into shared pieces. `prefix` bytes
 * are reserved at the start of the first piece for the transport's own header (left zero).
 *
 * With `mergeUpTo`, a DATA frame that follows a flagless DATA frame of the same stream joins it,
 * up to that many payload bytes (the peer's maxFrame): one frame carries both payloads and the
 * later frame's flags, which the receiver reads as it would read the two. Only the header is
 * rewritten, the payloads are not copied, so the peer gets fewer, larger frames for nothing.
 * Joined, the pieces (after the prefix) are encodeFrames of the frames so merged.
 */
export function encodeFramePieces(frames: readonly Frame[], copyBelow: number, prefix = 0, mergeUpTo = 0): Uint8Array[] {
  // First which frames join the one before, so the shared buffer is exactly as long as needed.
  const joins = new Uint8Array(frames.length);
  let small = prefix;
  let open = false;
  let openStream = 0;
  let openFlags = 0;
  let openLength = 0;
  for (let i = 0; i < frames.length; i++) {
    const f = frames[i];
    const n = f.payload.byteLength;
    if (open && f.type === FrameType.Data && f.streamId === openStream && openFlags === 0 && openLength + n <= mergeUpTo) {
      joins[i] = 1;
      openFlags = f.flags;
      openLength += n;
    } else {
      small += HEADER_BYTES;
      open = f.type === FrameType.Data;
      openStream = f.streamId;
      openFlags = f.flags;
      openLength = n;
    }
    if (n < copyBelow) small += n;
  }
  const shared = new Uint8Array(small);
  const view = new DataView(shared.buffer);
  const pieces: Uint8Array[] = [];
  let start = 0;
  let at = prefix;
  /** Where the header of the frame being encoded is, for the frames that join it. */
  let header = 0;
  for (let i = 0; i < frames.length; i++) {
    const f = frames[i];
    const n = f.payload.byteLength;
    if (joins[i]) {
      view.setUint8(header + 1, f.flags);
      view.setUint32(header + 6, view.getUint32(header + 6) + n);
    } else {
      header = at;
      view.setUint8(at, f.type);
      view.setUint8(at + 1, f.flags);
      view.setUint32(at + 2, f.streamId);
      view.setUint32(at + 6, n);
      at += HEADER_BYTES;
    }
    if (n < copyBelow) {
      shared.set(f.payload, at);
      at += n;
    } else {
      pieces.push(shared.subarray(start, at), f.payload);
      start = at;
    }
  }
  if (at > start || pieces.length === 0) pieces.push(shared.subarray(start, at));
  return pieces;
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
  if (length > limit) {
    // A hello out of bounds is a bad hello (4400) however it is out of bounds.
    const code = type === FrameType.Hello ? TunnelClose.BadHello : TunnelClose.ProtocolError;
    throw new ProtocolError(`${FrameType[type]} payload of ${length} bytes exceeds ${limit}`, code);
  }
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

/** Writes `s` at `at` when it is all ASCII (one byte per char); false at its first other char. */
function putAscii(out: Uint8Array, at: number, s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c > 0x7f) return false;
    out[at + i] = c;
  }
  return true;
}

/**
 * Encodes a header block: u16 count, then (u16 name length, name, u32 value length, value).
 * Fields are nearly always ASCII: sized from the string lengths and copied char by char into
 * one buffer, with no array or encoder call per field (the relay encodes one block per
 * request). A field with any other char sends the block down the UTF-8 path.
 */
export function encodeHeaderBlock(fields: HeaderList): Uint8Array {
  let total = 2;
  for (let i = 0; i < fields.length; i++) total += 6 + fields[i][0].length + fields[i][1].length;
  const out = new Uint8Array(total);
  out[0] = fields.length >>> 8;
  out[1] = fields.length & 0xff;
  let at = 2;
  for (let i = 0; i < fields.length; i++) {
    const name = fields[i][0];
    const value = fields[i][1];
    out[at] = name.length >>> 8;
    out[at + 1] = name.length & 0xff;
    if (!putAscii(out, at + 2, name)) return encodeUtf8HeaderBlock(fields);
    at += 2 + name.length;
    out[at] = value.length >>> 24;
    out[at + 1] = (value.length >>> 16) & 0xff;
    out[at + 2] = (value.length >>> 8) & 0xff;
    out[at + 3] = value.length & 0xff;
    if (!putAscii(out, at + 4, value)) return encodeUtf8HeaderBlock(fields);
    at += 4 + value.length;
  }
  return out;
}

/** encodeHeaderBlock for fields that are not all ASCII. */
function encodeUtf8HeaderBlock(fields: HeaderList): Uint8Array {
  const texts = fields.map(([name, value]) => [utf8.encode(name), utf8.encode(value)]);
  let total = 2;
  for (const [name, value] of texts) total += 6 + name.byteLength + value.byteLength;
  const out = new Uint8Array(total);
  const view = new DataView(out.buffer);
  view.setUint16(0, fields.length);
  let at = 2;
  for (const [name, value] of texts) {
    view.setUint16(at, name.byteLength);
    out.set(name, at + 2);
    at += 2 + name.byteLength;
    view.setUint32(at, value.byteLength);
    out.set(value, at + 4);
    at += 4 + value.byteLength;
  }
  return out;
}

/** Throws unless `n` bytes from `at` lie inside the header block. */
function need(bytes: Uint8Array, at: number, n: number): void {
  if (at + n > bytes.byteLength) throw new ProtocolError("header block is truncated");
}

/** Blocks up to this size are read as one string first (String.fromCharCode takes each byte as an argument). */
const ONE_STRING_BYTES = 4096;

/**
 * The text of `bytes[start, end)` of a header block: cut out of `whole` (the block as one string
 * of its bytes) when ASCII, else decoded as strict UTF-8. A function of its own, not a closure
 * made per block.
 */
function fieldText(bytes: Uint8Array, whole: string | undefined, start: number, end: number): string {
  if (whole !== undefined) {
    let ascii = true;
    for (let i = start; i < end && ascii; i++) ascii = bytes[i] <= 0x7f;
    if (ascii) return whole.substring(start, end);
  }
  try {
    return fromUtf8.decode(bytes.subarray(start, end));
  } catch {
    throw new ProtocolError("header block holds invalid UTF-8");
  }
}

/**
 * Calls `visit(name, value)` for each field of a header block, in order; throws ProtocolError
 * when the block is malformed. An ASCII field is cut out of one string made of the whole block,
 * with no view, array or decoder call per field (the relay reads a block per response); any
 * other is decoded as strict UTF-8.
 */
export function forEachField(bytes: Uint8Array, visit: (name: string, value: string) => void): void {
  need(bytes, 0, 2);
  const count = (bytes[0] << 8) | bytes[1];
  const whole = bytes.byteLength <= ONE_STRING_BYTES ? String.fromCharCode.apply(null, bytes as unknown as number[]) : undefined;
  let at = 2;
  for (let i = 0; i < count; i++) {
    need(bytes, at, 2);
    const nameLen = (bytes[at] << 8) | bytes[at + 1];
    need(bytes, at + 2, nameLen + 4);
    const name = fieldText(bytes, whole, at + 2, at + 2 + nameLen);
    at += 2 + nameLen;
    const valueLen = ((bytes[at] << 24) | (bytes[at + 1] << 16) | (bytes[at + 2] << 8) | bytes[at + 3]) >>> 0;
    need(bytes, at + 4, valueLen);
    const value = fieldText(bytes, whole, at + 4, at + 4 + valueLen);
    at += 4 + valueLen;
    visit(name, value);
  }
  if (at !== bytes.byteLength) throw new ProtocolError(`header block has ${bytes.byteLength - at} trailing bytes`);
}

/** Decodes a header block; throws ProtocolError when it is malformed. */
export function decodeHeaderBlock(bytes: Uint8Array): HeaderList {
  const fields: HeaderList = [];
  forEachField(bytes, (name, value) => fields.push([name, value]));
  return fields;
}

/** Encodes a HELLO payload. */
export function encodeHello(hello: Hello): Uint8Array {
  return utf8.encode(JSON.stringify(hello));
}

/** A hello field out of its bounds: the tunnel closes with 4400 and a reason naming the field. */
function badHello(reason: string): ProtocolError {
  return new ProtocolError(`hello ${reason}`, TunnelClose.BadHello);
}

/** Checks an integer hello field against [min, max] (README "Hello"). */
function checkRange(name: string, n: number, min: number, max: number): void {
  if (n < min || n > max) throw badHello(`${name} ${n} is outside ${min}..${max}`);
}

/** Checks a string list of a hello: at most MAX_HELLO_LIST strings of at most MAX_HELLO_STRING chars. */
function checkList(name: string, list: unknown): void {
  if (!Array.isArray(list) || !list.every((c) => typeof c === "string")) throw badHello(`${name} is not a list of strings`);
  if (list.length > MAX_HELLO_LIST) throw badHello(`${name} has ${list.length} entries (at most ${MAX_HELLO_LIST})`);
  if (list.some((c: string) => c.length > MAX_HELLO_STRING)) throw badHello(`${name} holds a string over ${MAX_HELLO_STRING} chars`);
}

/**
 * Decodes and validates a HELLO payload; unknown fields are kept. Wrong types and values out of
 * the bounds of README "Hello" (list and string lengths, window, maxFrame, then payload size) are
 * a ProtocolError with close code 4400 whose message names the field. The payload was already
 * bounded by the frame decoder's limit, so parsing an oversized one first costs little.
 */
export function decodeHello(bytes: Uint8Array): Hello {
  let value: unknown;
  try {
    value = JSON.parse(fromUtf8.decode(bytes));
  } catch {
    throw new ProtocolError("hello is not UTF-8 JSON", TunnelClose.BadHello);
  }
  const h = value as Partial<Hello> | null;
  const integer = (n: unknown) => typeof n === "number" && Number.isInteger(n);
  if (
    !h ||
    typeof h !== "object" ||
    typeof h.v !== "number" ||
    typeof h.software !== "string" ||
    typeof h.id !== "string" ||
    !Array.isArray(h.caps) ||
    !integer(h.window) ||
    !integer(h.maxFrame)
  ) {
    throw new ProtocolError("hello lacks v, software, id, caps, window or maxFrame", TunnelClose.BadHello);
  }
  for (const name of ["software", "id"] as const) {
    if (h[name]!.length > MAX_HELLO_STRING) throw badHello(`${name} is over ${MAX_HELLO_STRING} chars`);
  }
  checkList("caps", h.caps);
  if (h.targetProtocols !== undefined) checkList("targetProtocols", h.targetProtocols);
  checkRange("window", h.window!, MIN_WINDOW, MAX_WINDOW);
  checkRange("maxFrame", h.maxFrame!, MIN_MAX_FRAME, MAX_MAX_FRAME);
  let accessBytes = 0;
  if (h.access !== undefined) {
    accessBytes = utf8Length(JSON.stringify(h.access));
    if (accessBytes > MAX_ACCESS_BYTES) throw badHello(`access of ${accessBytes} bytes exceeds ${MAX_ACCESS_BYTES}`);
    try {
      h.access = validateScopes(h.access);
    } catch (err) {
      if (err instanceof PolicyError) throw badHello(`${err.path} ${err.problem}`.slice(0, 200));
      throw err;
    }
  }
  // Checked last, so that a hello made large by one field (5,000 caps) is refused naming it.
  if (bytes.byteLength - accessBytes > MAX_HELLO_BYTES) throw badHello(`of ${bytes.byteLength} bytes exceeds ${MAX_HELLO_BYTES}`);
  return h as Hello;
}

/** The exact size in bytes of the header block encodeHeaderBlock builds for `fields`. */
export function headerBlockSize(fields: HeaderList): number {
  let bytes = 2;
  for (const [name, value] of fields) bytes += 6 + utf8Length(name) + utf8Length(value);
  return bytes;
}

/** Bytes of `s` as UTF-8, a lone surrogate counting as U+FFFD (as TextEncoder writes it). */
function utf8Length(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c <= 0x7f) n += 1;
    else if (c <= 0x7ff) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length && (s.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      n += 4;
      i++;
    } else n += 3;
  }
  return n;
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
