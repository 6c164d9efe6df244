// CIDR matching for `ip` policies: IPv4, IPv6 (compressed, with an IPv4 tail), mapped addresses.
import { describe, expect, it } from "vitest";
import { inCidr, parseCidr, parseIp } from "../../src/access/ip.ts";

const matches = (block: string, ip: string) => inCidr(parseIp(ip)!, parseCidr(block)!);

describe("parseIp", () => {
  it.each([
    ["203.0.113.9", 4],
    ["::1", 6],
    ["2001:db8::", 6],
    ["2001:0db8:0000:0000:0000:0000:0000:0001", 6],
    ["[2001:db8::1]", 6],
    ["::ffff:192.0.2.1", 4],
    ["64:ff9b::192.0.2.1", 6],
  ])("reads %s as IPv%s", (text, v) => expect(parseIp(text)?.v).toBe(v));

  it.each(["", "1.2.3", "1.2.3.4.5", "256.1.1.1", "01.2.3.4", "1::2::3", "12345::", "1:2:3:4:5:6:7:8:9", "g::1", "1.2.3.4/8", "localhost"])(
    "refuses %j",
    (text) => expect(parseIp(text)).toBeUndefined(),
  );
});

describe("CIDR blocks", () => {
  it.each([
    ["203.0.113.0/24", "203.0.113.255", true],
    ["203.0.113.0/24", "203.0.114.0", false],
    ["203.0.113.7", "203.0.113.7", true],
    ["203.0.113.7", "203.0.113.8", false],
    ["0.0.0.0/0", "198.51.100.1", true],
    ["10.1.2.3/8", "10.200.0.1", true],
    ["2001:db8::/32", "2001:db8:ffff::1", true],
    ["2001:db8::/32", "2001:db9::1", false],
    ["::/0", "::1", true],
    ["::/0", "127.0.0.1", false],
    ["192.0.2.0/24", "::ffff:192.0.2.10", true],
    ["2001:db8::1/128", "2001:db8::1", true],
  ])("%s covers %s: %s", (block, ip, expected) => expect(matches(block, ip)).toBe(expected));

  it.each(["203.0.113.0/33", "2001:db8::/129", "1.2.3.4/", "1.2.3.4/8/8", "1.2.3.4/-1", "x/8"])("refuses the block %j", (text) =>
    expect(parseCidr(text)).toBeUndefined(),
  );
});
