// Tokens for several backends: minted with every name, verified as valid for exactly those, and
// refused when a name is bad, repeated into too long a token, or the list is malformed.
import { describe, expect, it } from "vitest";
import { mintToken, readTokenClaims, tokenBackends, verifyToken } from "../../src/auth.ts";

const SECRET = "several-backends-secret";
const NOW = 1_700_000_000;

describe("tokens for several backends", () => {
  it("carry every name, the first as backend, and verify as valid for exactly those", async () => {
    const token = await mintToken(SECRET, ["shop", "cache", "mesh"], { now: NOW });
    const verdict = await verifyToken(SECRET, token, NOW);
    expect(verdict).toMatchObject({ ok: true, backend: "shop", backends: ["shop", "cache", "mesh"], scope: "agent", iat: NOW });
    expect(tokenBackends(readTokenClaims(token)!)).toEqual(["shop", "cache", "mesh"]);
  });

  it("make a one-name list a plain single-backend token", async () => {
    const token = await mintToken(SECRET, ["shop", "shop"], { now: NOW, id: "fixed-token-id" });
    expect(token).toBe(await mintToken(SECRET, "shop", { now: NOW, id: "fixed-token-id" }));
    expect(tokenBackends(readTokenClaims(token)!)).toEqual(["shop"]);
  });

  it("refuse a bad name among several, and a list too long for a token", async () => {
    await expect(mintToken(SECRET, ["shop", "Bad_Name"])).rejects.toThrow('"Bad_Name" is not a valid backend name');
    const many = Array.from({ length: 300 }, (_, i) => `backend-with-a-long-name-${i}`);
    await expect(mintToken(SECRET, many)).rejects.toThrow(/make a token longer than 8192 characters/);
  });

  it("treat a payload whose list repeats a name or holds one name as malformed", async () => {
    const forge = async (b: unknown) => {
      const payload = btoa(JSON.stringify({ b, iat: NOW }))
        .replace(/\+/g, "-")
        .replace(/\//g, "_")
        .replace(/=+$/, "");
      const key = await crypto.subtle.importKey("raw", new TextEncoder().encode(SECRET), { name: "HMAC", hash: "SHA-256" }, false, [
        "sign",
      ]);
      const mac = new Uint8Array(await crypto.subtle.sign("HMAC", key, new TextEncoder().encode(`er1.${payload}`)));
      return `er1.${payload}.${btoa(String.fromCharCode(...mac))
        .replace(/\+/g, "-")
        .replace(/\//g, "_")
        .replace(/=+$/, "")}`;
    };
    for (const b of [["a", "a"], ["a"], [], ["a", 1]]) {
      expect(await verifyToken(SECRET, await forge(b), NOW)).toMatchObject({ ok: false, reason: "malformed" });
    }
    expect(await verifyToken(SECRET, await forge(["a", "b"]), NOW)).toMatchObject({ ok: true, backends: ["a", "b"] });
  });
});
