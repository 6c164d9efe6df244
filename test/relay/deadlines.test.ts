// The shared response-head timer (src/hub/deadlines.ts), on fake timers: pure logic.
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { Deadlines } from "../../src/hub/deadlines.ts";

describe("Deadlines", () => {
  beforeEach(() => void vi.useFakeTimers());
  afterEach(() => void vi.useRealTimers());

  it("fires each deadline after the fixed time, in order, unless cancelled", () => {
    const d = new Deadlines(2000);
    const fired: string[] = [];
    d.add(() => fired.push("a"));
    vi.advanceTimersByTime(500);
    const b = d.add(() => fired.push("b"));
    d.add(() => fired.push("c"));
    d.cancel(b);
    vi.advanceTimersByTime(1499);
    expect(fired).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(fired).toEqual(["a"]);
    vi.advanceTimersByTime(500);
    expect(fired).toEqual(["a", "c"]);
    expect(d.size).toBe(0);
  });

  it("keeps one timer for many waiting requests, and clears it as soon as nothing waits", () => {
    const d = new Deadlines(100_000);
    const keys = Array.from({ length: 1000 }, () => d.add(() => expect.unreachable()));
    expect(vi.getTimerCount()).toBe(1);
    for (const key of keys) d.cancel(key);
    expect(vi.getTimerCount()).toBe(0);
  });

  it("a long deadline fires on time, and the timer ends with it", () => {
    const d = new Deadlines(100_000);
    let firedAt = -1;
    const start = Date.now();
    d.add(() => (firedAt = Date.now() - start));
    vi.advanceTimersByTime(99_999);
    expect(firedAt).toBe(-1);
    expect(vi.getTimerCount()).toBe(1);
    vi.advanceTimersByTime(1);
    expect(firedAt).toBe(100_000);
    expect(vi.getTimerCount()).toBe(0);
  });

  it("a deadline that fires may cancel one due at the same time, which then does not fire", () => {
    const d = new Deadlines(1000);
    const fired: string[] = [];
    let second = -1;
    d.add(() => (fired.push("first"), d.cancel(second)));
    second = d.add(() => fired.push("second"));
    d.add(() => fired.push("third"));
    vi.advanceTimersByTime(1000);
    expect(fired).toEqual(["first", "third"]);
    expect(d.size).toBe(0);
    expect(vi.getTimerCount()).toBe(0);
  });
});
