// A real HTTP backend on loopback for end-to-end tests: echo, statuses, byte streams, uploads,
// resets. Tests add their own routes with `route()`.
import { createHash } from "node:crypto";
import http from "node:http";
import type { AddressInfo } from "node:net";

export type Handler = (req: http.IncomingMessage, res: http.ServerResponse) => void | Promise<void>;

export interface Backend {
  url: string;
  port: number;
  server: http.Server;
  /** Adds or replaces a handler for an exact path (before the query). */
  route(path: string, handler: Handler): void;
  /** Requests seen, by path. */
  hits: Map<string, number>;
  stop(): Promise<void>;
}

/** Deterministic bytes: block i of the pattern, so any offset can be checked. */
export function patternBlock(size = 64 * 1024): Buffer {
  const block = Buffer.alloc(size);
  let x = 0x12345678;
  for (let i = 0; i < size; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    block[i] = x >>> 24;
  }
  return block;
}

const BLOCK = patternBlock();

/** sha256 of the first `n` bytes of the repeating pattern. */
export function patternSha256(n: number): string {
  const h = createHash("sha256");
  for (let left = n; left > 0; left -= BLOCK.length) h.update(left >= BLOCK.length ? BLOCK : BLOCK.subarray(0, left));
  return h.digest("hex");
}

/** Writes `n` pattern bytes honouring backpressure; returns false when the client went away. */
export async function writePattern(res: http.ServerResponse, n: number, onWrite?: (bytes: number) => void): Promise<boolean> {
  for (let left = n; left > 0; left -= BLOCK.length) {
    if (res.destroyed) return false;
    const chunk = left >= BLOCK.length ? BLOCK : BLOCK.subarray(0, left);
    onWrite?.(chunk.length);
    if (!res.write(chunk)) {
      const ok = await new Promise<boolean>((resolve) => {
        const done = (v: boolean) => () => {
          res.off("drain", onDrain);
          res.off("close", onClose);
          resolve(v);
        };
        const onDrain = done(true);
        const onClose = done(false);
        res.once("drain", onDrain);
        res.once("close", onClose);
      });
      if (!ok) return false;
    }
  }
  return true;
}

/** Reads a request body, returning its sha256 and length. */
export async function digestBody(req: http.IncomingMessage): Promise<{ sha256: string; length: number }> {
  const h = createHash("sha256");
  let length = 0;
  for await (const chunk of req) {
    h.update(chunk as Buffer);
    length += (chunk as Buffer).length;
  }
  return { sha256: h.digest("hex"), length };
}

/** Starts the backend on 127.0.0.1 and a free port. */
export async function startBackend(): Promise<Backend> {
  const routes = new Map<string, Handler>();
  const hits = new Map<string, number>();

  routes.set("/echo", async (req, res) => {
    const body = await digestBody(req);
    res.setHeader("content-type", "application/json");
    res.end(JSON.stringify({ method: req.method, url: req.url, rawHeaders: req.rawHeaders, ...body }));
  });
  routes.set("/bytes", async (req, res) => {
    const q = new URL(req.url!, "http://x").searchParams;
    const n = Number(q.get("n") ?? 0);
    res.setHeader("content-type", q.get("type") ?? "application/octet-stream");
    if (!q.has("chunked")) res.setHeader("content-length", n);
    if (await writePattern(res, n)) res.end();
  });
  routes.set("/status", (req, res) => {
    const code = Number(new URL(req.url!, "http://x").searchParams.get("code"));
    if (code >= 300 && code < 400) res.setHeader("location", "/elsewhere");
    res.statusCode = code;
    res.end(code === 204 || code === 304 ? undefined : `status ${code}`);
  });

  const server = http.createServer((req, res) => {
    const path = req.url!.split("?")[0];
    hits.set(path, (hits.get(path) ?? 0) + 1);
    const handler = routes.get(path) ?? routes.get("/echo")!;
    Promise.resolve(handler(req, res)).catch((err) => {
      res.destroy(err as Error);
    });
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    server,
    hits,
    route: (path, handler) => void routes.set(path, handler),
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
