// The retry policy of one public request: which tunnel each attempt goes to, and whether an
// attempt that ended before its response head may be made again. Pure, unit-tested.
import { ErrorCode } from "../protocol/frame.ts";
import { pickTunnel } from "./tunnels.ts";

/** Attempts after an agent refused a request (REFUSED_STREAM: draining), each on another tunnel. */
export const MAX_REFUSED_RETRIES = 2;
/** Attempts after a tunnel died under a repeatable request. */
export const MAX_LOST_RETRIES = 1;

/** Whether a request may be sent again after its tunnel died before answering (GET, HEAD, OPTIONS, Idempotency-Key). */
export function isRepeatable(method: string, idempotencyKey: boolean): boolean {
  return method === "GET" || method === "HEAD" || method === "OPTIONS" || idempotencyKey;
}

/** What the policy needs of a tunnel. */
export interface Candidate {
  load: number;
  session: { ready: boolean };
  meta: { hello?: { id: string } };
}

/**
 * The tunnel for the next attempt among those not tried yet: the least loaded one with room for
 * another stream (`streamLimit`), on another agent than `avoidAgent` while there is one. "full"
 * when every ready tunnel carries `streamLimit` streams; undefined when none is ready.
 */
export function chooseTunnel<T extends Candidate>(
  untried: readonly T[],
  streamLimit: number,
  avoidAgent?: string,
  random: () => number = Math.random,
): T | "full" | undefined {
  const roomy = untried.filter((t) => t.load < streamLimit);
  // Another agent first: a draining agent refuses on all its tunnels, and a crash or a cut
  // network takes them all at once while the runtime delivers their closes one by one (the
  // others still look open).
  const elsewhere = avoidAgent === undefined ? [] : roomy.filter((t) => t.meta.hello?.id !== avoidAgent);
  const tunnel = pickTunnel(elsewhere.length ? elsewhere : roomy, random);
  if (tunnel) return tunnel;
  return pickTunnel(untried, random) ? "full" : undefined;
}

/** Failed attempts of one request so far, by cause. */
export interface Tally {
  refusals: number;
  losses: number;
}

export const NO_FAILURES: Tally = { refusals: 0, losses: 0 };

/** How an attempt ended before its response head (a StreamReset). */
export interface Failure {
  code: number;
  tunnelLost: boolean;
}

/**
 * Whether the request may be sent again after `failure`: only when that cannot duplicate work
 * (the agent refused it and so took no action, or its tunnel died and the request is
 * repeatable), within the attempts allowed, and when its body can be sent again. Returns the
 * tally counting this failure, or undefined for no further attempt.
 */
export function retryAfter(failure: Failure, tally: Tally, request: { repeatable: boolean; replayable: boolean }): Tally | undefined {
  if (!request.replayable) return undefined;
  if (failure.code === ErrorCode.RefusedStream && !failure.tunnelLost) {
    return tally.refusals < MAX_REFUSED_RETRIES ? { ...tally, refusals: tally.refusals + 1 } : undefined;
  }
  if (failure.tunnelLost && request.repeatable && tally.losses < MAX_LOST_RETRIES) return { ...tally, losses: tally.losses + 1 };
  return undefined;
}
