// Visitor access policies end to end: the real relay (workerd), real agent processes configured
// with `access:` (and --policy), real backends and clients. Basic auth, IP rules (with a spoofed
// X-Forwarded-For), rate limits, anyOf, bypass paths against traversal and encoding tricks,
// per-rule scopes, WebSocket upgrades, X-Relay-User, and two agents of one backend with
// different policies. Under wrangler dev the Worker learns the client address from the
// CF-Connecting-IP header (miniflare sets it to the socket's address unless the request has
// one); the tests send it to stand for the address Cloudflare's edge would report.
import { execFile } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { mintToken } from "../../src/auth.ts";
import { BIN, agentArgs, startAgent, startConfigAgent, type AgentProcess } from "../helpers/agent.ts";
import { startBackend, type Backend } from "../helpers/backend.ts";
import { rawRequest } from "../helpers/client.ts";
import { startRelay, type RelayHandle } from "../helpers/relay.ts";
import { within } from "../helpers/wait.ts";
import { nextMessage, startWsBackend, type WsBackend } from "../helpers/ws-backend.ts";

let relay: RelayHandle;
let backend: Backend;
let wsBackend: WsBackend;
const agents: AgentProcess[] = [];
const closers: Array<() => Promise<unknown> | unknown> = [];
const dir = mkdtempSync(join(tmpdir(), "edge-relay-access-"));
let annHash = "";

/** `edge-relay hash-password` with `password` on standard input. */
function hashPassword(password: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(process.execPath, [BIN, "hash-password"], (err, stdout) => (err ? reject(err) : resolve(stdout.trim())));
    child.stdin!.end(`${password}\n`);
  });
}

const basic = (name: string, password: string) => `Basic ${Buffer.from(`${name}:${password}`).toString("base64")}`;

async function agentFor(yaml: string, backends: string[]): Promise<AgentProcess> {
  const agent = await startConfigAgent(relay.secret, yaml, backends);
  agents.push(agent);
  return agent;
}

/** A backend answering every request with `name` and the X-Relay-User it was given. */
async function namedServer(name: string): Promise<number> {
  const server = http.createServer((req, res) => res.end(`${name} ${req.headers["x-relay-user"] ?? "-"}`));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  closers.push(() => new Promise((resolve) => server.close(resolve)));
  return (server.address() as AddressInfo).port;
}

const get = (path: string, headers: Record<string, string> = {}) => fetch(`${relay.url}${path}`, { headers });

beforeAll(async () => {
  relay = await startRelay({ snapshot: true });
  backend = await startBackend();
  wsBackend = await startWsBackend();
  annHash = await hashPassword("correct horse");
  await agentFor(
    `relay: ${relay.url}
ingress:
  - backend: acc-basic
    path: /ws
    stripPrefix: true
    service: ${wsBackend.url}
    access:
      - basicAuth: { realm: staging, users: [{ name: ann, passwordHash: "${annHash}" }] }
  - backend: acc-basic
    path: /open
    service: ${backend.url}
  - backend: acc-basic
    service: ${backend.url}
    access:
      - bypass: [/healthz, /webhooks/]
      - basicAuth: { realm: staging, users: [{ name: ann, passwordHash: "${annHash}" }] }
  - backend: acc-ip
    service: ${backend.url}
    access:
      - ip: { allow: [203.0.113.0/24, "2001:db8::/32"], deny: [203.0.113.66] }
  - backend: acc-rate
    service: ${backend.url}
    access:
      - rateLimit: { requests: 3, perSeconds: 600 }
  - backend: acc-any
    service: ${backend.url}
    access:
      - anyOf:
          - accessToken: {}
          - basicAuth: { users: [{ name: ann, passwordHash: "${annHash}" }] }
`,
    ["acc-basic", "acc-ip", "acc-rate", "acc-any"],
  );
}, 180_000);

afterAll(async () => {
  await Promise.all(agents.map((a) => a.stop()));
  for (const close of closers) await close();
  await backend?.stop();
  await wsBackend?.stop();
  await relay?.stop();
});

describe("basicAuth", () => {
  it("asks for credentials with 401 auth_required and the realm, before anything reaches the backend", async () => {
    const before = backend.hits.get("/secret") ?? 0;
    const res = await get("/r/acc-basic/secret");
    expect(res.status).toBe(401);
    expect(res.headers.get("www-authenticate")).toBe('Basic realm="staging", charset="UTF-8"');
    expect(await res.json()).toMatchObject({ error: "auth_required", backend: "acc-basic" });
    expect(backend.hits.get("/secret") ?? 0).toBe(before);
  });

  it("lets the right password in and tells the backend who came, dropping a public X-Relay-User", async () => {
    const res = await get("/r/acc-basic/echo", {
      authorization: basic("ann", "correct horse"),
      "x-relay-user": "mallory",
      "x-relay-user-email": "m@evil",
    });
    expect(res.status).toBe(200);
    const headers = (await res.json()).rawHeaders as string[];
    const users = headers.filter((_, i) => i % 2 === 0 && headers[i].toLowerCase() === "x-relay-user").length;
    expect(users).toBe(1);
    expect(headers[headers.findIndex((h) => h.toLowerCase() === "x-relay-user") + 1]).toBe("ann");
    expect(headers.map((h) => h.toLowerCase())).not.toContain("x-relay-user-email");
  });

  it.each([
    ["a wrong password", basic("ann", "correct horse!"), "auth_invalid"],
    ["an unknown user", basic("bob", "correct horse"), "auth_invalid"],
    ["an empty password", basic("ann", ""), "auth_invalid"],
    ["no colon", `Basic ${Buffer.from("ann").toString("base64")}`, "auth_invalid"],
    ["bad base64", "Basic !!!!", "auth_invalid"],
    ["no credentials after Basic", "Basic", "auth_invalid"],
    ["another scheme", "Bearer abc", "auth_required"],
    ["the password in the clear", "Basic ann:correct horse", "auth_invalid"],
    ["invalid UTF-8", `Basic ${Buffer.from([0x61, 0x3a, 0xff, 0xfe]).toString("base64")}`, "auth_invalid"],
  ])("refuses %s", async (_what, authorization, code) => {
    const res = await get("/r/acc-basic/echo", { authorization });
    expect(res.status).toBe(401);
    expect((await res.json()).error).toBe(code);
    expect(res.headers.get("www-authenticate")).toMatch(/^Basic realm="staging"/);
  });

  it("takes the scheme in any case and a password holding colons", async () => {
    const hash = await hashPassword("a:b:c");
    expect(hash).toMatch(/^pbkdf2-sha256\$100000\$/);
    const res = await get("/r/acc-basic/echo", { authorization: `basic ${Buffer.from("ann:correct horse").toString("base64")}` });
    expect(res.status).toBe(200);
  });

  it("leaves a rule without access open, and checks a WebSocket upgrade like any request", async () => {
    expect((await get("/r/acc-basic/open")).status).toBe(200);
    const refused = new WebSocket(`${relay.url.replace("http", "ws")}/r/acc-basic/ws/echo?id=refused`);
    const status = await within(
      new Promise<number>((resolve) => refused.on("unexpected-response", (_req, res) => resolve(res.statusCode!))),
      "the refused upgrade",
    );
    expect(status).toBe(401);
    expect(wsBackend.conns.has("refused")).toBe(false);
    const ws = new WebSocket(`${relay.url.replace("http", "ws")}/r/acc-basic/ws/echo?id=admitted`, {
      headers: { authorization: basic("ann", "correct horse") },
    });
    await within(new Promise((resolve, reject) => ws.on("open", resolve).on("error", reject)), "the admitted upgrade");
    ws.send("hello");
    expect((await nextMessage(ws)).data.toString()).toBe("hello");
    expect((await wsBackend.connection("admitted")).headers["x-relay-user"]).toBe("ann");
    ws.close();
  });
});

describe("bypass", () => {
  it("lets the listed paths through without credentials", async () => {
    expect((await get("/r/acc-basic/healthz")).status).toBe(200);
    expect((await get("/r/acc-basic/webhooks/github")).status).toBe(200);
    expect((await get("/r/acc-basic/healthzz")).status).toBe(401);
  });

  it.each([
    "/healthz/../admin",
    "/healthz/%2e%2e/admin",
    "/healthz/..%2fadmin",
    "/healthz/%2E%2E%2Fadmin",
    "/webhooks/..%2f..%2fadmin",
    "/webhooks/..;/admin",
    "/webhooks/%252e%252e/admin",
    "/webhooks\\..\\admin",
    "/healthz%2f..%2fadmin",
  ])("does not bypass %s", async (path) => {
    const res = await rawRequest(relay.url, { path: `/r/acc-basic${path}` });
    expect(res.status).toBe(401);
    expect(JSON.parse(res.body.toString()).error).toBe("auth_required");
  });

  it("does not let a path under an open rule reach a protected one by encoding", async () => {
    const res = await rawRequest(relay.url, { path: "/r/acc-basic/open/..%2fadmin" });
    expect(res.status).toBe(401);
  });
});

describe("ip", () => {
  it("refuses an address outside the allow list whatever X-Forwarded-For claims", async () => {
    const res = await get("/r/acc-ip/echo", { "x-forwarded-for": "203.0.113.5", "x-real-ip": "203.0.113.5" });
    expect(res.status).toBe(403);
    expect(await res.json()).toMatchObject({ error: "forbidden_ip", backend: "acc-ip" });
  });

  it.each([
    ["203.0.113.5", 200],
    ["2001:db8::1", 200],
    ["203.0.113.66", 403],
    ["198.51.100.1", 403],
    ["2001:db9::1", 403],
  ])("judges the edge-reported address %s: %s", async (ip, status) => {
    expect((await get("/r/acc-ip/echo", { "cf-connecting-ip": ip })).status).toBe(status);
  });
});

describe("rateLimit", () => {
  it("answers 429 rate_limited with Retry-After past the limit, per client address", async () => {
    const from = { "cf-connecting-ip": "198.51.100.20" };
    for (let i = 0; i < 3; i++) expect((await get("/r/acc-rate/echo", from)).status).toBe(200);
    const res = await get("/r/acc-rate/echo", from);
    expect(res.status).toBe(429);
    expect((await res.json()).error).toBe("rate_limited");
    expect(Number(res.headers.get("retry-after"))).toBeGreaterThan(0);
    expect((await get("/r/acc-rate/echo", { "cf-connecting-ip": "198.51.100.21" })).status).toBe(200);
  });
});

describe("anyOf", () => {
  it("lets either alternative in and asks with the basic challenge", async () => {
    const none = await get("/r/acc-any/echo");
    expect(none.status).toBe(401);
    expect(none.headers.get("www-authenticate")).toMatch(/^Basic /);
    expect((await get("/r/acc-any/echo", { authorization: basic("ann", "correct horse") })).status).toBe(200);
    const token = await mintToken(relay.secret, "acc-any", { scope: "access" });
    expect((await get("/r/acc-any/echo", { "x-relay-access-token": token })).status).toBe(200);
    const other = await mintToken(relay.secret, "acc-ip", { scope: "access" });
    expect((await get("/r/acc-any/echo", { "x-relay-access-token": other })).status).toBe(401);
  });
});

describe("--policy and two agents of one backend", () => {
  it("checks each request against the policy of the agent that serves it", async () => {
    const open = await namedServer("ip-agent");
    const locked = await namedServer("auth-agent");
    const policy = join(dir, "ip-policy.yaml");
    writeFileSync(policy, "access:\n  - ip: { allow: [203.0.113.0/24] }\n");
    const ipAgent = await startAgent(
      agentArgs(relay.url, "acc-dual", await relay.token("acc-dual"), `http://127.0.0.1:${open}`, [
        "--policy",
        policy,
        "--connections",
        "1",
      ]),
      { waitUp: 1 },
    );
    agents.push(ipAgent);
    await agentFor(
      `relay: ${relay.url}\ningress:\n  - backend: acc-dual\n    service: http://127.0.0.1:${locked}\n    access:\n      - basicAuth: { users: [{ name: ann, passwordHash: "${annHash}" }] }\n`,
      ["acc-dual"],
    );
    const seen = { fromNet: new Set<string>(), withAuth: new Set<string>() };
    for (let i = 0; i < 12; i++) {
      const a = await get("/r/acc-dual/x", { "cf-connecting-ip": "203.0.113.9" });
      expect(a.status).toBe(200);
      seen.fromNet.add(await a.text());
      const b = await get("/r/acc-dual/x", { authorization: basic("ann", "correct horse") });
      expect(b.status).toBe(200);
      seen.withAuth.add(await b.text());
    }
    expect([...seen.fromNet]).toEqual(["ip-agent -"]);
    expect([...seen.withAuth]).toEqual(["auth-agent ann"]);
    const neither = await get("/r/acc-dual/x");
    expect([401, 403]).toContain(neither.status);
  });

  it("refuses a policy file with a mistake, naming the file and the key path", async () => {
    const policy = join(dir, "bad-policy.yaml");
    writeFileSync(policy, "- ip: { allow: [203.0.113.0/40] }\n");
    const bad = await startAgent(agentArgs(relay.url, "acc-bad", await relay.token("acc-bad"), backend.url, ["--policy", policy]));
    agents.push(bad);
    const exited = new Promise<number | null>((resolve) => bad.proc.once("exit", resolve));
    await bad.waitForLine(
      /bad-policy\.yaml: access\[0\]\.ip\.allow\[0\] "203\.0\.113\.0\/40" is not an IPv4 or IPv6 address or CIDR block/,
    );
    expect(bad.proc.exitCode ?? (await within(exited, "the agent's exit"))).toBe(2);
  });
});
