// The echo rows' round-trip client (ws, tcp), over any connection that carries text both ways:
// small messages round-tripped one at a time on each connection, for messages/s and round-trip
// percentiles like wrk's figures for the small GETs.
import type { LoadResult } from "./load.ts";

/** One open connection to an echo server. */
export interface EchoPeer {
  send(text: string): void;
  /** Bytes that came back, as latin1 text: whole messages (ws) or pieces of the stream (tcp). */
  onData(listener: (text: string) => void): void;
  onClose(listener: () => void): void;
  close(): Promise<void>;
}

export const percentile = (sorted: number[], p: number) =>
  sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] : NaN;

/**
 * `connections` peers from `open`, each sending a `size`-byte message and waiting for all of its
 * echo before the next, for `seconds`. Messages/s over all peers and round-trip percentiles;
 * `errors` counts peers closed under load, `badStatus` echoes that differed from what was sent.
 */
export async function pingPong(open: () => Promise<EchoPeer>, connections: number, seconds: number, size = 64): Promise<LoadResult> {
  const peers = await Promise.all(Array.from({ length: connections }, open));
  const rtts: number[] = [];
  let errors = 0;
  let badEcho = 0;
  let running = true;
  const started = performance.now();
  const deadline = started + seconds * 1000;
  await Promise.all(
    peers.map(
      (peer, i) =>
        new Promise<void>((resolve) => {
          const base = `${i}:`.padEnd(size - 8, "x");
          let n = 0;
          let sent = 0;
          let expect = "";
          let got = "";
          const next = () => {
            if (performance.now() >= deadline) return resolve();
            expect = base + String(n++).padStart(8, "0");
            got = "";
            sent = performance.now();
            peer.send(expect);
          };
          peer.onData((text) => {
            got += text;
            if (got.length < expect.length) return;
            rtts.push(performance.now() - sent);
            if (got !== expect) badEcho++;
            next();
          });
          peer.onClose(() => {
            if (running) errors++;
            resolve();
          });
          next();
        }),
    ),
  );
  running = false;
  const elapsed = (performance.now() - started) / 1000;
  await Promise.all(peers.map((p) => p.close()));
  rtts.sort((a, b) => a - b);
  return {
    requests: rtts.length,
    seconds: elapsed,
    rps: rtts.length / elapsed,
    p50Ms: percentile(rtts, 50),
    p99Ms: percentile(rtts, 99),
    errors,
    badStatus: badEcho,
  };
}
