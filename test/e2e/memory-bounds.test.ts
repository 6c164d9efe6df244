// Memory amplification bounds (issue 20) on the real relay: finely sliced request bodies and
// public WebSocket messages, and a rogue agent flooding PINGs without reading.
import { createHash } from "node:crypto";
import net from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { agentArgs, startAgent, type AgentProcess } from "../helpers/agent.ts";
import { patternBlock, startBackend, type Backend } from "../helpers/backend.ts";
import { sampleRss, waitUntilStable } from "../helpers/memory.ts";
import { RELAY_RUNTIMES, rssBytes, startRelay, type RelayHandle } from "../helpers/relay.ts";
import { startWsBackend, type WsBackend } from "../helpers/ws-backend.ts";
import { decodeMessage, encodeFrames, encodeHello } from "../../src/protocol/codec.ts";
import { DEFAULT_MAX_FRAME, DEFAULT_WINDOW, Flag, FrameType, PROTOCOL_VERSION, type Frame } from "../../src/protocol/frame.ts";
import { PING_ACK_BURST, PING_ACKS_PER_SECOND } from "../../src/protocol/session.ts";
import { until } from "../helpers/wait.ts";

const MiB = 1024 * 1024;
/** Growth allowed for what one public client sends (issue 20). */
const PUBLIC_BOUND_MiB = 64;
/** Growth allowed for what one agent with a valid token sends (issue 20). */
const AGENT_BOUND_MiB = 128;

let relay: RelayHandle;
let backend: Backend;
let wsBackend: WsBackend;
const agents: AgentProcess[] = [];

describe.each(RELAY_RUNTIMES)("on %s", (runtime) => {
  beforeAll(async () => {
    // A snapshot: edits to src/ while this runs must not reload the Worker under the tunnels.
    [relay, backend, wsBackend] = await Promise.all([startRelay({ runtime, snapshot: true }), startBackend(), startWsBackend()]);
    for (const [name, target] of [
      ["upload", backend.url],
      ["other", backend.url],
      ["sockets", wsBackend.url],
    ]) {
      agents.push(await startAgent(agentArgs(relay.url, name, await relay.token(name), target), { waitUp: 1 }));
    }
  }, 120_000);

  afterAll(async () => {
    await Promise.all(agents.splice(0).map((a) => a.stop()));
    await Promise.all([relay?.stop(), backend?.stop(), wsBackend?.stop()]);
  });

  const workerd = () => relay.workerdPids();
  const totalRss = () => workerd().reduce((n, pid) => n + rssBytes(pid), 0);
  const growth = (sampler: ReturnType<typeof sampleRss>) => Math.max(...sampler.stop().map((m) => m.growthMiB));

  /** POSTs `body` to the relay over a raw socket as chunked encoding with one byte per chunk. */
  function oneByteChunkedPost(path: string, body: Buffer, chunksPerWrite = 1000): Promise<{ status: number; text: string }> {
    return new Promise((resolve, reject) => {
      const socket = net.connect(relay.port, "127.0.0.1");
      const received: Buffer[] = [];
      socket.on("data", (d) => received.push(d));
      socket.on("error", reject);
      socket.on("end", () => {
        const all = Buffer.concat(received).toString("latin1");
        const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(all)?.[1] ?? 0);
        resolve({ status, text: all.slice(all.indexOf("\r\n\r\n") + 4) });
      });
      socket.once("connect", async () => {
        socket.write(`POST ${path} HTTP/1.1\r\nHost: 127.0.0.1:${relay.port}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n`);
        for (let at = 0; at < body.length; at += chunksPerWrite) {
          const parts: Buffer[] = [];
          for (let i = at; i < Math.min(at + chunksPerWrite, body.length); i++)
            parts.push(Buffer.from("1\r\n", "latin1"), body.subarray(i, i + 1), Buffer.from("\r\n", "latin1"));
          if (!socket.write(Buffer.concat(parts))) await new Promise((r) => socket.once("drain", r));
        }
        socket.write("0\r\n\r\n");
      });
    });
  }

  /** Opens a public WebSocket through the relay. */
  function openWs(path: string): Promise<WebSocket> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(`${relay.url.replace("http", "ws")}${path}`);
      ws.once("open", () => resolve(ws));
      ws.once("error", reject);
    });
  }

  /** A raw agent WebSocket with a valid token that has sent its HELLO and got the relay's. */
  async function rogueAgent(backendName: string): Promise<WebSocket> {
    const ws = new WebSocket(`${relay.url.replace("http", "ws")}/_relay/connect?backend=${backendName}`, {
      headers: { authorization: `Bearer ${await relay.token(backendName)}` },
      perMessageDeflate: false,
    });
    await new Promise((resolve, reject) => {
      ws.once("open", resolve);
      ws.once("error", reject);
    });
    const hello = {
      v: PROTOCOL_VERSION,
      software: "rogue/0",
      id: "rogue",
      caps: ["http"],
      window: DEFAULT_WINDOW,
      maxFrame: DEFAULT_MAX_FRAME,
    };
    const relayHello = new Promise((resolve) => ws.once("message", resolve));
    ws.send(encodeFrames([{ type: FrameType.Hello, flags: 0, streamId: 0, payload: encodeHello(hello) }]));
    await relayHello;
    return ws;
  }

  describe("memory bounds for public clients", () => {
    it("relays a 256 KiB chunked POST in 1-byte chunks byte-exact, within 64 MiB, while another backend answers", async () => {
      const body = Buffer.concat(Array.from({ length: 4 }, () => patternBlock()));
      const sampler = sampleRss(workerd());
      let finished = false;
      const post = oneByteChunkedPost("/r/upload/echo", body).finally(() => (finished = true));
      const others: number[] = [];
      while (!finished) {
        const resp = await fetch(`${relay.url}/r/other/bytes?n=100`);
        await resp.arrayBuffer();
        others.push(resp.status);
      }
      const { status, text } = await post;
      const mib = growth(sampler);
      expect(status).toBe(200);
      const echo = JSON.parse(text.slice(text.indexOf("{"), text.lastIndexOf("}") + 1)) as { length: number; sha256: string };
      expect(echo.length).toBe(body.length);
      expect(echo.sha256).toBe(createHash("sha256").update(body).digest("hex"));
      expect(others.length).toBeGreaterThan(0);
      expect(others.every((s) => s === 200)).toBe(true);
      // Bare workerd (npm run serve) parses each 1-byte chunk itself, with no front that joins
      // them, and grows ~300 bytes per chunk until it collects: a known limit of the self-hosted
      // runtime (docs/limits.md, "One-byte chunks on bare workerd"), bounded here at twice the bound.
      expect(mib).toBeLessThan(runtime === "serve" ? 2 * PUBLIC_BOUND_MiB : PUBLIC_BOUND_MiB);
    }, 300_000);

    it("echoes 200,000 one-byte WebSocket messages within 64 MiB", async () => {
      const N = 200_000;
      const ws = await openWs("/r/sockets/echo");
      let echoes = 0;
      let bytesOk = true;
      ws.on("message", (data: Buffer) => {
        if (data.length !== 1 || data[0] !== echoes % 256) bytesOk = false;
        echoes++;
      });
      const closed = new Promise<number>((resolve) => ws.once("close", (code) => resolve(code)));
      let closeCode: number | undefined;
      void closed.then((code) => (closeCode = code));
      const sampler = sampleRss(workerd());
      for (let i = 0; i < N; i += 1000) {
        for (let j = i; j < i + 999; j++) ws.send(Buffer.of(j % 256));
        await new Promise<void>((resolve, reject) => ws.send(Buffer.of((i + 999) % 256), (err) => (err ? reject(err) : resolve())));
      }
      await until(() => echoes === N || closeCode !== undefined, `${N} echoes`, 180_000);
      const mib = growth(sampler);
      expect(closeCode).toBeUndefined();
      expect(echoes).toBe(N);
      expect(bytesOk).toBe(true);
      expect(mib).toBeLessThan(PUBLIC_BOUND_MiB);
      ws.close(1000);
    }, 300_000);
  });

  describe("memory bounds for agents", () => {
    it("holds 24 MiB of PINGs from an agent that does not read within 128 MiB, and releases it when the agent leaves", async () => {
      const baseline = await waitUntilStable(() => Math.round(totalRss() / MiB), 2_000, 30_000);
      const ws = await rogueAgent("rogue");
      // Stop reading: whatever the relay answers stays in its buffers.
      (ws as unknown as { _socket: net.Socket })._socket.pause();
      const sampler = sampleRss(workerd());
      const started = Date.now();
      const ping = (i: number): Frame => ({ type: FrameType.Ping, flags: 0, streamId: 0, payload: new Uint8Array(8).fill(i & 0xff) });
      // Messages of 1,000 PINGs, then 20,000 messages of one PING: 24 MiB of frames in all.
      const single = encodeFrames([ping(1)]);
      const singles = 20_000;
      let sent = 0;
      for (let round = 0; sent < 24 * MiB - singles * single.byteLength; round++) {
        const message = encodeFrames(Array.from({ length: 1000 }, (_, i) => ping(round + i)));
        sent += message.byteLength;
        await new Promise<void>((resolve, reject) => ws.send(message, (err) => (err ? reject(err) : resolve())));
      }
      for (let i = 1; i < singles; i++) ws.send(single);
      await new Promise<void>((resolve, reject) => ws.send(single, (err) => (err ? reject(err) : resolve())));
      // Another backend still answers while the rogue's frames are processed.
      const other = await fetch(`${relay.url}/r/other/bytes?n=100`);
      expect(other.status).toBe(200);
      await other.arrayBuffer();
      const mib = growth(sampler);
      // Read what the relay answered: one ACK per coalesced message at most, within the budget.
      let acks = 0;
      ws.on("message", (data: Buffer) => {
        for (const f of decodeMessage(new Uint8Array(data), 1 << 30)) if (f.type === FrameType.Ping && f.flags & Flag.ACK) acks++;
      });
      (ws as unknown as { _socket: net.Socket })._socket.resume();
      await waitUntilStable(() => acks, 2_000, 60_000);
      const seconds = (Date.now() - started) / 1000;
      ws.terminate();
      const after = await waitUntilStable(() => Math.round(totalRss() / MiB), 3_000, 60_000);
      expect(acks).toBeGreaterThan(0);
      expect(acks).toBeLessThanOrEqual(PING_ACK_BURST + Math.ceil(seconds * PING_ACKS_PER_SECOND));
      expect(mib).toBeLessThan(AGENT_BOUND_MiB);
      expect(after - baseline).toBeLessThan(32);
    }, 300_000);
  });
});
