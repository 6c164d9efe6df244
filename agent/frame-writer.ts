// Writes a tunnel message straight to the tunnel's socket as one WebSocket binary frame, its large
// DATA payloads as they came from the target (a gathered write), instead of joining them first.
import type { Socket } from "node:net";
import { encodeFramePieces } from "../src/protocol/codec.ts";
import type { Frame } from "../src/protocol/frame.ts";

/**
 * Payloads from this size on are written as they are; smaller ones (and every frame header) are
 * copied together, so a message of many small frames is still one buffer.
 */
export const GATHER_FROM_BYTES = 16 * 1024;

/** Size of a client's WebSocket frame header for a payload of `length` bytes (RFC 6455 5.2). */
export function wsHeaderBytes(length: number): number {
  return length < 126 ? 6 : length < 65536 ? 8 : 14;
}

/**
 * Writes the header of a final, binary, client-to-server WebSocket frame of `length` bytes into
 * `into` at 0, with an all-zero masking key: masking with it leaves the payload as it is, so the
 * payload needs no copy (only where no intermediary reads the bytes: see unmaskedPath).
 */
export function writeWsHeader(into: Uint8Array, length: number): void {
  into[0] = 0x82;
  const size = wsHeaderBytes(length);
  if (size === 6) into[1] = 0x80 | length;
  else if (size === 8) {
    into[1] = 0x80 | 126;
    into[2] = length >>> 8;
    into[3] = length & 0xff;
  } else {
    into[1] = 0x80 | 127;
    const view = new DataView(into.buffer, into.byteOffset, into.byteLength);
    view.setUint32(2, Math.floor(length / 2 ** 32));
    view.setUint32(6, length >>> 0);
  }
  into.fill(0, size - 4, size);
}

/**
 * Writes `frames` (at most `bytes` once encoded) to `socket` as one WebSocket message, DATA frames
 * of one stream merged up to `maxFrame` bytes (encodeFramePieces). The caller owns the
 * WebSocket's state: only on an open socket whose messages are masked with a zero key, and only
 * between whole messages of the WebSocket library (its sends are synchronous, so they are).
 */
export function writeFrames(socket: Socket, frames: readonly Frame[], bytes: number, maxFrame = 0): void {
  const reserved = wsHeaderBytes(bytes);
  const pieces = encodeFramePieces(frames, GATHER_FROM_BYTES, reserved, maxFrame);
  let length = -reserved;
  for (const piece of pieces) length += piece.byteLength;
  // Merged frames shed their headers: the message may now need a shorter WebSocket header.
  const skip = reserved - wsHeaderBytes(length);
  if (skip) pieces[0] = pieces[0].subarray(skip);
  writeWsHeader(pieces[0], length);
  if (pieces.length === 1) {
    socket.write(pieces[0]);
    return;
  }
  // One writev for the whole message, not a write per piece.
  socket.cork();
  for (const piece of pieces) socket.write(piece);
  socket.uncork();
}
