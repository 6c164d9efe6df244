// The agent's --metrics endpoint end to end: a known mix of requests through the real relay and
// agent, the scrape parsed whole and checked for exact counts and buckets; /ready follows the tunnels.
import { mkdtempSync, writeFileSync } from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mintToken } from "../../src/auth.ts";
import { startAgent, type AgentProcess } from "../helpers/agent.ts";
import { startBackend, type Backend } from "../helpers/backend.ts";
import { rawRequest } from "../helpers/client.ts";
import { parsePrometheus, type Scrape } from "../helpers/prometheus.ts";
import { startRelay, type RelayHandle } from "../helpers/relay.ts";
import { deferred, until } from "../helpers/wait.ts";

let relay: RelayHandle;
let backend: Backend;
let agent: AgentProcess;
let metricsUrl: string;
const UP = "met";
const DOWN = "met-down";
const held = deferred();

/** A port nothing listens on. */
async function closedPort(): Promise<number> {
  const server = http.createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

beforeAll(async () => {
  [relay, backend] = await Promise.all([startRelay(), startBackend()]);
  backend.route("/slow", (_req, res) => void setTimeout(() => res.end("slow"), 1100));
  backend.route("/hold", async (_req, res) => {
    await held.promise;
    res.end("held");
  });
  const dir = mkdtempSync(join(tmpdir(), "edge-relay-metrics-"));
  const file = join(dir, "agent.yaml");
  writeFileSync(
    file,
    `relay: ${relay.url}\nmetrics: 127.0.0.1:0\ningress:\n  - backend: ${UP}\n    service: ${backend.url}\n  - backend: ${DOWN}\n    service: http://127.0.0.1:${await closedPort()}\n`,
  );
  const token = await mintToken(relay.secret, [UP, DOWN]);
  agent = await startAgent(["agent", "--config", file], { waitUp: 2, env: { EDGE_RELAY_TOKEN: token } });
  const line = await agent.waitForLine(/metrics on http:\/\/127\.0\.0\.1:\d+\/metrics/);
  metricsUrl = /(http:\/\/\S+)\/metrics/.exec(line)![1];
  await until(async () => (await fetch(`${metricsUrl}/ready`)).status === 200, "both backends up");
});

afterAll(async () => {
  held.resolve();
  await agent?.stop();
  await Promise.all([relay?.stop(), backend?.stop()]);
});

async function scrape(): Promise<Scrape> {
  const res = await fetch(`${metricsUrl}/metrics`);
  expect(res.status).toBe(200);
  expect(res.headers.get("content-type")).toMatch(/^text\/plain; version=0\.0\.4/);
  return parsePrometheus(await res.text());
}

const M = "edge_relay_agent_";

describe("--metrics", () => {
  it("counts a known mix of requests exactly: by method and status class, bytes each way, histogram buckets", async () => {
    let bodyBytes = 0;
    const send = async (path: string, expected: number, opts: { method?: string; body?: string } = {}) => {
      const res = await rawRequest(relay.url, { path: `/r/${UP}${path}`, ...opts });
      expect(res.status).toBe(expected);
      bodyBytes += res.body.length;
    };
    for (let i = 0; i < 3; i++) await send("/status?code=200", 200);
    for (let i = 0; i < 2; i++) await send("/echo", 200, { method: "POST", body: "x".repeat(1000) });
    await send("/status?code=404", 404);
    for (let i = 0; i < 2; i++) await send("/status?code=503", 503);
    await send("/slow", 200);
    await send("/bytes?n=5000", 200);
    for (let i = 0; i < 2; i++) expect((await rawRequest(relay.url, { path: `/r/${DOWN}/` })).status).toBe(502);

    let m = await scrape();
    await until(async () => (m = await scrape()).value(`${M}request_duration_seconds_count`, { backend: UP }) === 10, "10 requests done");
    await until(async () => ((m = await scrape()).value(`${M}requests_total`, { backend: DOWN }) ?? 0) === 2, "2 failures done");
    expect(m.types.get(`${M}requests_total`)).toBe("counter");
    expect(m.types.get(`${M}request_duration_seconds`)).toBe("histogram");
    const requests = (backend: string, method: string, status_class: string) =>
      m.value(`${M}requests_total`, { backend, method, status_class }) ?? 0;
    expect(requests(UP, "GET", "2xx")).toBe(5);
    expect(requests(UP, "POST", "2xx")).toBe(2);
    expect(requests(UP, "GET", "4xx")).toBe(1);
    expect(requests(UP, "GET", "5xx")).toBe(2);
    expect(requests(DOWN, "GET", "error")).toBe(2);
    expect(m.samples.filter((s) => s.name === `${M}requests_total` && s.labels.backend === UP)).toHaveLength(4);
    expect(m.value(`${M}target_errors_total`, { backend: DOWN, kind: "ECONNREFUSED" })).toBe(2);
    expect(m.value(`${M}target_errors_total`, { backend: UP }) ?? 0).toBe(0);
    expect(m.value(`${M}request_bytes_total`, { backend: UP })).toBe(2000);
    expect(m.value(`${M}response_bytes_total`, { backend: UP })).toBe(bodyBytes);

    for (const name of ["response_head_seconds", "request_duration_seconds"]) {
      const buckets = m.buckets(`${M}${name}`, { backend: UP });
      expect(buckets.map(([le]) => le)).toEqual([0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, Infinity]);
      for (let i = 1; i < buckets.length; i++) expect(buckets[i][1]).toBeGreaterThanOrEqual(buckets[i - 1][1]);
      expect(buckets.at(-1)![1]).toBe(10);
      expect(m.value(`${M}${name}_count`, { backend: UP })).toBe(10);
      // The backend waited 1.1 s before its head: that request is above the 1 s bucket.
      expect(buckets.find(([le]) => le === 1)![1]).toBeLessThanOrEqual(9);
      expect(m.value(`${M}${name}_sum`, { backend: UP })).toBeGreaterThanOrEqual(1.1);
    }
    // Failed before any head: counted in the duration, not the head histogram.
    expect(m.value(`${M}request_duration_seconds_count`, { backend: DOWN })).toBe(2);
    expect(m.value(`${M}response_head_seconds_count`, { backend: DOWN }) ?? 0).toBe(0);
  });

  it("shows the streams in flight and the tunnels up per backend", async () => {
    let m = await scrape();
    expect(m.value(`${M}tunnels_up`, { backend: UP })).toBe(2);
    expect(m.value(`${M}tunnels_up`, { backend: DOWN })).toBe(2);
    expect(m.value(`${M}streams_in_flight`, { backend: UP })).toBe(0);
    const pending = rawRequest(relay.url, { path: `/r/${UP}/hold` });
    await until(() => backend.hits.get("/hold") === 1, "the held request at the backend");
    m = await scrape();
    expect(m.value(`${M}streams_in_flight`, { backend: UP })).toBe(1);
    held.resolve();
    expect((await pending).status).toBe(200);
    await until(async () => (await scrape()).value(`${M}streams_in_flight`, { backend: UP }) === 0, "no stream in flight");
  });

  it("answers /healthz, and /ready only while every backend has a tunnel: 503 when the relay goes, 200 once it is back", async () => {
    expect(await (await fetch(`${metricsUrl}/healthz`)).json()).toEqual({ status: "alive" });
    expect((await fetch(`${metricsUrl}/ready`)).status).toBe(200);
    expect((await fetch(`${metricsUrl}/nothing`)).status).toBe(404);
    const { port, secret } = relay;
    await relay.stop();
    await until(async () => (await fetch(`${metricsUrl}/ready`)).status === 503, "/ready 503 with the relay gone");
    const down = await fetch(`${metricsUrl}/ready`);
    expect(await down.json()).toEqual({ status: "not_ready", waiting: [UP, DOWN] });
    expect((await fetch(`${metricsUrl}/healthz`)).status).toBe(200);
    let m = await scrape();
    expect(m.value(`${M}tunnels_up`, { backend: UP })).toBe(0);
    relay = await startRelay({ port, secret });
    await until(async () => (await fetch(`${metricsUrl}/ready`)).status === 200, "/ready 200 with the relay back", 30_000);
    await until(async () => (m = await scrape()).value(`${M}tunnels_up`, { backend: UP }) === 2, "2 tunnels again", 30_000);
    // Each of the backend's two tunnel slots reconnected once.
    expect(m.value(`${M}reconnects_total`, { backend: UP })).toBe(2);
    expect((await rawRequest(relay.url, { path: `/r/${UP}/status?code=200` })).status).toBe(200);
  });
});
