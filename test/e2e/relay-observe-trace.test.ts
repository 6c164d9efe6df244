// W3C traceparent through the real relay and agent, read at a real backend: a valid incoming one
// arrives unchanged, a missing or invalid one is replaced by a new valid one with random ids.
// This relay has no admin token, so its admin views are off.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { agentArgs, startAgent, type AgentProcess } from "../helpers/agent.ts";
import { startBackend, type Backend } from "../helpers/backend.ts";
import { startRelay, type RelayHandle } from "../helpers/relay.ts";
import { within } from "../helpers/wait.ts";
import { startWsBackend, type WsBackend } from "../helpers/ws-backend.ts";

const NAME = "obs-trace";
const W3C = /^00-([0-9a-f]{32})-([0-9a-f]{16})-01$/;

let relay: RelayHandle;
let backend: Backend;
let wsBackend: WsBackend;
const agents: AgentProcess[] = [];

beforeAll(async () => {
  [relay, backend, wsBackend] = await Promise.all([startRelay({ snapshot: true }), startBackend(), startWsBackend()]);
  backend.route("/trace", (req, res) => {
    res.setHeader("content-type", "application/json");
    res.end(JSON.stringify({ traceparent: req.headers.traceparent ?? null, tracestate: req.headers.tracestate ?? null }));
  });
  for (const [name, target] of [
    [NAME, backend.url],
    [`${NAME}-ws`, wsBackend.url],
  ]) {
    agents.push(await startAgent(agentArgs(relay.url, name, await relay.token(name), target, ["--connections", "1"]), { waitUp: 1 }));
  }
}, 120_000);

afterAll(async () => {
  await Promise.all(agents.map((a) => a.stop()));
  await Promise.all([relay?.stop(), backend?.stop(), wsBackend?.stop()]);
});

/** What the backend saw of the trace headers for a request carrying `headers`. */
async function seen(headers: Record<string, string> = {}): Promise<{ traceparent: string | null; tracestate: string | null }> {
  const res = await fetch(`${relay.url}/r/${NAME}/trace`, { headers });
  expect(res.status).toBe(200);
  return (await res.json()) as { traceparent: string | null; tracestate: string | null };
}

describe("the relay's admin views without RELAY_ADMIN_TOKEN", () => {
  it("answer 404 not_found: backends, metrics and the dashboard are off", async () => {
    for (const path of ["/_relay/backends", "/_relay/metrics", "/_relay/dashboard", "/_relay/dashboard/api/backends"]) {
      const res = await fetch(`${relay.url}${path}`, { headers: { authorization: "Bearer anything" } });
      expect(res.status, path).toBe(404);
      expect(((await res.json()) as { error: string }).error).toBe("not_found");
    }
  });
});

describe("traceparent", () => {
  it("starts a valid trace with random ids for a request without one", async () => {
    const ids = new Set<string>();
    for (let i = 0; i < 5; i++) {
      const { traceparent } = await seen();
      const m = W3C.exec(traceparent ?? "");
      expect(m, String(traceparent)).not.toBeNull();
      expect(m![1]).not.toBe("0".repeat(32));
      expect(m![2]).not.toBe("0".repeat(16));
      ids.add(m![1]).add(m![2]);
    }
    expect(ids.size).toBe(10);
  });

  it("passes a valid incoming traceparent and its tracestate on unchanged", async () => {
    for (const traceparent of [
      "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
      "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
      // A later version: parsed by its prefix, the rest kept.
      "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-future",
    ]) {
      expect(await seen({ traceparent, tracestate: "vendor=opaque" })).toEqual({ traceparent, tracestate: "vendor=opaque" });
    }
  });

  it("replaces an invalid traceparent with a new one and drops its tracestate", async () => {
    for (const bad of [
      "garbage",
      "00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01",
      "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
      "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
      "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
      "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
      "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
    ]) {
      const got = await seen({ traceparent: bad, tracestate: "vendor=opaque" });
      expect(got.traceparent, bad).toMatch(W3C);
      expect(got.traceparent).not.toContain("4bf92f3577b34da6a3ce929d0e0e4736");
      expect(got.tracestate, bad).toBeNull();
    }
  });

  it("gives a public WebSocket's upgrade a traceparent too", async () => {
    const client = new WebSocket(`${relay.url.replace("http", "ws")}/r/${NAME}-ws/echo?id=trace`);
    const conn = await wsBackend.connection("trace");
    expect(conn.headers.traceparent).toMatch(W3C);
    await within(new Promise((resolve) => client.once("open", resolve)), "the public WebSocket");
    client.close();
  });
});
