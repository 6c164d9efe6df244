// The one validator of access policies (agent config time and relay hello time): every kind
// accepted in its documented shape, every mistake refused naming its key path.
import { describe, expect, it } from "vitest";
import { PolicyError, validatePolicies, validateScopes } from "../../src/access/policy.ts";

const HASH = `pbkdf2-sha256$100000$${"A".repeat(22)}==$${"B".repeat(43)}=`;

describe("validatePolicies", () => {
  it("accepts one of each kind", () => {
    const list = [
      { basicAuth: { realm: "staging", users: [{ name: "ann", passwordHash: HASH }] } },
      {
        jwt: {
          jwksUrl: "https://issuer.example/jwks",
          audience: "shop",
          issuer: "https://issuer.example",
          algorithms: ["RS256"],
          clockSkew: 10,
        },
      },
      { jwt: { keys: [{ kty: "EC", crv: "P-256", x: "x", y: "y" }], audience: ["a", "b"], cookie: "session" } },
      { ip: { allow: ["203.0.113.0/24", "2001:db8::/32"], deny: ["203.0.113.7"] } },
      { rateLimit: { requests: 100, perSeconds: 60 } },
      { accessToken: {} },
      { anyOf: [{ accessToken: {} }, { basicAuth: { users: [{ name: "bob", passwordHash: HASH }] } }] },
      { bypass: ["/healthz", "/webhooks/"] },
      {
        oidc: {
          issuer: "https://accounts.example",
          clientId: "edge",
          clientSecret: "s",
          allowedDomains: ["example.com"],
          sessionSeconds: 3600,
        },
      },
    ];
    expect(validatePolicies(list)).toHaveLength(list.length);
  });

  it.each([
    [[{ basicauth: {} }], "[0]", /not a policy kind/],
    [[{ basicAuth: { users: [] } }], "[0].basicAuth.users", /1 to 256 users/],
    [[{ basicAuth: { users: [{ name: "a:b", passwordHash: HASH }] } }], "[0].basicAuth.users[0].name", /":"/],
    [[{ basicAuth: { users: [{ name: "ann", passwordHash: "hunter2" }] } }], "[0].basicAuth.users[0].passwordHash", /hash-password/],
    [[{ basicAuth: { realm: 'a"b', users: [{ name: "ann", passwordHash: HASH }] } }], "[0].basicAuth.realm", /quotes/],
    [[{ jwt: { audience: "x" } }], "[0].jwt", /jwksUrl and keys/],
    [[{ jwt: { jwksUrl: "ftp://x/jwks", audience: "x" } }], "[0].jwt.jwksUrl", /http/],
    [[{ jwt: { jwksUrl: "https://x/jwks" } }], "[0].jwt.audience", /string/],
    [[{ jwt: { jwksUrl: "https://x/jwks", audience: "x", algorithms: ["none"] } }], "[0].jwt.algorithms[0]", /one of/],
    [[{ jwt: { jwksUrl: "https://x/jwks", audience: "x", algorithms: ["HS256"] } }], "[0].jwt.algorithms[0]", /one of/],
    [[{ jwt: { keys: [{ kty: "oct", k: "c2VjcmV0" }], audience: "x" } }], "[0].jwt.keys[0]", /public key/],
    [[{ ip: { allow: ["203.0.113.0/33"] } }], "[0].ip.allow[0]", /CIDR/],
    [[{ ip: {} }], "[0].ip", /allow or deny/],
    [[{ rateLimit: { requests: 0, perSeconds: 1 } }], "[0].rateLimit.requests", /1 to/],
    [[{ anyOf: [{ accessToken: {} }] }], "[0].anyOf", /at least 2/],
    [[{ anyOf: [{ accessToken: {} }, { bypass: ["/x"] }] }], "[0].anyOf[1]", /whole list/],
    [[{ bypass: ["/healthz/../admin"] }], "[0].bypass[0]", /plain path/],
    [[{ ip: { allow: ["1.2.3.4"] }, rateLimit: { requests: 1, perSeconds: 1 } }], "[0]", /one key/],
    ["basicAuth", "access", /list/],
    [[{ oidc: { issuer: "accounts.example", clientId: "edge" } }], "[0].oidc.issuer", /http/],
    [[{ oidc: { issuer: "https://accounts.example", clientId: "edge", sessionSeconds: 5 } }], "[0].oidc.sessionSeconds", /60 to/],
  ])("refuses %j at %s", (value, path, problem) => {
    let caught: unknown;
    try {
      validatePolicies(value);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(PolicyError);
    expect((caught as PolicyError).path).toBe(path);
    expect((caught as PolicyError).problem).toMatch(problem);
  });
});

describe("validateScopes", () => {
  it("accepts rules with and without a path", () => {
    expect(validateScopes([{ path: "/admin", policies: [{ accessToken: {} }] }, { policies: [] }])).toEqual([
      { path: "/admin", policies: [{ accessToken: {} }] },
      { policies: [] },
    ]);
  });
  it.each([[[]], [[{ path: "admin", policies: [] }]], [[{ path: "/admin/", policies: [] }]], [[{ policies: {} }]]])("refuses %j", (value) =>
    expect(() => validateScopes(value)).toThrow(PolicyError),
  );
});
