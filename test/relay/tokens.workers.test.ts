// The token revocation API inside workerd: request validation, what each form stores in Durable
// Object storage (and keeps across an eviction), refusal at connect and the close of live tunnels.
import { runInDurableObject } from "cloudflare:test";
import { env, exports } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { mintToken, readTokenClaims } from "../../src/auth.ts";
import { tokenRegistry } from "../../src/token-registry.ts";
import type { TunnelAttachment } from "../../src/hub/tunnels.ts";
import { within } from "../helpers/wait.ts";
import { EVICTION_MS, evicted } from "../helpers/eviction.ts";

const BASE = "http://relay.test";
const ADMIN = env.RELAY_ADMIN_TOKEN!;
const NOW = () => Math.floor(Date.now() / 1000);

function backendName(): string {
  return `k-${crypto.randomUUID().slice(0, 8)}`;
}

function revoke(body: unknown, admin = ADMIN): Promise<Response> {
  return exports.default.fetch(`${BASE}/_relay/tokens/revoke`, {
    method: "POST",
    headers: { authorization: `Bearer ${admin}`, "content-type": "application/json" },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
}

function connect(backend: string, token: string): Promise<Response> {
  return exports.default.fetch(`${BASE}/_relay/connect?backend=${backend}`, {
    headers: { Upgrade: "websocket", Authorization: `Bearer ${token}` },
  });
}

/** An open agent socket and the close the relay sends it. */
async function openTunnel(backend: string, token: string): Promise<{ ws: WebSocket; closed: Promise<{ code: number; reason: string }> }> {
  const resp = await connect(backend, token);
  expect(resp.status).toBe(101);
  const ws = resp.webSocket!;
  const closed = new Promise<{ code: number; reason: string }>((resolve) =>
    ws.addEventListener("close", (e) => resolve({ code: e.code, reason: e.reason })),
  );
  ws.accept();
  return { ws, closed };
}

function hubStub(backend: string) {
  return env.BACKEND_HUB.get(env.BACKEND_HUB.idFromName(backend));
}

describe("POST /_relay/tokens/revoke: validation", () => {
  it("answers 401 admin_unauthorized without the admin token, and stores nothing", async () => {
    const backend = backendName();
    const r = await revoke({ backend, before: NOW() }, "wrong-admin-token");
    expect(r.status).toBe(401);
    expect(await r.json()).toMatchObject({ error: "admin_unauthorized" });
    const before = await runInDurableObject(hubStub(backend), (_i, state) => state.storage.get("revoked-before"));
    expect(before).toBeUndefined();
  });

  it.each<[string, unknown, RegExp]>([
    ["not JSON", "{nope", /not JSON/],
    ["an array", "[]", /JSON object/],
    ["an unknown field", { id: "abcdefgh1234", reason: "x" }, /"reason" is not a field/],
    ["id with backend", { id: "abcdefgh1234", backend: "a" }, /"id" revokes one token/],
    ["a short id", { id: "abc" }, /"id" must be a token id/],
    ["a numeric id", { id: 12345678 }, /"id" must be a token id/],
    ["nothing to revoke", {}, /Name what to revoke/],
    ["a bad backend", { backend: "Not_A_Name", before: 1 }, /"backend" must be a backend name/],
    ["no before", { backend: "demo" }, /"before" is missing/],
    ["a date without a zone", { backend: "demo", before: "2026-01-01T00:00:00" }, /"before" must be an ISO 8601 time/],
    ["a word for before", { backend: "demo", before: "yesterday" }, /"before" must be/],
    ["a negative before", { backend: "demo", before: -5 }, /"before" must be/],
    ["a fractional before", { backend: "demo", before: 1.5 }, /"before" must be/],
    ["a before in the future", { backend: "demo", before: Math.floor(Date.now() / 1000) + 86_400 }, /"before" lies in the future/],
    ["an oversized body", { id: "abcdefgh1234", pad: "x".repeat(5000) }, /over 4096 bytes/],
  ])("answers 400 bad_revocation for %s, naming the field", async (_label, body, message) => {
    const r = await revoke(body);
    expect(r.status).toBe(400);
    const json = (await r.json()) as { error: string; message: string };
    expect(json.error).toBe("bad_revocation");
    expect(json.message).toMatch(message);
  });

  it("takes GET as no route (404)", async () => {
    const r = await exports.default.fetch(`${BASE}/_relay/tokens/revoke`, { headers: { authorization: `Bearer ${ADMIN}` } });
    expect(r.status).toBe(404);
  });
});

describe("revocation by backend and time", () => {
  it("stores the time, refuses older tokens at connect with 401 token_revoked, accepts newer ones, after an eviction too", {
    timeout: 20_000 + EVICTION_MS,
  }, async () => {
    const backend = backendName();
    const now = NOW();
    const old = await mintToken(env.RELAY_SECRET, backend, { now: now - 3600 });
    const legacy = await mintToken(env.RELAY_SECRET, backend, { now: now - 3600 });
    const fresh = await mintToken(env.RELAY_SECRET, backend, { now });
    const live = await openTunnel(backend, old);

    const r = await revoke({ backend, before: new Date((now - 60) * 1000).toISOString() });
    expect(r.status).toBe(200);
    expect(await r.json()).toEqual({ backend, before: new Date((now - 60) * 1000).toISOString(), closed: 1 });
    expect(await within(live.closed, "the revoked tunnel's close")).toEqual({ code: 4401, reason: "token revoked" });

    const stub = hubStub(backend);
    expect(await runInDurableObject(stub, (_i, state) => state.storage.get("revoked-before"))).toBe(now - 60);
    await evicted(stub);
    for (const token of [old, legacy]) {
      const refused = await connect(backend, token);
      expect(refused.status).toBe(401);
      expect(await refused.json()).toMatchObject({ error: "token_revoked", backend });
    }
    const kept = await openTunnel(backend, fresh);
    // An earlier "before" afterwards does not loosen the stored one.
    expect((await revoke({ backend, before: String(now - 7200) })).status).toBe(200);
    expect(await runInDurableObject(stub, (_i, state) => state.storage.get("revoked-before"))).toBe(now - 60);
    const meta = await runInDurableObject(stub, (_i, state) =>
      state.getWebSockets("tunnel").map((ws) => ws.deserializeAttachment() as TunnelAttachment),
    );
    expect(meta.filter((m) => m.tokenIat === now)).toHaveLength(1);
    kept.ws.close(1000);
  });
});

describe("revocation by token id", () => {
  it("records the id in the registry, closes that token's tunnels only and refuses it from then on", async () => {
    const backend = backendName();
    const revoked = await mintToken(env.RELAY_SECRET, backend);
    const other = await mintToken(env.RELAY_SECRET, backend);
    const id = readTokenClaims(revoked)!.id!;
    const a = await openTunnel(backend, revoked);
    const b = await openTunnel(backend, revoked);
    const c = await openTunnel(backend, other);
    let otherClosed = false;
    void c.closed.then(() => (otherClosed = true));

    const r = await revoke({ id });
    expect(r.status).toBe(200);
    expect(await r.json()).toEqual({ id, backends: [backend], closed: 2 });
    for (const t of [a, b]) expect(await within(t.closed, "a revoked tunnel's close")).toEqual({ code: 4401, reason: "token revoked" });

    const registry = tokenRegistry(env);
    const record = await runInDurableObject(registry, (_i, state) =>
      state.storage.get<{ backends: string[]; revokedAt?: number }>(`token:${id}`),
    );
    expect(record?.backends).toEqual([backend]);
    expect(record?.revokedAt).toBeGreaterThan(0);
    expect(await runInDurableObject(hubStub(backend), (_i, state) => state.storage.get(`revoked-id:${id}`))).toBe(true);

    const refused = await connect(backend, revoked);
    expect(refused.status).toBe(401);
    expect(await refused.json()).toMatchObject({ error: "token_revoked", backend });
    expect(otherClosed).toBe(false);
    const status = await exports.default.fetch(`${BASE}/_relay/backends/${backend}`, { headers: { authorization: `Bearer ${ADMIN}` } });
    const tunnels = ((await status.json()) as { tunnels: Array<{ open: boolean; tokenId: string | null }> }).tunnels.filter((t) => t.open);
    expect(tunnels.map((t) => t.tokenId)).toEqual([readTokenClaims(other)!.id]);
    c.ws.close(1000);
  });

  it("revokes an id that never connected: stored, and its first connect is refused", { timeout: 20_000 + EVICTION_MS }, async () => {
    const backend = backendName();
    const token = await mintToken(env.RELAY_SECRET, backend, { id: "never-connected-0001" });
    const r = await revoke({ id: "never-connected-0001" });
    expect(await r.json()).toEqual({ id: "never-connected-0001", backends: [], closed: 0 });
    await evicted(tokenRegistry(env), "the registry's eviction");
    const refused = await connect(backend, token);
    expect(refused.status).toBe(401);
    expect(await refused.json()).toMatchObject({ error: "token_revoked" });
  });
});
