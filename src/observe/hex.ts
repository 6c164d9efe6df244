// Lower-case hex of bytes, for trace ids and the dashboard's cookie.

/** The two hex digits of each byte value, so a byte costs one lookup and one concatenation. */
const DIGITS: readonly string[] = Array.from({ length: 256 }, (_, b) => (b < 16 ? "0" : "") + b.toString(16));

/** `bytes[start, end)` as lower-case hex, two digits each. */
export function toHex(bytes: Uint8Array, start = 0, end = bytes.length): string {
  let hex = "";
  for (let i = start; i < end; i++) hex += DIGITS[bytes[i]];
  return hex;
}
