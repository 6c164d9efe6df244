// IP address and CIDR matching for `ip` policies, IPv4 and IPv6 (an IPv4-mapped IPv6 address
// matches as its IPv4 form). Pure: addresses become bigints, blocks a masked bigint and a length.

/** One CIDR block: its version, the masked network and the prefix length. */
export interface Cidr {
  v: 4 | 6;
  net: bigint;
  bits: number;
}

const V4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

function parseV4(text: string): bigint | undefined {
  const m = V4.exec(text);
  if (!m) return undefined;
  let n = 0n;
  for (let i = 1; i <= 4; i++) {
    if (m[i].length > 1 && m[i].startsWith("0")) return undefined;
    const octet = Number(m[i]);
    if (octet > 255) return undefined;
    n = (n << 8n) | BigInt(octet);
  }
  return n;
}

function parseV6(text: string): bigint | undefined {
  if (!/^[0-9a-fA-F:.]+$/.test(text) || text.length > 45) return undefined;
  let s = text;
  let tail: bigint[] = [];
  // A dotted IPv4 tail (::ffff:192.0.2.1) is the last two groups.
  const lastColon = s.lastIndexOf(":");
  if (s.includes(".")) {
    const v4 = parseV4(s.slice(lastColon + 1));
    if (v4 === undefined) return undefined;
    tail = [v4 >> 16n, v4 & 0xffffn];
    s = s.slice(0, lastColon + 1);
    if (s.endsWith(":") && !s.endsWith("::")) s = s.slice(0, -1);
  }
  const halves = s.split("::");
  if (halves.length > 2) return undefined;
  const groups = (part: string) => (part === "" ? [] : part.split(":"));
  const head = groups(halves[0]);
  const rest = halves.length === 2 ? groups(halves[1]) : [];
  if ([...head, ...rest].some((g) => !/^[0-9a-fA-F]{1,4}$/.test(g))) return undefined;
  const known = head.length + rest.length + tail.length;
  if (halves.length === 1 ? known !== 8 : known > 7) return undefined;
  const all = [...head.map((g) => BigInt(`0x${g}`)), ...Array(8 - known).fill(0n), ...rest.map((g) => BigInt(`0x${g}`)), ...tail];
  return all.reduce((acc, g) => (acc << 16n) | g, 0n);
}

/** An address as its version and value; IPv4-mapped IPv6 (::ffff:a.b.c.d) comes back as IPv4. */
export function parseIp(text: string): { v: 4 | 6; n: bigint } | undefined {
  const t = text.trim().replace(/^\[|\]$/g, "");
  const v4 = parseV4(t);
  if (v4 !== undefined) return { v: 4, n: v4 };
  const v6 = parseV6(t);
  if (v6 === undefined) return undefined;
  if (v6 >> 32n === 0xffffn) return { v: 4, n: v6 & 0xffffffffn };
  return { v: 6, n: v6 };
}

/** A CIDR block (`203.0.113.0/24`, `2001:db8::/32`) or a lone address, or undefined when malformed. */
export function parseCidr(text: string): Cidr | undefined {
  const [addr, len, extra] = text.split("/");
  if (extra !== undefined) return undefined;
  const ip = parseIp(addr);
  if (!ip) return undefined;
  const max = ip.v === 4 ? 32 : 128;
  if (len !== undefined && !/^\d{1,3}$/.test(len)) return undefined;
  const bits = len === undefined ? max : Number(len);
  if (bits > max) return undefined;
  return { v: ip.v, net: ip.n & mask(ip.v, bits), bits };
}

function mask(v: 4 | 6, bits: number): bigint {
  const max = v === 4 ? 32 : 128;
  return ((1n << BigInt(bits)) - 1n) << BigInt(max - bits);
}

/** Whether address `ip` lies in `block`. */
export function inCidr(ip: { v: 4 | 6; n: bigint }, block: Cidr): boolean {
  return ip.v === block.v && (ip.n & mask(block.v, block.bits)) === block.net;
}
