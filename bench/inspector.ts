// A session on workerd's inspector (--inspector-addr): its one isolate's heap figures and a full
// garbage collection, for the memory figures of the fleet row.
import WebSocket from "ws";

export interface WorkerdInspector {
  /** Bytes the isolate's heap uses and has reserved. */
  heapUsage(): Promise<{ usedSize: number; totalSize: number }>;
  /** A full collection of the isolate's heap; `nudge` sends the request that lets it run. */
  collectGarbage(nudge: () => Promise<unknown>): Promise<void>;
  close(): void;
}

/** Opens a session on the first inspector target of workerd at `port`. */
export async function inspectWorkerd(port: number): Promise<WorkerdInspector> {
  const targets = (await (await fetch(`http://127.0.0.1:${port}/json/list`)).json()) as Array<{
    webSocketDebuggerUrl?: string;
    id: string;
  }>;
  const ws = new WebSocket(targets[0]?.webSocketDebuggerUrl ?? `ws://127.0.0.1:${port}/${targets[0]?.id}`);
  await new Promise<void>((resolve, reject) => {
    ws.once("open", () => resolve());
    ws.once("error", reject);
  });
  let id = 0;
  const pending = new Map<number, { resolve: (result: unknown) => void; reject: (err: Error) => void }>();
  ws.on("message", (data) => {
    const msg = JSON.parse(data.toString()) as { id?: number; result?: unknown; error?: { message: string } };
    const waiter = msg.id === undefined ? undefined : pending.get(msg.id);
    if (!waiter) return;
    pending.delete(msg.id!);
    if (msg.error) waiter.reject(new Error(msg.error.message));
    else waiter.resolve(msg.result);
  });
  const call = (method: string, params: object = {}) =>
    new Promise<unknown>((resolve, reject) => {
      const n = ++id;
      pending.set(n, { resolve, reject });
      ws.send(JSON.stringify({ id: n, method, params }));
    });
  return {
    heapUsage: () => call("Runtime.getHeapUsage") as Promise<{ usedSize: number; totalSize: number }>,
    collectGarbage: async (nudge) => {
      // workerd runs this command on the isolate's thread only once an event wakes it.
      let collected = false;
      let failed: unknown;
      call("HeapProfiler.collectGarbage").then(
        () => (collected = true),
        (err) => (failed = err),
      );
      for (let i = 0; i < 50 && !collected && !failed; i++) {
        await new Promise((r) => setTimeout(r, 100));
        if (!collected) await nudge();
      }
      if (failed) throw failed;
      if (!collected) throw new Error("workerd did not collect garbage within 5 s");
    },
    close: () => ws.close(),
  };
}
