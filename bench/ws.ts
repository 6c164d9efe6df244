// The ws row's clients: WebSockets as echo peers for the round trips (bench/echo.ts) and a stream
// of 1 MiB binary messages echoed back byte-exact (MiB/s).
import WebSocket from "ws";
import type { EchoPeer } from "./echo.ts";
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

/** Closes a WebSocket cleanly; terminates it when the close is not answered within `ms`. */
export function closeWs(ws: WebSocket, ms = 5000): Promise<void> {
  return new Promise((resolve) => {
    if (ws.readyState === WebSocket.CLOSED) return resolve();
    const timer = setTimeout(() => (ws.terminate(), resolve()), ms);
    ws.once("close", () => (clearTimeout(timer), resolve()));
    ws.close(1000, "bench done");
  });
}

/** A WebSocket to `url` as an echo peer (text messages). */
export async function wsPeer(url: string): Promise<EchoPeer> {
  const ws = await openWs(url);
  ws.on("error", () => {}); // a close follows, which onClose reports
  return {
    send: (text) => ws.send(text),
    onData: (listener) => ws.on("message", (data: Buffer) => listener(data.toString("latin1"))),
    onClose: (listener) => ws.once("close", listener),
    close: () => closeWs(ws),
  };
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
