// The `rateLimit` policy: at most `requests` per `perSeconds` window per client address, counted
// in the backend's Durable Object; over it, 429 with Retry-After. Bounded: the fewest-recent
// addresses are forgotten first.
import { RelayError } from "../errors.ts";
import type { RateLimitPolicy } from "./policy.ts";
import type { Outcome, Visitor } from "./verdict.ts";

/** Addresses one rate limit remembers at most. */
const MAX_CLIENTS = 10_000;

export class RateLimit {
  /** Per address: the window's start (ms) and the requests counted in it. */
  private readonly windows = new Map<string, { start: number; count: number }>();

  constructor(private readonly policy: RateLimitPolicy["rateLimit"]) {}

  check(visitor: Visitor, now = Date.now()): Outcome {
    const key = visitor.clientIp ?? "unknown";
    const span = this.policy.perSeconds * 1000;
    let w = this.windows.get(key);
    if (!w || now - w.start >= span) {
      this.windows.delete(key);
      if (this.windows.size >= MAX_CLIENTS) this.windows.delete(this.windows.keys().next().value!);
      w = { start: now, count: 0 };
      this.windows.set(key, w);
    }
    if (w.count >= this.policy.requests) {
      const retry = Math.max(1, Math.ceil((w.start + span - now) / 1000));
      return {
        refused: new RelayError("rate_limited", `Too many requests from this address; try again in ${retry} s.`, visitor.backend),
        headers: { "retry-after": String(retry) },
      };
    }
    w.count++;
    return {};
  }
}
