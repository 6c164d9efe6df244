// A session on workerd's inspector (--inspector-addr): its one isolate's heap figures and a full
// garbage collection, for the memory figures of the fleet row.
import { openCdp } from "../test/helpers/cdp.ts";

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
  const { call, close } = await openCdp(targets[0]?.webSocketDebuggerUrl ?? `ws://127.0.0.1:${port}/${targets[0]?.id}`);
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
    close,
  };
}
