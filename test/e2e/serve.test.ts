// `npm run serve` as a user runs it (scripts/serve.ts as a child process): TLS from certificate
// files and the client address it reports, Durable Object storage kept across a restart, its flags.
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { agentArgs, startAgent, type AgentProcess } from "../helpers/agent.ts";
import { startBackend, type Backend } from "../helpers/backend.ts";
import { makePki, type Pki } from "../helpers/certs.ts";
import { curl } from "../helpers/client.ts";
import { startRelay, type RelayHandle } from "../helpers/relay.ts";
import { nextMessage, startWsBackend, type WsBackend } from "../helpers/ws-backend.ts";
import { within } from "../helpers/wait.ts";
import { parseServeOptions, serveBindings } from "../../scripts/serve.ts";
import { readDevVars } from "../../scripts/dev-vars.ts";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const TSX = fileURLToPath(new URL("../../node_modules/tsx/dist/cli.mjs", import.meta.url));
const ADMIN = "serve-admin-token-0123456789";

let backend: Backend;
let wsBackend: WsBackend;
const cleanups: Array<() => Promise<unknown> | void> = [];

beforeAll(async () => {
  [backend, wsBackend] = await Promise.all([startBackend(), startWsBackend()]);
});

afterAll(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
  await Promise.all([backend?.stop(), wsBackend?.stop()]);
});

async function agentFor(relay: RelayHandle, name: string, target: string, env: NodeJS.ProcessEnv = {}): Promise<AgentProcess> {
  const agent = await startAgent(agentArgs(relay.url, name, await relay.token(name), target, ["--connections", "1"]), { waitUp: 1, env });
  cleanups.push(() => agent.stop());
  return agent;
}

describe("npm run serve over TLS", () => {
  let pki: Pki;
  let relay: RelayHandle;

  beforeAll(async () => {
    pki = makePki();
    relay = await startRelay({ runtime: "serve", tls: { certFile: pki.files.serverCert, keyFile: pki.files.serverKey } });
    cleanups.push(
      () => relay.stop(),
      () => rmSync(pki.dir, { recursive: true, force: true }),
    );
  });

  it("prints an https:// URL; an agent tunnels over wss and clients reach its backend over HTTPS and WSS", async () => {
    expect(relay.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    await agentFor(relay, "tls-web", backend.url, { NODE_EXTRA_CA_CERTS: pki.files.ca });
    await agentFor(relay, "tls-ws", wsBackend.url, { NODE_EXTRA_CA_CERTS: pki.files.ca });
    // The client's own CF-Connecting-IP is dropped: X-Forwarded-For is the peer's address.
    const echo = JSON.parse(
      await curl(["--cacert", pki.files.ca, "-H", "CF-Connecting-IP: 203.0.113.9", `${relay.url}/r/tls-web/echo?over=tls`]),
    ) as { url: string; rawHeaders: string[] };
    expect(echo.url).toBe("/echo?over=tls");
    const header = (name: string) => echo.rawHeaders.filter((_, i) => i % 2 === 1 && echo.rawHeaders[i - 1].toLowerCase() === name);
    expect(header("x-forwarded-proto")).toEqual(["https"]);
    expect(header("x-forwarded-for")).toEqual(["127.0.0.1"]);

    const ws = new WebSocket(`${relay.url.replace(/^https/, "wss")}/r/tls-ws/echo?id=tls`, { ca: pki.pem.ca });
    await within(new Promise((resolve, reject) => (ws.once("open", resolve), ws.once("error", reject))), "the wss upgrade", 10_000);
    ws.send("over wss");
    expect((await nextMessage(ws)).data.toString()).toBe("over wss");
    ws.close();
  });

  it("refuses a client that does not trust the certificate", async () => {
    await expect(curl([`${relay.url}/_relay/health`])).rejects.toThrow(/certificate/i);
  });
});

describe("npm run serve's Durable Object storage", () => {
  it("keeps a token revocation across a restart on the same --state, and a fresh state does not have it", async () => {
    const state = mkdtempSync(join(tmpdir(), "edge-relay-serve-state-"));
    cleanups.push(() => rmSync(state, { recursive: true, force: true }));
    const first = await startRelay({ runtime: "serve", state, vars: { RELAY_ADMIN_TOKEN: ADMIN } });
    const token = await first.token("kept");
    const revoke = await fetch(`${first.url}/_relay/tokens/revoke`, {
      method: "POST",
      headers: { authorization: `Bearer ${ADMIN}`, "content-type": "application/json" },
      body: JSON.stringify({ backend: "kept", before: Math.floor(Date.now() / 1000) + 60 }),
    });
    expect(revoke.status).toBe(200);
    await first.stop();

    const refusal = async (relay: RelayHandle) => {
      const agent = await startAgent(agentArgs(relay.url, "kept", token, backend.url, ["--connections", "1"]));
      cleanups.push(() => agent.stop());
      return agent.waitForLine(/tunnel \d+ up|token_revoked/, 30_000);
    };
    const [again, fresh] = await Promise.all([
      startRelay({ runtime: "serve", state, secret: first.secret }),
      startRelay({ runtime: "serve", secret: first.secret }),
    ]);
    cleanups.push(
      () => again.stop(),
      () => fresh.stop(),
    );
    expect(await refusal(again)).toMatch(/401 \(token_revoked/);
    expect(await refusal(fresh)).toMatch(/tunnel \d+ up/);
  }, 180_000);
});

describe("npm run serve's command line", () => {
  const serve = (args: string[]) =>
    new Promise<{ code: number; stderr: string }>((resolve) =>
      execFile(
        process.execPath,
        [TSX, "scripts/serve.ts", ...args],
        { cwd: ROOT, timeout: 30_000, encoding: "utf8" },
        (error, _out, stderr) => resolve({ code: error ? Number(error.code ?? 1) : 0, stderr }),
      ),
    );

  it("says in one line that --tls-cert needs --tls-key, and exits 2", async () => {
    expect(await serve(["--tls-cert", "cert.pem"])).toEqual({
      code: 2,
      stderr: "npm run serve: --tls-cert and --tls-key go together: give both, or neither.\n",
    });
  });

  it("says in one line that the port is taken, and exits 1 without starting workerd", async () => {
    const server = http.createServer((_req, res) => res.writeHead(404).end());
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const { port } = server.address() as AddressInfo;
    try {
      expect(await serve(["--port", String(port)])).toEqual({
        code: 1,
        stderr: `npm run serve: port ${port} on 127.0.0.1 is taken: another program listens there; stop it, or pass --port ${port + 1}.\n`,
      });
    } finally {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });

  it.each([
    [["--port", "70000"], /--port 70000: not a port number/],
    [["--ip", "example.com"], /--ip example.com: not an IP address/],
    [["--var", "NOEQUALS"], /--var NOEQUALS: expected NAME=VALUE/],
    [["--tls-cert", "/nonexistent.pem", "--tls-key", "/nonexistent.key"], /--tls-cert \/nonexistent.pem: no such file/],
    [["--bogus"], /unknown option --bogus/],
  ])("refuses %j naming the flag", (args, message) => {
    expect(() => parseServeOptions(args as string[], {})).toThrow(message);
  });

  it("takes vars from wrangler.toml, then the env file, then RELAY_* variables, then --var", () => {
    const o = parseServeOptions(["--var", "RELAY_MAX_TUNNELS=3", "--env-file", "/dev/null"], {});
    if (o === "help") throw new Error("help");
    const env = { RELAY_DOMAIN: "relay.example.com", RELAY_MAX_TUNNELS: "9", HOME: "/root" };
    expect(serveBindings({ RELAY_DOMAIN: "localhost", OTHER: "x" }, o, env)).toEqual({
      RELAY_DOMAIN: "relay.example.com",
      OTHER: "x",
      RELAY_MAX_TUNNELS: "3",
    });
    expect(readDevVars("/nonexistent/.dev.vars")).toEqual({});
  });
});
