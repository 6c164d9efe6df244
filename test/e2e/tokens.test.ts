// Revocable tokens and secret rotation end to end: the real relay (workerd), real agent
// processes, a real backend; revocation through the admin API closes live tunnels and the agent
// stops on the refusal, while other tokens of the same backend keep serving.
import { createHmac, randomBytes } from "node:crypto";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { EXIT_TOKEN_REFUSED } from "../../agent/supervisor.ts";
import { mintToken, readTokenClaims } from "../../src/auth.ts";
import { agentArgs, startAgent, type AgentProcess } from "../helpers/agent.ts";
import { startBackend, type Backend } from "../helpers/backend.ts";
import { rawRequest } from "../helpers/client.ts";
import { startRelay, type RelayHandle } from "../helpers/relay.ts";

const ADMIN = `admin-${randomBytes(16).toString("hex")}`;
const OLD_SECRET = randomBytes(32).toString("hex");
const NEW_SECRET = randomBytes(32).toString("hex");

let relay: RelayHandle;
/** Mid-rotation: RELAY_SECRET is the new secret, RELAY_SECRET_PREVIOUS the old one. */
let rotating: RelayHandle;
let backend: Backend;
let agents: AgentProcess[] = [];

beforeAll(async () => {
  [relay, rotating, backend] = await Promise.all([
    startRelay({ vars: { RELAY_ADMIN_TOKEN: ADMIN }, snapshot: true }),
    startRelay({ secret: NEW_SECRET, vars: { RELAY_SECRET_PREVIOUS: OLD_SECRET }, snapshot: true }),
    startBackend(),
  ]);
}, 120_000);

afterEach(async () => {
  await Promise.all(agents.map((a) => a.stop("SIGKILL")));
  agents = [];
});

afterAll(async () => {
  await Promise.all([relay?.stop(), rotating?.stop(), backend?.stop()]);
});

async function agentFor(
  base: string,
  name: string,
  token: string,
  opts: { waitUp?: number; connections?: number } = {},
): Promise<AgentProcess> {
  const connections = String(opts.connections ?? 1);
  const agent = await startAgent(agentArgs(base, name, token, backend.url, ["--connections", connections, "--grace-period", "1s"]), {
    waitUp: opts.waitUp,
  });
  agents.push(agent);
  return agent;
}

/** Resolves with the agent's exit code, or rejects after `ms`. */
function exitOf(agent: AgentProcess, ms: number): Promise<number | null> {
  if (agent.proc.exitCode !== null) return Promise.resolve(agent.proc.exitCode);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`agent did not exit within ${ms} ms; output:\n${agent.lines.join("\n")}`)), ms);
    agent.proc.once("exit", (code) => {
      clearTimeout(timer);
      resolve(code);
    });
  });
}

async function expectServed(base: string, name: string, tag: string): Promise<void> {
  const res = await rawRequest(base, { path: `/r/${name}/echo?${tag}` });
  expect(res.status).toBe(200);
  expect(JSON.parse(res.body.toString()).url).toBe(`/echo?${tag}`);
}

async function revoke(body: unknown): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await fetch(`${relay.url}/_relay/tokens/revoke`, {
    method: "POST",
    headers: { authorization: `Bearer ${ADMIN}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}

/** The agent stopped because the relay refused its token: said once, exit 3, token never printed. */
async function expectStoppedOnRefusal(agent: AgentProcess, code: string, token: string): Promise<void> {
  expect(await exitOf(agent, 60_000)).toBe(EXIT_TOKEN_REFUSED);
  const refusals = agent.lines.filter((l) => l.includes("refuses the token"));
  expect(refusals).toHaveLength(1);
  expect(refusals[0]).toMatch(
    new RegExp(`the relay refuses the token for backend [a-z0-9-]+ \\(${code}\\): the relay answered 401 \\(${code}: `),
  );
  for (const line of agent.lines) expect(line).not.toContain(token);
}

/** A token in the format from before token ids: no `jti` claim. */
function legacyToken(secret: string, backendName: string): string {
  const signed = `er1.${Buffer.from(JSON.stringify({ b: backendName, iat: Math.floor(Date.now() / 1000) })).toString("base64url")}`;
  return `${signed}.${createHmac("sha256", secret).update(signed).digest("base64url")}`;
}

describe("revocation by token id", () => {
  it("closes that token's live tunnels within 5 s, the agent stops on 401 token_revoked, another token's agent keeps serving", async () => {
    const name = "rv-id";
    const revoked = await relay.token(name);
    const kept = await relay.token(name);
    const victim = await agentFor(relay.url, name, revoked, { waitUp: 2, connections: 2 });
    const survivor = await agentFor(relay.url, name, kept, { waitUp: 1 });
    await expectServed(relay.url, name, "before=1");

    const mark = victim.lines.length;
    const r = await revoke({ id: readTokenClaims(revoked)!.id });
    expect(r.status).toBe(200);
    expect(r.json).toEqual({ id: readTokenClaims(revoked)!.id, backends: [name], closed: 2 });
    await victim.waitForLine(/tunnel \d down: .* code=4401 reason="token revoked"/, 5_000, mark);
    await expectStoppedOnRefusal(victim, "token_revoked", revoked);

    for (let i = 0; i < 6; i++) await expectServed(relay.url, name, `after=${i}`);
    expect(survivor.lines.filter((l) => / down: /.test(l))).toEqual([]);
    expect(survivor.proc.exitCode).toBeNull();
  });
});

describe("revocation by backend and time", () => {
  it("refuses tokens issued before T, live or reconnecting, and accepts tokens issued after it", async () => {
    const name = "rv-before";
    const now = Math.floor(Date.now() / 1000);
    const older = await mintToken(relay.secret, name, { now: now - 600 });
    const newer = await mintToken(relay.secret, name, { now });
    const old = await agentFor(relay.url, name, older, { waitUp: 1 });

    const r = await revoke({ backend: name, before: now - 60 });
    expect(r.status).toBe(200);
    expect(r.json).toEqual({ backend: name, before: new Date((now - 60) * 1000).toISOString(), closed: 1 });
    await old.waitForLine(/tunnel 1 down: .* code=4401 reason="token revoked"/, 5_000);
    await expectStoppedOnRefusal(old, "token_revoked", older);

    const again = await agentFor(relay.url, name, older);
    await expectStoppedOnRefusal(again, "token_revoked", older);

    const fresh = await agentFor(relay.url, name, newer, { waitUp: 1 });
    await expectServed(relay.url, name, "newer=1");
    expect(fresh.proc.exitCode).toBeNull();
  });
});

describe("secret rotation (RELAY_SECRET_PREVIOUS)", () => {
  it("accepts agents with tokens of the new and of the previous secret, legacy tokens without id too", async () => {
    const name = "rotate";
    const withNew = await mintToken(NEW_SECRET, name);
    const withOld = await mintToken(OLD_SECRET, name);
    await agentFor(rotating.url, name, withNew, { waitUp: 1 });
    await agentFor(rotating.url, name, withOld, { waitUp: 1 });
    await agentFor(rotating.url, name, legacyToken(OLD_SECRET, name), { waitUp: 1 });
    for (let i = 0; i < 4; i++) await expectServed(rotating.url, name, `rot=${i}`);
  });

  it("refuses a token of any other secret: 401 token_invalid, and the agent stops", async () => {
    const stranger = await mintToken(randomBytes(32).toString("hex"), "rotate-x");
    const agent = await agentFor(rotating.url, "rotate-x", stranger);
    await expectStoppedOnRefusal(agent, "token_invalid", stranger);
  });
});
