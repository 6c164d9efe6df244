// Lower-case hex of bytes, for trace ids and the dashboard's cookie.

/** `bytes` as lower-case hex, two digits each. */
export function toHex(bytes: Uint8Array): string {
  let hex = "";
  for (const b of bytes) hex += (b < 16 ? "0" : "") + b.toString(16);
  return hex;
}
