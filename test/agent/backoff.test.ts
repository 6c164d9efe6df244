// Reconnect delays: exponential from the base, capped, jittered into [0.5, 1) of the raw delay.
import { describe, expect, it } from "vitest";
import { backoffDelay, DEFAULT_BACKOFF, FAST_CAP_MS } from "../../agent/backoff.ts";

const fixed = (r: number) => ({ ...DEFAULT_BACKOFF, random: () => r });

describe("backoffDelay", () => {
  it("doubles from the base, between half and all of the raw delay", () => {
    expect([0, 1, 2, 3].map((n) => backoffDelay(n, fixed(0)))).toEqual([125, 250, 500, 1000]);
    expect([0, 1, 2, 3].map((n) => backoffDelay(n, fixed(0.999999)))).toEqual([250, 500, 1000, 2000]);
  });

  it("never passes the cap, however many attempts failed", () => {
    for (const attempt of [10, 30, 31, 1000]) {
      expect(backoffDelay(attempt, fixed(0.999999))).toBe(DEFAULT_BACKOFF.capMs);
      expect(backoffDelay(attempt, fixed(0))).toBe(DEFAULT_BACKOFF.capMs / 2);
    }
  });

  it("with the fast cap (a lost tunnel being replaced) every retry comes within 2 s", () => {
    const delays = Array.from({ length: 50 }, (_, attempt) => backoffDelay(attempt, fixed(0.999999), FAST_CAP_MS));
    expect(Math.max(...delays)).toBe(2_000);
    expect(FAST_CAP_MS).toBe(2_000);
  });
});
