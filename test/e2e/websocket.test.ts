// WebSocket upgrades end to end: ws client -> relay (workerd) -> agent -> ws backend.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { agentArgs, startAgent, type AgentProcess } from "../helpers/agent.ts";
import { RELAY_RUNTIMES, startRelay, type RelayHandle } from "../helpers/relay.ts";
import { within } from "../helpers/wait.ts";
import { nextMessage, startWsBackend, type WsBackend } from "../helpers/ws-backend.ts";

const NAME = "sockets";
const MiB = 1024 * 1024;
let relay: RelayHandle;
let backend: WsBackend;
let agent: AgentProcess;

describe.each(RELAY_RUNTIMES)("on %s", (runtime) => {
  beforeAll(async () => {
    [relay, backend] = await Promise.all([startRelay({ runtime }), startWsBackend()]);
    agent = await startAgent(agentArgs(relay.url, NAME, await relay.token(NAME), backend.url), { waitUp: 1 });
  });

  afterAll(async () => {
    await agent?.stop();
    await Promise.all([relay?.stop(), backend?.stop()]);
  });

  const wsUrl = (path: string) => `${relay.url.replace("http", "ws")}/r/${NAME}${path}`;

  /** Opens a client WebSocket; resolves once open. */
  function open(path: string, protocols: string[] = [], headers: Record<string, string> = {}): Promise<WebSocket> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(wsUrl(path), protocols, { headers, maxPayload: 64 * MiB });
      ws.once("open", () => resolve(ws));
      ws.once("error", reject);
      ws.once("unexpected-response", (_req, res) => reject(new Error(`unexpected ${res.statusCode}`)));
    });
  }

  /**
   * A close the relay starts (the backend closed, or dropped) reaches the client as a close frame at
   * once, but the local runtime ends the TCP connection ~10 s later (README "WebSockets"), and `ws`
   * emits "close" only then: hence the 15 s default.
   */
  function closed(ws: WebSocket, ms = 15_000): Promise<{ code: number; reason: string }> {
    return new Promise((resolve, reject) => {
      if (ws.readyState === WebSocket.CLOSED) return reject(new Error("already closed"));
      const timer = setTimeout(() => reject(new Error(`not closed within ${ms} ms`)), ms);
      ws.once("close", (code: number, reason: Buffer) => {
        clearTimeout(timer);
        resolve({ code, reason: reason.toString() });
      });
    });
  }

  describe("WebSocket upgrades", () => {
    it("echoes text and binary messages unchanged", async () => {
      const ws = await open("/echo?id=basic");
      ws.send("héllo ✓");
      const text = await nextMessage(ws);
      expect(text.binary).toBe(false);
      expect(text.data.toString()).toBe("héllo ✓");
      const bytes = Buffer.from([0, 1, 2, 255, 254]);
      ws.send(bytes);
      const bin = await nextMessage(ws);
      expect(bin.binary).toBe(true);
      expect(bin.data.equals(bytes)).toBe(true);
      ws.send("");
      expect((await nextMessage(ws)).data.length).toBe(0);
      ws.close(1000);
    });

    it("keeps a burst of 1,000 messages in order both ways", async () => {
      const ws = await open("/echo?id=burst");
      const n = 1000;
      const got: number[] = [];
      const all = new Promise<void>((resolve) =>
        ws.on("message", (data: Buffer) => {
          got.push(Number(data.toString()));
          if (got.length === n) resolve();
        }),
      );
      for (let i = 0; i < n; i++) ws.send(String(i));
      await within(all, "the 1,000 echoes", 30_000);
      expect(got).toEqual(Array.from({ length: n }, (_, i) => i));
      ws.close();
    });

    it("passes the subprotocol offer and the backend's choice, cookies and auth", async () => {
      const ws = await open("/echo?id=proto", ["chat.v1", "chat.v2"], { cookie: "session=abc", authorization: "Bearer xyz" });
      expect(ws.protocol).toBe("chat.v2");
      const conn = await backend.connection("proto");
      expect(conn.headers["sec-websocket-protocol"]?.split(/\s*,\s*/)).toEqual(["chat.v1", "chat.v2"]);
      expect(conn.headers.cookie).toBe("session=abc");
      expect(conn.headers.authorization).toBe("Bearer xyz");
      expect(conn.headers["x-forwarded-for"]).toBe("127.0.0.1");
      ws.close();
    });

    it("works on the host and header routes too", async () => {
      for (const [url, headers] of [
        [`ws://127.0.0.1:${relay.port}/hello?id=host`, { host: `${NAME}.localhost:${relay.port}` }],
        [`ws://127.0.0.1:${relay.port}/hello?id=hdr`, { "x-relay-backend": NAME }],
      ] as const) {
        const ws = new WebSocket(url, { headers });
        const msg = await nextMessage(ws);
        expect(msg.data.toString()).toMatch(/^hello (host|hdr)$/);
        ws.close();
      }
    });

    it("carries a 16 MiB message each way and rejects a larger one with 1009", async () => {
      const ws = await open("/echo?id=big");
      const big = Buffer.alloc(16 * MiB, 7);
      big[12345] = 1;
      ws.send(big);
      const back = await nextMessage(ws, 30_000);
      expect(back.data.equals(big)).toBe(true);
      ws.send(Buffer.alloc(16 * MiB + 1));
      expect((await closed(ws)).code).toBe(1009);
    });

    it.each([1000, 1001, 4000, 4999])("passes close code %i from the client to the backend", async (code) => {
      const id = `cc${code}`;
      const ws = await open(`/echo?id=${id}`);
      const conn = await backend.connection(id);
      const clientSide = closed(ws);
      ws.close(code, `bye ${code}`);
      expect(await conn.closed).toEqual({ code, reason: `bye ${code}` });
      expect((await clientSide).code).toBe(code);
    });

    it("passes close codes 1000, 1001, 1011 and 4321 from the backend to the client", async () => {
      const results = await Promise.all(
        [1000, 1001, 1011, 4321].map(async (code) => {
          const id = `bc${code}`;
          const ws = await open(`/echo?id=${id}`);
          const conn = await backend.connection(id);
          const clientSide = closed(ws);
          conn.ws.close(code, `server ${code}`);
          return clientSide;
        }),
      );
      expect(results).toEqual([1000, 1001, 1011, 4321].map((code) => ({ code, reason: `server ${code}` })));
    });

    it("turns an abrupt drop on either side into a closure on the other within seconds", async () => {
      const ws = await open("/echo?id=drop-backend");
      const conn = await backend.connection("drop-backend");
      const clientSide = closed(ws);
      conn.ws.terminate();
      expect([1006, 1011]).toContain((await clientSide).code);

      const ws2 = await open("/echo?id=drop-client");
      const conn2 = await backend.connection("drop-client");
      ws2.terminate();
      const backendSide = await Promise.race([
        conn2.closed,
        new Promise<never>((_, r) => setTimeout(() => r(new Error("backend not closed in 5 s")), 5000)),
      ]);
      expect(backendSide.code).toBe(1006);
    });

    it("gives the client the backend's answer when it refuses the upgrade", async () => {
      const res = await new Promise<{ status: number; body: string; reason?: string }>((resolve, reject) => {
        const ws = new WebSocket(wsUrl("/refuse"));
        ws.on("error", () => {});
        ws.once("open", () => reject(new Error("upgraded")));
        ws.once("unexpected-response", (_req, r) => {
          let body = "";
          r.on("data", (d) => (body += d));
          r.on("end", () => resolve({ status: r.statusCode!, body, reason: r.headers["x-reason"] as string }));
        });
      });
      expect(res).toEqual({ status: 403, body: "not allowed", reason: "nope" });
    });

    it("keeps 500 WebSockets open at once on one tunnel, each echoing its own messages", async () => {
      const sockets = await Promise.all(Array.from({ length: 500 }, (_, i) => open(`/echo?id=many${i}`)));
      const results = await Promise.all(
        sockets.map(async (ws, i) => {
          ws.send(`message ${i}`);
          const got = (await nextMessage(ws, 30_000)).data.toString();
          ws.close();
          return got === `message ${i}`;
        }),
      );
      expect(results.filter(Boolean).length).toBe(500);
    });
  });
});
