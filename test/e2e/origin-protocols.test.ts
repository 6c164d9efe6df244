// Upstream protocol selection end to end: h2c targets, ALPN h2 or http/1.1 for https targets,
// --origin-protocol forcing one, HTTP/2 inside HBONE, and the hello reporting what was chosen.
import { createHash } from "node:crypto";
import type http from "node:http";
import http2 from "node:http2";
import https from "node:https";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { agentArgs, startAgent, type AgentProcess } from "../helpers/agent.ts";
import { SERVER_ID, makePki, type Pki } from "../helpers/certs.ts";
import { startHboneServer, type HboneServer } from "../helpers/hbone-server.ts";
import { startRelay, type RelayHandle } from "../helpers/relay.ts";

const ADMIN = "admin-token-for-tests-0123456789";
let pki: Pki;
let relay: RelayHandle;
const agents: AgentProcess[] = [];
const servers: Array<{ close(): void }> = [];

/** Answers every request with what it saw: HTTP version, method, path, body digest; sets two cookies. */
function handler(req: http.IncomingMessage | http2.Http2ServerRequest, res: http.ServerResponse | http2.Http2ServerResponse): void {
  const hash = createHash("sha256");
  let length = 0;
  req.on("data", (c: Buffer) => {
    hash.update(c);
    length += c.length;
  });
  req.on("end", () => {
    res.setHeader("set-cookie", ["a=1", "b=2"]);
    res.setHeader("content-type", "application/json");
    res.end(JSON.stringify({ version: req.httpVersion, method: req.method, url: req.url, length, sha256: hash.digest("hex") }));
  });
}

async function listen(server: http.Server | http2.Http2Server | http2.Http2SecureServer | https.Server): Promise<number> {
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return (server.address() as AddressInfo).port;
}

async function agentFor(name: string, to: string, extra: string[] = []): Promise<void> {
  agents.push(await startAgent(agentArgs(relay.url, name, await relay.token(name), to, ["--connections", "1", ...extra]), { waitUp: 1 }));
}

async function ask(
  name: string,
  init?: RequestInit,
): Promise<{ version: string; method: string; url: string; length: number; cookies: string[] }> {
  const res = await fetch(`${relay.url}/r/${name}/echo?q=1`, init);
  expect(res.status).toBe(200);
  return {
    ...((await res.json()) as { version: string; method: string; url: string; length: number }),
    cookies: res.headers.getSetCookie(),
  };
}

async function protocolsOf(name: string): Promise<string[]> {
  const res = await fetch(`${relay.url}/_relay/backends/${name}`, { headers: { authorization: `Bearer ${ADMIN}` } });
  const body = (await res.json()) as { tunnels: Array<{ targetProtocols: string[] }> };
  return body.tunnels[0]?.targetProtocols ?? [];
}

let hbone: HboneServer;

beforeAll(async () => {
  pki = makePki();
  relay = await startRelay({ vars: { RELAY_ADMIN_TOKEN: ADMIN } });
  const h2cPort = await listen(http2.createServer(handler));
  const alpnPort = await listen(http2.createSecureServer({ key: pki.pem.serverKey, cert: pki.pem.serverCert, allowHTTP1: true }, handler));
  const h1Port = await listen(https.createServer({ key: pki.pem.serverKey, cert: pki.pem.serverCert }, handler));
  hbone = await startHboneServer(pki);
  await Promise.all([
    agentFor("h2c", `h2c://127.0.0.1:${h2cPort}`),
    agentFor("alpn", `https://127.0.0.1:${alpnPort}`, ["--origin-ca", pki.files.ca]),
    agentFor("forced-h1", `https://127.0.0.1:${alpnPort}`, ["--origin-ca", pki.files.ca, "--origin-protocol", "http1"]),
    agentFor("h1-only", `https://127.0.0.1:${h1Port}`, ["--origin-ca", pki.files.ca]),
    agentFor("mesh-h2", `hbone://127.0.0.1:${h2cPort}`, [
      "--hbone-proxy",
      `127.0.0.1:${hbone.port}`,
      "--hbone-cert",
      pki.files.clientCert,
      "--hbone-key",
      pki.files.clientKey,
      "--hbone-ca",
      pki.files.ca,
      "--hbone-identity",
      SERVER_ID,
      "--origin-protocol",
      "h2",
    ]),
  ]);
});

afterAll(async () => {
  await Promise.all(agents.map((a) => a.stop()));
  for (const s of servers) s.close();
  await hbone?.stop();
  await relay?.stop();
});

describe("upstream protocol selection", () => {
  it.each([
    ["h2c", "2.0", ["h2c"]],
    ["alpn", "2.0", ["h2"]],
    ["forced-h1", "1.1", ["http/1.1"]],
    ["h1-only", "1.1", ["http/1.1"]],
    ["mesh-h2", "2.0", ["hbone", "h2"]],
  ])("%s: the target sees HTTP/%s and the relay lists %j", async (name, version, protocols) => {
    const echo = await ask(name);
    expect(echo).toMatchObject({ version, method: "GET", url: "/echo?q=1" });
    expect(echo.cookies).toEqual(["a=1", "b=2"]);
    expect(await protocolsOf(name)).toEqual(protocols);
  });

  it.each(["h2c", "alpn", "mesh-h2"])("%s: streams a 5 MiB upload over HTTP/2 byte-exact", async (name) => {
    const body = new Uint8Array(5 * 1024 * 1024).map((_, i) => i % 251);
    const echo = await ask(name, { method: "POST", body });
    expect(echo.length).toBe(body.length);
    expect((echo as unknown as { sha256: string }).sha256).toBe(createHash("sha256").update(body).digest("hex"));
  });

  it("HTTP/2 requests run concurrently on one session", async () => {
    const results = await Promise.all(Array.from({ length: 50 }, () => ask("h2c")));
    expect(results.every((r) => r.version === "2.0")).toBe(true);
  });
});
