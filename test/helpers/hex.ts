// Hex fixtures for codec and regression tests: bytes to and from lowercase hex.

/** Bytes as lowercase hex (for fixtures in regression tests and failure messages). */
export function toHex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Bytes from hex; spaces are ignored. */
export function fromHex(s: string): Uint8Array {
  const clean = s.replace(/\s+/g, "");
  if (!/^([0-9a-f]{2})*$/i.test(clean)) throw new Error(`bad hex fixture ${s}`);
  return Uint8Array.from(clean.match(/../g) ?? [], (b) => Number.parseInt(b, 16));
}
