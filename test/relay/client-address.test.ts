// The public client's address as the relay reads it: Cloudflare's header, else workerd's peer.
import { describe, expect, it } from "vitest";
import { clientAddress } from "../../src/worker/client-address.ts";

describe("clientAddress", () => {
  it.each([
    ["the edge's CF-Connecting-IP first", { "cf-connecting-ip": "198.51.100.7" }, { clientIp: "127.0.0.1:5000" }, "198.51.100.7"],
    ["workerd's IPv4 peer without its port", {}, { clientIp: "127.0.0.1:40312" }, "127.0.0.1"],
    ["workerd's IPv6 peer without brackets or port", {}, { clientIp: "[::1]:40312" }, "::1"],
    ["a peer given without a port as is", {}, { clientIp: "10.0.0.2" }, "10.0.0.2"],
    ["nothing when the runtime gives nothing", {}, undefined, undefined],
    ["nothing for a clientIp that is not a string", {}, { clientIp: 7 }, undefined],
  ])("takes %s", (_what, headers, cf, expected) => {
    expect(clientAddress(new Headers(headers as Record<string, string>), cf)).toBe(expected);
  });
});
