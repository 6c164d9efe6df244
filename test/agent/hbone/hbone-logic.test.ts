// Pure HBONE logic: SPIFFE URI SANs, the identity check, how failures map to relay errors, and
// the headers a CONNECT carries from the public request.
import { describe, expect, it } from "vitest";
import { identityProblem, uriSans } from "../../../agent/hbone/identity.ts";
import { HboneError, classify, connectFailure } from "../../../agent/hbone/pool.ts";
import { connectHeaders } from "../../../agent/targets/hbone.ts";
import { ErrorCode } from "../../../src/protocol/frame.ts";

const SERVER = "spiffe://cluster.local/ns/default/sa/server";

describe("uriSans", () => {
  it.each([
    [undefined, []],
    ["", []],
    ["DNS:localhost, IP Address:127.0.0.1", []],
    [`URI:${SERVER}`, [SERVER]],
    [`DNS:a, URI:${SERVER}, IP Address:10.0.0.1, URI:spiffe://td/x`, [SERVER, "spiffe://td/x"]],
    ['URI:"spiffe://td/with,comma", DNS:b', ["spiffe://td/with,comma"]],
  ])("%j -> %j", (san, expected) => {
    expect(uriSans(san)).toEqual(expected);
  });
});

describe("identityProblem", () => {
  it("accepts a certificate carrying one of the expected identities", () => {
    expect(identityProblem(`DNS:x, URI:${SERVER}`, ["spiffe://td/other", SERVER])).toBeUndefined();
  });
  it("accepts any certificate when no identity is expected", () => {
    expect(identityProblem("DNS:x", [])).toBeUndefined();
  });
  it("names what the certificate carries when it does not match", () => {
    expect(identityProblem(`URI:${SERVER}`, ["spiffe://td/other"])).toBe(
      `the mesh proxy's certificate carries ${SERVER}, not spiffe://td/other`,
    );
    expect(identityProblem("DNS:server.example", [SERVER])).toContain("carries no URI SAN");
  });
  it("never matches a DNS name that spells the identity", () => {
    expect(identityProblem(`DNS:${SERVER}`, [SERVER])).toBeDefined();
  });
});

describe("connectFailure", () => {
  it.each([
    [401, ErrorCode.MeshDenied],
    [403, ErrorCode.MeshDenied],
    [502, ErrorCode.OriginUnreachable],
    [503, ErrorCode.OriginUnreachable],
    [504, ErrorCode.OriginUnreachable],
    [500, ErrorCode.MeshRefused],
    [404, ErrorCode.MeshRefused],
  ])("CONNECT answered %i -> %s", (status, code) => {
    const err = connectFailure(status, "10.0.0.1:80");
    expect(err.tunnelCode).toBe(code);
    expect(err.message).toContain(String(status));
    expect(err.message).toContain("10.0.0.1:80");
  });
});

describe("classify", () => {
  const errno = (code: string, message: string) => Object.assign(new Error(message), { code }) as NodeJS.ErrnoException;
  it.each([
    ["ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED", ErrorCode.MeshDenied],
    ["ERR_SSL_TLSV1_ALERT_UNKNOWN_CA", ErrorCode.MeshDenied],
    ["ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE", ErrorCode.MeshDenied],
    ["ECONNREFUSED", ErrorCode.OriginUnreachable],
    ["ETIMEDOUT", ErrorCode.OriginUnreachable],
  ])("%s -> %s", (code, expected) => {
    expect(classify(errno(code, "boom")).tunnelCode).toBe(expected);
  });
  it("keeps an HboneError as it is", () => {
    const identity = new HboneError(ErrorCode.MeshIdentity, "not the proxy we expected");
    expect(classify(identity)).toBe(identity);
  });
});

describe("connectHeaders", () => {
  const head = (headers: Array<[string, string]>) => ({ method: "GET", path: "/", scheme: "https", authority: "a", headers });
  it("passes traceparent and baggage and says who the client is", () => {
    expect(
      connectHeaders(
        head([
          ["traceparent", "00-ab-cd-01"],
          ["baggage", "k=v"],
          ["x-forwarded-for", "203.0.113.7, 127.0.0.1"],
          ["cookie", "no"],
        ]),
      ),
    ).toEqual([
      ["traceparent", "00-ab-cd-01"],
      ["baggage", "k=v"],
      ["forwarded", 'for="127.0.0.1"'],
    ]);
  });
  it("brackets an IPv6 client and omits forwarded without a client", () => {
    expect(connectHeaders(head([["x-forwarded-for", "2001:db8::1"]]))).toEqual([["forwarded", 'for="[2001:db8::1]"']]);
    expect(connectHeaders(head([]))).toEqual([]);
  });
});
