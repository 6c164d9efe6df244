// An idle WebSocket through the relay: no application traffic for 130 s (long enough for the
// Durable Object to be evicted under its hibernatable sockets), then messages still flow both ways.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { agentArgs, startAgent, type AgentProcess } from "../helpers/agent.ts";
import { startRelay, type RelayHandle } from "../helpers/relay.ts";
import { nextMessage, startWsBackend, type WsBackend } from "../helpers/ws-backend.ts";

const NAME = "idle-sockets";
const IDLE_MS = 130_000;
let relay: RelayHandle;
let backend: WsBackend;
let agent: AgentProcess;

beforeAll(async () => {
  // A snapshot of src/: wrangler reloads the Worker on any edit, which would drop the idle socket.
  [relay, backend] = await Promise.all([startRelay({ snapshot: true }), startWsBackend()]);
  agent = await startAgent(agentArgs(relay.url, NAME, await relay.token(NAME), backend.url), { waitUp: 1 });
});

afterAll(async () => {
  await agent?.stop();
  await Promise.all([relay?.stop(), backend?.stop()]);
});

describe("an idle WebSocket", () => {
  it("stays open for 130 s without traffic, then echoes both ways", async () => {
    // The ws client sends no pings of its own; only the agent's tunnel heartbeat runs meanwhile.
    const ws = await new Promise<WebSocket>((resolve, reject) => {
      const s = new WebSocket(`${relay.url.replace("http", "ws")}/r/${NAME}/echo?id=idle`);
      s.once("open", () => resolve(s));
      s.once("error", reject);
    });
    const conn = await backend.connection("idle");
    const events: string[] = [];
    ws.on("close", (code, reason) => events.push(`client close ${code} ${reason}`));
    ws.on("error", (err) => events.push(`client error ${err.message}`));
    ws.on("ping", () => events.push("client ping"));
    ws.on("message", (data) => events.push(`client message ${data}`));
    conn.ws.on("close", (code, reason) => events.push(`backend close ${code} ${reason}`));
    conn.ws.on("message", (data) => events.push(`backend message ${data}`));

    // One round trip first, so the idle period starts with a stream that has carried data.
    ws.send("before");
    expect((await nextMessage(ws)).data.toString()).toBe("before");
    events.length = 0;
    const agentLinesBefore = agent.lines.length;

    await new Promise((r) => setTimeout(r, IDLE_MS));

    expect(events).toEqual([]);
    expect(ws.readyState).toBe(WebSocket.OPEN);
    expect(conn.ws.readyState).toBe(WebSocket.OPEN);
    expect(agent.lines.slice(agentLinesBefore).filter((l) => / down: | up: /.test(l))).toEqual([]);
    expect(agent.proc.exitCode).toBeNull();

    // Client -> backend -> client.
    const echoed = nextMessage(ws);
    ws.send("after idle, from the client");
    expect((await echoed).data.toString()).toBe("after idle, from the client");
    const binary = Buffer.from([0, 1, 2, 253, 254, 255]);
    const echoedBinary = nextMessage(ws);
    ws.send(binary);
    const gotBinary = await echoedBinary;
    expect(gotBinary.binary).toBe(true);
    expect(gotBinary.data.equals(binary)).toBe(true);
    // Backend -> client, started by the backend.
    const pushed = nextMessage(ws);
    conn.ws.send("after idle, from the backend");
    expect((await pushed).data.toString()).toBe("after idle, from the backend");
    expect(events.filter((e) => e.includes("close") || e.includes("error"))).toEqual([]);

    const clientClosed = new Promise<number>((resolve) => ws.once("close", (code) => resolve(code)));
    ws.close(1000, "done");
    expect(await conn.closed).toEqual({ code: 1000, reason: "done" });
    expect(await clientClosed).toBe(1000);
  }, 200_000);
});
