// The parallel row: whether two backends' Durable Objects run in parallel in workerd. The same
// c32 small-GET load on one backend alone, then on two at once, in interleaved turns; the
// workerd threads' CPU says how many cores the objects got.
import { readdirSync, readFileSync } from "node:fs";
import { wrk, type LoadResult } from "./load.ts";

/** CPU seconds each thread of `pid` has run so far (/proc/<pid>/task/<tid>/schedstat). */
export function threadCpuSeconds(pid: number): Map<number, number> {
  const out = new Map<number, number>();
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      out.set(Number(tid), Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, "utf8").split(" ")[0]) / 1e9);
    } catch {
      // The thread ended while we looked.
    }
  }
  return out;
}

/** One mode's figures added up over its turns. */
export interface ParallelFigures {
  /** Requests per second, all backends together. */
  rps: number;
  /** Each backend's share of it. */
  rpsEach: number[];
  /** workerd CPU seconds per wall second: 1.0 is one core busy. */
  workerdCores: number;
  /** The busiest workerd thread's CPU seconds per wall second. */
  busiestThreadCores: number;
  /** workerd threads that ran more than 5% of a core. */
  busyThreads: number;
  /** Per-turn total req/s, for the spread. */
  turns: number[];
}

export interface ParallelResult {
  one: ParallelFigures;
  two: ParallelFigures;
}

/**
 * Runs `turns` turns of `seconds` each: c32 on urls[0] alone, then c32 on urls[0] and urls[1] at
 * once (the order swapped every other turn, so both modes see the same drift).
 */
export async function parallelLoad(urls: [string, string], workerdPid: number, turns: number, seconds: number): Promise<ParallelResult> {
  const acc = {
    one: { results: [] as LoadResult[][], wall: 0, cpu: 0, threads: new Map<number, number>() },
    two: { results: [] as LoadResult[][], wall: 0, cpu: 0, threads: new Map<number, number>() },
  };
  const run = async (mode: "one" | "two") => {
    const a = acc[mode];
    const before = threadCpuSeconds(workerdPid);
    const start = performance.now();
    const results = await Promise.all((mode === "one" ? urls.slice(0, 1) : urls).map((u) => wrk(u, 32, seconds)));
    const wall = (performance.now() - start) / 1000;
    const after = threadCpuSeconds(workerdPid);
    for (const r of results)
      if (r.errors || r.badStatus) throw new Error(`parallel: a c32 run had ${r.errors} socket errors and ${r.badStatus} bad statuses`);
    a.results.push(results);
    a.wall += wall;
    for (const [tid, s] of after) {
      const d = s - (before.get(tid) ?? 0);
      a.cpu += d;
      a.threads.set(tid, (a.threads.get(tid) ?? 0) + d);
    }
  };
  await run("two"); // warm-up: both objects and both agents' paths
  acc.two = { results: [], wall: 0, cpu: 0, threads: new Map() };
  for (let i = 0; i < turns; i++) {
    for (const mode of i % 2 ? (["two", "one"] as const) : (["one", "two"] as const)) await run(mode);
  }
  const figures = (a: (typeof acc)["one"]): ParallelFigures => {
    const n = a.results[0].length;
    const each = Array.from({ length: n }, (_, k) => {
      const req = a.results.reduce((s, rs) => s + rs[k].requests, 0);
      const secs = a.results.reduce((s, rs) => s + rs[k].seconds, 0);
      return req / secs;
    });
    const perThread = [...a.threads.values()].map((s) => s / a.wall);
    return {
      rps: each.reduce((s, x) => s + x, 0),
      rpsEach: each,
      workerdCores: a.cpu / a.wall,
      busiestThreadCores: Math.max(...perThread),
      busyThreads: perThread.filter((c) => c > 0.05).length,
      turns: a.results.map((rs) => rs.reduce((s, r) => s + r.rps, 0)),
    };
  };
  return { one: figures(acc.one), two: figures(acc.two) };
}
