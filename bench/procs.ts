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

/** The machine's CPU time counters (jiffies, all CPUs) from /proc/stat: busy (steal included) and total. */
function machineTicks(): { busy: number; total: number } {
  const [, ...fields] = readFileSync("/proc/stat", "utf8").split("\n")[0].trim().split(/\s+/);
  // user nice system idle iowait irq softirq steal (guest time is already in user and nice).
  const [user, nice, system, idle, iowait, irq, softirq, steal] = fields.map(Number);
  const busy = user + nice + system + irq + softirq + (steal || 0);
  return { busy, total: busy + idle + (iowait || 0) };
}

/**
 * The share of the machine's CPU (0-1, all cores) other work used over `ms`, sampled while this
 * bench runs nothing: unlike the load average, which still counts a run that just ended for a
 * minute, it sees only what shares the machine now. A VM's stolen time counts as busy.
 */
export async function otherWork(ms = 2000): Promise<number> {
  const before = machineTicks();
  await new Promise((resolve) => setTimeout(resolve, ms));
  const after = machineTicks();
  return (after.busy - before.busy) / Math.max(1, after.total - before.total);
}
