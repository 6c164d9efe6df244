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

/** Random bytes per trace the relay starts: a 16-byte trace id, then an 8-byte parent id. */
const ID_BYTES = 24;
/**
 * Random bytes for this many traces are drawn at once, so starting a trace costs one native
 * call in IDS_PER_DRAW rather than one each; every byte is still used for one id only.
 */
const IDS_PER_DRAW = 64;
let random: Uint8Array | undefined;
let used = 0;

/** A new traceparent with random trace and parent ids. */
export function newTraceparent(): string {
  // Drawn on first use: the Workers runtime gives no random values at module scope.
  if (!random || used === random.length) {
    random ??= new Uint8Array(ID_BYTES * IDS_PER_DRAW);
    crypto.getRandomValues(random);
    used = 0;
  }
  const start = used;
  used += ID_BYTES;
  let traceId = toHex(random, start, start + 16);
  let parentId = toHex(random, start + 16, start + ID_BYTES);
  // All-zero ids are invalid; 2^-64 odds, but a valid header is what this function promises.
  if (traceId === ZERO_TRACE) traceId = `${ZERO_TRACE.slice(1)}1`;
  if (parentId === ZERO_PARENT) parentId = `${ZERO_PARENT.slice(1)}1`;
  return `00-${traceId}-${parentId}-${STARTED_FLAGS}`;
}
