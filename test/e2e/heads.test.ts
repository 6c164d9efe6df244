// Request and response heads that cannot cross the tunnel, end to end: real relay in workerd,
// real agent processes, real backends. Each is refused for its own request alone; the tunnel and
// the requests in flight on it carry on.
import net, { type AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { agentArgs, startAgent, type AgentProcess } from "../helpers/agent.ts";
import { startBackend, type Backend } from "../helpers/backend.ts";
import { rawRequest, type RawResponse } from "../helpers/client.ts";
import { RELAY_RUNTIMES, startRelay, type RelayHandle } from "../helpers/relay.ts";
import { within } from "../helpers/wait.ts";

let relay: RelayHandle;
let backend: Backend;
const cleanups: Array<() => Promise<unknown> | void> = [];

describe.each(RELAY_RUNTIMES)("on %s", (runtime) => {
  beforeAll(async () => {
    [relay, backend] = await Promise.all([startRelay({ runtime }), startBackend()]);
  });

  afterAll(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
    await Promise.all([relay?.stop(), backend?.stop()]);
  });

  /** A released-on-demand gate: `wait` resolves once `open()` was called. */
  function gate(): { wait: Promise<void>; open: () => void } {
    let open!: () => void;
    const wait = new Promise<void>((resolve) => (open = resolve));
    return { wait, open };
  }

  /** Starts an agent with one tunnel; stopped after the file. */
  async function agentFor(name: string, target: string): Promise<AgentProcess> {
    const agent = await startAgent(agentArgs(relay.url, name, await relay.token(name), target, ["--connections", "1"]), { waitUp: 1 });
    cleanups.push(() => agent.stop());
    return agent;
  }

  /** The relay's JSON error body, checked for its shape. */
  function errorOf(res: RawResponse): { error: string; message: string; backend?: string } {
    expect(res.headers.find(([k]) => k === "content-type")?.[1]).toMatch(/^application\/json/);
    return JSON.parse(res.body.toString()) as { error: string; message: string; backend?: string };
  }

  /** Agent lines saying a tunnel went down or came up again after `from`. */
  function tunnelChanges(agent: AgentProcess, from: number): string[] {
    return agent.lines.slice(from).filter((l) => / tunnel \d+ (down|up|replaced)/.test(l));
  }

  /**
   * The request held in flight (now released) completes with `heldBody`, the next request on the
   * backend succeeds, and the agent's tunnel never went down or came up again since line `mark`.
   */
  async function expectTunnelCarriesOn(
    name: string,
    agent: AgentProcess,
    mark: number,
    held: Promise<RawResponse>,
    heldBody: string,
  ): Promise<void> {
    const done = await within(held, "the held request", 10_000);
    expect(done.status).toBe(200);
    expect(done.body.toString()).toBe(heldBody);
    const next = await within(rawRequest(relay.url, { path: `/r/${name}/next` }), "the next request", 10_000);
    expect(next.status).toBe(200);
    expect(tunnelChanges(agent, mark)).toEqual([]);
  }

  describe("request heads the agent could not accept", () => {
    it("answers a 90 KB 0xFF header and a 90 KB Host header 431 before sending anything, while a request in flight on the tunnel completes", async () => {
      const NAME = "bighead";
      const release = gate();
      backend.route("/held", async (_req, res) => {
        await release.wait;
        res.end("held and done");
      });
      const agent = await agentFor(NAME, backend.url);
      const mark = agent.lines.length;
      const hitsBefore = backend.hits.get("/too-big") ?? 0;

      const held = rawRequest(relay.url, { path: `/r/${NAME}/held` });
      // The held request reached the backend: it is in flight on the tunnel.
      await within(
        (async () => {
          while (!backend.hits.get("/held")) await new Promise((r) => setImmediate(r));
        })(),
        "the held request to reach the backend",
        10_000,
      );

      const cases: Array<[string, Array<[string, string]>]> = [
        ["a 90 KB header of 0xFF bytes", [["x-big", "\xff".repeat(90_000)]]],
        ["a 90 KB Host header", [["host", "h".repeat(90_000)]]],
      ];
      for (const [what, headers] of cases) {
        const res = await within(rawRequest(relay.url, { path: `/r/${NAME}/too-big`, headers }), what, 10_000);
        expect(res.status, what).toBe(431);
        const body = errorOf(res);
        expect(body).toMatchObject({ error: "request_header_fields_too_large", backend: NAME });
        expect(body.message).toMatch(/header block of \d+ bytes exceeds the limit of 65536/);
      }
      expect(backend.hits.get("/too-big") ?? 0).toBe(hitsBefore);

      release.open();
      await expectTunnelCarriesOn(NAME, agent, mark, held, "held and done");
    });
  });

  describe("response heads the relay could not give a client", () => {
    it("turns a backend's status 600 into 502 for that request alone, within 1 s, the tunnel and a request in flight unharmed", async () => {
      const NAME = "status600";
      const release = gate();
      let heldArrived!: () => void;
      const heldSeen = new Promise<void>((resolve) => (heldArrived = resolve));
      // A broken backend: raw bytes, so it can send a status line Node's own server would not.
      const server = net.createServer((socket) => {
        let head = "";
        socket.on("data", (d: Buffer) => {
          head += d.toString("latin1");
          if (!head.includes("\r\n\r\n")) return;
          const path = head.split(" ")[1];
          head = "";
          if (path === "/600") return void socket.end("HTTP/1.1 600 X\r\ncontent-length: 2\r\n\r\nhi");
          const answer = () => socket.write("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok");
          if (path === "/held") {
            heldArrived();
            void release.wait.then(answer);
          } else answer();
        });
        socket.on("error", () => {});
      });
      await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
      cleanups.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
      const agent = await agentFor(NAME, `http://127.0.0.1:${(server.address() as AddressInfo).port}`);
      const mark = agent.lines.length;

      const held = rawRequest(relay.url, { path: `/r/${NAME}/held` });
      await within(heldSeen, "the held request to reach the backend", 10_000);

      const res = await within(rawRequest(relay.url, { path: `/r/${NAME}/600` }), "the 502 for status 600", 1_000);
      expect(res.status).toBe(502);
      const body = errorOf(res);
      // The agent refused it (ORIGIN_RESET), not the relay (protocol_error): no frame of it crossed.
      expect(body).toMatchObject({ error: "origin_error", backend: NAME });
      expect(body.message).toMatch(/the target's response cannot be relayed: status 600 is outside 200-599/);

      release.open();
      await expectTunnelCarriesOn(NAME, agent, mark, held, "ok");
    });
  });
});
