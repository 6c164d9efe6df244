// `npm run bench -- --runs N ...`: the bench run N times back to back, each in a process of its own,
// and per target how many runs met it (issue 19 judges every target by at least 4 of 5 runs).
import { spawn } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

const BENCH = fileURLToPath(new URL("./bench.ts", import.meta.url));

/** What one run wrote to its JSON that the tally reads. */
interface RunResult {
  targets: Array<{ target: string; figure: string; met: boolean | string; reference?: string }>;
  load: { start: number[]; busyAtStart?: number; noisy: boolean };
}

/** A target over the runs: its figure in each run that judged it, and how many met it. */
interface Tally {
  target: string;
  /** A threshold applied to a reference figure, not a target: the heading it prints under (bench/bench.ts Target). */
  reference?: string;
  met: number;
  judged: number;
  figures: string[];
}

/** The share of runs a target must be met in: 4 of 5, as issue 19 asks. */
const MET_SHARE = 0.8;

/**
 * Prints the thresholds applied to reference figures (not targets), one block per heading: a
 * run's verdicts (bench.ts) or the tally over runs (here).
 */
export function printReferences<T extends { reference?: string }>(items: T[], line: (item: T) => string): void {
  for (const heading of new Set(items.map((t) => t.reference).filter((r) => r !== undefined)))
    console.log(
      `\nThe same thresholds for ${heading}:\n${items
        .filter((t) => t.reference === heading)
        .map(line)
        .join("\n")}`,
    );
}

/** Runs bench.ts once with `argv`, writing its JSON to `out`; resolves with its exit code. */
function runOnce(argv: string[], out: string): Promise<number> {
  const child = spawn(process.execPath, ["--import", "tsx", BENCH, ...argv, "--out", out], { stdio: "inherit" });
  return new Promise((resolve) => child.once("exit", (code, signal) => resolve(code ?? (signal ? 128 : 1))));
}

/** The run's figure without its detail in brackets, for the one-line tally. */
const short = (figure: string) => figure.split(" (")[0];

/**
 * Runs the bench `n` times with `argv` (without --runs and --out), one JSON per run next to `out`
 * (`<out>.run1.json`, ...), then prints per target in how many runs it was met and writes the
 * tally to `out`. A run that failed counts as judging nothing.
 */
export async function repeatRuns(n: number, argv: string[], out: string): Promise<void> {
  const tallies = new Map<string, Tally>();
  const runs: Array<{ out: string; exitCode: number; noisy?: boolean; otherWork?: number; loadAverage?: number }> = [];
  const base = out.replace(/\.json$/, "");
  for (let i = 1; i <= n; i++) {
    console.log(`\n==== run ${i} of ${n} ====`);
    const file = `${base}.run${i}.json`;
    const exitCode = await runOnce(argv, file);
    if (exitCode !== 0) {
      runs.push({ out: file, exitCode });
      continue;
    }
    const r = JSON.parse(readFileSync(file, "utf8")) as RunResult;
    runs.push({ out: file, exitCode, noisy: r.load.noisy, otherWork: r.load.busyAtStart, loadAverage: r.load.start[0] });
    for (const t of r.targets) {
      if (typeof t.met !== "boolean") continue;
      const tally = tallies.get(t.target) ?? {
        target: t.target,
        met: 0,
        judged: 0,
        figures: [],
        ...(t.reference && { reference: t.reference }),
      };
      tally.judged++;
      if (t.met) tally.met++;
      tally.figures.push(`${short(t.figure)}${r.load.noisy ? "*" : ""}`);
      tallies.set(t.target, tally);
    }
  }
  const noisyRuns = runs.filter((r) => r.noisy).length;
  const failed = runs.filter((r) => r.exitCode !== 0).length;
  const needed = Math.ceil(MET_SHARE * n);
  console.log(
    `\nTargets over ${n} back-to-back runs (met in at least ${needed} of ${n} counts as met)` +
      `${failed ? `; ${failed} run(s) failed` : ""}${noisyRuns ? `; ${noisyRuns} run(s) started on a noisy machine, their figures marked *` : ""}:`,
  );
  const line = (t: Tally) => `  ${t.met >= needed ? "MET   " : "MISSED"} met in ${t.met} of ${n}: ${t.target}: ${t.figures.join(", ")}`;
  for (const t of tallies.values()) if (!t.reference) console.log(line(t));
  printReferences([...tallies.values()], line);
  writeFileSync(out, `${JSON.stringify({ date: new Date().toISOString(), runs, needed, targets: [...tallies.values()] }, null, 2)}\n`);
  console.log(`tally written to ${out}; each run's figures to ${base}.run<i>.json`);
}
