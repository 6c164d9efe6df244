// The ws row's clients: small messages round-tripped one at a time on each socket (messages/s and
// round-trip percentiles, like wrk's figures for the small GETs) and a stream of 1 MiB binary
// messages echoed back byte-exact (MiB/s).
import WebSocket from "ws";
import type { LoadResult } from "./load.ts";
import type { Transfer } from "./transfer.ts";

const MiB = 1024 * 1024;

/** Opens a WebSocket; resolves once open. */
export function openWs(url: string): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: false, maxPayload: 64 * MiB });
    ws.binaryType = "nodebuffer";
    ws.once("open", () => resolve(ws));
    ws.once("error", reject);
    ws.once("unexpected-response", (_req, res) => reject(new Error(`${url} answered ${res.statusCode}`)));
  });
}

export function closeWs(ws: WebSocket): Promise<void> {
  return new Promise((resolve) => {
    if (ws.readyState === WebSocket.CLOSED) return resolve();
    const timer = setTimeout(() => (ws.terminate(), resolve()), 5000);
    ws.once("close", () => (clearTimeout(timer), resolve()));
    ws.close(1000, "bench done");
  });
}

const percentile = (sorted: number[], p: number) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] : NaN);

/**
 * `connections` sockets to `url`, each sending a `size`-byte text message and waiting for its
 * echo before the next, for `seconds`. Messages/s over all sockets and round-trip percentiles.
 */
export async function wsPingPong(url: string, connections: number, seconds: number, size = 64): Promise<LoadResult> {
  const sockets = await Promise.all(Array.from({ length: connections }, () => openWs(url)));
  const rtts: number[] = [];
  let errors = 0;
  let badEcho = 0;
  const started = performance.now();
  const deadline = started + seconds * 1000;
  await Promise.all(
    sockets.map(
      (ws, i) =>
        new Promise<void>((resolve) => {
          const base = `${i}:`.padEnd(size - 8, "x");
          let n = 0;
          let sent = 0;
          let expect = "";
          const next = () => {
            if (performance.now() >= deadline) return resolve();
            expect = base + String(n++).padStart(8, "0");
            sent = performance.now();
            ws.send(expect);
          };
          ws.on("message", (data) => {
            rtts.push(performance.now() - sent);
            if (data.toString() !== expect) badEcho++;
            next();
          });
          ws.once("close", () => (errors++, resolve()));
          ws.once("error", () => (errors++, resolve()));
          next();
        }),
    ),
  );
  const elapsed = (performance.now() - started) / 1000;
  for (const ws of sockets) ws.removeAllListeners("close");
  await Promise.all(sockets.map(closeWs));
  rtts.sort((a, b) => a - b);
  return { requests: rtts.length, seconds: elapsed, rps: rtts.length / elapsed, p50Ms: percentile(rtts, 50), p99Ms: percentile(rtts, 99), errors, badStatus: badEcho };
}

/**
 * Sends `totalMiB` binary messages of 1 MiB on one socket, up to `window` unanswered at a time,
 * and checks every echo byte for byte. MiB/s of payload echoed (each byte went both ways).
 */
export async function wsStream(url: string, totalMiB: number, window = 8): Promise<Transfer> {
  const ws = await openWs(url);
  const count = Math.max(1, Math.round(totalMiB));
  const messages = Array.from({ length: window }, (_, k) => {
    const b = Buffer.alloc(MiB);
    for (let i = 0; i < b.length; i += 4) b.writeUInt32LE((i * 2654435761 + k) >>> 0, i);
    return b;
  });
  const started = performance.now();
  let sent = 0;
  let received = 0;
  let exact = true;
  await new Promise<void>((resolve, reject) => {
    const send = () => {
      while (sent < count && sent - received < window) ws.send(messages[sent++ % window], { binary: true });
    };
    ws.on("message", (data: Buffer) => {
      if (!data.equals(messages[received % window])) exact = false;
      if (++received === count) resolve();
      else send();
    });
    ws.once("close", (code) => reject(new Error(`the socket closed (${code}) after ${received}/${count} echoes`)));
    ws.once("error", reject);
    send();
  });
  const seconds = (performance.now() - started) / 1000;
  ws.removeAllListeners("close");
  await closeWs(ws);
  return { bytes: received * MiB, seconds, mibps: (received * MiB) / MiB / seconds, exact };
}
