// `npx tsx bench/transfer-pairs.ts [--rounds N] [--only down|up] name=<checkout> ...`: the bench's
// 200 MiB download and 100 MiB upload through the relay and agent of several checkouts of this
// repository (e.g. git worktrees of two commits), in turns, with each process's CPU time per MiB.
// A checkout named `do` (or `do-...`) measures its relay's do-ceiling route instead; one named
// `cfg...` runs its agent with a --config file instead of flags.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { agentBin } from "./agent-bin.ts";
import { median, parseCheckoutArgs, startScript } from "./checkouts.ts";
import { cpuSeconds } from "./procs.ts";
import type { BenchRelay } from "./runtime.ts";
import { download, upload, type Transfer } from "./transfer.ts";

const MiB = 1024 * 1024;
const BACKEND = "pair";
const USAGE = `npx tsx bench/transfer-pairs.ts [--rounds N] [--only down|up] [--download-mib N] [--upload-mib N] [--trace-gc] name=<checkout> ...

Runs one backend, and per checkout its own relay (bare workerd, built from that checkout) and its
own agent (that checkout's agent bundled, bench/agent-bin.ts). After one warm-up transfer each way, every
round downloads through each checkout in turn, then uploads in the reverse order, and prints per
checkout the MiB/s of every transfer and the median CPU ms per MiB of its agent and its workerd
(scheduler counters: steadier than MiB/s on a busy machine). A name starting with "do" measures
the checkout's do-ceiling route (no agent) instead. A name starting with "cfg" runs that agent
with an equivalent --config file (relay, token and one ingress rule) instead of flags.

--trace-gc runs the agents under node --trace-gc and prints how many mark-compacts (full
collections of the heap) each agent ran during the measured rounds.`;

interface Variant {
  name: string;
  root: string;
  base: string;
  agent?: Agent;
  workerdPid: number;
}

interface Agent {
  pid: number;
  /** Mark-compacts so far (counted under --trace-gc). */
  markCompacts: number;
}

function parse(argv: string[]) {
  const defaults = { rounds: 5, only: "", downloadMiB: 200, uploadMiB: 100, traceGc: false };
  return parseCheckoutArgs(argv, USAGE, defaults, {
    "--rounds": "rounds",
    "--only": "only",
    "--download-mib": "downloadMiB",
    "--upload-mib": "uploadMiB",
    "--trace-gc": "traceGc",
  });
}

/** Starts a checkout's agent; resolves once all its tunnels are up. */
async function startAgent(root: string, args: string[], traceGc: boolean): Promise<{ proc: ChildProcess; agent: Agent }> {
  const node = traceGc ? ["--trace-gc"] : [];
  const proc = spawn(process.execPath, [...node, await agentBin(root), ...args], { stdio: ["ignore", "pipe", "pipe"] });
  const agent: Agent = { pid: proc.pid!, markCompacts: 0 };
  await new Promise<void>((res, rej) => {
    const said: string[] = [];
    for (const stream of [proc.stdout!, proc.stderr!]) {
      let rest = "";
      stream.on("data", (d: Buffer) => {
        const lines = (rest + d.toString()).split("\n");
        rest = lines.pop()!;
        for (const line of lines) {
          if (line.includes(": Mark-Compact")) agent.markCompacts++;
          else said.push(line);
          if (/tunnels=(\d+)\/\1\b/.test(line)) res();
        }
      });
    }
    proc.once("exit", () => rej(new Error(`the agent of ${root} exited:\n${said.join("\n")}`)));
  });
  return { proc, agent };
}

/** A --config file saying what the flags say: the relay, the token and one rule. */
function configFile(dir: string, name: string, relay: string, token: string, target: string): string {
  const file = join(dir, `${name}.yaml`);
  const text = `relay: ${relay}\ntoken: ${token}\ningress:\n  - backend: ${BACKEND}\n    service: ${target}\n`;
  writeFileSync(file, text, { mode: 0o600 });
  return file;
}

async function main(): Promise<void> {
  const o = parse(process.argv.slice(2));
  const checkouts = o.variants;
  const stops: Array<() => unknown> = [];
  const backend = await startScript(checkouts[0].root, "backend.ts");
  stops.push(() => backend.proc.kill("SIGTERM"));
  const variants: Variant[] = [];
  const dir = mkdtempSync(join(tmpdir(), "transfer-pairs-"));
  stops.push(() => rmSync(dir, { recursive: true, force: true }));
  try {
    for (const { name, root } of checkouts) {
      const { startBenchRelay } = (await import(`${root}/bench/runtime.ts`)) as {
        startBenchRelay: (vars: Record<string, string>, opts: object) => Promise<BenchRelay>;
      };
      const relay = await startBenchRelay({}, {});
      stops.push(() => relay.stop());
      if (name.startsWith("do")) {
        variants.push({ name, root, base: `${relay.url}/_relay/bench/${BACKEND}`, workerdPid: relay.pid });
        continue;
      }
      const token = await relay.token(BACKEND);
      const target = `http://127.0.0.1:${backend.port}`;
      const args = name.startsWith("cfg")
        ? ["agent", "--config", configFile(dir, name, relay.url, token, target)]
        : ["agent", "--relay", relay.url, "--backend", BACKEND, "--token", token, "--to", target];
      const { proc, agent } = await startAgent(root, args, o.traceGc);
      stops.push(() => proc.kill("SIGTERM"));
      variants.push({ name, root, base: `${relay.url}/r/${BACKEND}`, agent, workerdPid: relay.pid });
    }
    type Figures = { mibps: number[]; agent: number[]; workerd: number[] };
    const fresh = (): Record<"down" | "up", Figures> => ({
      down: { mibps: [], agent: [], workerd: [] },
      up: { mibps: [], agent: [], workerd: [] },
    });
    const figures = new Map(variants.map((v) => [v.name, fresh()]));
    const transfer = async (v: Variant, way: "down" | "up") => {
      const mib = way === "down" ? o.downloadMiB : o.uploadMiB;
      const agent0 = v.agent ? cpuSeconds(v.agent.pid) : 0;
      const workerd0 = cpuSeconds(v.workerdPid);
      const t: Transfer =
        way === "down" ? await download(`${v.base}/bytes?n=${mib * MiB}`, mib * MiB) : await upload(`${v.base}/echo`, mib * MiB);
      if (!t.exact) throw new Error(`${v.name}: the ${way}load was not byte-exact`);
      const f = figures.get(v.name)![way];
      f.mibps.push(t.mibps);
      f.agent.push(v.agent ? ((cpuSeconds(v.agent.pid) - agent0) * 1000) / mib : Number.NaN);
      f.workerd.push(((cpuSeconds(v.workerdPid) - workerd0) * 1000) / mib);
    };
    const ways = (["down", "up"] as const).filter((w) => !o.only || o.only === w);
    for (const v of variants) for (const way of ways) await transfer(v, way);
    for (const v of variants) figures.set(v.name, fresh());
    const warmedUp = new Map(variants.map((v) => [v.name, v.agent?.markCompacts ?? 0]));
    for (let round = 0; round < o.rounds; round++) {
      const order = round % 2 ? [...variants].reverse() : variants;
      if (ways.includes("down")) for (const v of order) await transfer(v, "down");
      if (ways.includes("up")) for (const v of [...order].reverse()) await transfer(v, "up");
    }
    console.log(
      `load average at the end: ${(await import("node:os"))
        .loadavg()
        .map((l) => l.toFixed(1))
        .join(" ")}`,
    );
    for (const v of variants) {
      for (const way of ways) {
        const f = figures.get(v.name)![way];
        const each = f.mibps.map((x) => x.toFixed(0)).join(", ");
        const cpu = `CPU ms/MiB agent ${v.agent ? median(f.agent).toFixed(2) : "-"} workerd ${median(f.workerd).toFixed(2)}`;
        console.log(`${v.name.padEnd(12)} ${way.padEnd(4)} MiB/s ${each} (median ${median(f.mibps).toFixed(0)}); ${cpu}`);
      }
      if (o.traceGc && v.agent) {
        console.log(`${v.name.padEnd(12)} agent mark-compacts in the measured rounds: ${v.agent.markCompacts - warmedUp.get(v.name)!}`);
      }
    }
  } finally {
    for (const stop of stops.reverse()) await stop();
  }
}

await main();
process.exit(0);
