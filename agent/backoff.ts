// Reconnect delays: exponential with jitter, capped, from an injected random source so tests
// are exact (cloudflared retry/backoffhandler.go does the same).

export interface BackoffOptions {
  /** First delay before jitter, ms. */
  baseMs: number;
  /** Largest delay, ms. */
  capMs: number;
  /** Returns [0, 1). */
  random: () => number;
}

export const DEFAULT_BACKOFF: BackoffOptions = { baseMs: 250, capMs: 30_000, random: Math.random };

/**
 * Delay before reconnect attempt `attempt` (0 = first retry): base * 2^attempt, capped, then
 * scaled by a random factor in [0.5, 1) so many agents do not retry in step.
 */
export function backoffDelay(attempt: number, opts: BackoffOptions = DEFAULT_BACKOFF): number {
  const raw = Math.min(opts.capMs, opts.baseMs * 2 ** Math.min(attempt, 30));
  return Math.round(raw * (0.5 + opts.random() / 2));
}
