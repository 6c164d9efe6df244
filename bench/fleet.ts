// The fleet row of `npm run bench`: one agent process serving hundreds of backends from one
// --config file. Measures how soon all answer after the agent starts and after the relay process
// restarts (and how the reconnects spread), workerd memory per awake and per idle tunnel, and the
// first request to a backend whose Durable Object was evicted.
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BENCH_SMALL_BODY } from "./do-responder.ts";
import { mintToken } from "../src/auth.ts";
import { agentBin } from "./agent-bin.ts";
import { inspectWorkerd, type WorkerdInspector } from "./inspector.ts";
import { rssBytes } from "./procs.ts";
import { freePort, startBenchRelay, type BenchRelay } from "./runtime.ts";

export interface FleetOptions {
  backends: number;
  /** Tunnels per backend. */
  connections: number;
  /** Seconds left idle before the memory figure and the evicted-object requests. */
  idleSeconds: number;
  /** The small-body backend every rule points at. */
  backendUrl: string;
  log: (line: string) => void;
}

export interface FleetResult {
  backends: number;
  tunnels: number;
  /** Seconds from the agent's start until every backend answered. */
  allAnswerAfterStartS: number;
  /** Seconds from the restarted relay listening until every backend answered again. */
  allAnswerAfterRestartS: number;
  /** The same, from the moment the old relay was stopped. */
  allAnswerAfterStopS: number;
  /** Tunnel reconnects after the restart: first to last, and the most in any 100 ms. */
  reconnects: { count: number; spreadS: number; peakPer100ms: number };
  /**
   * workerd's RSS: fresh; with every object awake; after the idle period; the same after a full
   * garbage collection; and after a second fleet of as many backends was left idle as long
   * (collected too).
   */
  workerdMiB: { before: number; awake: number; idle: number; idleCollected: number; secondIdleCollected: number };
  /** What the second fleet's idle tunnels (and their evicted objects) added, per tunnel: the target. */
  workerdKiBPerIdleTunnel: number;
  /** Growth from the fresh process per tunnel: with every object awake, and after the idle period. */
  workerdKiBPerTunnelFromFresh: { awake: number; idle: number };
  /** First requests to backends whose object was evicted while idle. */
  evicted: { sampled: number; evicted: number; p50Ms: number; p99Ms: number };
}

const names = (n: number, prefix = "f") => Array.from({ length: n }, (_, i) => `${prefix}-${i + 1}`);

/** Asks every backend until each has answered the small body once; resolves with the seconds it took from `since`. */
async function untilAllAnswer(url: string, backends: string[], since: number, deadlineMs = 120_000): Promise<number> {
  const waiting = new Set(backends);
  while (waiting.size) {
    if (Date.now() - since > deadlineMs)
      throw new Error(`fleet: ${waiting.size} backends still not answering after ${deadlineMs / 1000} s`);
    const batch = [...waiting];
    for (let i = 0; i < batch.length; i += 50) {
      await Promise.all(
        batch.slice(i, i + 50).map(async (name) => {
          try {
            const res = await fetch(`${url}/r/${name}/small`);
            if (res.status === 200 && (await res.text()) === BENCH_SMALL_BODY) waiting.delete(name);
            else await res.body?.cancel();
          } catch {
            // The relay is not back yet: ask again.
          }
        }),
      );
    }
    if (waiting.size) await new Promise((r) => setTimeout(r, 50));
  }
  return (Date.now() - since) / 1000;
}

const percentile = (values: number[], p: number) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] : NaN;
};

/** An agent process serving `backends` from one --config file in `dir`, one rule each. */
async function startFleetAgent(o: FleetOptions, relay: BenchRelay, backends: string[], dir: string, log: (line: string) => void) {
  const file = join(dir, `${backends[0]}.yaml`);
  const rules = backends.map((name) => `  - backend: ${name}\n    service: ${o.backendUrl}\n`).join("");
  writeFileSync(file, `relay: ${relay.url}\ntoken: \${EDGE_RELAY_TOKEN}\nconnections: ${o.connections}\ningress:\n${rules}`);
  const token = await mintToken(relay.secret, backends);
  const started = Date.now();
  const agent = spawn(process.execPath, [await agentBin(), "agent", "--config", file], {
    env: { ...process.env, EDGE_RELAY_TOKEN: token },
    stdio: ["ignore", "pipe", "pipe"],
  });
  /** When each "tunnel up" line arrived. */
  const ups: number[] = [];
  let rest = "";
  agent.stdout!.on("data", (d: Buffer) => {
    const lines = (rest + d.toString()).split("\n");
    rest = lines.pop()!;
    for (const line of lines) if (/ up: /.test(line)) ups.push(Date.now());
  });
  agent.stderr!.on("data", (d: Buffer) => log(`fleet agent: ${d.toString().trim()}`));
  return {
    started,
    ups,
    async stop() {
      if (agent.exitCode !== null) return;
      const exited = new Promise((r) => agent.once("exit", r));
      agent.kill("SIGTERM");
      await exited;
    },
  };
}

/**
 * workerd's RSS in MiB after a full garbage collection of its isolate: what the idle objects
 * left behind, without the garbage no allocation has made V8 collect yet.
 */
async function collectedRss(relay: BenchRelay, inspector: WorkerdInspector): Promise<number> {
  await inspector.collectGarbage(async () => (await fetch(`${relay.url}/_relay/health`)).text());
  return rssBytes(relay.pid) / 1048576;
}

/** Runs the fleet row with its own relay (on a port it can restart on) and its own agent. */
export async function fleetRow(o: FleetOptions): Promise<FleetResult> {
  const all = names(o.backends);
  const port = await freePort();
  let relay: BenchRelay = await startBenchRelay({}, { port, inspect: true });
  const inspector = await inspectWorkerd(relay.inspectorPort!);
  const dir = mkdtempSync(join(tmpdir(), "edge-relay-fleet-"));
  const before = rssBytes(relay.pid) / 1048576;
  const agent = await startFleetAgent(o, relay, all, dir, o.log);
  const { started, ups } = agent;
  let second: Awaited<ReturnType<typeof startFleetAgent>> | undefined;
  try {
    const allAnswerAfterStartS = await untilAllAnswer(relay.url, all, started);
    const awake = rssBytes(relay.pid) / 1048576;
    o.log(
      `  fleet: all ${o.backends} backends answer ${allAnswerAfterStartS.toFixed(1)} s after the agent started; idle for ${o.idleSeconds} s...`,
    );

    // Object ids before the idle period, for a sample of backends.
    const sample = all.filter((_, i) => i % Math.max(1, Math.floor(all.length / 50)) === 0).slice(0, 50);
    const instance = async (name: string) => (await fetch(`${relay.url}/_relay/bench/${name}/instance`)).text();
    const ids = new Map(await Promise.all(sample.map(async (name) => [name, await instance(name)] as const)));
    await new Promise((r) => setTimeout(r, o.idleSeconds * 1000));
    const idle = rssBytes(relay.pid) / 1048576;
    const idleCollected = await collectedRss(relay, inspector);
    // What idle tunnels hold, apart from what the allocator kept of the objects while they were
    // awake (workerd's tcmalloc keeps freed memory for reuse): a second fleet as large, on other
    // backends, left idle as long; its objects reuse what the first fleet's freed. The first fleet's
    // objects stay evicted meanwhile: waking some of them would add to the second fleet's peak.
    const others = names(o.backends, "g");
    o.log(`  fleet: a second fleet of ${o.backends} backends, idle for ${o.idleSeconds} s...`);
    second = await startFleetAgent(o, relay, others, dir, o.log);
    await untilAllAnswer(relay.url, others, second.started);
    await new Promise((r) => setTimeout(r, o.idleSeconds * 1000));
    const secondIdleCollected = await collectedRss(relay, inspector);
    inspector.close();

    // The first fleet's objects were evicted while idle: the first request to some of them.
    const firstMs: number[] = [];
    let evicted = 0;
    for (const name of sample) {
      const t0 = performance.now();
      const res = await fetch(`${relay.url}/r/${name}/small`);
      await res.text();
      const ms = performance.now() - t0;
      if ((await instance(name)) !== ids.get(name)) {
        evicted++;
        firstMs.push(ms);
      }
    }

    await second.stop();

    o.log("  fleet: restarting the relay process...");
    const mark = ups.length;
    const stoppedAt = Date.now();
    await relay.stop();
    relay = await startBenchRelay({}, { port, secret: relay.secret });
    const listening = Date.now();
    const allAnswerAfterRestartS = await untilAllAnswer(relay.url, all, listening);
    const tunnels = o.backends * o.connections;
    // Every tunnel reconnects; wait for the stragglers before measuring their spread.
    const until = Date.now() + 30_000;
    while (ups.length - mark < tunnels && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
    const times = ups.slice(mark);
    let peak = 0;
    for (let i = 0, j = 0; i < times.length; i++) {
      while (times[i] - times[j] >= 100) j++;
      peak = Math.max(peak, i - j + 1);
    }
    return {
      backends: o.backends,
      tunnels,
      allAnswerAfterStartS,
      allAnswerAfterRestartS,
      allAnswerAfterStopS: allAnswerAfterRestartS + (listening - stoppedAt) / 1000,
      reconnects: { count: times.length, spreadS: times.length ? (times[times.length - 1] - times[0]) / 1000 : 0, peakPer100ms: peak },
      workerdMiB: { before, awake, idle, idleCollected, secondIdleCollected },
      workerdKiBPerIdleTunnel: ((secondIdleCollected - idleCollected) * 1024) / tunnels,
      workerdKiBPerTunnelFromFresh: { awake: ((awake - before) * 1024) / tunnels, idle: ((idle - before) * 1024) / tunnels },
      evicted: { sampled: sample.length, evicted, p50Ms: percentile(firstMs, 50), p99Ms: percentile(firstMs, 99) },
    };
  } finally {
    inspector.close();
    await second?.stop();
    await agent.stop();
    await relay.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
