// `npx tsx bench/small-pairs.ts [--rounds N] name=<checkout> ...`: the bench's small GETs through
// the agents of several checkouts of this repository, in turns against one relay and one backend,
// with each agent's CPU time per request (c32) and the c1 latency.
import { mkdirSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { wrk, type LoadResult } from "./load.ts";
import { loadLine, parseCheckoutArgs, spread, startAgent, startScript } from "./checkouts.ts";
import { cpuSeconds } from "./procs.ts";
import type { BenchRelay } from "./runtime.ts";

const USAGE = `npx tsx bench/small-pairs.ts [--rounds N] [--seconds S] [--c1-seconds S] [--own-relays] [--profile] name=<checkout> ...

Runs one backend and one relay (bare workerd, built from the first checkout), and per checkout an
agent of its own (that checkout's agent bundled, bench/agent-bin.ts) serving a backend name of its own.
After a warm-up, every round sends small GETs through each agent in turn (the order alternates
between rounds): wrk at concurrency 32 for --seconds (default 2), then at concurrency 1 for
--c1-seconds (default 2). Prints per checkout each round's figures and their medians: agent and
workerd CPU µs per request (scheduler counters) and req/s at c32, p50 ms and agent and workerd µs
per request at c1. --own-relays gives each checkout a relay built from itself (to compare relay changes);
--profile runs each agent under node --cpu-prof into bench/profiles/. A name starting with "do"
measures the relay's do-ceiling route (no agent).`;

interface Variant {
  name: string;
  root: string;
  url: string;
  agentPid?: number;
  workerdPid: number;
}

function parse(argv: string[]) {
  const defaults = { rounds: 5, seconds: 2, c1Seconds: 2, ownRelays: false, profile: false };
  return parseCheckoutArgs(argv, USAGE, defaults, {
    "--rounds": "rounds",
    "--seconds": "seconds",
    "--c1-seconds": "c1Seconds",
    "--own-relays": "ownRelays",
    "--profile": "profile",
  });
}

/** Sends wrk's load and returns it with each process's CPU µs per request. */
async function turn(v: Variant, connections: number, seconds: number): Promise<{ r: LoadResult; agent: number; workerd: number }> {
  const agent0 = v.agentPid ? cpuSeconds(v.agentPid) : 0;
  const workerd0 = cpuSeconds(v.workerdPid);
  const r = await wrk(`${v.url}/small`, connections, seconds);
  if (r.errors || r.badStatus) throw new Error(`${v.name}: ${r.errors} socket errors, ${r.badStatus} bad statuses at c${connections}`);
  const per = (s: number) => (s * 1e6) / Math.max(1, r.requests);
  return { r, agent: v.agentPid ? per(cpuSeconds(v.agentPid) - agent0) : Number.NaN, workerd: per(cpuSeconds(v.workerdPid) - workerd0) };
}

async function main(): Promise<void> {
  const o = parse(process.argv.slice(2));
  const stops: Array<() => unknown> = [];
  const profiles = fileURLToPath(new URL("./profiles/", import.meta.url));
  const nodeArgs = o.profile ? ["--cpu-prof", `--cpu-prof-dir=${profiles}`] : [];
  if (o.profile) mkdirSync(profiles, { recursive: true });
  console.log(loadLine("start"));
  const backend = await startScript(o.variants[0].root, "backend.ts");
  stops.push(() => backend.proc.kill("SIGTERM"));
  const variants: Variant[] = [];
  const relays = new Map<string, BenchRelay>();
  const relayOf = async (root: string) => {
    const key = o.ownRelays ? root : "shared";
    let relay = relays.get(key);
    if (!relay) {
      const { startBenchRelay } = (await import(`${root}/bench/runtime.ts`)) as {
        startBenchRelay: (vars: Record<string, string>, opts: object) => Promise<BenchRelay>;
      };
      // RELAY_BENCH turns the do-ceiling route on in checkouts from before the bench built its own entry.
      relay = await startBenchRelay({ RELAY_BENCH: "1" }, {});
      relays.set(key, relay);
      stops.push(() => relay!.stop());
    }
    return relay;
  };
  try {
    for (const { name, root } of o.variants) {
      const relay = await relayOf(o.ownRelays ? root : o.variants[0].root);
      const backendName = `pair-${name}`;
      if (name.startsWith("do")) {
        variants.push({ name, root, url: `${relay.url}/_relay/bench/${backendName}`, workerdPid: relay.pid });
        continue;
      }
      const args = ["agent", "--relay", relay.url, "--backend", backendName, "--token", await relay.token(backendName)];
      const agent = await startAgent(root, [...args, "--to", `http://127.0.0.1:${backend.port}`], nodeArgs);
      stops.push(
        () =>
          new Promise<void>((done) => {
            agent.once("exit", () => done());
            agent.kill("SIGTERM");
          }),
      );
      variants.push({ name, root, url: `${relay.url}/r/${backendName}`, agentPid: agent.pid!, workerdPid: relay.pid });
    }
    for (const v of variants) await turn(v, 32, 2);
    if (o.c1Seconds > 0) for (const v of variants) await turn(v, 1, 1);
    type Figures = { rps: number[]; agent: number[]; workerd: number[]; p50: number[]; agentC1: number[]; workerdC1: number[] };
    const figures = new Map<string, Figures>(
      variants.map((v) => [v.name, { rps: [], agent: [], workerd: [], p50: [], agentC1: [], workerdC1: [] }]),
    );
    for (let round = 0; round < o.rounds; round++) {
      const order = round % 2 ? [...variants].reverse() : variants;
      for (const v of order) {
        const t = await turn(v, 32, o.seconds);
        const f = figures.get(v.name)!;
        f.rps.push(t.r.rps);
        f.agent.push(t.agent);
        f.workerd.push(t.workerd);
      }
      for (const v of o.c1Seconds > 0 ? [...order].reverse() : []) {
        const t = await turn(v, 1, o.c1Seconds);
        const f = figures.get(v.name)!;
        f.p50.push(t.r.p50Ms);
        f.agentC1.push(t.agent);
        f.workerdC1.push(t.workerd);
      }
    }
    console.log(loadLine("end"));
    for (const v of variants) {
      const f = figures.get(v.name)!;
      console.log(
        `${v.name.padEnd(10)} c32 req/s ${spread(f.rps, 0)}; agent µs/req ${spread(f.agent, 1)}; workerd µs/req ${spread(f.workerd, 0)}`,
      );
      console.log(
        `${"".padEnd(10)} c1 p50 ms ${spread(f.p50, 3)}; agent µs/req ${spread(f.agentC1, 0)}; workerd µs/req ${spread(f.workerdC1, 0)}`,
      );
    }
  } finally {
    for (const stop of stops.reverse()) await stop();
  }
}

await main();
process.exit(0);
