// Waits inside workerd for a Durable Object to be evicted from memory as the runtime does it on its
// own: after its idle time without events. Shared by the workerd tests of what survives an eviction.
import { runInDurableObject } from "cloudflare:test";
import { until } from "./wait.ts";

/**
 * workerd evicts an object whose only connections are hibernatable WebSockets after about 10 s
 * without events (docs/platform-notes.md "Eviction, and what it gives back").
 */
const IDLE_MS = 11_000;
/** Idle periods to wait before giving up: the runtime's sweep may pass just before one ends. */
const PERIODS = 3;
/** Longest an `evicted` call may take; a test that evicts n times needs n of these. */
export const EVICTION_MS = PERIODS * IDLE_MS + 2_000;

/** Set on the instance before the wait: a rebuilt object has a new instance without it. */
const MARK = Symbol("evicted() mark");

/**
 * Resolves once the object behind `stub` has been evicted and rebuilt: it marks the instance,
 * leaves the object without events, then asks whether the instance answering now lacks the mark.
 * Every request to the object, this question included, restarts its idle time, so it is asked
 * once per idle period. Rejects naming `what` if the same instance still answers after them all.
 */
export async function evicted(stub: DurableObjectStub, what = "the object's eviction"): Promise<void> {
  await runInDurableObject(stub, (instance) => {
    (instance as unknown as Record<symbol, boolean>)[MARK] = true;
  });
  const rebuilt = () => runInDurableObject(stub, (instance) => !(instance as unknown as Record<symbol, boolean>)[MARK]);
  // `until` asks at once, then every IDLE_MS: the first answer is the marked instance.
  await until(rebuilt, what, PERIODS * IDLE_MS, IDLE_MS);
}
