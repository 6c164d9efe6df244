// `edge-relay connect`: a local TCP port whose every connection is carried over its own public
// WebSocket to a backend with a tcp:// target, like `cloudflared access tcp`.
import net from "node:net";
import { Duplex } from "node:stream";
import WebSocket from "ws";
import { ReadBatch } from "./read-batch.ts";
import { describeRefusal } from "./relay-refusal.ts";
import { ACCESS_HEADER } from "../src/access.ts";
import { CLIENT_WINDOW, FLOW_SUBPROTOCOL, flowMessage, parseFlowMessage } from "../src/client-flow.ts";

export interface ConnectOptions {
  /** The relay's base URL (http, https, ws or wss). */
  relay: URL;
  backend: string;
  host: string;
  port: number;
  /** Access token when the backend requires one. */
  token?: string;
  log?: (line: string) => void;
  signal?: AbortSignal;
  /** Called once the local port listens (with the bound port). */
  onListening?: (port: number) => void;
}

/** The public WebSocket URL of a backend (path form). */
export function backendSocketUrl(relay: URL, backend: string): string {
  const url = new URL(relay);
  url.protocol = url.protocol === "https:" || url.protocol === "wss:" ? "wss:" : "ws:";
  url.pathname = `/r/${backend}/`;
  url.search = "";
  return url.toString();
}

/** Listens until `signal` aborts; resolves with the exit code. */
export async function runConnect(opts: ConnectOptions): Promise<number> {
  const log = opts.log ?? ((line: string) => console.error(line));
  const target = backendSocketUrl(opts.relay, opts.backend);
  const sockets = new Set<net.Socket>();
  let lastError = "";
  const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true }, (socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    bridge(socket, target, opts.token, (message) => {
      if (message !== lastError) log(`edge-relay: connection to ${opts.backend} failed: ${message}`);
      lastError = message;
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port, opts.host, () => resolve());
  });
  const port = (server.address() as net.AddressInfo).port;
  log(`edge-relay: listening on ${opts.host}:${port}, each connection goes to backend ${opts.backend} via ${target}`);
  opts.onListening?.(port);
  await new Promise<void>((resolve) => {
    if (opts.signal?.aborted) return resolve();
    opts.signal?.addEventListener("abort", () => resolve(), { once: true });
  });
  server.close();
  for (const s of sockets) s.destroy();
  return 0;
}

/** Carries standard input and output as one connection (ssh's ProxyCommand); resolves at the end. */
export function connectStdio(opts: Pick<ConnectOptions, "relay" | "backend" | "token" | "log">): Promise<number> {
  const log = opts.log ?? ((line: string) => console.error(line));
  const io = Duplex.from({ readable: process.stdin, writable: process.stdout });
  return new Promise((resolve) => {
    let failed = false;
    io.on("close", () => resolve(failed ? 1 : 0));
    bridge(io, backendSocketUrl(opts.relay, opts.backend), opts.token, (message) => {
      failed = true;
      log(`edge-relay: connection to ${opts.backend} failed: ${message}`);
    });
  });
}

/** Resets a TCP socket; other streams can only be destroyed. */
function reset(local: Duplex): void {
  if (local instanceof net.Socket) local.resetAndDestroy();
  else local.destroy();
}

/** Carries one local connection (a TCP socket, or stdio) over one WebSocket. */
function bridge(socket: Duplex, url: string, token: string | undefined, fail: (message: string) => void): void {
  const ws = new WebSocket(url, [FLOW_SUBPROTOCOL], {
    headers: token ? { [ACCESS_HEADER]: token } : {},
    perMessageDeflate: false,
    maxPayload: 16 * 1024 * 1024,
  });
  let localFin = false;
  let remoteFin = false;
  // Bytes sent that the relay has not yet taken up the tunnel (docs/targets.md).
  let inFlight = 0;
  const done = () => localFin && remoteFin && ws.readyState === WebSocket.OPEN && ws.close(1000);

  ws.on("unexpected-response", (_req, res) => {
    void describeRefusal(res).then((refusal) => {
      fail(refusal.message);
      socket.destroy();
    });
  });
  ws.on("error", (err) => {
    fail(err.message);
    socket.destroy();
  });
  socket.pause();
  ws.on("open", () => {
    if (ws.protocol !== FLOW_SUBPROTOCOL) {
      fail(`the relay did not accept flow control (${FLOW_SUBPROTOCOL}); is the backend a tcp:// target?`);
      ws.close(1002);
      return socket.destroy();
    }
    socket.resume();
  });
  ws.on("message", (data: Buffer, isBinary: boolean) => {
    if (!isBinary) {
      const control = parseFlowMessage(data.toString());
      if (control?.kind !== "credit") return;
      inFlight -= control.bytes;
      if (socket.isPaused() && inFlight < CLIENT_WINDOW) socket.resume();
      return;
    }
    if (data.byteLength === 0) {
      remoteFin = true;
      socket.end();
      return done();
    }
    // Acknowledge once the bytes are on their way to the local client: the relay then lets
    // the agent send more.
    socket.write(data, () => {
      if (ws.readyState === WebSocket.OPEN) ws.send(flowMessage("ack", data.byteLength));
    });
  });
  ws.on("close", (code) => {
    if (code === 1000) socket.end();
    else reset(socket);
  });

  // One message per turn's reads, not per read: each costs the relay an event and a credit reply.
  const reads = new ReadBatch((data) => ws.send(data, { binary: true }));
  socket.on("data", (chunk: Buffer) => {
    inFlight += chunk.byteLength;
    reads.push(chunk);
    if (inFlight >= CLIENT_WINDOW) socket.pause();
  });
  socket.on("end", () => {
    localFin = true;
    reads.flush();
    if (ws.readyState === WebSocket.OPEN) ws.send(Buffer.alloc(0), { binary: true });
    done();
  });
  socket.on("error", () => {
    // A reset by the local client: reset the far side too.
    if (ws.readyState === WebSocket.OPEN) ws.close(1011, "reset");
    else ws.terminate();
  });
}
