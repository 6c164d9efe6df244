// Samples resident memory of processes while a test runs, for "memory stays flat" checks.
import { openCdp } from "./cdp.ts";
import { rssBytes } from "./relay.ts";

export interface RssSampler {
  /** Stops sampling; returns each pid's baseline and peak in MiB. */
  stop(): Array<{ pid: number; baselineMiB: number; peakMiB: number; growthMiB: number }>;
}

/** Starts sampling the RSS of `pids` every `everyMs`. */
export function sampleRss(pids: number[], everyMs = 100): RssSampler {
  const baseline = new Map(pids.map((p) => [p, rssBytes(p)]));
  const peak = new Map(baseline);
  const timer = setInterval(() => {
    for (const p of pids) peak.set(p, Math.max(peak.get(p) ?? 0, rssBytes(p)));
  }, everyMs);
  return {
    stop() {
      clearInterval(timer);
      const mib = (n: number) => Math.round((n / 1048576) * 10) / 10;
      return pids.map((pid) => {
        const b = baseline.get(pid) ?? 0;
        const p = Math.max(peak.get(pid) ?? 0, rssBytes(pid));
        return { pid, baselineMiB: mib(b), peakMiB: mib(p), growthMiB: mib(p - b) };
      });
    },
  };
}

/** Resolves once `read()` has returned the same value for `stableMs`; rejects after `timeoutMs`. */
export async function waitUntilStable(read: () => number, stableMs: number, timeoutMs: number): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  let last = read();
  let since = Date.now();
  while (Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 100));
    const now = read();
    if (now !== last) {
      last = now;
      since = Date.now();
    } else if (Date.now() - since >= stableMs) return now;
  }
  throw new Error(`value kept changing for ${timeoutMs} ms (last ${last})`);
}

/** What a process holds after a full garbage collection: V8's heap in use, and memory outside it (Buffers). */
export interface Retained {
  heapUsedMiB: number;
  externalMiB: number;
  rssMiB: number;
}

/**
 * A Node process started with `--inspect=127.0.0.1:0`, reached over V8's inspector protocol (the
 * WebSocket URL Node prints as "Debugger listening on ws://..."). `retained()` runs a full garbage
 * collection and then reads process.memoryUsage() inside it: memory the process keeps, without
 * the garbage a busy heap carries until V8 chooses to collect it.
 */
export async function inspectProcess(debuggerUrl: string): Promise<{ retained(): Promise<Retained>; close(): void }> {
  const { call, close } = await openCdp(debuggerUrl);
  const mib = (n: number) => Math.round((n / 1048576) * 10) / 10;
  return {
    async retained() {
      await call("HeapProfiler.collectGarbage");
      const r = (await call("Runtime.evaluate", { expression: "JSON.stringify(process.memoryUsage())", returnByValue: true })) as {
        result: { value: string };
      };
      const u = JSON.parse(r.result.value) as NodeJS.MemoryUsage;
      return { heapUsedMiB: mib(u.heapUsed), externalMiB: mib(u.external), rssMiB: mib(u.rss) };
    },
    close,
  };
}
