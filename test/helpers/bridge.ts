// Drives one request through a bridge plugin in-process: a relay-role and an agent-role session
// over the in-memory pair, a BridgeExchange on the agent side, and a loopback TCP server as peer.
import net from "node:net";
import { BridgeExchange } from "../../agent/bridge/exchange.ts";
import type { BridgePlugin } from "../../agent/bridge/plugin.ts";
import { decodeRequestHead, decodeResponseHead, encodeRequestHead } from "../../src/protocol/head.ts";
import type { StreamReset } from "../../src/protocol/session.ts";
import { memoryPair, type Pair } from "./memory-pair.ts";

export interface BridgeResult {
  status?: number;
  headers: Array<[string, string]>;
  body: Buffer;
  /** Set when the agent reset the stream; `afterHeaders` when it did so mid-body. */
  reset?: { code: number; message: string; afterHeaders: boolean };
}

export interface BridgeCall {
  method?: string;
  path?: string;
  headers?: Array<[string, string]>;
  /** Body chunks, written in order; none means no body (HEADERS with FIN). */
  body?: Array<Uint8Array | string>;
  idleMs?: number;
  /** Where the plugin's connection goes (default: `server`). */
  port?: number;
  /**
   * Awaited before body chunk `i` (from 1) is written. Chunks written in one go may arrive as one
   * (the session gathers small DATA into a frame, the exchange reads what is there): a test about
   * chunk boundaries waits here until the plugin saw the chunks before.
   */
  beforeChunk?: (i: number) => Promise<void>;
}

/** A loopback TCP server that counts connections. */
export interface TestServer {
  port: number;
  connections: number;
  close(): Promise<void>;
}

export async function tcpServer(handler: (socket: net.Socket) => void): Promise<TestServer> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    result.connections++;
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => {});
    handler(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const result: TestServer = {
    port: (server.address() as net.AddressInfo).port,
    connections: 0,
    close: () => {
      for (const s of sockets) s.destroy();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
  return result;
}

/** A port nothing listens on (kept for the tests that import it from here). */
export { freePort as closedPort } from "./ports.ts";

/** Sends one request through `plugin` to the TCP server on `port`; resolves once the response ends or resets. */
export async function bridgeRequest(plugin: BridgePlugin, port: number, call: BridgeCall = {}): Promise<BridgeResult & { pair: Pair }> {
  const pair = await memoryPair({
    agent: {
      onStream: (stream, list, fin) => {
        const dial = () => net.connect({ host: "127.0.0.1", port: call.port ?? port, allowHalfOpen: true });
        new BridgeExchange(stream, decodeRequestHead(list), !fin, Promise.resolve({ plugin, name: plugin.name ?? "test" }), {
          dial,
          settings: { idleMs: call.idleMs ?? 200 },
        }).start();
      },
    },
  });
  const body = call.body ?? [];
  const head = encodeRequestHead({
    method: call.method ?? "POST",
    path: call.path ?? "/",
    scheme: "https",
    authority: "bridge.test",
    headers: call.headers ?? [],
  });
  const stream = pair.relay.open(head, body.length === 0);
  const result: BridgeResult = { headers: [], body: Buffer.alloc(0) };
  const chunks: Buffer[] = [];
  const done = new Promise<void>((resolve) => {
    stream.onHeaders = (list, fin) => {
      const response = decodeResponseHead(list);
      result.status = response.status;
      result.headers = response.headers;
      if (fin) resolve();
    };
    stream.onData = (chunk) => {
      chunks.push(Buffer.from(chunk));
      stream.consumed(chunk.byteLength);
    };
    stream.onEnd = () => resolve();
    stream.onReset = (reset: StreamReset) => {
      result.reset = { code: reset.code, message: reset.message, afterHeaders: result.status !== undefined };
      resolve();
    };
  });
  if (body.length > 0) {
    void (async () => {
      try {
        for (const [i, chunk] of body.entries()) {
          if (i > 0) await call.beforeChunk?.(i);
          await stream.write(typeof chunk === "string" ? new TextEncoder().encode(chunk) : chunk);
        }
        await stream.end();
      } catch {}
    })();
  }
  await done;
  result.body = Buffer.concat(chunks);
  return { ...result, pair };
}

/**
 * A server for the example length-prefixed protocol (docs/examples/length-prefixed.ts): reads
 * each 4-byte big-endian length and payload, and answers with `answer(payload)` framed the same
 * way, written a few bytes at a time so the plugin has to reassemble it.
 */
export function lengthPrefixedServer(answer: (payload: Buffer) => Buffer | "close-midway"): Promise<TestServer> {
  return tcpServer((socket) => {
    let pending = Buffer.alloc(0);
    socket.on("data", (d: Buffer) => {
      pending = Buffer.concat([pending, d]);
      while (pending.length >= 4 && pending.length >= 4 + pending.readUInt32BE(0)) {
        const payload = pending.subarray(4, 4 + pending.readUInt32BE(0));
        pending = pending.subarray(4 + payload.length);
        const reply = answer(payload);
        if (reply === "close-midway") return void socket.end(Buffer.from([0, 0, 1, 0, 65, 66]));
        const framed = Buffer.concat([Buffer.alloc(4), reply]);
        framed.writeUInt32BE(reply.length, 0);
        socket.write(framed.subarray(0, 3));
        setTimeout(() => socket.write(framed.subarray(3)), 5);
      }
    });
  });
}
