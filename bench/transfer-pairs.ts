// `npx tsx bench/transfer-pairs.ts [--rounds N] [--only down|up] name=<checkout> ...`: the bench's
// 200 MiB download and 100 MiB upload through the relay and agent of several checkouts of this
// repository (e.g. git worktrees of two commits), in turns, with each process's CPU time per MiB.
// A checkout named `do` (or `do-...`) measures its relay's do-ceiling route instead.
import { median, parseCheckoutArgs, startAgent, startScript } from "./checkouts.ts";
import { cpuSeconds } from "./procs.ts";
import type { BenchRelay } from "./runtime.ts";
import { download, upload, type Transfer } from "./transfer.ts";

const MiB = 1024 * 1024;
const BACKEND = "pair";
const USAGE = `npx tsx bench/transfer-pairs.ts [--rounds N] [--only down|up] [--download-mib N] [--upload-mib N] name=<checkout> ...

Runs one backend, and per checkout its own relay (bare workerd, built from that checkout) and its
own agent (that checkout's agent/bin/edge-relay.mjs). After one warm-up transfer each way, every
round downloads through each checkout in turn, then uploads in the reverse order, and prints per
checkout the MiB/s of every transfer and the median CPU ms per MiB of its agent and its workerd
(scheduler counters: steadier than MiB/s on a busy machine). A name starting with "do" measures
the checkout's do-ceiling route (no agent) instead.`;

interface Variant {
  name: string;
  root: string;
  base: string;
  agentPid?: number;
  workerdPid: number;
}

function parse(argv: string[]) {
  const defaults = { rounds: 5, only: "", downloadMiB: 200, uploadMiB: 100 };
  return parseCheckoutArgs(argv, USAGE, defaults, {
    "--rounds": "rounds",
    "--only": "only",
    "--download-mib": "downloadMiB",
    "--upload-mib": "uploadMiB",
  });
}

async function main(): Promise<void> {
  const o = parse(process.argv.slice(2));
  const stops: Array<() => unknown> = [];
  const backend = await startScript(o.variants[0].root, "backend.ts");
  stops.push(() => backend.proc.kill("SIGTERM"));
  const variants: Variant[] = [];
  try {
    for (const { name, root } of o.variants) {
      const { startBenchRelay } = (await import(`${root}/bench/runtime.ts`)) as {
        startBenchRelay: (vars: Record<string, string>, opts: object) => Promise<BenchRelay>;
      };
      const relay = await startBenchRelay({}, {});
      stops.push(() => relay.stop());
      if (name.startsWith("do")) {
        variants.push({ name, root, base: `${relay.url}/_relay/bench/${BACKEND}`, workerdPid: relay.pid });
        continue;
      }
      const args = ["agent", "--relay", relay.url, "--backend", BACKEND, "--token", await relay.token(BACKEND)];
      const agent = await startAgent(root, [...args, "--to", `http://127.0.0.1:${backend.port}`]);
      stops.push(() => agent.kill("SIGTERM"));
      variants.push({ name, root, base: `${relay.url}/r/${BACKEND}`, agentPid: agent.pid!, workerdPid: relay.pid });
    }
    type Figures = { mibps: number[]; agent: number[]; workerd: number[] };
    const fresh = (): Record<"down" | "up", Figures> => ({
      down: { mibps: [], agent: [], workerd: [] },
      up: { mibps: [], agent: [], workerd: [] },
    });
    const figures = new Map(variants.map((v) => [v.name, fresh()]));
    const transfer = async (v: Variant, way: "down" | "up") => {
      const mib = way === "down" ? o.downloadMiB : o.uploadMiB;
      const agent0 = v.agentPid ? cpuSeconds(v.agentPid) : 0;
      const workerd0 = cpuSeconds(v.workerdPid);
      const t: Transfer =
        way === "down" ? await download(`${v.base}/bytes?n=${mib * MiB}`, mib * MiB) : await upload(`${v.base}/echo`, mib * MiB);
      if (!t.exact) throw new Error(`${v.name}: the ${way}load was not byte-exact`);
      const f = figures.get(v.name)![way];
      f.mibps.push(t.mibps);
      f.agent.push(v.agentPid ? ((cpuSeconds(v.agentPid) - agent0) * 1000) / mib : Number.NaN);
      f.workerd.push(((cpuSeconds(v.workerdPid) - workerd0) * 1000) / mib);
    };
    const ways = (["down", "up"] as const).filter((w) => !o.only || o.only === w);
    for (const v of variants) for (const way of ways) await transfer(v, way);
    for (const v of variants) figures.set(v.name, fresh());
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
        const cpu = `CPU ms/MiB agent ${v.agentPid ? median(f.agent).toFixed(2) : "-"} workerd ${median(f.workerd).toFixed(2)}`;
        console.log(`${v.name.padEnd(12)} ${way.padEnd(4)} MiB/s ${each} (median ${median(f.mibps).toFixed(0)}); ${cpu}`);
      }
    }
  } finally {
    for (const stop of stops.reverse()) await stop();
  }
}

await main();
process.exit(0);
