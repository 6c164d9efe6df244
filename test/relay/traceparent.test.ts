// Trace ids the relay starts (W3C Trace Context) and the hex they are written in.
import { describe, expect, it } from "vitest";
import { toHex } from "../../src/observe/hex.ts";
import { isValidTraceparent, newTraceparent } from "../../src/observe/traceparent.ts";

describe("toHex", () => {
  it("writes every byte value as two lower-case digits, as toString(16) padded does", () => {
    const all = Uint8Array.from({ length: 256 }, (_, i) => i);
    const expected = [...all].map((b) => b.toString(16).padStart(2, "0")).join("");
    expect(toHex(all)).toBe(expected);
    expect(toHex(new Uint8Array(0))).toBe("");
  });

  it("writes only the range it is given", () => {
    const bytes = Uint8Array.of(0x00, 0x0f, 0xa0, 0xff);
    expect(toHex(bytes, 1, 3)).toBe("0fa0");
    expect(toHex(bytes, 2)).toBe("a0ff");
    expect(toHex(bytes, 4)).toBe("");
  });
});

describe("newTraceparent", () => {
  it("starts valid, sampled version-00 traces with ids that differ, past several draws of random bytes", () => {
    const seen = new Set<string>();
    const traces = new Set<string>();
    for (let i = 0; i < 500; i++) {
      const value = newTraceparent();
      expect(value).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
      expect(isValidTraceparent(value)).toBe(true);
      seen.add(value);
      traces.add(value.slice(3, 35));
    }
    expect(seen.size).toBe(500);
    expect(traces.size).toBe(500);
  });

  it("uses each random byte once: no trace id reappears as a parent id", () => {
    const ids = new Set<string>();
    for (let i = 0; i < 300; i++) {
      const [, trace, parent] = newTraceparent().split("-");
      for (const part of [trace.slice(0, 16), trace.slice(16), parent]) {
        expect(ids.has(part)).toBe(false);
        ids.add(part);
      }
    }
  });
});

describe("isValidTraceparent", () => {
  it.each([
    ["00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", true],
    ["00-00000000000000000000000000000000-00f067aa0ba902b7-01", false],
    ["00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", false],
    ["ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", false],
    ["00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra", false],
    ["01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra", true],
    ["00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", false],
  ])("judges %s as %s", (value, valid) => {
    expect(isValidTraceparent(value)).toBe(valid);
  });
});
