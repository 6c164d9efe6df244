// HTTP header rules both sides apply: hop-by-hop removal (RFC 9110 7.6.1) and the relay's
// reserved x-relay- prefix. Pure, shared by the Worker and the agent.
import type { HeaderList } from "./protocol/frame.ts";

/** Headers that describe one connection and never cross a proxy. */
const HOP_BY_HOP = new Set([
  "connection",
  "keep-alive",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
  "proxy-connection",
  "proxy-authenticate",
  "proxy-authorization",
  "http2-settings",
]);

/** Whether a (lower-case) field describes one connection only: hop-by-hop or `proxy-*`. */
export function isHopByHop(name: string): boolean {
  return HOP_BY_HOP.has(name) || name.startsWith("proxy-");
}

/** Headers starting with this are the relay's own and are never taken from the public side. */
export const RELAY_PREFIX = "x-relay-";

/**
 * Drops hop-by-hop fields, every field the Connection header names, `proxy-*`, and (when
 * `dropRelay`) the relay's own x-relay- fields. Names come back lower-case.
 */
export function endToEnd(fields: Iterable<[string, string]>, dropRelay = false): HeaderList {
  // One pass, and a second only when a Connection header names fields: this runs twice per
  // request in the relay's Durable Object.
  const list: HeaderList = [];
  let named: Set<string> | undefined;
  for (const [rawName, value] of fields) {
    const name = rawName.toLowerCase();
    if (name === "connection") {
      named ??= new Set();
      for (const token of value.split(",")) named.add(token.trim().toLowerCase());
    }
    if (isHopByHop(name) || (dropRelay && name.startsWith(RELAY_PREFIX))) continue;
    list.push([name, value]);
  }
  return named ? list.filter(([name]) => !named.has(name)) : list;
}

/** A Content-Length value as a number, or undefined when it is absent or not plain digits. */
export function contentLength(value: string | null | undefined): number | undefined {
  return value && /^\d{1,15}$/.test(value) ? Number(value) : undefined;
}

/** The first value of the (lower-case) field `name` in `list`, or undefined. */
export function fieldValue(list: HeaderList, name: string): string | undefined {
  for (let i = 0; i < list.length; i++) if (list[i][0] === name) return list[i][1];
  return undefined;
}

/** Pairs up Node's flat rawHeaders array ([name, value, name, value, ...]). */
export function pairs(raw: readonly string[]): HeaderList {
  const list: HeaderList = [];
  for (let i = 0; i + 1 < raw.length; i += 2) list.push([raw[i], raw[i + 1]]);
  return list;
}
