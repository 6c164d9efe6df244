// A real WebSocket backend on loopback (the `ws` server): echo, subprotocol choice, refusals,
// and a record of how each connection ended.
import http from "node:http";
import type { AddressInfo } from "node:net";
import { WebSocketServer, type WebSocket } from "ws";

export interface WsBackend {
  url: string;
  port: number;
  /** Connections by the `id` query parameter the client sent. */
  conns: Map<string, { ws: WebSocket; headers: http.IncomingHttpHeaders; closed: Promise<{ code: number; reason: string }> }>;
  /** Resolves with the connection for `id` once it exists. */
  connection(
    id: string,
    ms?: number,
  ): Promise<{ ws: WebSocket; headers: http.IncomingHttpHeaders; closed: Promise<{ code: number; reason: string }> }>;
  stop(): Promise<void>;
}

/** Protocols the backend speaks, in its order of preference. */
export const BACKEND_PROTOCOLS = ["chat.v2", "chat.v1"];

/** Starts a WebSocket echo server; `/refuse` answers 403 with a body instead of upgrading. */
export async function startWsBackend(): Promise<WsBackend> {
  const server = http.createServer((_req, res) => res.end("plain http"));
  const wss = new WebSocketServer({
    noServer: true,
    maxPayload: 64 * 1024 * 1024,
    handleProtocols: (offered) => BACKEND_PROTOCOLS.find((p) => offered.has(p)) ?? false,
  });
  const conns: WsBackend["conns"] = new Map();
  const waiters = new Map<string, () => void>();
  server.on("upgrade", (req, socket, head) => {
    const url = new URL(req.url!, "http://x");
    if (url.pathname === "/refuse") {
      socket.end("HTTP/1.1 403 Forbidden\r\ncontent-type: text/plain\r\ncontent-length: 11\r\nx-reason: nope\r\n\r\nnot allowed");
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      const id = url.searchParams.get("id") ?? String(conns.size);
      const closed = new Promise<{ code: number; reason: string }>((resolve) =>
        ws.on("close", (code, reason) => resolve({ code, reason: reason.toString() })),
      );
      conns.set(id, { ws, headers: req.headers, closed });
      waiters.get(id)?.();
      ws.on("message", (data, isBinary) => {
        if (url.pathname === "/echo") ws.send(data, { binary: isBinary });
      });
      if (url.pathname === "/hello") ws.send(`hello ${id}`);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    conns,
    connection: (id, ms = 10_000) =>
      new Promise((resolve, reject) => {
        const found = conns.get(id);
        if (found) return resolve(found);
        const timer = setTimeout(() => reject(new Error(`no WebSocket connection "${id}" at the backend within ${ms} ms`)), ms);
        waiters.set(id, () => {
          clearTimeout(timer);
          resolve(conns.get(id)!);
        });
      }),
    stop: async () => {
      for (const { ws } of conns.values()) ws.terminate();
      wss.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** The next message on a client socket; rejects after `ms`. */
export function nextMessage(ws: WebSocket, ms = 10_000): Promise<{ data: Buffer; binary: boolean }> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no message within ${ms} ms`)), ms);
    ws.once("message", (data: Buffer, binary: boolean) => {
      clearTimeout(timer);
      resolve({ data, binary });
    });
  });
}
