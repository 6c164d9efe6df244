// The `jwt` access policy end to end: tokens signed with real keys, a JWKS served by a real
// loopback HTTP server and fetched by the relay (cached, refetched on an unknown kid), inline
// keys, a named header and a cookie; every forged, stale or misaddressed token refused, and an
// unreachable key set failing closed.
import { createHmac } from "node:crypto";

import http from "node:http";
import type { AddressInfo } from "node:net";
import { type JWK, SignJWT, exportJWK, exportSPKI, generateKeyPair } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startConfigAgent, type AgentProcess } from "../helpers/agent.ts";
import { startBackend, type Backend } from "../helpers/backend.ts";
import { closedPort } from "../helpers/bridge.ts";
import { startRelay, type RelayHandle } from "../helpers/relay.ts";
import { until } from "../helpers/wait.ts";

const ISSUER = "https://issuer.test";
let relay: RelayHandle;
let backend: Backend;
let agent: AgentProcess;
let jwksServer: http.Server;
let jwksUrl = "";
let jwksFetches = 0;
/** What the JWKS server serves. */
const published: JWK[] = [];
type Key = Awaited<ReturnType<typeof generateKeyPair>>;
let main: Key;
let rotated: Key;
let stranger: Key;
let inline: Key;

async function sign(
  key: Key,
  kid: string,
  claims: Record<string, unknown> = {},
  opts: { alg?: string; exp?: number | string; nbf?: number | string } = {},
): Promise<string> {
  const jwt = new SignJWT({ email: "ann@example.com", ...claims })
    .setProtectedHeader({ alg: opts.alg ?? "RS256", kid })
    .setIssuer((claims.iss as string) ?? ISSUER)
    .setAudience((claims.aud as string) ?? "acc-jwt")
    .setSubject("ann")
    .setIssuedAt()
    .setExpirationTime(opts.exp ?? "10m");
  if (opts.nbf !== undefined) jwt.setNotBefore(opts.nbf);
  return jwt.sign(key.privateKey);
}

const b64url = (v: string | Buffer) => Buffer.from(v).toString("base64url");
const get = (path: string, headers: Record<string, string> = {}) => fetch(`${relay.url}${path}`, { headers });
const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

beforeAll(async () => {
  [main, rotated, stranger, inline] = await Promise.all([
    generateKeyPair("RS256", { extractable: true }),
    generateKeyPair("RS256", { extractable: true }),
    generateKeyPair("RS256", { extractable: true }),
    generateKeyPair("ES256", { extractable: true }),
  ]);
  published.push({ ...(await exportJWK(main.publicKey)), kid: "main", alg: "RS256", use: "sig" });
  jwksServer = http.createServer((_req, res) => {
    jwksFetches++;
    res.setHeader("content-type", "application/json");
    res.end(JSON.stringify({ keys: published }));
  });
  await new Promise<void>((resolve) => jwksServer.listen(0, "127.0.0.1", resolve));
  jwksUrl = `http://127.0.0.1:${(jwksServer.address() as AddressInfo).port}/jwks`;
  relay = await startRelay({ snapshot: true });
  backend = await startBackend();
  const inlineKey = JSON.stringify({ ...(await exportJWK(inline.publicKey)), kid: "inline" });
  const backends = ["acc-jwt", "acc-jwt-other", "acc-jwt-down", "acc-jwt-inline", "acc-jwt-cookie"];
  agent = await startConfigAgent(
    relay.secret,
    `relay: ${relay.url}
ingress:
  - backend: acc-jwt
    service: ${backend.url}
    access:
      - jwt: { jwksUrl: "${jwksUrl}", issuer: ${ISSUER}, audience: acc-jwt, algorithms: [RS256] }
  - backend: acc-jwt-other
    service: ${backend.url}
    access:
      - jwt: { jwksUrl: "${jwksUrl}", issuer: ${ISSUER}, audience: acc-jwt-other }
  - backend: acc-jwt-down
    service: ${backend.url}
    access:
      - jwt: { jwksUrl: "http://127.0.0.1:${await closedPort()}/jwks", audience: acc-jwt-down }
  - backend: acc-jwt-inline
    service: ${backend.url}
    access:
      - jwt: { keys: [${inlineKey}], audience: acc-jwt, header: Cf-Access-Jwt-Assertion }
  - backend: acc-jwt-cookie
    service: ${backend.url}
    access:
      - jwt: { keys: [${inlineKey}], audience: acc-jwt, cookie: session }
`,
    backends,
  );
}, 180_000);

afterAll(async () => {
  await agent?.stop();
  await backend?.stop();
  await relay?.stop();
  await new Promise((resolve) => jwksServer?.close(resolve));
});

describe("jwt with a JWKS URL", () => {
  it("admits a valid token and tells the backend its subject and email", async () => {
    const res = await get("/r/acc-jwt/echo", bearer(await sign(main, "main")));
    expect(res.status).toBe(200);
    const raw = (await res.json()).rawHeaders as string[];
    const value = (name: string) => raw[raw.findIndex((h) => h.toLowerCase() === name) + 1];
    expect(value("x-relay-user")).toBe("ann");
    expect(value("x-relay-user-email")).toBe("ann@example.com");
  });

  it("asks for a token with 401 auth_required and a Bearer challenge", async () => {
    const res = await get("/r/acc-jwt/echo");
    expect(res.status).toBe(401);
    expect(res.headers.get("www-authenticate")).toBe("Bearer");
    expect((await res.json()).error).toBe("auth_required");
  });

  const now = () => Math.floor(Date.now() / 1000);
  const cases: Array<[string, () => Promise<string>]> = [
    [
      "alg none",
      async () =>
        `${b64url(JSON.stringify({ alg: "none", kid: "main" }))}.${b64url(JSON.stringify({ sub: "ann", aud: "acc-jwt", iss: ISSUER, exp: now() + 600 }))}.`,
    ],
    [
      "HS256 signed with the RSA public key",
      async () => {
        const head = b64url(JSON.stringify({ alg: "HS256", kid: "main", typ: "JWT" }));
        const body = b64url(JSON.stringify({ sub: "ann", aud: "acc-jwt", iss: ISSUER, exp: now() + 600 }));
        const pem = await exportSPKI(main.publicKey);
        return `${head}.${body}.${createHmac("sha256", pem).update(`${head}.${body}`).digest("base64url")}`;
      },
    ],
    ["an expired token", () => sign(main, "main", {}, { exp: now() - 3600 })],
    ["a token not yet valid", () => sign(main, "main", {}, { nbf: now() + 3600 })],
    ["a wrong issuer", () => sign(main, "main", { iss: "https://evil.test" })],
    ["a wrong audience", () => sign(main, "main", { aud: "someone-else" })],
    ["another backend's audience", () => sign(main, "main", { aud: "acc-jwt-other" })],
    [
      "a bad signature",
      async () => {
        const t = await sign(main, "main");
        const sig = Buffer.from(t.split(".")[2], "base64url");
        sig[10] ^= 1;
        return `${t.split(".").slice(0, 2).join(".")}.${sig.toString("base64url")}`;
      },
    ],
    ["an unknown kid the JWKS does not have", () => sign(stranger, "stranger")],
    ["a known kid signed by another key", () => sign(stranger, "main")],
    ["an ES256 token where RS256 is required", () => sign(inline, "main", {}, { alg: "ES256" })],
  ];
  it.each(cases)("refuses %s with 401 auth_invalid", async (_what, make) => {
    const res = await get("/r/acc-jwt/echo", bearer(await make()));
    expect(res.status).toBe(401);
    expect((await res.json()).error).toBe("auth_invalid");
    expect(res.headers.get("www-authenticate")).toBe('Bearer error="invalid_token"');
  });

  it.each([
    ["Bearer", "Bearer"],
    ["two segments", "Bearer a.b"],
    ["spaces", "Bearer x y z"],
    ["three junk segments", "Bearer a.b.c"],
    ["a 20,000-character token", `Bearer ${"a".repeat(20_000)}.b.c`],
    ["another scheme", "Token abc.def.ghi"],
  ])("refuses a malformed header: %s", async (_what, authorization) => {
    const res = await get("/r/acc-jwt/echo", { authorization });
    expect(res.status).toBe(401);
    expect((await res.json()).error).toBe("auth_invalid");
  });

  it("admits the same token for its own backend only", async () => {
    const theirs = await sign(main, "main", { aud: "acc-jwt-other" });
    expect((await get("/r/acc-jwt-other/echo", bearer(theirs))).status).toBe(200);
    expect((await get("/r/acc-jwt/echo", bearer(theirs))).status).toBe(401);
  });

  it("fetches the JWKS again for a new kid once the issuer publishes it", async () => {
    const token = await sign(rotated, "rotated");
    expect((await get("/r/acc-jwt/echo", bearer(token))).status).toBe(401);
    published.push({ ...(await exportJWK(rotated.publicKey)), kid: "rotated", alg: "RS256" });
    const before = jwksFetches;
    await until(async () => (await get("/r/acc-jwt/echo", bearer(token))).status === 200, "the rotated key to be accepted", 20_000, 500);
    expect(jwksFetches).toBeGreaterThan(before);
  });
});

describe("jwt fails closed", () => {
  it("answers 503 policy_unavailable when the JWKS cannot be reached", async () => {
    const res = await get("/r/acc-jwt-down/echo", bearer(await sign(main, "main", { aud: "acc-jwt-down" })));
    expect(res.status).toBe(503);
    expect((await res.json()).error).toBe("policy_unavailable");
    expect(res.headers.get("retry-after")).toBeNull();
  });
});

describe("jwt with inline keys", () => {
  it("reads the token from a named header", async () => {
    const token = await sign(inline, "inline", {}, { alg: "ES256" });
    expect((await get("/r/acc-jwt-inline/echo", { "cf-access-jwt-assertion": token })).status).toBe(200);
    expect((await get("/r/acc-jwt-inline/echo", bearer(token))).status).toBe(401);
  });

  it("reads the token from a cookie", async () => {
    const token = await sign(inline, "inline", {}, { alg: "ES256" });
    expect((await get("/r/acc-jwt-cookie/echo", { cookie: `theme=dark; session=${token}` })).status).toBe(200);
    const res = await get("/r/acc-jwt-cookie/echo", { cookie: "session=not-a-token" });
    expect(res.status).toBe(401);
    expect((await res.json()).error).toBe("auth_invalid");
  });
});
