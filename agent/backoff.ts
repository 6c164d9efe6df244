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
 * Cap while a tunnel that was up is being replaced: relay restarts and deploys drop every
 * tunnel, and agents should be back within about 2 s of the relay listening again.
 */
export const FAST_CAP_MS = 2_000;
/** How long after losing a tunnel the fast cap applies; then the normal cap. */
export const FAST_PHASE_MS = 60_000;

/**
 * Delay before reconnect attempt `attempt` (0 = first retry): base * 2^attempt, capped (at
 * `capMs`, default the options' cap), then scaled by a random factor in [0.5, 1) so many
 * agents do not retry in step.
 */
export function backoffDelay(attempt: number, opts: BackoffOptions = DEFAULT_BACKOFF, capMs = opts.capMs): number {
  const raw = Math.min(capMs, opts.baseMs * 2 ** Math.min(attempt, 30));
  return Math.round(raw * (0.5 + opts.random() / 2));
}
