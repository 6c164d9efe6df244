// The head an agent gets for a public request: the forwarding fields and trace context the relay
// adds in its one pass over the request's headers.
import { describe, expect, it } from "vitest";
import { forwardedFor, requestHead } from "../../src/hub/request-head.ts";
import { isValidTraceparent } from "../../src/observe/traceparent.ts";

const VALID = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

function head(headers: Record<string, string>, client?: string): Map<string, string> {
  const request = new Request("https://relay.test/x", { headers });
  const { head } = requestHead(request, { backend: "demo", path: "/x", scheme: "https", authority: "relay.test", client });
  const names = head.map(([name]) => name);
  expect(new Set(names).size, names.join(" ")).toBe(names.length);
  return new Map(head);
}

describe("forwardedFor", () => {
  it.each([
    ["", "203.0.113.7", "203.0.113.7"],
    ["198.51.100.1", "203.0.113.7", "198.51.100.1, 203.0.113.7"],
    ["198.51.100.1, 203.0.113.7", "203.0.113.7", "198.51.100.1, 203.0.113.7"],
    ["198.51.100.1,203.0.113.7 ", "203.0.113.7", "198.51.100.1,203.0.113.7 "],
    ["203.0.113.7", "203.0.113.7", "203.0.113.7"],
    ["203.0.113.70", "203.0.113.7", "203.0.113.70, 203.0.113.7"],
  ])("adds %j and %s as %j", (prior, client, expected) => {
    expect(forwardedFor(prior, client)).toBe(expected);
  });
});

describe("requestHead", () => {
  it("adds the route's client to X-Forwarded-For, or starts the field with it", () => {
    expect(head({}, "203.0.113.7").get("x-forwarded-for")).toBe("203.0.113.7");
    expect(head({ "x-forwarded-for": "198.51.100.1" }, "203.0.113.7").get("x-forwarded-for")).toBe("198.51.100.1, 203.0.113.7");
    expect(head({ "x-forwarded-for": "198.51.100.1" }).get("x-forwarded-for")).toBe("198.51.100.1");
    expect(head({}).has("x-forwarded-for")).toBe(false);
  });

  it("keeps a valid traceparent and its tracestate", () => {
    const fields = head({ traceparent: VALID, tracestate: "vendor=opaque" });
    expect(fields.get("traceparent")).toBe(VALID);
    expect(fields.get("tracestate")).toBe("vendor=opaque");
  });

  it("starts a trace for a request without one, keeping a tracestate sent alone", () => {
    const fields = head({ tracestate: "vendor=opaque" });
    expect(isValidTraceparent(fields.get("traceparent") ?? "")).toBe(true);
    expect(fields.get("tracestate")).toBe("vendor=opaque");
  });

  it("replaces an invalid traceparent and drops its tracestate", () => {
    const fields = head({
      traceparent: VALID.replace("00f067aa0ba902b7", "0000000000000000"),
      tracestate: "vendor=opaque",
      "x-custom": "1",
    });
    const traceparent = fields.get("traceparent") ?? "";
    expect(isValidTraceparent(traceparent)).toBe(true);
    expect(traceparent).not.toContain("4bf92f3577b34da6a3ce929d0e0e4736");
    expect(fields.has("tracestate")).toBe(false);
    expect(fields.get("x-custom")).toBe("1");
  });
});
