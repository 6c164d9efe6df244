// A session on a V8 inspector (Chrome DevTools Protocol over a WebSocket): Node's --inspect or
// workerd's --inspector-addr. Used for heap figures and forced collections in memory tests and
// the bench.
import WebSocket from "ws";

export interface CdpSession {
  /** Sends `method` and resolves with its result; rejects with the protocol's error, or after `ms`. */
  call(method: string, params?: object, ms?: number): Promise<unknown>;
  close(): void;
}

/** Opens a session on the inspector target at `url` (ws://...). */
export async function openCdp(url: string): Promise<CdpSession> {
  const ws = new WebSocket(url);
  await new Promise<void>((resolve, reject) => {
    ws.once("open", () => resolve());
    ws.once("error", reject);
  });
  let nextId = 1;
  const waiting = new Map<number, { resolve: (result: unknown) => void; reject: (err: Error) => void }>();
  ws.on("message", (data) => {
    const msg = JSON.parse(String(data)) as { id?: number; result?: unknown; error?: { message: string } };
    const w = msg.id === undefined ? undefined : waiting.get(msg.id);
    if (!w) return;
    waiting.delete(msg.id!);
    if (msg.error) w.reject(new Error(msg.error.message));
    else w.resolve(msg.result);
  });
  return {
    call: (method, params = {}, ms = 60_000) =>
      new Promise<unknown>((resolve, reject) => {
        const id = nextId++;
        const timer = setTimeout(() => {
          waiting.delete(id);
          reject(new Error(`${method}: no answer from the inspected process within ${ms} ms`));
        }, ms);
        waiting.set(id, {
          resolve: (v) => (clearTimeout(timer), resolve(v)),
          reject: (e) => (clearTimeout(timer), reject(e)),
        });
        ws.send(JSON.stringify({ id, method, params }));
      }),
    close: () => ws.close(),
  };
}
