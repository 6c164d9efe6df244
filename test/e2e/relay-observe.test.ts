// The relay's observers' views end to end: GET /_relay/backends lists the backends with tunnels
// (agent versions, targets, streams in flight), GET /_relay/metrics counts a known mix of
// requests exactly. Real relay (workerd), real agents, real HTTP and WebSocket backends.
import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { agentArgs, startAgent, type AgentProcess } from "../helpers/agent.ts";
import { startBackend, type Backend } from "../helpers/backend.ts";
import { parsePrometheus, type Scrape } from "../helpers/prometheus.ts";
import { startRelay, type RelayHandle } from "../helpers/relay.ts";
import { deferred, until, within } from "../helpers/wait.ts";
import { startWsBackend, type WsBackend } from "../helpers/ws-backend.ts";

const ADMIN = `admin-${randomBytes(16).toString("hex")}`;
const auth = { authorization: `Bearer ${ADMIN}` };

let relay: RelayHandle;
let backend: Backend;
let wsBackend: WsBackend;
const agents: AgentProcess[] = [];

beforeAll(async () => {
  [relay, backend, wsBackend] = await Promise.all([
    startRelay({ vars: { RELAY_ADMIN_TOKEN: ADMIN }, snapshot: true }),
    startBackend(),
    startWsBackend(),
  ]);
  backend.route("/status", (req, res) => {
    res.statusCode = Number(new URL(req.url!, "http://x").searchParams.get("code"));
    res.end("status");
  });
  backend.route("/upload", (req, res) => {
    let n = 0;
    req.on("data", (c: Buffer) => (n += c.length));
    req.on("end", () => res.end(String(n)));
  });
}, 120_000);

afterAll(async () => {
  await Promise.all(agents.map((a) => a.stop()));
  await Promise.all([relay?.stop(), backend?.stop(), wsBackend?.stop()]);
});

async function agent(name: string, target: string, connections: number): Promise<AgentProcess> {
  const a = await startAgent(agentArgs(relay.url, name, await relay.token(name), target, ["--connections", String(connections)]), {
    waitUp: connections,
  });
  agents.push(a);
  return a;
}

interface Listed {
  backend: string;
  streams: number;
  websockets: number;
  tunnels: Array<{ tunnelId: string; agentId: string; agentVersion: string; software: string; targets: string[]; streams: number }>;
}

async function listBackends(): Promise<Listed[]> {
  const res = await fetch(`${relay.url}/_relay/backends`, { headers: auth });
  expect(res.status).toBe(200);
  return ((await res.json()) as { backends: Listed[] }).backends;
}

async function scrape(): Promise<Scrape> {
  const res = await fetch(`${relay.url}/_relay/metrics`, { headers: auth });
  expect(res.status).toBe(200);
  expect(res.headers.get("content-type")).toMatch(/^text\/plain; version=0\.0\.4/);
  return parsePrometheus(await res.text());
}

const get = (name: string, path: string, init?: RequestInit) => fetch(`${relay.url}/r/${name}${path}`, init);

describe("GET /_relay/backends", () => {
  it("lists each backend with tunnels: agent version, targets, streams in flight; a closed backend leaves", async () => {
    await agent("obs-list-a", backend.url, 2);
    const b = await agent("obs-list-b", wsBackend.url, 1);
    const held = deferred();
    const arrived = deferred();
    backend.route("/held", async (_req, res) => {
      arrived.resolve();
      await held.promise;
      res.end("released");
    });
    const pending = get("obs-list-a", "/held");
    await within(arrived.promise, "the held request at the backend");

    const listed = (await listBackends()).filter((l) => l.backend.startsWith("obs-list-"));
    expect(listed.map((l) => l.backend)).toEqual(["obs-list-a", "obs-list-b"]);
    const [a, bList] = listed;
    expect(a.tunnels).toHaveLength(2);
    expect(bList.tunnels).toHaveLength(1);
    for (const t of [...a.tunnels, ...bList.tunnels]) {
      expect(t.agentVersion).toMatch(/^\d+\.\d+\.\d+/);
      expect(t.software).toBe(`edge-relay-agent/${t.agentVersion}`);
      expect(t.targets).toEqual(["http/1.1"]);
    }
    expect(a.streams).toBe(1);
    expect(a.tunnels.map((t) => t.streams).sort()).toEqual([0, 1]);
    expect(bList.streams).toBe(0);
    held.resolve();
    expect(await (await pending).text()).toBe("released");

    await b.stop();
    await until(async () => !(await listBackends()).some((l) => l.backend === "obs-list-b"), "obs-list-b to leave the listing");
    expect((await listBackends()).find((l) => l.backend === "obs-list-a")?.tunnels).toHaveLength(2);
  }, 60_000);

  it("answers 401 admin_unauthorized without the admin token, and never echoes it", async () => {
    for (const path of ["/_relay/backends", "/_relay/metrics"]) {
      for (const headers of [{}, { authorization: `Bearer ${ADMIN}x` }, { authorization: ADMIN }] as Array<Record<string, string>>) {
        const res = await fetch(`${relay.url}${path}`, { headers });
        expect(res.status, `${path} ${JSON.stringify(headers)}`).toBe(401);
        const text = await res.text();
        expect(JSON.parse(text).error).toBe("admin_unauthorized");
        expect(text).not.toContain(ADMIN);
      }
    }
  });
});

describe("GET /_relay/metrics", () => {
  it("counts a known mix of requests exactly, by status class and error code, with tunnels, WebSockets and bytes", async () => {
    const name = "obs-metrics";
    const dead = "obs-metrics-dead";
    await agent(name, backend.url, 1);
    // A target nobody listens on: each request is answered 502 origin_unreachable by the relay.
    await agent(dead, "http://127.0.0.1:9", 1);
    const ws = await agent("obs-metrics-ws", wsBackend.url, 1);

    const statuses: number[] = [];
    for (const code of [200, 200, 201, 204, 301, 404, 404, 418, 500, 503]) statuses.push((await get(name, `/status?code=${code}`)).status);
    expect(statuses).toEqual([200, 200, 201, 204, 301, 404, 404, 418, 500, 503]);
    for (let i = 0; i < 3; i++) {
      const res = await get(dead, "/");
      expect(res.status).toBe(502);
      expect(((await res.json()) as { error: string }).error).toBe("origin_unreachable");
    }

    const client = new WebSocket(`${relay.url.replace("http", "ws")}/r/obs-metrics-ws/echo?id=m1`);
    await within(new Promise((resolve, reject) => client.once("open", resolve).once("error", reject)), "the public WebSocket");

    let m = await scrape();
    expect(m.types.get("edge_relay_requests_total")).toBe("counter");
    expect(m.types.get("edge_relay_errors_total")).toBe("counter");
    expect(m.types.get("edge_relay_tunnels")).toBe("gauge");
    expect(m.types.get("edge_relay_public_websockets")).toBe("gauge");
    const requests = (backendName: string, statusClass: string) =>
      m.value("edge_relay_requests_total", { backend: backendName, class: statusClass });
    expect(requests(name, "2xx")).toBe(4);
    expect(requests(name, "3xx")).toBe(1);
    expect(requests(name, "4xx")).toBe(3);
    expect(requests(name, "5xx")).toBe(2);
    expect(m.samples.filter((s) => s.name === "edge_relay_errors_total" && s.labels.backend === name)).toEqual([]);
    expect(requests(dead, "5xx")).toBe(3);
    expect(requests(dead, "2xx")).toBeUndefined();
    expect(m.value("edge_relay_errors_total", { backend: dead, code: "origin_unreachable" })).toBe(3);
    expect(requests("obs-metrics-ws", "1xx")).toBe(1);
    expect(m.value("edge_relay_tunnels", { backend: name })).toBe(1);
    expect(m.value("edge_relay_public_websockets", { backend: "obs-metrics-ws" })).toBe(1);
    expect(m.value("edge_relay_public_websockets", { backend: name })).toBe(0);

    // Bytes each way: an upload of a known size moves at least that many bytes to the agent.
    const toAgent = m.value("edge_relay_tunnel_bytes_total", { backend: name, direction: "to_agent" })!;
    const fromAgent = m.value("edge_relay_tunnel_bytes_total", { backend: name, direction: "from_agent" })!;
    const upload = randomBytes(200_000);
    const res = await get(name, "/upload", { method: "POST", body: upload });
    expect(await res.text()).toBe("200000");
    m = await scrape();
    const sent = m.value("edge_relay_tunnel_bytes_total", { backend: name, direction: "to_agent" })! - toAgent;
    const received = m.value("edge_relay_tunnel_bytes_total", { backend: name, direction: "from_agent" })! - fromAgent;
    expect(sent).toBeGreaterThanOrEqual(200_000);
    expect(sent).toBeLessThan(200_000 + 4096);
    expect(received).toBeGreaterThan(0);
    expect(received).toBeLessThan(4096);
    expect(requests(name, "2xx")).toBe(5);

    // The WebSocket's close and a stopped agent show in the gauges; the backend stays in the scrape.
    client.close();
    await until(
      async () => (await scrape()).value("edge_relay_public_websockets", { backend: "obs-metrics-ws" }) === 0,
      "the WebSocket gauge to drop",
    );
    await ws.stop();
    const gone = await get("obs-metrics-ws", "/");
    expect(gone.status).toBe(502);
    m = await scrape();
    expect(m.value("edge_relay_tunnels", { backend: "obs-metrics-ws" })).toBe(0);
    expect(m.value("edge_relay_errors_total", { backend: "obs-metrics-ws", code: "no_agent" })).toBe(1);
    expect(m.value("edge_relay_backends")).toBe(m.samples.filter((s) => s.name === "edge_relay_tunnels" && s.value > 0).length);
  }, 90_000);
});
