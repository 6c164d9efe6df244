// The retry policy of one relayed request (src/hub/attempts.ts): pure, table-tested.
import { describe, expect, it } from "vitest";
import {
  MAX_LOST_RETRIES,
  MAX_REFUSED_RETRIES,
  NO_FAILURES,
  chooseTunnel,
  isRepeatable,
  retryAfter,
  type Tally,
} from "../../src/hub/attempts.ts";
import { ErrorCode } from "../../src/protocol/frame.ts";

const tunnel = (name: string, load: number, agent = name, ready = true) => ({
  name,
  load,
  session: { ready },
  meta: { hello: { id: agent } },
});
const first = () => 0;

describe("chooseTunnel", () => {
  it("takes the least loaded ready tunnel", () => {
    const pick = chooseTunnel([tunnel("a", 3), tunnel("b", 1), tunnel("c", 0, "c", false)], 10, undefined, first);
    expect(pick).toMatchObject({ name: "b" });
  });

  it("prefers another agent than the one to avoid, and falls back to it when it is the only one", () => {
    const tunnels = [tunnel("a1", 0, "A"), tunnel("b1", 5, "B")];
    expect(chooseTunnel(tunnels, 10, "A", first)).toMatchObject({ name: "b1" });
    expect(chooseTunnel([tunnel("a1", 0, "A")], 10, "A", first)).toMatchObject({ name: "a1" });
  });

  it("skips tunnels at the stream limit, and says full when every ready one is", () => {
    expect(chooseTunnel([tunnel("a", 4), tunnel("b", 9)], 5, undefined, first)).toMatchObject({ name: "a" });
    expect(chooseTunnel([tunnel("a", 5), tunnel("b", 7)], 5, undefined, first)).toBe("full");
    expect(chooseTunnel([tunnel("a", 9), tunnel("b", 0, "b", false)], 5, undefined, first)).toBe("full");
  });

  it("finds nothing when no tunnel is ready", () => {
    expect(chooseTunnel([], 5)).toBeUndefined();
    expect(chooseTunnel([tunnel("a", 0, "a", false)], 5)).toBeUndefined();
  });
});

describe("retryAfter", () => {
  const refused = { code: ErrorCode.RefusedStream, tunnelLost: false };
  const lost = { code: ErrorCode.Cancel, tunnelLost: true };
  const reset = { code: ErrorCode.OriginUnreachable, tunnelLost: false };
  const get = { repeatable: true, replayable: true };
  const post = { repeatable: false, replayable: true };

  /** Attempts made in all: the first, then one per retry allowed. */
  const attempts = (failure: typeof refused, request: typeof get) => {
    let tally: Tally | undefined = NO_FAILURES;
    let n = 1;
    while ((tally = retryAfter(failure, tally, request))) n++;
    return n;
  };

  it("retries a refusal up to MAX_REFUSED_RETRIES times, whatever the method", () => {
    expect(attempts(refused, post)).toBe(1 + MAX_REFUSED_RETRIES);
    expect(attempts(refused, get)).toBe(1 + MAX_REFUSED_RETRIES);
  });

  it("retries a lost tunnel only for a repeatable request, MAX_LOST_RETRIES times", () => {
    expect(attempts(lost, get)).toBe(1 + MAX_LOST_RETRIES);
    expect(attempts(lost, post)).toBe(1);
  });

  it("never retries another reset, nor a body that cannot be sent again", () => {
    expect(retryAfter(reset, NO_FAILURES, get)).toBeUndefined();
    expect(retryAfter(refused, NO_FAILURES, { repeatable: true, replayable: false })).toBeUndefined();
    expect(retryAfter(lost, NO_FAILURES, { repeatable: true, replayable: false })).toBeUndefined();
  });

  it("counts each cause on its own", () => {
    expect(retryAfter(refused, NO_FAILURES, get)).toEqual({ refusals: 1, losses: 0 });
    expect(retryAfter(lost, { refusals: MAX_REFUSED_RETRIES, losses: 0 }, get)).toEqual({ refusals: MAX_REFUSED_RETRIES, losses: 1 });
  });
});

describe("isRepeatable", () => {
  it.each([
    ["GET", false, true],
    ["HEAD", false, true],
    ["OPTIONS", false, true],
    ["POST", false, false],
    ["POST", true, true],
    ["DELETE", false, false],
  ])("%s with Idempotency-Key %s: %s", (method, key, expected) => {
    expect(isRepeatable(method as string, key as boolean)).toBe(expected);
  });
});
