// HTTP-TCP bridge end to end: an HTTP client -> relay (workerd) -> agent with a bridge+tcp://
// target and a plugin -> a TCP server. Debian's redis-server behind the resp plugin, the example
// length-prefixed plugin with a tiny server, raw, and plugin failures as 502 bridge_error.
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import net from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RespDecoder, encodeCommand } from "../../agent/bridge/resp-codec.ts";
import { agentArgs, startAgent, type AgentProcess } from "../helpers/agent.ts";
import { closedPort, lengthPrefixedServer, tcpServer, type TestServer } from "../helpers/bridge.ts";
import { startRelay, type RelayHandle } from "../helpers/relay.ts";
import { tool } from "../helpers/tools.ts";

const MiB = 1024 * 1024;
let relay: RelayHandle;
const agents: AgentProcess[] = [];
const servers: TestServer[] = [];

beforeAll(async () => {
  // A copy of src/: the tree may change while this runs, and wrangler would reload the Worker.
  relay = await startRelay({ snapshot: true });
});

afterAll(async () => {
  await Promise.all(agents.map((a) => a.stop()));
  await Promise.all(servers.map((s) => s.close()));
  await relay?.stop();
});

/** Starts an agent for backend `name` bridging to `port` with `plugin`; returns the backend's base URL. */
async function bridge(name: string, port: number, plugin: string, extra: string[] = []): Promise<{ url: string; agent: AgentProcess }> {
  const agent = await startAgent(
    agentArgs(relay.url, name, await relay.token(name), `bridge+tcp://127.0.0.1:${port}`, ["--bridge-plugin", plugin, ...extra]),
    { waitUp: 1 },
  );
  agents.push(agent);
  return { url: `${relay.url}/r/${name}/`, agent };
}

const post = (url: string, body: string | Buffer, headers: Record<string, string> = {}) =>
  fetch(url, { method: "POST", body: typeof body === "string" ? body : new Uint8Array(body), headers });

const redis = tool("redis-server", "redis-server");

describe.skipIf(!!redis.skip)("Redis behind the resp plugin", () => {
  let url = "";
  let redisPort = 0;

  /** Redis's own count of connections it accepted, read over a direct connection (which counts too). */
  async function connectionsReceived(): Promise<number> {
    const socket = net.connect({ host: "127.0.0.1", port: redisPort });
    socket.write(encodeCommand(["INFO", "stats"]));
    const decoder = new RespDecoder();
    const [info] = await new Promise<unknown[]>((resolve, reject) => {
      socket.on("data", (d: Buffer) => {
        const replies = decoder.push(d);
        if (replies.length) resolve(replies);
      });
      socket.on("error", reject);
    });
    socket.destroy();
    return Number(/total_connections_received:(\d+)/.exec(Buffer.from(info as Uint8Array).toString())![1]);
  }

  // Registered here, not inside beforeAll: a hook added from a hook never runs, and redis outlived the run.
  let redisServer: ChildProcess | undefined;
  afterAll(() => void redisServer?.kill());

  beforeAll(async () => {
    redisPort = await closedPort();
    redisServer = spawn(redis.path!, ["--port", String(redisPort), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"], {
      stdio: "ignore",
    });
    for (let i = 0; ; i++) {
      try {
        await connectionsReceived();
        break;
      } catch (err) {
        if (i > 100) throw err;
        await new Promise((r) => setTimeout(r, 50));
      }
    }
    ({ url } = await bridge("redis-http", redisPort, "resp"));
  });

  async function command(body: unknown): Promise<{ status: number; json: unknown }> {
    const res = await post(url, JSON.stringify(body), { "content-type": "application/json" });
    return { status: res.status, json: await res.json() };
  }

  it("runs SET, GET and INCR", async () => {
    expect(await command(["SET", "greeting", "héllo"])).toEqual({ status: 200, json: "OK" });
    expect(await command(["GET", "greeting"])).toEqual({ status: 200, json: "héllo" });
    expect(await command(["GET", "missing"])).toEqual({ status: 200, json: null });
    expect(await command(["DEL", "counter"])).toMatchObject({ status: 200 });
    expect(await command(["INCR", "counter"])).toEqual({ status: 200, json: 1 });
    expect(await command(["INCRBY", "counter", 41])).toEqual({ status: 200, json: 42 });
  });

  it("pipelines several commands in one body", async () => {
    const { status, json } = await command([
      ["SET", "p", "1"],
      ["INCR", "p"],
      ["GET", "p"],
      ["RPUSH", "pl", "a", "b"],
      ["LRANGE", "pl", 0, -1],
      ["DEL", "pl"],
    ]);
    expect(status).toBe(200);
    expect(json).toEqual(["OK", 2, "2", 2, ["a", "b"], 1]);
  });

  it("sets and gets a 5 MiB value", async () => {
    const value = randomBytes((5 * MiB) / 2).toString("hex");
    expect(await command(["SET", "big", value])).toEqual({ status: 200, json: "OK" });
    expect(await command(["STRLEN", "big"])).toEqual({ status: 200, json: 5 * MiB });
    const res = await post(url, JSON.stringify(["GET", "big"]));
    expect(res.status).toBe(200);
    expect(await res.json()).toBe(value);
  });

  it("answers a Redis error reply with 422 redis_error", async () => {
    await command(["DEL", "a-list"]);
    expect(await command(["RPUSH", "a-list", "x"])).toEqual({ status: 200, json: 1 });
    const { status, json } = await command(["INCR", "a-list"]);
    expect(status).toBe(422);
    expect(json).toEqual({
      error: "redis_error",
      message: expect.stringMatching(/^WRONGTYPE Operation against a key holding the wrong kind of value/),
    });
  });

  it("answers malformed JSON with 400 without touching Redis", async () => {
    const before = await connectionsReceived();
    const bad = await post(url, '["SET","k",');
    expect(bad.status).toBe(400);
    expect(await bad.json()).toMatchObject({ error: "bad_request", message: expect.stringMatching(/^The body is not JSON/) });
    const unsupported = await command(["SUBSCRIBE", "news"]);
    expect(unsupported.status).toBe(400);
    const get = await fetch(url);
    expect(get.status).toBe(405);
    // Only the second INFO connection itself.
    expect(await connectionsReceived()).toBe(before + 1);
  });
});

describe("the length-prefixed example plugin", () => {
  it("turns a POST into one framed message and the framed reply into the body", async () => {
    const server = await lengthPrefixedServer((payload) => Buffer.concat([Buffer.from("echo:"), payload]));
    servers.push(server);
    const { url } = await bridge("framed", server.port, "./docs/examples/length-prefixed.ts");
    const res = await post(url, "hello, frames");
    expect(res.status).toBe(200);
    expect(await res.text()).toBe("echo:hello, frames");
    const big = randomBytes(MiB / 2);
    const bigRes = await post(url, big);
    expect(Buffer.from(await bigRes.arrayBuffer()).equals(Buffer.concat([Buffer.from("echo:"), big]))).toBe(true);
    expect((await fetch(url)).status).toBe(405);
  });
});

describe("the raw plugin", () => {
  it("sends the body and returns what the server says until it goes quiet", async () => {
    const server = await tcpServer((socket) => socket.on("data", (d: Buffer) => socket.write(`pong: ${d}`)));
    servers.push(server);
    const { url } = await bridge("raw-tcp", server.port, "raw", ["--bridge-idle", "300ms"]);
    const res = await post(url, "ping");
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("application/octet-stream");
    expect(await res.text()).toBe("pong: ping");
  });
});

describe("plugin failures", () => {
  it("become 502 bridge_error with the plugin's message, and the agent keeps serving", async () => {
    const server = await tcpServer((socket) => socket.on("data", (d: Buffer) => socket.write(d)));
    servers.push(server);
    const { url, agent } = await bridge("fails", server.port, "./test/fixtures/bridge/fails.ts");
    const res = await post(url, "");
    expect(res.status).toBe(502);
    expect(await res.json()).toEqual({
      error: "bridge_error",
      message: `The agent's HTTP-TCP bridge failed: plugin "fails" failed in onUpstreamData: cannot decode 1 bytes: the frobnicator is broken.`,
      backend: "fails",
    });
    // After the response headers, a failure cuts the body short instead.
    const cut = await fetch(`${url}after-headers`);
    expect(cut.status).toBe(200);
    await expect(cut.arrayBuffer()).rejects.toThrow();
    // The agent is still up and serving.
    expect((await post(url, "")).status).toBe(502);
    expect(agent.proc.exitCode).toBeNull();
    // The operator reads why, once for the same failure however many requests it fails.
    const failed =
      /the bridge plugin of bridge\+tcp:\/\/127\.0\.0\.1:\d+ failed: plugin "fails" failed in onUpstreamData: cannot decode 1 bytes/;
    const line = await agent.waitForLine(failed);
    expect(line).toContain("clients get 502 bridge_error");
    expect(agent.lines.filter((l) => failed.test(l))).toHaveLength(1);
  });

  it("an unreachable TCP server is 502 origin_unreachable", async () => {
    const { url } = await bridge("bridge-down", await closedPort(), "raw");
    const res = await post(url, "x");
    expect(res.status).toBe(502);
    expect(await res.json()).toMatchObject({ error: "origin_unreachable" });
  });
});
