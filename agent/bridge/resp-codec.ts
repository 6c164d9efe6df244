// RESP2, the Redis serialization protocol: commands as arrays of bulk strings, and a reply decoder
// that works on partial input (https://redis.io/docs/latest/develop/reference/protocol-spec/).
// Pure: Uint8Array only.
import { concat } from "../../src/protocol/messages.ts";

/** An error reply (`-ERR ...`, `-WRONGTYPE ...`): a value, not a thrown error. */
export class RespErrorReply {
  constructor(readonly message: string) {}
}

/**
 * A decoded reply: simple strings as string, errors as RespErrorReply, integers as number (bigint
 * beyond 2^53), bulk strings as bytes, the null bulk string and null array as null, arrays as arrays.
 */
export type RespReply = string | RespErrorReply | number | bigint | Uint8Array | null | RespReply[];

/** The server's bytes are not RESP2. */
export class RespProtocolError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "RespProtocolError";
  }
}

/** Largest bulk string accepted (Redis's proto-max-bulk-len default). */
export const MAX_BULK = 512 * 1024 * 1024;
/** Longest line (simple string, error, integer, length) accepted. */
export const MAX_LINE = 1024 * 1024;
/** Deepest nesting of arrays accepted. */
export const MAX_DEPTH = 64;

const CR = 13;
const LF = 10;
const utf8 = new TextEncoder();
const text = new TextDecoder();
const INTEGER = /^-?\d{1,19}$/;
const RESP3 = "_,#=(!%~|>";

/** Encodes one command as RESP2: an array of bulk strings (strings as UTF-8). */
export function encodeCommand(args: ReadonlyArray<string | Uint8Array>): Uint8Array {
  const parts: Uint8Array[] = [utf8.encode(`*${args.length}\r\n`)];
  for (const arg of args) {
    const bytes = typeof arg === "string" ? utf8.encode(arg) : arg;
    parts.push(utf8.encode(`$${bytes.byteLength}\r\n`), bytes, utf8.encode("\r\n"));
  }
  return concat(parts);
}

/**
 * Decodes the reply starting at `offset`: the value and where it ends, or, when the bytes stop
 * before it does, `need`: a length `bytes` must reach before trying again. Throws RespProtocolError.
 */
export function decodeReply(bytes: Uint8Array, offset = 0): { value: RespReply; end: number } | { need: number } {
  return parse(bytes, offset, 0);
}

function parse(bytes: Uint8Array, at: number, depth: number): { value: RespReply; end: number } | { need: number } {
  if (at >= bytes.byteLength) return { need: at + 1 };
  const type = String.fromCharCode(bytes[at]);
  if (!"+-:$*".includes(type)) {
    if (RESP3.includes(type))
      throw new RespProtocolError(`the server sent a RESP3 reply (type ${JSON.stringify(type)}); only RESP2 is supported`);
    throw new RespProtocolError(`byte 0x${bytes[at].toString(16).padStart(2, "0")} cannot start a RESP2 reply`);
  }
  const line = readLine(bytes, at + 1);
  if (!line) return { need: bytes.byteLength + 1 };
  const { next } = line;
  switch (type) {
    case "+":
      return { value: line.text, end: next };
    case "-":
      return { value: new RespErrorReply(line.text), end: next };
    case ":":
      return { value: integer(line.text, "integer"), end: next };
    case "$": {
      const length = length_(line.text, "bulk string", MAX_BULK);
      if (length < 0) return { value: null, end: next };
      const end = next + length + 2;
      if (bytes.byteLength < end) return { need: end };
      if (bytes[end - 2] !== CR || bytes[end - 1] !== LF) throw new RespProtocolError("a bulk string is not followed by CRLF");
      return { value: bytes.slice(next, next + length), end };
    }
    default: {
      const count = length_(line.text, "array", Number.MAX_SAFE_INTEGER);
      if (count < 0) return { value: null, end: next };
      if (depth >= MAX_DEPTH) throw new RespProtocolError(`arrays are nested more than ${MAX_DEPTH} deep`);
      const items: RespReply[] = [];
      let pos = next;
      for (let i = 0; i < count; i++) {
        const item = parse(bytes, pos, depth + 1);
        if ("need" in item) return item;
        items.push(item.value);
        pos = item.end;
      }
      return { value: items, end: pos };
    }
  }
}

/** The line after a type byte, without its CRLF; undefined while incomplete. */
function readLine(bytes: Uint8Array, from: number): { text: string; next: number } | undefined {
  const lf = bytes.indexOf(LF, from);
  if (lf < 0) {
    if (bytes.byteLength - from > MAX_LINE) throw new RespProtocolError(`a line is longer than ${MAX_LINE} bytes`);
    return undefined;
  }
  if (lf === from || bytes[lf - 1] !== CR) throw new RespProtocolError("a line ends in LF without CR");
  const body = bytes.subarray(from, lf - 1);
  if (body.includes(CR)) throw new RespProtocolError("a line holds a CR");
  return { text: text.decode(body), next: lf + 1 };
}

function integer(line: string, what: string): number | bigint {
  if (!INTEGER.test(line)) throw new RespProtocolError(`${JSON.stringify(line)} is not a valid ${what}`);
  const big = BigInt(line);
  if (big > 0x7fffffffffffffffn || big < -0x8000000000000000n) throw new RespProtocolError(`${line} does not fit a 64-bit ${what}`);
  return Number.isSafeInteger(Number(line)) ? Number(line) : big;
}

function length_(line: string, what: string, max: number): number {
  const n = integer(line, `${what} length`);
  if (n === -1) return -1;
  if (typeof n === "bigint" || n < 0 || n > max) throw new RespProtocolError(`${line} is not a valid ${what} length`);
  return n;
}

/** Gathers a server's bytes and hands out each reply once it is whole. */
export class RespDecoder {
  private chunks: Uint8Array[] = [];
  private size = 0;
  /** Bytes needed before parsing again (so a large bulk string is concatenated once). */
  private need = 1;

  /** Bytes held for an incomplete reply. */
  get pending(): number {
    return this.size;
  }

  /** Adds bytes; returns the replies they complete, in order. Throws RespProtocolError. */
  push(chunk: Uint8Array): RespReply[] {
    if (chunk.byteLength > 0) {
      this.chunks.push(chunk);
      this.size += chunk.byteLength;
    }
    if (this.size < this.need) return [];
    const owned = this.chunks.length > 1;
    const bytes = owned ? concat(this.chunks) : this.chunks[0];
    const replies: RespReply[] = [];
    let at = 0;
    this.need = 1;
    while (at < bytes.byteLength) {
      const reply = decodeReply(bytes, at);
      if ("need" in reply) {
        this.need = reply.need - at;
        break;
      }
      replies.push(reply.value);
      at = reply.end;
    }
    // Keep the rest; copy it when it is part of the caller's chunk, which they may reuse.
    const rest = owned ? bytes.subarray(at) : bytes.slice(at);
    this.chunks = rest.byteLength > 0 ? [rest] : [];
    this.size = rest.byteLength;
    return replies;
  }
}
