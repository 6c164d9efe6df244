// The tcp row's clients: TCP connections as echo peers for the round trips (bench/echo.ts) and a
// stream of pattern bytes echoed back byte-exact (MiB/s).
import net from "node:net";
import type { EchoPeer } from "./echo.ts";
import type { Transfer } from "./transfer.ts";

const MiB = 1024 * 1024;

/** Connects to a port on loopback; resolves once connected. */
function dial(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: "127.0.0.1", port, noDelay: true }, () => resolve(socket));
    socket.once("error", reject);
  });
}

/** A TCP connection to `port` as an echo peer. */
export async function tcpPeer(port: number): Promise<EchoPeer> {
  const socket = await dial(port);
  socket.on("error", () => {}); // a close follows, which onClose reports
  return {
    send: (text) => void socket.write(text, "latin1"),
    onData: (listener) => socket.on("data", (chunk: Buffer) => listener(chunk.toString("latin1"))),
    onClose: (listener) => socket.once("close", listener),
    close: async () => void socket.destroy(),
  };
}

/**
 * Writes `totalMiB` of pattern bytes on one connection (with backpressure) while reading the
 * echo, and checks every byte against what was sent. MiB/s of bytes echoed (each went both ways).
 */
export async function tcpStream(port: number, totalMiB: number): Promise<Transfer> {
  const socket = await dial(port);
  const block = Buffer.alloc(MiB);
  for (let i = 0; i < block.length; i += 4) block.writeUInt32LE((i * 2654435761) >>> 0, i);
  const total = Math.max(1, Math.round(totalMiB)) * MiB;
  const started = performance.now();
  let received = 0;
  let exact = true;
  await new Promise<void>((resolve, reject) => {
    socket.on("data", (chunk: Buffer) => {
      // The pattern repeats every MiB: compare the chunk with the block at its offset.
      for (let at = 0; at < chunk.length; ) {
        const offset = (received + at) % MiB;
        const n = Math.min(chunk.length - at, MiB - offset);
        if (exact && chunk.compare(block, offset, offset + n, at, at + n) !== 0) exact = false;
        at += n;
      }
      received += chunk.length;
      if (received >= total) resolve();
    });
    socket.once("close", () => reject(new Error(`the connection closed after ${received}/${total} bytes came back`)));
    socket.once("error", reject);
    void (async () => {
      for (let sent = 0; sent < total; sent += MiB) {
        if (!socket.write(block)) await new Promise((r) => socket.once("drain", r));
      }
    })();
  });
  const seconds = (performance.now() - started) / 1000;
  socket.removeAllListeners("close");
  socket.destroy();
  return { bytes: received, seconds, mibps: received / MiB / seconds, exact: exact && received === total };
}
