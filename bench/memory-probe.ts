// Where workerd's memory per Durable Object and per tunnel goes (docs/performance.md "Memory per
// tunnel"): RSS and the isolate's heap, collected or not, while bare objects and fleets of
// tunnels are made, left idle and closed. `npx tsx bench/memory-probe.ts [options]`.
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { mintToken } from "../src/auth.ts";
import { agentBin } from "./agent-bin.ts";
import { inspectWorkerd } from "./inspector.ts";
import { rssBytes } from "./procs.ts";
import { startBenchRelay } from "./runtime.ts";

const HELP = `npx tsx bench/memory-probe.ts [options]

  --backends <n>      objects and backends per step (default 200)
  --idle <s>          seconds each step is left idle (default 20; eviction takes ~10 s)
  --storage <kind>    the objects' storage: memory (the bench's) or disk (default memory)
  --bare              first make as many bare objects (the do-ceiling route: no tunnel, no storage)
  --fleets <list>     comma-separated prefixes, one fleet of backends each, run one after the
                      other with its agent stopped before the next (default "f,f,g": a second
                      fleet on the same backends, then one on new backends)
  --connections <n>   tunnels per backend (default 1)
`;

const { values: args } = parseArgs({
  options: {
    backends: { type: "string", default: "200" },
    idle: { type: "string", default: "20" },
    storage: { type: "string", default: "memory" },
    bare: { type: "boolean", default: false },
    fleets: { type: "string", default: "f,f,g" },
    connections: { type: "string", default: "1" },
    help: { type: "boolean", default: false },
  },
});
if (args.help) {
  process.stdout.write(HELP);
  process.exit(0);
}
if (args.storage !== "memory" && args.storage !== "disk") throw new Error(`--storage is memory or disk, not "${args.storage}"`);
const n = Number(args.backends);
const idleMs = Number(args.idle) * 1000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const relay = await startBenchRelay({}, { inspect: true, storage: args.storage });
const inspector = await inspectWorkerd(relay.inspectorPort!);
const backend = spawn(process.execPath, ["--import", "tsx", "bench/backend.ts"], { stdio: ["ignore", "pipe", "inherit"] });
const dir = mkdtempSync(join(tmpdir(), "edge-relay-probe-"));

/** Prints workerd's RSS and its isolate's heap, after a full collection when `collect`. */
async function reading(label: string, collect = false) {
  if (collect) await inspector.collectGarbage(async () => (await fetch(`${relay.url}/_relay/health`)).text());
  const heap = await inspector.heapUsage();
  const mib = (bytes: number) => (bytes / 1048576).toFixed(1);
  console.log(`${label.padEnd(40)} RSS ${mib(rssBytes(relay.pid))} MiB; JS heap used ${mib(heap.usedSize)} of ${mib(heap.totalSize)} MiB`);
}

try {
  const port = await new Promise<number>((resolve) => backend.stdout!.once("data", (d: Buffer) => resolve(JSON.parse(d.toString()).port)));
  console.log(`${n} backends, ${args.connections} tunnel(s) each, ${args.storage} storage, ${args.idle} s idle per step`);
  await reading("fresh");
  if (args.bare) {
    for (let i = 0; i < n; i += 50)
      await Promise.all(
        Array.from({ length: Math.min(50, n - i) }, (_, j) => fetch(`${relay.url}/_relay/bench/o-${i + j}/small`).then((r) => r.text())),
      );
    await reading(`${n} bare objects awake`);
    await sleep(idleMs);
    await reading("bare objects idle");
    await reading("bare objects idle, collected", true);
  }
  for (const [round, prefix] of args.fleets.split(",").entries()) {
    const step = `fleet ${round + 1} (${prefix}-*)`;
    const names = Array.from({ length: n }, (_, i) => `${prefix}-${i}`);
    const file = join(dir, `${round}.yaml`);
    const rules = names.map((name) => `  - backend: ${name}\n    service: http://127.0.0.1:${port}\n`).join("");
    writeFileSync(file, `relay: ${relay.url}\ntoken: \${EDGE_RELAY_TOKEN}\nconnections: ${args.connections}\ningress:\n${rules}`);
    const token = await mintToken(relay.secret, names);
    const agent = spawn(process.execPath, [await agentBin(), "agent", "--config", file], {
      env: { ...process.env, EDGE_RELAY_TOKEN: token },
      stdio: ["ignore", "ignore", "inherit"],
    });
    const waiting = new Set(names);
    const deadline = Date.now() + 120_000;
    while (waiting.size) {
      if (Date.now() > deadline) throw new Error(`${waiting.size} backends still not answering after 120 s`);
      for (const name of [...waiting]) {
        try {
          const res = await fetch(`${relay.url}/r/${name}/small`);
          if (res.status === 200) waiting.delete(name);
          await res.text();
        } catch {
          // Not connected yet: ask again.
        }
      }
      await sleep(100);
    }
    await reading(`${step}: all answered`);
    await reading(`${step}: awake, collected`, true);
    await sleep(idleMs);
    await reading(`${step}: idle`);
    await reading(`${step}: idle, collected`, true);
    const exited = new Promise((r) => agent.once("exit", r));
    agent.kill("SIGTERM");
    await exited;
    await sleep(3000);
    await reading(`${step}: agent stopped, collected`, true);
  }
} finally {
  backend.kill("SIGTERM");
  inspector.close();
  await relay.stop();
  rmSync(dir, { recursive: true, force: true });
}
