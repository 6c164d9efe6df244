// Masks the agent's client WebSocket frames a 32-bit word at a time. Without the optional native
// `bufferutil` package, `ws` masks every byte a client sends in a byte-by-byte JavaScript loop.
import { randomFillSync } from "node:crypto";
import { createRequire } from "node:module";
import * as ws from "ws";

/** Frames at least this large are masked here; smaller ones, text and anything unusual by `ws`. */
const FAST_MASK_MIN = 1024;

/** Random bytes for mask keys, refilled when used up (as `ws` keeps its own pool). */
const pool = Buffer.alloc(8 * 1024);
let poolAt = pool.byteLength;

const key = new Uint8Array(4);
const keyWord = new Uint32Array(key.buffer);

/** XORs `length` bytes of `buf` from `start` with the 4-byte `mask` (RFC 6455 5.3), words where aligned. */
export function xorMask(buf: Buffer, start: number, length: number, mask: ArrayLike<number>): void {
  const base = buf.byteOffset + start;
  let i = 0;
  const lead = Math.min(length, (4 - (base & 3)) & 3);
  for (; i < lead; i++) buf[start + i] ^= mask[i & 3];
  const words = (length - i) >>> 2;
  if (words > 0) {
    // The key as it lines up with the first aligned word, in the platform's byte order.
    for (let k = 0; k < 4; k++) key[k] = mask[(i + k) & 3];
    const w = keyWord[0];
    const view = new Uint32Array(buf.buffer, base + i, words);
    for (let j = 0; j < words; j++) view[j] ^= w;
    i += words * 4;
  }
  for (; i < length; i++) buf[start + i] ^= mask[i & 3];
}

/** Buffers nobody reads after sending them: their frames are masked in place, not copied. */
const disposable = new WeakSet<ArrayBufferLike>();

/**
 * Sends `data` as one binary message and gives its memory up: the frame masks it in place instead
 * of masking a copy. `data` must span its whole ArrayBuffer and nothing may read it afterwards.
 */
export function sendDisposable(socket: { send(data: Uint8Array): void }, data: Uint8Array): void {
  if (data.byteOffset === 0 && data.byteLength === data.buffer.byteLength) disposable.add(data.buffer);
  socket.send(data);
}

interface FrameOptions {
  fin?: boolean;
  opcode: number;
  rsv1?: boolean;
  mask?: boolean;
  generateMask?: unknown;
}

type Frame = (data: Buffer | string, options: FrameOptions) => Buffer[];

/**
 * Builds one masked binary frame whole: header, key, and the payload copied and masked (what `ws`
 * does for data it must not change). Anything else goes to `original`.
 */
function frameWith(original: Frame): Frame {
  return function frame(this: unknown, data, options) {
    if (!options.mask || options.generateMask || typeof data === "string" || !Buffer.isBuffer(data) || data.length < FAST_MASK_MIN) {
      return original.call(this, data, options);
    }
    const length = data.length;
    const offset = length >= 65536 ? 14 : length > 125 ? 8 : 6;
    const inPlace = data.byteOffset === 0 && disposable.has(data.buffer);
    const target = Buffer.allocUnsafe(inPlace ? offset : offset + length);
    target[0] = (options.fin ? 0x80 : 0) | options.opcode | (options.rsv1 ? 0x40 : 0);
    if (length >= 65536) {
      target[1] = 0x80 | 127;
      target[2] = target[3] = 0;
      target.writeUIntBE(length, 4, 6);
    } else if (length > 125) {
      target[1] = 0x80 | 126;
      target.writeUInt16BE(length, 2);
    } else {
      target[1] = 0x80 | length;
    }
    if (poolAt === pool.byteLength) {
      randomFillSync(pool);
      poolAt = 0;
    }
    const mask = pool.subarray(poolAt, poolAt + 4);
    poolAt += 4;
    mask.copy(target, offset - 4);
    if (inPlace) {
      xorMask(data, 0, length, mask);
      return [target, data];
    }
    data.copy(target, offset);
    xorMask(target, offset, length, mask);
    return [target];
  };
}

/** Whether `ws` found the native `bufferutil` (it then masks natively and needs no help). */
function hasBufferUtil(): boolean {
  try {
    createRequire(import.meta.url).resolve("bufferutil");
    return true;
  } catch {
    return false;
  }
}

if (!hasBufferUtil()) {
  // `Sender` is exported by ws (wrapper.mjs) but not declared by @types/ws.
  const sender = (ws as unknown as { Sender: { frame: Frame } }).Sender;
  sender.frame = frameWith(sender.frame);
}
