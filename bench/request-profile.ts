// `npx tsx bench/request-profile.ts [--concurrency C] [--seconds S] [--top N] [--out DIR]`: where
// workerd's time goes per small GET, for the relay, ws-floor and do-ceiling side by side: a CPU
// profile of workerd's isolate over the inspector during each route's load alone, its self time
// per function divided by the requests answered.
import { mkdirSync, writeFileSync } from "node:fs";
import { agentArgs } from "../test/helpers/agent.ts";
import { startAgent, startScript } from "./checkouts.ts";
import { wrk } from "./load.ts";
import { cpuSeconds } from "./procs.ts";
import { profileWorkerd } from "./profile.ts";
import { startBenchRelay } from "./runtime.ts";
import { startFloorPeer } from "./ws-floor-peer.ts";

const USAGE = `npx tsx bench/request-profile.ts [--concurrency C] [--seconds S] [--top N] [--out DIR]

Starts the bench's relay (bare workerd with its inspector), backend, agent and ws-floor peer, then
sends wrk's small GETs at --concurrency (default 32) to each route in turn (relay, ws-floor,
do-ceiling) for --seconds (default 6) after a 3 s warm-up, profiling workerd's JavaScript during
each load alone. Prints each route's workerd CPU µs per request (scheduler counters, all threads)
and busy µs per request in the profile (its samples but "(idle)"), then the --top (default 40)
functions by self µs per request in the relay: "(program)" is the runtime's own native work, a
name without a line (fetch, Response, write) a runtime API. --out keeps the three .cpuprofile
files (default: not kept).`;

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}
interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/** Self µs per request by function ("name@line" for the Worker's own code). */
function selfPerRequest(profile: CpuProfile, requests: number): Map<string, number> {
  const byId = new Map(profile.nodes.map((n) => [n.id, n.callFrame]));
  const self = new Map<string, number>();
  profile.samples.forEach((id, i) => {
    const frame = byId.get(id)!;
    const key = `${frame.functionName || "(anonymous)"}${frame.url ? `@${frame.lineNumber}` : ""}`;
    self.set(key, (self.get(key) ?? 0) + (profile.timeDeltas[i] ?? 0) / requests);
  });
  return self;
}

interface Options {
  concurrency: number;
  seconds: number;
  top: number;
  out?: string;
}

function parse(argv: string[]): Options {
  const o: Options = { concurrency: 32, seconds: 6, top: 40 };
  const numeric: Record<string, "concurrency" | "seconds" | "top"> = {
    "--concurrency": "concurrency",
    "--seconds": "seconds",
    "--top": "top",
  };
  for (let i = 0; i < argv.length; i++) {
    const [flag, value] = [argv[i], argv[i + 1]];
    if (flag === "--help" || flag === "-h") {
      console.log(USAGE);
      process.exit(0);
    }
    if (flag === "--out" && value) o.out = value;
    else if (numeric[flag] && Number(value) > 0) o[numeric[flag]] = Number(value);
    else {
      console.error(`${flag} is not an option here, or its value "${value ?? ""}" is not valid.\n\n${USAGE}`);
      process.exit(2);
    }
    i++;
  }
  return o;
}

async function main(): Promise<void> {
  const o = parse(process.argv.slice(2));
  const root = new URL("..", import.meta.url).pathname;
  const stops: Array<() => unknown> = [];
  try {
    const backend = await startScript(root, "backend.ts");
    stops.push(() => backend.proc.kill("SIGTERM"));
    const relay = await startBenchRelay({}, { inspect: true });
    stops.push(() => relay.stop());
    const name = "profiled";
    const agent = await startAgent(root, agentArgs(relay.url, name, await relay.token(name), `http://127.0.0.1:${backend.port}`));
    stops.push(() => agent.kill("SIGTERM"));
    const peer = await startFloorPeer(`${relay.url.replace(/^http/, "ws")}/_relay/bench/${name}/floor-peer`);
    stops.push(() => peer.stop());
    const routes: Array<[string, string]> = [
      ["relay", `${relay.url}/r/${name}/small`],
      ["ws-floor", `${relay.url}/_relay/bench/${name}/floor/small`],
      ["do-ceiling", `${relay.url}/_relay/bench/${name}/small`],
    ];
    for (const [, url] of routes) await wrk(url, o.concurrency, 3);
    const tables: Array<Map<string, number>> = [];
    const cpu: number[] = [];
    for (const [route, url] of routes) {
      const profiling = await profileWorkerd(relay.inspectorPort!);
      const cpu0 = cpuSeconds(relay.pid);
      const r = await wrk(url, o.concurrency, o.seconds);
      cpu.push(((cpuSeconds(relay.pid) - cpu0) * 1e6) / Math.max(1, r.requests));
      const profile = (await profiling.stop()) as CpuProfile;
      if (r.errors || r.badStatus) throw new Error(`${route}: ${r.errors} socket errors and ${r.badStatus} bad statuses`);
      if (o.out) {
        mkdirSync(o.out, { recursive: true });
        writeFileSync(`${o.out}/${route}.cpuprofile`, JSON.stringify(profile));
      }
      console.log(`${route}: ${r.requests} requests, ${Math.round(r.rps)} req/s`);
      tables.push(selfPerRequest(profile, r.requests));
    }
    const busy = tables.map((t) => [...t].reduce((sum, [k, us]) => (k === "(idle)" ? sum : sum + us), 0));
    const cell = (us: number) => us.toFixed(1).padStart(10);
    console.log(`\n${routes.map(([r]) => r.padStart(10)).join("")}   µs per request at c${o.concurrency}`);
    console.log(`${cpu.map(cell).join("")}   workerd CPU (scheduler)`);
    console.log(`${busy.map(cell).join("")}   busy in the profile (all but idle)`);
    const keys = [...tables[0].keys()].filter((k) => k !== "(idle)").sort((a, b) => tables[0].get(b)! - tables[0].get(a)!);
    for (const k of keys.slice(0, o.top)) console.log(`${tables.map((t) => cell(t.get(k) ?? 0)).join("")}   ${k}`);
  } finally {
    for (const stop of stops.reverse()) await stop();
  }
}

await main();
process.exit(0);
