// The log-line filter that keeps a passing run's output clean drops exactly workerd's reports of a
// deliberately cut response body with their stack lines, however the pipe cut the text.
import { describe, expect, it } from "vitest";
import { DELIBERATE_BODY_ABORT, LineFilter } from "./console.ts";

const REPORT =
  "uncaught exception; exception = workerd/jsg/value.h:1480: failed: jsg.Error: StreamReset: CLOSE on stream 1, which carries no messages";
const REMOTE = "exception = workerd/jsg/value.h:1480: failed: remote.jsg.Error: StreamReset: CLOSE on stream 1, which carries no messages";
const STACK =
  "stack: /node_modules/@cloudflare/workerd-linux-64/bin/workerd@3114727 /node_modules/@cloudflare/workerd-linux-64/bin/workerd@3158b61";
const OTHER = "uncaught exception; exception = workerd/jsg/value.h:1480: failed: jsg.Error: TypeError: something else";
const TEXT = [REPORT, STACK, REMOTE, STACK, OTHER, STACK, "a line of the run", ""].join("\n");
const KEPT = [OTHER, STACK, "a line of the run", ""].join("\n");

/** All of `text` through a fresh filter, cut into the given chunk sizes in turn. */
function through(text: string, sizes: number[]): string {
  const filter = new LineFilter(DELIBERATE_BODY_ABORT);
  let out = "";
  for (let at = 0, i = 0; at < text.length; i++) {
    const size = sizes[i % sizes.length];
    out += filter.keep(text.slice(at, at + size));
    at += size;
  }
  return out;
}

describe("LineFilter", () => {
  it("drops the reports and their stack lines, and keeps every other line and its stack", () => {
    expect(through(TEXT, [TEXT.length])).toBe(KEPT);
  });

  it("gives the same output whatever the chunk boundaries, as long as a report's start came whole", () => {
    // Cuts after the first 120 characters of each line (the report's words come well before).
    for (const size of [121, 200, 1000, 7919]) expect(through(TEXT, [size])).toBe(KEPT);
    expect(through(TEXT, [REPORT.length + 1, 40, 9, 300])).toBe(KEPT);
  });

  it("keeps a stack line that follows a kept line, and a line that only mentions StreamReset", () => {
    const text = `worker said StreamReset is fine\n${STACK}\n`;
    expect(through(text, [text.length])).toBe(text);
  });
});
