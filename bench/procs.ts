// Process figures for the benchmark from Linux /proc: resident memory and CPU time.
import { readFileSync, readdirSync } from "node:fs";
import { rssBytes } from "../test/helpers/relay.ts";

export { rssBytes };

/**
 * CPU seconds a process (all its threads) has run so far, from the scheduler's nanosecond
 * counters (/proc/<pid>/task/<tid>/schedstat): the tick-sampled utime of /proc/<pid>/stat is too
 * coarse for short bursts. 0 when the process is gone.
 */
export function cpuSeconds(pid: number): number {
  let ns = 0;
  try {
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      try {
        ns += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, "utf8").split(" ")[0]);
      } catch {
        // The thread ended while we looked.
      }
    }
  } catch {
    return 0;
  }
  return ns / 1e9;
}

/** Samples the peak RSS of named processes until stopped. */
export class PeakRss {
  readonly peak = new Map<string, number>();
  readonly baseline = new Map<string, number>();
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly pids: Record<string, number>,
    everyMs = 50,
  ) {
    for (const [name, pid] of Object.entries(pids)) {
      const now = rssBytes(pid);
      this.baseline.set(name, now);
      this.peak.set(name, now);
    }
    this.timer = setInterval(() => this.sample(), everyMs);
  }

  private sample(): void {
    for (const [name, pid] of Object.entries(this.pids)) this.peak.set(name, Math.max(this.peak.get(name) ?? 0, rssBytes(pid)));
  }

  /** Stops sampling; peak and growth per process in MiB. */
  stop(): Record<string, { peakMiB: number; growthMiB: number }> {
    clearInterval(this.timer);
    this.sample();
    const out: Record<string, { peakMiB: number; growthMiB: number }> = {};
    for (const name of Object.keys(this.pids)) {
      const peak = this.peak.get(name) ?? 0;
      out[name] = { peakMiB: peak / 1048576, growthMiB: (peak - (this.baseline.get(name) ?? 0)) / 1048576 };
    }
    return out;
  }
}
