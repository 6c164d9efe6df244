// `npx tsx bench/stream-pairs.ts [--rounds N] [--only ws|tcp] name=<checkout> ...`: the ws and tcp
// rows' streams (bench/ws.ts, bench/tcp.ts) through the relay, agents and `edge-relay connect` of
// several checkouts in turns, with each process's CPU time per MiB echoed.
import type { ChildProcess } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { loadavg } from "node:os";
import { join, resolve } from "node:path";
import { median, parseCheckoutArgs, startEdgeRelay, startScript } from "./checkouts.ts";
import { cpuSeconds } from "./procs.ts";
import { profileWorkerd, type InspectorProfile } from "./profile.ts";
import type { BenchRelay } from "./runtime.ts";
import { tcpStream } from "./tcp.ts";
import type { Transfer } from "./transfer.ts";
import { wsStream } from "./ws.ts";

const USAGE = `npx tsx bench/stream-pairs.ts [--rounds N] [--only ws|tcp] [--ws-mib N] [--tcp-mib N] [--profile DIR] name=<checkout> ...

Runs the ws row's echo server and the tcp row's echo server once, and per checkout its own relay
(bare workerd, built from that checkout), an agent for each (that checkout's agent, bundled by bench/agent-bin.ts,
a ws:// and a tcp:// target) and its own \`edge-relay connect\`. After a warm-up, every round streams
through each checkout in turn (the order reversed every other round): --ws-mib of 1 MiB messages
echoed (default 100), then --tcp-mib of TCP echoed (default 100), byte-exact. Prints per checkout
the MiB/s of every stream and the median CPU ms per MiB echoed of the client (this process),
workerd, the agent, connect and the echo server (scheduler counters). A name starting with "direct" streams to the echo servers
themselves; one starting with "ceiling" streams the ws row's messages to a WebSocket that the
checkout's relay echoes itself (no tunnel, no agent: workerd's own cost per message in and out)
and skips tcp. --profile DIR writes CPU profiles of every process (node --cpu-prof; workerd's
JavaScript over its inspector) of the measured rounds to DIR.`;

const WS_BACKEND = "pair-ws";
const TCP_BACKEND = "pair-tcp";

/** Stops a process with SIGTERM (a --cpu-prof profile is written on exit) and waits for it. */
function stop(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return Promise.resolve();
  return new Promise((res) => {
    const timer = setTimeout(() => proc.kill("SIGKILL"), 10_000);
    proc.once("exit", () => (clearTimeout(timer), res()));
    proc.kill("SIGTERM");
  });
}

interface Variant {
  name: string;
  wsUrl: string;
  tcpPort: number;
  /** Processes whose CPU counts, by role. */
  pids: Record<string, number>;
  inspectorPort?: number;
}

type Way = "ws" | "tcp";

async function main(): Promise<void> {
  const o = parseCheckoutArgs(
    process.argv.slice(2),
    USAGE,
    { rounds: 5, only: "", wsMiB: 100, tcpMiB: 100, profile: "" },
    { "--rounds": "rounds", "--only": "only", "--ws-mib": "wsMiB", "--tcp-mib": "tcpMiB", "--profile": "profile" },
  );
  if (o.profile) o.profile = resolve(o.profile);
  const checkouts = o.variants;
  const stops: Array<() => unknown> = [];
  const ways = (["ws", "tcp"] as const).filter((w) => !o.only || o.only === w);
  const first = checkouts[0].root;
  const wsBackend = await startScript(first, "ws-backend.ts");
  stops.push(() => stop(wsBackend.proc));
  const tcpBackend = await startScript(first, "tcp-backend.ts");
  stops.push(() => stop(tcpBackend.proc));
  if (o.profile) mkdirSync(o.profile, { recursive: true });
  const variants: Variant[] = [];
  try {
    for (const { name, root } of checkouts) {
      if (name.startsWith("direct")) {
        variants.push({
          name,
          wsUrl: `ws://127.0.0.1:${wsBackend.port}/echo`,
          tcpPort: tcpBackend.port,
          pids: { "ws-echo": wsBackend.proc.pid!, "tcp-echo": tcpBackend.proc.pid! },
        });
        continue;
      }
      const { startBenchRelay } = (await import(`${root}/bench/runtime.ts`)) as {
        startBenchRelay: (vars: Record<string, string>, opts: object) => Promise<BenchRelay>;
      };
      const relay = await startBenchRelay({}, { inspect: !!o.profile });
      stops.push(() => relay.stop());
      if (name.startsWith("ceiling")) {
        // workerd alone: the bench route's object echoes each message (bench/do-responder.ts).
        variants.push({
          name,
          wsUrl: `${relay.url.replace(/^http/, "ws")}/_relay/bench/${WS_BACKEND}/ws-echo`,
          tcpPort: 0,
          pids: { workerd: relay.pid },
        });
        continue;
      }
      const nodeArgs = (what: string) =>
        o.profile ? ["--cpu-prof", "--cpu-prof-dir", o.profile, "--cpu-prof-name", `${name}-${what}.cpuprofile`] : [];
      const agent = async (backend: string, to: string) => {
        const args = ["agent", "--relay", relay.url, "--backend", backend, "--token", await relay.token(backend), "--to", to];
        const started = await startEdgeRelay(
          root,
          nodeArgs(backend === WS_BACKEND ? "ws-agent" : "tcp-agent"),
          args,
          /tunnels=(\d+)\/\1\b/,
        );
        stops.push(() => stop(started.proc));
        return started;
      };
      const wsAgent = await agent(WS_BACKEND, `http://127.0.0.1:${wsBackend.port}`);
      const tcpAgent = await agent(TCP_BACKEND, `tcp://127.0.0.1:${tcpBackend.port}`);
      const connect = await startEdgeRelay(
        root,
        nodeArgs("connect"),
        ["connect", relay.url, "--backend", TCP_BACKEND, "--listen", "127.0.0.1:0"],
        /listening on 127\.0\.0\.1:(\d+)/,
      );
      stops.push(() => stop(connect.proc));
      variants.push({
        name,
        wsUrl: `${relay.url.replace(/^http/, "ws")}/r/${WS_BACKEND}/echo`,
        tcpPort: Number(connect.match[1]),
        pids: {
          workerd: relay.pid,
          "ws-agent": wsAgent.proc.pid!,
          "ws-echo": wsBackend.proc.pid!,
          "tcp-agent": tcpAgent.proc.pid!,
          connect: connect.proc.pid!,
          "tcp-echo": tcpBackend.proc.pid!,
        },
        inspectorPort: relay.inspectorPort,
      });
    }
    type Figures = { mibps: number[]; cpu: Record<string, number[]> };
    const fresh = () => ({ ws: { mibps: [], cpu: {} }, tcp: { mibps: [], cpu: {} } }) as Record<Way, Figures>;
    const figures = new Map(variants.map((v) => [v.name, fresh()]));
    const roles = (way: Way, v: Variant) =>
      Object.keys(v.pids).filter((k) => (way === "ws" ? !k.startsWith("tcp") && k !== "connect" : !k.startsWith("ws")));
    const run = async (v: Variant, way: Way, mib: number) => {
      const before = Object.fromEntries(roles(way, v).map((k) => [k, cpuSeconds(v.pids[k])]));
      const client = process.cpuUsage();
      const t: Transfer = way === "ws" ? await wsStream(v.wsUrl, mib) : await tcpStream(v.tcpPort, mib);
      if (!t.exact) throw new Error(`${v.name}: the ${way} stream was not byte-exact`);
      const f = figures.get(v.name)![way];
      f.mibps.push(t.mibps);
      const echoed = t.bytes / 1048576;
      const used = process.cpuUsage(client);
      // This process is the client (bench/ws.ts, bench/tcp.ts), as in the bench's ws and tcp rows.
      (f.cpu.client ??= []).push((used.user + used.system) / 1000 / echoed);
      for (const k of roles(way, v)) (f.cpu[k] ??= []).push(((cpuSeconds(v.pids[k]) - before[k]) * 1000) / echoed);
    };
    const runs = (v: Variant) => ways.filter((w) => w === "ws" || v.tcpPort);
    for (const v of variants) for (const way of runs(v)) await run(v, way, 16);
    for (const v of variants) figures.set(v.name, fresh());
    const profiles: Array<[string, InspectorProfile]> = [];
    for (const v of variants) if (v.inspectorPort) profiles.push([v.name, await profileWorkerd(v.inspectorPort)]);
    for (let round = 0; round < o.rounds; round++) {
      const order = round % 2 ? [...variants].reverse() : variants;
      for (const way of ways) for (const v of order) if (runs(v).includes(way)) await run(v, way, way === "ws" ? o.wsMiB : o.tcpMiB);
    }
    for (const [name, p] of profiles) writeFileSync(join(o.profile, `${name}-workerd.cpuprofile`), JSON.stringify(await p.stop()));
    console.log(
      `load average at the end: ${loadavg()
        .map((l) => l.toFixed(1))
        .join(" ")}`,
    );
    for (const way of ways) {
      for (const v of variants) {
        if (!runs(v).includes(way)) continue;
        const f = figures.get(v.name)![way];
        const each = f.mibps.map((x) => x.toFixed(0)).join(", ");
        const cpu = Object.entries(f.cpu)
          .map(([k, xs]) => `${k} ${median(xs).toFixed(2)}`)
          .join(", ");
        console.log(`${way.padEnd(4)} ${v.name.padEnd(10)} MiB/s ${each} (median ${median(f.mibps).toFixed(0)}); CPU ms/MiB ${cpu}`);
      }
    }
  } finally {
    for (const s of stops.reverse()) await s();
  }
}

await main();
process.exit(0);
