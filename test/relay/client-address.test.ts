// The public client's address as the relay reads it: Cloudflare's header, else workerd's peer.
import { describe, expect, it } from "vitest";
import { clientAddress, withoutPort } from "../../src/worker/client-address.ts";

describe("clientAddress", () => {
  it.each([
    ["the edge's CF-Connecting-IP first", { "cf-connecting-ip": "198.51.100.7" }, { clientIp: "127.0.0.1:5000" }, "198.51.100.7"],
    ["workerd's IPv4 peer without its port", {}, { clientIp: "127.0.0.1:40312" }, "127.0.0.1"],
    ["workerd's IPv6 peer without brackets or port", {}, { clientIp: "[::1]:40312" }, "::1"],
    ["a peer given without a port as is", {}, { clientIp: "10.0.0.2" }, "10.0.0.2"],
    ["nothing when the runtime gives nothing", {}, undefined, undefined],
    ["nothing for a clientIp that is not a string", {}, { clientIp: 7 }, undefined],
    ["a bare IPv6 peer as is", {}, { clientIp: "2001:db8::1" }, "2001:db8::1"],
    ["a bare IPv6 peer ending in digits as is", {}, { clientIp: "::1" }, "::1"],
    ["a peer with an empty port as is", {}, { clientIp: "10.0.0.2:" }, "10.0.0.2:"],
    ["a peer with a port that is not digits as is", {}, { clientIp: "10.0.0.2:8a" }, "10.0.0.2:8a"],
    ["an empty bracketed peer as empty", {}, { clientIp: "[]:80" }, ""],
  ])("takes %s", (_what, headers, cf, expected) => {
    expect(clientAddress(new Headers(headers as Record<string, string>), cf)).toBe(expected);
  });
});

/** The regexes clientAddress used before its string scans: both must cut every peer alike. */
function byRegex(peer: string): string {
  return /^\[(.*)\]:\d+$/.exec(peer)?.[1] ?? /^([^:]*):\d+$/.exec(peer)?.[1] ?? peer;
}

describe("withoutPort", () => {
  it("cuts every peer as the regexes /^\\[(.*)\\]:\\d+$/ then /^([^:]*):\\d+$/ do", () => {
    const parts = ["", "[", "]", ":", "1", "80", "a", "::", "127.0.0.1", "[::1]", "x]"];
    let checked = 0;
    for (const a of parts)
      for (const b of parts)
        for (const c of parts) {
          const peer = a + b + c;
          expect(withoutPort(peer), peer).toBe(byRegex(peer));
          checked++;
        }
    expect(checked).toBe(parts.length ** 3);
  });
});
