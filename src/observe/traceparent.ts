// W3C Trace Context (https://www.w3.org/TR/trace-context/): the relay passes a valid incoming
// `traceparent` on unchanged and starts a trace for a request without one (or with an invalid
// one), so the backend and the agent's logs share the public request's trace id.
import { toHex } from "./hex.ts";

/** version-traceid-parentid-flags, lower-case hex; version ff is invalid. */
const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/;
const ZERO_TRACE = "0".repeat(32);
const ZERO_PARENT = "0".repeat(16);
/** Flags of a trace the relay starts: sampled, so backends with a parent-based sampler record it. */
const STARTED_FLAGS = "01";

/** Whether `value` is a traceparent a receiver must honour (version 00 exactly; a later version by its prefix). */
export function isValidTraceparent(value: string): boolean {
  const m = TRACEPARENT.exec(value);
  if (!m) return false;
  const [, version, traceId, parentId, , rest] = m;
  if (version === "ff" || traceId === ZERO_TRACE || parentId === ZERO_PARENT) return false;
  return version === "00" ? rest === undefined : true;
}

/** A new traceparent with random trace and parent ids. */
export function newTraceparent(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(24));
  const hex = toHex(bytes);
  // All-zero ids are invalid; 2^-64 odds, but a valid header is what this function promises.
  const traceId = hex.slice(0, 32) === ZERO_TRACE ? `${hex.slice(0, 31)}1` : hex.slice(0, 32);
  const parentId = hex.slice(32) === ZERO_PARENT ? `${hex.slice(32, 47)}1` : hex.slice(32);
  return `00-${traceId}-${parentId}-${STARTED_FLAGS}`;
}

/**
 * Keeps a valid `traceparent` in `headers`, or sets a new one. An invalid one is replaced and its
 * `tracestate` dropped, as the spec asks of a receiver that cannot parse the traceparent.
 */
export function ensureTraceparent(headers: Headers): void {
  const incoming = headers.get("traceparent");
  if (incoming !== null && isValidTraceparent(incoming)) return;
  if (incoming !== null) headers.delete("tracestate");
  headers.set("traceparent", newTraceparent());
}
