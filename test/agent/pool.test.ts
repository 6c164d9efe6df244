// The agent's pool of kept-alive connections to a plain-HTTP target, under node:http's own
// ClientRequest against a real server on loopback TCP and on a unix socket.
import http from "node:http";
import { mkdtempSync } from "node:fs";
import type { AddressInfo, NetConnectOpts, Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { ConnectionPool } from "../../agent/targets/pool.ts";
import { until, within } from "../helpers/wait.ts";

interface Server {
  connections: Socket[];
  /** Where the pool connects. */
  to: NetConnectOpts;
  close(): Promise<void>;
}

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** A server answering `ok`, with `headers` on every response. */
async function serve(on: "tcp" | "unix", headers: Record<string, string> = {}): Promise<Server> {
  const connections: Socket[] = [];
  const server = http.createServer((_req, res) => {
    res.writeHead(200, { "content-length": "2", ...headers });
    res.end("ok");
  });
  server.on("connection", (socket: Socket) => connections.push(socket));
  const path = join(mkdtempSync(join(tmpdir(), "edge-relay-pool-")), "target.sock");
  await new Promise<void>((resolve) => (on === "unix" ? server.listen(path, resolve) : server.listen(0, "127.0.0.1", resolve)));
  const to = on === "unix" ? { path } : { host: "127.0.0.1", port: (server.address() as AddressInfo).port };
  const s = { connections, to, close: () => new Promise<void>((resolve) => (server.closeAllConnections(), server.close(() => resolve()))) };
  cleanups.push(() => s.close());
  return s;
}

function pool(server: Server, idleMs = 4000): ConnectionPool {
  const p = new ConnectionPool(server.to, idleMs);
  cleanups.push(() => p.destroy());
  return p;
}

/** One GET through `p`; resolves with the body and whether the connection was a reused one. */
function get(p: ConnectionPool): Promise<{ body: string; reused: boolean }> {
  return within(
    new Promise((resolve, reject) => {
      const req = http.request({ agent: p as unknown as http.Agent, path: "/", headers: ["host", "target"] }, (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (chunk: string) => (body += chunk));
        res.on("end", () => resolve({ body, reused: req.reusedSocket }));
      });
      req.on("error", reject);
      req.end();
    }),
    "the response",
  );
}

describe("ConnectionPool", () => {
  for (const on of ["tcp", "unix"] as const) {
    it(`reuses one connection for requests one after another (${on})`, async () => {
      const server = await serve(on);
      const p = pool(server);
      const answers = [];
      for (let i = 0; i < 3; i++) answers.push(await get(p));
      expect(answers).toEqual([
        { body: "ok", reused: false },
        { body: "ok", reused: true },
        { body: "ok", reused: true },
      ]);
      expect(server.connections).toHaveLength(1);
    });
  }

  it("opens a connection per request in flight, and reuses them after", async () => {
    const server = await serve("tcp");
    const p = pool(server);
    expect((await Promise.all([get(p), get(p), get(p)])).map((a) => a.reused)).toEqual([false, false, false]);
    expect((await Promise.all([get(p), get(p), get(p)])).map((a) => a.reused)).toEqual([true, true, true]);
    expect(server.connections).toHaveLength(3);
    expect(p.size).toBe(3);
  });

  it("closes a connection idle for its idle time", async () => {
    const server = await serve("tcp");
    const p = pool(server, 200);
    await get(p);
    // The pool ends the connection: the server reads its FIN.
    await within(new Promise((resolve) => server.connections[0].once("end", resolve)), "the pool's FIN");
    await until(() => p.size === 0, "the pool to forget the connection");
  });

  it("closes an idle connection a second before the target's Keep-Alive timeout", async () => {
    const server = await serve("tcp", { "keep-alive": "timeout=2" });
    const p = pool(server, 60_000);
    await get(p);
    const closed = Date.now();
    await within(new Promise((resolve) => server.connections[0].once("end", resolve)), "the pool's FIN", 1900);
    expect(Date.now() - closed).toBeGreaterThanOrEqual(900);
  });

  it("does not keep a connection the target announces it keeps under a second", async () => {
    const server = await serve("tcp", { "keep-alive": "timeout=1" });
    const p = pool(server);
    expect(await get(p)).toEqual({ body: "ok", reused: false });
    expect(await get(p)).toEqual({ body: "ok", reused: false });
    expect(server.connections).toHaveLength(2);
  });

  it("opens a new connection once the target closed the idle one", async () => {
    const server = await serve("tcp");
    const p = pool(server);
    await get(p);
    server.connections[0].destroy();
    await until(() => p.size === 0, "the pool to see the close");
    expect(await get(p)).toEqual({ body: "ok", reused: false });
    expect(server.connections).toHaveLength(2);
  });
});
