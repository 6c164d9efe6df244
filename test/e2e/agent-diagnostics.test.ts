// What the agent tells its operator when something outside it is wrong: a target that refuses
// connections, a token the relay refuses, and a --relay URL that does not lead to a relay
// (a path, an HTML page, plain HTTP behind https://, an echo server). Real relay and agent.
import http from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { mintToken } from "../../src/auth.ts";
import { agentArgs, startAgent, type AgentProcess } from "../helpers/agent.ts";
import { closedPort } from "../helpers/bridge.ts";
import { startRelay, type RelayHandle } from "../helpers/relay.ts";
import { WebSocketServer } from "ws";

let relay: RelayHandle;
let agents: AgentProcess[] = [];
let servers: Array<{ stop(): Promise<void> }> = [];

beforeAll(async () => {
  relay = await startRelay();
});

afterEach(async () => {
  await Promise.all([...agents.map((a) => a.stop()), ...servers.map((s) => s.stop())]);
  agents = [];
  servers = [];
});

afterAll(async () => {
  await relay?.stop();
});

async function agentFor(args: string[], opts: Parameters<typeof startAgent>[1] = {}): Promise<AgentProcess> {
  const agent = await startAgent(args, opts);
  agents.push(agent);
  return agent;
}

/** An HTTP server answering every request with a web page, like a site at the wrong URL. */
async function htmlServer(): Promise<string> {
  const server = http.createServer((_req, res) => {
    res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
    res.end("<!doctype html><title>Welcome</title><p>Welcome to the site");
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  servers.push({ stop: () => new Promise<void>((resolve) => (server.closeAllConnections(), server.close(() => resolve()))) });
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/** A WebSocket server on any path that sends back every message (echo) or nothing (silent). */
async function wsServer(mode: "echo" | "silent"): Promise<string> {
  const wss = new WebSocketServer({ host: "127.0.0.1", port: 0 });
  await new Promise<void>((resolve) => wss.once("listening", resolve));
  wss.on("connection", (ws) => ws.on("message", (data, isBinary) => mode === "echo" && ws.send(data, { binary: isBinary })));
  servers.push({
    stop: () =>
      new Promise<void>((resolve) => {
        for (const client of wss.clients) client.terminate();
        wss.close(() => resolve());
      }),
  });
  return `http://127.0.0.1:${(wss.address() as AddressInfo).port}`;
}

const matching = (agent: AgentProcess, re: RegExp) => agent.lines.filter((line) => re.test(line));

describe("a target that refuses connections", () => {
  it("gets one log line naming the target and the error, however many requests fail within 10 s", async () => {
    const port = await closedPort();
    const name = "refusing";
    const agent = await agentFor(agentArgs(relay.url, name, await relay.token(name), `http://127.0.0.1:${port}`, ["--connections", "1"]), {
      waitUp: 1,
    });
    for (let i = 0; i < 3; i++) {
      const res = await fetch(`${relay.url}/r/${name}/try-${i}`);
      expect(res.status).toBe(502);
      expect(((await res.json()) as { error: string }).error).toBe("origin_unreachable");
    }
    const line = await agent.waitForLine(/cannot reach the target/);
    expect(line).toContain(`cannot reach the target http://127.0.0.1:${port}: ECONNREFUSED`);
    expect(line).toContain("clients get 502 origin_unreachable");
    expect(matching(agent, /cannot reach the target/)).toHaveLength(1);
  });
});

describe("a token the relay refuses", () => {
  it("is reported once, and the agent exits 3 after three refusals", async () => {
    const name = "refused";
    const forged = await mintToken("not-the-relays-secret-0123456789", name);
    const agent = await agentFor(agentArgs(relay.url, name, forged, "http://127.0.0.1:9"));
    const code = await new Promise<number | null>((resolve) => agent.proc.once("exit", resolve));
    expect(code).toBe(3);
    const refusals = matching(agent, /the relay refuses the token/);
    expect(refusals).toHaveLength(1);
    expect(refusals[0]).toMatch(/\(token_invalid\).*mint a new one with `edge-relay token refused`/);
    expect(matching(agent, /giving up after the relay refused the token 3 times \(exit 3\)/)).toHaveLength(1);
    for (const line of agent.lines) expect(line).not.toContain(forged.split(".")[2]);
  });
});

describe("a --relay URL that does not lead to a relay", () => {
  const token = () => mintToken(relay.secret, "lost");

  it("with a path: says the relay listens at its root", async () => {
    const agent = await agentFor(agentArgs(`${relay.url}/some/prefix`, "lost", await token(), "http://127.0.0.1:9"));
    const line = await agent.waitForLine(/cannot connect/);
    expect(line).toContain(
      `--relay has the path /some/prefix, but the relay listens at its root: give only the scheme and host, like ${relay.url}.`,
    );
  });

  it("answering a web page: says it is not a relay", async () => {
    const site = await htmlServer();
    const agent = await agentFor(agentArgs(site, "lost", await token(), "http://127.0.0.1:9"));
    const line = await agent.waitForLine(/cannot connect/);
    expect(line).toContain(
      `${new URL(site).host} answered 200 with an HTML page instead of upgrading to an edge-relay tunnel, so it is not an edge-relay relay at that URL; check --relay`,
    );
  });

  it("with https:// for a relay that speaks plain HTTP: says to use http://", async () => {
    const agent = await agentFor(agentArgs(relay.url.replace("http:", "https:"), "lost", await token(), "http://127.0.0.1:9"));
    const line = await agent.waitForLine(/cannot connect/);
    expect(line).toContain(
      `the TLS handshake failed: if the relay is a plain-HTTP server, such as a local wrangler dev or \`npm start\`, use --relay ${relay.url} instead of https://`,
    );
  });

  it("at a WebSocket echo server: never counts the tunnel as up", async () => {
    const echo = await wsServer("echo");
    const agent = await agentFor(agentArgs(echo, "lost", await token(), "http://127.0.0.1:9"));
    const line = await agent.waitForLine(/cannot connect/);
    expect(line).toContain(
      `${new URL(echo).host} sent the agent's own hello back (an echo server?), so it is not an edge-relay relay; check --relay`,
    );
    expect(matching(agent, / up: /)).toEqual([]);
  });

  it("at a WebSocket server that sends nothing: gives up on its hello after 10 s", async () => {
    const silent = await wsServer("silent");
    const agent = await agentFor(agentArgs(silent, "lost", await token(), "http://127.0.0.1:9"));
    const line = await agent.waitForLine(/cannot connect/, 30_000);
    expect(line).toContain(
      `${new URL(silent).host} accepted the WebSocket but sent no edge-relay hello within 10s, so it is not an edge-relay relay`,
    );
    expect(matching(agent, / up: /)).toEqual([]);
  });
});
