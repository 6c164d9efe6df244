// Agent tokens: round trips, every rejection reason, and the name and duration grammars.
import { describe, expect, it } from "vitest";
import { isValidBackendName, isValidTokenId, mintToken, parseDuration, readTokenClaims, verifyToken } from "../../src/auth.ts";

const SECRET = "test-secret-0123456789";
const NOW = 1_700_000_000;

function base64url(text: string): string {
  return btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function decodePart(part: string): string {
  return atob(part.replace(/-/g, "+").replace(/_/g, "/"));
}

/** Signs an arbitrary payload the way mintToken does, to reach checks behind the MAC. */
async function signRaw(payloadJson: string, secret = SECRET): Promise<string> {
  const signed = `er1.${base64url(payloadJson)}`;
  const key = await crypto.subtle.importKey("raw", new TextEncoder().encode(secret), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  const mac = new Uint8Array(await crypto.subtle.sign("HMAC", key, new TextEncoder().encode(signed)));
  return `${signed}.${base64url(String.fromCharCode(...mac))}`;
}

describe("mintToken / verifyToken", () => {
  it("round-trips a token without expiry", async () => {
    const token = await mintToken(SECRET, "demo", { now: NOW, id: "fixed-id-0001" });
    expect(token).toMatch(/^er1\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{43}$/);
    expect(JSON.parse(decodePart(token.split(".")[1]))).toEqual({ b: "demo", iat: NOW, jti: "fixed-id-0001" });
    expect(await verifyToken(SECRET, token, NOW + 10 * 365 * 86400)).toEqual({
      ok: true,
      backend: "demo",
      iat: NOW,
      id: "fixed-id-0001",
      scope: "agent",
    });
  });

  it("round-trips a token with a ttl and reports its expiry", async () => {
    const token = await mintToken(SECRET, "demo", { now: NOW, ttlSeconds: 60, id: "fixed-id-0002" });
    expect(JSON.parse(decodePart(token.split(".")[1]))).toEqual({ b: "demo", iat: NOW, exp: NOW + 60, jti: "fixed-id-0002" });
    expect(await verifyToken(SECRET, token, NOW + 59)).toMatchObject({ ok: true, backend: "demo", exp: NOW + 60, scope: "agent" });
  });

  it("defaults iat to the current time", async () => {
    const before = Math.floor(Date.now() / 1000);
    const claims = readTokenClaims(await mintToken(SECRET, "demo"));
    expect(claims?.iat).toBeGreaterThanOrEqual(before);
    expect(claims?.iat).toBeLessThanOrEqual(Math.floor(Date.now() / 1000));
  });

  it("rejects a token signed with another secret", async () => {
    const token = await mintToken("another-secret", "demo", { now: NOW });
    const result = await verifyToken(SECRET, token, NOW);
    expect(result).toMatchObject({ ok: false, reason: "bad_signature" });
  });

  it("rejects a tampered payload", async () => {
    const token = await mintToken(SECRET, "a", { now: NOW, ttlSeconds: 60 });
    const [, , signature] = token.split(".");
    const forged = `er1.${base64url(JSON.stringify({ b: "b", iat: NOW }))}.${signature}`;
    expect(await verifyToken(SECRET, forged, NOW)).toMatchObject({ ok: false, reason: "bad_signature" });
  });

  it("rejects a tampered signature", async () => {
    const token = await mintToken(SECRET, "demo", { now: NOW });
    const flipped = token.slice(0, -2) + (token.at(-2) === "A" ? "B" : "A") + token.at(-1);
    expect(await verifyToken(SECRET, flipped, NOW)).toMatchObject({ ok: false, reason: "bad_signature" });
  });

  it("expires at exp, not after it", async () => {
    const token = await mintToken(SECRET, "demo", { now: NOW, ttlSeconds: 60 });
    const result = await verifyToken(SECRET, token, NOW + 60);
    expect(result).toMatchObject({ ok: false, reason: "expired" });
    if (!result.ok) expect(result.message).toContain("edge-relay token demo");
  });

  it("names the backend it was minted for, so a token for a is not one for b", async () => {
    const token = await mintToken(SECRET, "a", { now: NOW });
    const result = await verifyToken(SECRET, token, NOW);
    expect(result).toMatchObject({ ok: true, backend: "a", scope: "agent" });
    expect(result.ok && result.backend === "b").toBe(false);
  });

  it("mints access tokens whose scope is distinct from agent tokens", async () => {
    const access = await mintToken(SECRET, "db", { now: NOW, scope: "access" });
    expect(await verifyToken(SECRET, access, NOW)).toMatchObject({ ok: true, backend: "db", scope: "access" });
    expect(JSON.parse(Buffer.from(access.split(".")[1], "base64url").toString())).toMatchObject({ b: "db", iat: NOW, s: "access" });
    const other = `er1.${base64url(JSON.stringify({ b: "db", iat: NOW, s: "admin" }))}.${"A".repeat(43)}`;
    expect(readTokenClaims(other)).toBeUndefined();
  });

  it("caches keys per secret without mixing them up", async () => {
    const one = await mintToken("secret-one", "demo", { now: NOW });
    const two = await mintToken("secret-two", "demo", { now: NOW });
    expect(one).not.toBe(two);
    expect(await verifyToken("secret-one", one, NOW)).toMatchObject({ ok: true });
    expect(await verifyToken("secret-two", one, NOW)).toMatchObject({ ok: false, reason: "bad_signature" });
  });

  it("refuses to mint for a bad name, a bad ttl or an empty secret", async () => {
    await expect(mintToken(SECRET, "Bad_Name")).rejects.toThrow(/not a valid backend name/);
    await expect(mintToken(SECRET, "demo", { ttlSeconds: 0 })).rejects.toThrow(/lifetime/);
    await expect(mintToken(SECRET, "demo", { ttlSeconds: 1.5 })).rejects.toThrow(/lifetime/);
    await expect(mintToken("", "demo")).rejects.toThrow(/secret is empty/);
    await expect(verifyToken("", "er1.x.y")).rejects.toThrow(/secret is empty/);
  });

  it("never puts the token or the secret in a failure message", async () => {
    const token = await mintToken(SECRET, "demo", { now: NOW, ttlSeconds: 1 });
    const tampered = token.replace(/.$/, token.endsWith("A") ? "Q" : "A");
    for (const [secret, candidate] of [
      [SECRET, token],
      ["other-secret", token],
      [SECRET, tampered],
      [SECRET, token + "x"],
    ] as const) {
      const result = await verifyToken(secret, candidate, NOW + 5);
      expect(result.ok).toBe(false);
      if (result.ok) continue;
      expect(result.message).toMatch(/^[A-Z].*\.$/);
      for (const part of [candidate, ...candidate.split(".").slice(1), secret]) expect(result.message).not.toContain(part);
    }
  });

  const signature = "A".repeat(43);
  const payload = base64url(JSON.stringify({ b: "demo", iat: NOW }));
  it.each([
    ["an empty string", "missing", ""],
    ["undefined", "missing", undefined],
    ["null", "missing", null],
    ["a bare word", "malformed", "token"],
    ["two parts", "malformed", `er1.${payload}`],
    ["four parts", "malformed", `er1.${payload}.${signature}.x`],
    ["another version", "malformed", `er2.${payload}.${signature}`],
    ["an upper-case prefix", "malformed", `ER1.${payload}.${signature}`],
    ["an empty payload", "malformed", `er1..${signature}`],
    ["an empty signature", "malformed", `er1.${payload}.`],
    ["padding", "malformed", `er1.${payload}=.${signature}`],
    ["standard base64 characters", "malformed", `er1.${payload}.${"+".repeat(43)}`],
    ["whitespace", "malformed", ` er1.${payload}.${signature}`],
    ["a short signature", "malformed", `er1.${payload}.${"A".repeat(42)}`],
    ["a long signature", "malformed", `er1.${payload}.${"A".repeat(44)}`],
    ["a non-canonical signature", "malformed", `er1.${payload}.${"A".repeat(42)}B`],
    ["an impossible base64 length", "malformed", "er1.AAAAA." + signature],
    ["an oversized token", "malformed", `er1.${"A".repeat(9000)}.${signature}`],
    ["a well-formed token with a wrong MAC", "bad_signature", `er1.${payload}.${signature}`],
  ])("classifies %s as %s", async (_label, reason, token) => {
    const result = await verifyToken(SECRET, token as string, NOW);
    expect(result).toMatchObject({ ok: false, reason });
  });

  it.each([
    ["not JSON", "{nope"],
    ["a JSON array", '["demo"]'],
    ["no backend", `{"iat":${NOW}}`],
    ["an invalid backend", `{"b":"Demo","iat":${NOW}}`],
    ["no iat", '{"b":"demo"}'],
    ["a fractional iat", `{"b":"demo","iat":${NOW}.5}`],
    ["a string exp", `{"b":"demo","iat":${NOW},"exp":"${NOW + 60}"}`],
    ["a negative exp", `{"b":"demo","iat":${NOW},"exp":-1}`],
    ["a numeric jti", `{"b":"demo","iat":${NOW},"jti":12345678}`],
    ["a short jti", `{"b":"demo","iat":${NOW},"jti":"abc"}`],
    ["a jti with a dot", `{"b":"demo","iat":${NOW},"jti":"abcd.efgh"}`],
  ])("treats a correctly signed payload with %s as malformed", async (_label, json) => {
    expect(await verifyToken(SECRET, await signRaw(json), NOW)).toMatchObject({ ok: false, reason: "malformed" });
  });

  it("accepts a hand-signed payload, which pins the wire format", async () => {
    const token = await signRaw(`{"b":"demo","iat":${NOW},"jti":"AAAAAAAAAAAAAAAAAAAAAA","exp":${NOW + 1}}`);
    expect(await verifyToken(SECRET, token, NOW)).toEqual({
      ok: true,
      backend: "demo",
      iat: NOW,
      exp: NOW + 1,
      scope: "agent",
      id: "AAAAAAAAAAAAAAAAAAAAAA",
    });
    expect(await mintToken(SECRET, "demo", { now: NOW, ttlSeconds: 1, id: "AAAAAAAAAAAAAAAAAAAAAA" })).toBe(token);
  });
});

describe("token ids", () => {
  it("mints a fresh 16-byte base64url id into every token", async () => {
    const ids = new Set<string>();
    for (let i = 0; i < 50; i++) {
      const verdict = await verifyToken(SECRET, await mintToken(SECRET, "demo", { now: NOW }), NOW);
      if (!verdict.ok) throw new Error(verdict.message);
      expect(verdict.id).toMatch(/^[A-Za-z0-9_-]{22}$/);
      expect(isValidTokenId(verdict.id)).toBe(true);
      ids.add(verdict.id!);
    }
    expect(ids.size).toBe(50);
  });

  it("still verifies a token minted before ids existed, with no id", async () => {
    const legacy = await signRaw(`{"b":"demo","iat":${NOW}}`);
    expect(await verifyToken(SECRET, legacy, NOW)).toEqual({ ok: true, backend: "demo", iat: NOW, scope: "agent" });
    expect(readTokenClaims(legacy)?.id).toBeUndefined();
  });

  it("refuses to mint with an id that is not a token id", async () => {
    await expect(mintToken(SECRET, "demo", { id: "short" })).rejects.toThrow(/not a token id/);
    await expect(mintToken(SECRET, "demo", { id: "has space in it" })).rejects.toThrow(/not a token id/);
  });
});

describe("verifyToken with a previous secret (rotation)", () => {
  const NEW = "new-secret-0123456789";
  const OLD = "old-secret-0123456789";

  it("accepts tokens signed with the current or the previous secret", async () => {
    const fresh = await mintToken(NEW, "demo", { now: NOW, id: "fresh-id-0001" });
    const old = await mintToken(OLD, "demo", { now: NOW, id: "older-id-0001", scope: "access" });
    expect(await verifyToken([NEW, OLD], fresh, NOW)).toMatchObject({ ok: true, id: "fresh-id-0001", scope: "agent" });
    expect(await verifyToken([NEW, OLD], old, NOW)).toMatchObject({ ok: true, id: "older-id-0001", scope: "access" });
  });

  it("refuses tokens of any other secret, and old ones once the previous secret is gone", async () => {
    const old = await mintToken(OLD, "demo", { now: NOW });
    const stranger = await mintToken("third-secret-0123456789", "demo", { now: NOW });
    expect(await verifyToken([NEW, OLD], stranger, NOW)).toMatchObject({ ok: false, reason: "bad_signature" });
    expect(await verifyToken([NEW], old, NOW)).toMatchObject({ ok: false, reason: "bad_signature" });
    expect(await verifyToken([NEW, ""], old, NOW)).toMatchObject({ ok: false, reason: "bad_signature" });
  });

  it("still checks expiry for a token of the previous secret", async () => {
    const old = await mintToken(OLD, "demo", { now: NOW, ttlSeconds: 10 });
    expect(await verifyToken([NEW, OLD], old, NOW + 10)).toMatchObject({ ok: false, reason: "expired" });
  });

  it("throws when the current secret is empty, even with a previous one", async () => {
    await expect(verifyToken(["", OLD], "er1.x.y")).rejects.toThrow(/secret is empty/);
  });
});

describe("readTokenClaims", () => {
  it("reads claims without a secret and rejects garbage", async () => {
    const token = await mintToken(SECRET, "demo", { now: NOW, ttlSeconds: 5 });
    expect(readTokenClaims(token)).toEqual({ backend: "demo", iat: NOW, exp: NOW + 5, scope: "agent", id: expect.any(String) });
    expect(readTokenClaims("er1.nope.nope")).toBeUndefined();
    expect(readTokenClaims("")).toBeUndefined();
  });
});

describe("isValidBackendName", () => {
  it.each([
    ["a", true],
    ["0", true],
    ["demo", true],
    ["my-app-2", true],
    ["a".repeat(63), true],
    ["a".repeat(64), false],
    ["", false],
    ["-demo", false],
    ["demo-", false],
    ["Demo", false],
    ["de_mo", false],
    ["de.mo", false],
    ["de mo", false],
    ["demo\n", false],
    ["démo", false],
  ])("%j -> %s", (name, valid) => {
    expect(isValidBackendName(name)).toBe(valid);
  });
});

describe("parseDuration", () => {
  it.each([
    ["90", 90],
    ["0", 0],
    ["45s", 45],
    ["15m", 900],
    ["12h", 43_200],
    ["30d", 2_592_000],
  ])("%s -> %i seconds", (text, seconds) => {
    expect(parseDuration(text)).toBe(seconds);
  });

  it.each(["", "s", "1.5h", "-5s", "5 m", " 5m", "5M", "5w", "1h30m", "5ms", "99999999999999999999"])(
    "rejects %j with a sentence",
    (text) => {
      expect(() => parseDuration(text)).toThrow(/is not a duration; use a whole number/);
    },
  );
});
