// `npm run bench`: a fast backend on loopback, the relay on bare workerd and a real agent, measured
// side by side in one run; prints one table with ratios and writes bench/results.json.
// `npm run bench -- --help` lists the options.
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import { fileURLToPath } from "node:url";
import { BENCH_SMALL_BODY } from "./do-responder.ts";
import { agentArgs } from "../test/helpers/agent.ts";
import { agentBin } from "./agent-bin.ts";
import { WRK_INSTALL, wrk, wrkVersion, type LoadResult } from "./load.ts";
import WebSocket from "ws";
import { PeakRss, cpuSeconds, otherWork, rssBytes } from "./procs.ts";
import { profileWorkerd } from "./profile.ts";
import { startBenchRelay, type BenchRelay } from "./runtime.ts";
import { concurrentGets, download, upload, type Transfer } from "./transfer.ts";
import { pingPong, type EchoPeer } from "./echo.ts";
import { tcpPeer, tcpStream } from "./tcp.ts";
import { printReferences } from "./runs.ts";
import { startFloorPeer } from "./ws-floor-peer.ts";
import { closeWs, openWs, wsPeer, wsStream } from "./ws.ts";

const ROOT = fileURLToPath(new URL("../", import.meta.url));
const MiB = 1024 * 1024;
const BACKEND = "bench";
/** The streams row's backend: the same server behind an agent with a single tunnel. */
const SINGLE = "bench-single";
/** The parallel row's second backend: the same server behind an agent of its own. */
const PARALLEL = "bench-parallel";
/** The relay-hbone row's backend: the same server, reached by an agent through the HBONE proxy. */
const HBONE = "bench-hbone";
/** The ws row's backend: the tests' `ws` echo server behind an agent of its own. */
const WS = "bench-ws";
/** The tcp row's backend: a TCP echo server behind an agent with a tcp:// target, reached through `edge-relay connect`. */
const TCP = "bench-tcp";
/** The relay-bridge row's backend: Debian's redis-server behind an agent with a bridge+tcp:// target and the resp plugin. */
const BRIDGE = "bench-bridge";
/** What the relay-bridge row's requests POST: one Redis GET of the small body, answered as a JSON string. */
const BRIDGE_COMMAND = JSON.stringify(["GET", "small"]);
const REDIS_INSTALL = "apt-get install -y redis-server";
/** The observe rows' backends: the same server behind an agent with --metrics, and one with --inspect. */
const OBSERVED: Record<string, { backend: string; flags: string[] }> = {
  "relay-metrics": { backend: "bench-metrics", flags: ["--metrics", "127.0.0.1:0"] },
  "relay-inspect": { backend: "bench-inspect", flags: ["--inspect", "127.0.0.1:0"] },
};
/** The mesh identity the HBONE proxy's certificate carries (test/helpers/certs.ts). */
const HBONE_IDENTITY = "spiffe://cluster.local/ns/default/sa/server";

/**
 * Other work using more than this share of the machine's CPU in the 2 s before a run starts
 * (bench/procs.ts otherWork) means it shares the machine: every target is then marked as judged
 * on a noisy machine. The load average is printed too, but it still counts the previous run of
 * --runs for a minute after it ended.
 */
const NOISY_BUSY_SHARE = 0.15;
/** Rows measured side by side; the others are single checks. */
const TABLE_ROWS = [
  "direct",
  "do-ceiling",
  "ws-floor",
  "relay",
  "relay-hbone",
  "relay-bridge",
  "relay-metrics",
  "relay-inspect",
  "ws",
  "tcp",
] as const;
const CHECK_ROWS = ["memory", "streams", "idle", "fleet", "parallel", "auth"] as const;
/** Rows measured as well whenever a row is, for its ratios. */
const REFERENCES: Record<string, string[]> = {
  "ws-floor": ["do-ceiling", "relay"],
  "relay-hbone": ["direct", "do-ceiling", "relay"],
  "relay-bridge": ["do-ceiling", "relay"],
  "relay-metrics": ["relay"],
  "relay-inspect": ["relay"],
};
/** Names for several rows at once. */
const ROW_GROUPS: Record<string, string[]> = { observe: ["relay", "relay-metrics", "relay-inspect"] };

const HELP = `npm run bench -- [options]

  --rows <list>        comma-separated, from: ${[...TABLE_ROWS, ...CHECK_ROWS].join(", ")}
                       (default: direct,do-ceiling,relay; "all" for every row;
                       relay-hbone brings direct, do-ceiling and relay along for its ratios,
                       relay-bridge and ws-floor do-ceiling and relay; ws-floor: small GETs the
                       object answers after a WebSocket round trip to an echoing peer, with no
                       relay code (the platform's least cost for a tunnel), also judged apart by
                       the c1, c32 and workerd-CPU thresholds; "observe" is relay,
                       relay-metrics and relay-inspect: the agent with --metrics, --inspect;
                       auth: c32 small GETs through jwt and basicAuth access policies in turns
                       with the plain relay, --duration s each)
  --duration <s>       seconds of small-GET load per row and concurrency, run as 1 s slices that
                       alternate between the rows (default 8; ws and tcp rows: seconds per run)
  --warmup <s>         seconds of small-GET load per row and concurrency before measuring (default 3)
  --pin                pin workerd to CPU 0 and every other process (wrk, agents, backends) to
                       the other CPUs for the whole run (direct then shares its CPUs with wrk)
  --reps <n>           repetitions of every table row, interleaved; medians are reported (default 3).
                       Each transfer also reports every process's CPU ms per MiB (the client is
                       this process) and the MiB/s their sum allows with every CPU busy; the
                       transfer targets' 60% is applied to that figure too, apart (not a target)
  --download-mib <n>   size of the download (default 200)
  --upload-mib <n>     size of the upload (default 100)
  --memory-mib <n>     size of the slow download of the memory row (default 1024)
  --memory-rate <n>    MiB/s the memory row's client reads at (default 10)
  --streams <n>        concurrent streams of the streams row (default 1000)
  --idle-sockets <n>   WebSockets of the idle row (default 5000)
  --idle-seconds <n>   how long the idle row leaves them idle (default 30; eviction takes ~10 s)
  --fleet-backends <n> backends of the fleet row, all served by one agent process (default 500)
  --fleet-idle <s>     how long the fleet row leaves its tunnels idle, and then as many more on
                       other backends, before measuring memory and the first request to an
                       evicted object (default 20; eviction takes ~10 s)
  --ws-mib <n>         MiB of 1 MiB binary messages the ws row echoes (default 100)
  --tcp-mib <n>        MiB the tcp row streams through its echo server and back (default 100)
  --parallel-turns <n> turns of the parallel row (default 8): c32 small GETs on one backend's
                       object alone, then on two backends' objects at once, 2 s each
  --profile            CPU profiles of the agent (node --cpu-prof) and of the relay's JavaScript
                       in workerd (inspector), written to bench/profiles/
  --connections <n>    the agent's tunnels (default: the agent's own default)
  --agent-node-args <s>  extra space-separated flags for the agent's node (e.g. "--max-semi-space-size=16")
  --runs <n>           run the whole bench n times back to back, each in a process of its own,
                       and print per target how many runs met it ("met in 4 of 5"; issue 19
                       asks for 4 of 5); each run's JSON goes to <out>.run<i>.json, the tally
                       to --out
  --out <file>         where to write the JSON (default bench/results.json)
`;

interface Options {
  rows: string[];
  duration: number;
  warmup: number;
  pin: boolean;
  reps: number;
  downloadMiB: number;
  uploadMiB: number;
  memoryMiB: number;
  memoryRate: number;
  streams: number;
  idleSockets: number;
  idleSeconds: number;
  fleetBackends: number;
  fleetIdle: number;
  wsMiB: number;
  tcpMiB: number;
  parallelTurns: number;
  profile: boolean;
  agentNodeArgs: string[];
  connections?: number;
  /** --runs: how many whole runs back to back (bench/runs.ts), 1 for this one alone. */
  runs: number;
  out: string;
}

function parseOptions(argv: string[]): Options {
  const o: Options = {
    rows: ["direct", "do-ceiling", "relay"],
    duration: 8,
    warmup: 3,
    pin: false,
    reps: 3,
    downloadMiB: 200,
    uploadMiB: 100,
    memoryMiB: 1024,
    memoryRate: 10,
    streams: 1000,
    idleSockets: 5000,
    idleSeconds: 30,
    fleetBackends: 500,
    fleetIdle: 20,
    wsMiB: 100,
    tcpMiB: 100,
    parallelTurns: 8,
    profile: false,
    agentNodeArgs: [],
    runs: 1,
    out: `${ROOT}bench/results.json`,
  };
  const number = (flag: string, v: string | undefined) => {
    const n = Number(v);
    if (!v || !Number.isFinite(n) || n <= 0) throw new Error(`${flag} needs a positive number, not "${v ?? ""}".`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const next = () => argv[++i];
    switch (flag) {
      case "--help":
      case "-h":
        process.stdout.write(HELP);
        return process.exit(0);
      case "--rows": {
        const v = next() ?? "";
        o.rows =
          v === "all"
            ? [...TABLE_ROWS, ...CHECK_ROWS]
            : v
                .split(",")
                .map((s) => s.trim())
                .filter(Boolean)
                .flatMap((r) => ROW_GROUPS[r] ?? [r]);
        const unknown = o.rows.filter(
          (r) => !(TABLE_ROWS as readonly string[]).includes(r) && !(CHECK_ROWS as readonly string[]).includes(r),
        );
        if (unknown.length)
          throw new Error(`--rows: unknown row ${unknown.join(", ")}; rows are ${[...TABLE_ROWS, ...CHECK_ROWS].join(", ")}.`);
        break;
      }
      case "--duration":
        o.duration = number(flag, next());
        break;
      case "--warmup":
        o.warmup = number(flag, next());
        break;
      case "--pin":
        o.pin = true;
        break;
      case "--reps":
        o.reps = Math.round(number(flag, next()));
        break;
      case "--download-mib":
        o.downloadMiB = number(flag, next());
        break;
      case "--upload-mib":
        o.uploadMiB = number(flag, next());
        break;
      case "--memory-mib":
        o.memoryMiB = number(flag, next());
        break;
      case "--memory-rate":
        o.memoryRate = number(flag, next());
        break;
      case "--streams":
        o.streams = Math.round(number(flag, next()));
        break;
      case "--idle-sockets":
        o.idleSockets = Math.round(number(flag, next()));
        break;
      case "--idle-seconds":
        o.idleSeconds = number(flag, next());
        break;
      case "--fleet-backends":
        o.fleetBackends = Math.round(number(flag, next()));
        break;
      case "--fleet-idle":
        o.fleetIdle = number(flag, next());
        break;
      case "--ws-mib":
        o.wsMiB = number(flag, next());
        break;
      case "--tcp-mib":
        o.tcpMiB = number(flag, next());
        break;
      case "--parallel-turns":
        o.parallelTurns = Math.round(number(flag, next()));
        break;
      case "--profile":
        o.profile = true;
        break;
      case "--connections":
        o.connections = Math.round(number(flag, next()));
        break;
      case "--agent-node-args":
        o.agentNodeArgs = (next() ?? "").split(" ").filter(Boolean);
        break;
      case "--runs":
        o.runs = Math.round(number(flag, next()));
        break;
      case "--out":
        o.out = next() ?? o.out;
        break;
      default:
        throw new Error(`unknown option ${flag}; see npm run bench -- --help.`);
    }
  }
  return o;
}

/** One repetition of one table row: its transfers (and, for echo rows, its round trips). */
interface RowRun {
  c1?: LoadResult;
  c32?: LoadResult;
  /** None for relay-bridge: a Redis value is no stream. */
  download?: Transfer;
  upload?: Transfer;
  /** CPU microseconds per request during the concurrency-32 run, by process. */
  cpuUsPerRequest?: Record<string, number>;
  /** The same during the concurrency-1 run. */
  cpuUsPerRequestC1?: Record<string, number>;
  /** CPU milliseconds per MiB moved during the download and the upload, by process (transferCpu). */
  transferCpu?: TransferCpu;
  peakRssMiB: Record<string, number>;
}

/** CPU ms per MiB moved each way, by process: the row's own and `client`, this process. */
interface TransferCpu {
  down: Record<string, number>;
  up: Record<string, number>;
}

/** A row's small GETs: every slice of one concurrency added up. */
interface SmallGets {
  c1: LoadResult;
  c32: LoadResult;
  cpuUsPerRequest: Record<string, number>;
  cpuUsPerRequestC1: Record<string, number>;
  /** Peak RSS of the row's processes over the whole small-GET phase. */
  peakRssMiB: Record<string, number>;
  /** Each 1 s slice's result, for the spread of the figures. */
  slices: { c1: LoadResult[]; c32: LoadResult[] };
}

/** Medians over repetitions, flattened for the table and the JSON. */
interface RowFigures {
  rpsC1: number;
  p50C1: number;
  p99C1: number;
  rpsC32: number;
  p50C32: number;
  p99C32: number;
  downloadMiBps: number;
  uploadMiBps: number;
  agentPeakMiB?: number;
  workerdPeakMiB?: number;
  workerdCpuUs?: number;
  agentCpuUs?: number;
  backendCpuUs?: number;
  /** relay-hbone: the HBONE proxy's CPU µs per request. */
  proxyCpuUs?: number;
  /** tcp: `edge-relay connect`'s CPU µs per message. */
  connectCpuUs?: number;
  /** Min, median and max of each figure: over the 1 s slices (small GETs) or the repetitions (the rest). */
  spread: Partial<Record<SpreadFigure, Spread>>;
  /** Medians over the repetitions of each process's CPU ms per MiB moved (rows with transfers). */
  transferCpu?: TransferCpu;
}

/** The figures whose spread is reported. */
const SPREAD_FIGURES = ["rpsC1", "p50C1", "p99C1", "rpsC32", "p50C32", "p99C32", "downloadMiBps", "uploadMiBps"] as const;
type SpreadFigure = (typeof SPREAD_FIGURES)[number];

interface Spread {
  min: number;
  median: number;
  max: number;
  /** How many values. */
  n: number;
}

/** Min, median and max of `xs`, or undefined when there are none. */
function spreadOf(xs: Array<number | undefined>): Spread | undefined {
  const v = xs.filter((x): x is number => x !== undefined && Number.isFinite(x));
  return v.length ? { min: Math.min(...v), median: median(v), max: Math.max(...v), n: v.length } : undefined;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

interface Env {
  relay: BenchRelay;
  backendUrl: string;
  backendPid: number;
  agent: AgentProcess;
  /** relay-hbone: the HBONE proxy's process and the agent that goes through it. */
  hbone?: { pid: number; agent: AgentProcess };
  /** relay-bridge: redis-server's process and the agent that bridges to it. */
  bridge?: { pid: number; agent: AgentProcess };
  /** relay-metrics, relay-inspect: each row's agent. */
  observed?: Record<string, AgentProcess>;
  /** ws: the `ws` echo server's process and its agent. */
  ws?: { url: string; pid: number; agent: AgentProcess };
  /** tcp: the TCP echo server's process and port, its agent, and `edge-relay connect`'s process and port. */
  tcp?: { port: number; pid: number; agent: AgentProcess; connect: { port: number; pid: number } };
}

/** The echo rows are each measured twice: straight to their echo server and through the relay. */
const WS_DIRECT = "ws-direct";
const TCP_DIRECT = "tcp-direct";
const DIRECT_OF: Record<string, string> = { ws: WS_DIRECT, tcp: TCP_DIRECT };
const isWs = (row: string) => row === "ws" || row === WS_DIRECT;
const isTcp = (row: string) => row === "tcp" || row === TCP_DIRECT;
const isEcho = (row: string) => isWs(row) || isTcp(row);

/** How an echo row opens connections for its round trips and streams its bytes (`mib` of them by default). */
function echoClient(
  row: string,
  env: Env,
  o: Options,
): { open: () => Promise<EchoPeer>; stream: (mib: number) => Promise<Transfer>; mib: number; what: string } {
  if (isTcp(row)) {
    const port = row === "tcp" ? env.tcp!.connect.port : env.tcp!.port;
    return { open: () => tcpPeer(port), stream: (mib) => tcpStream(port, mib), mib: o.tcpMiB, what: `${o.tcpMiB} MiB stream` };
  }
  const url = baseUrl(row, env);
  return { open: () => wsPeer(url), stream: (mib) => wsStream(url, mib), mib: o.wsMiB, what: `${o.wsMiB} MiB of 1 MiB messages` };
}

interface AgentProcess {
  proc: ChildProcess;
  stop(): Promise<void>;
}

/** The base URL each row sends its requests to. */
function baseUrl(row: string, env: Env): string {
  if (row === "direct") return env.backendUrl;
  if (row === "do-ceiling") return `${env.relay.url}/_relay/bench/${BACKEND}`;
  if (row === "ws-floor") return `${env.relay.url}/_relay/bench/${BACKEND}/floor`;
  if (row === "relay-hbone") return `${env.relay.url}/r/${HBONE}`;
  if (row === "relay-bridge") return `${env.relay.url}/r/${BRIDGE}`;
  if (OBSERVED[row]) return `${env.relay.url}/r/${OBSERVED[row].backend}`;
  if (row === WS_DIRECT) return `${env.ws!.url.replace(/^http/, "ws")}/echo`;
  if (row === "ws") return `${env.relay.url.replace(/^http/, "ws")}/r/${WS}/echo`;
  return `${env.relay.url}/r/${BACKEND}`;
}

/** Processes a row runs through: their CPU and memory are reported. */
function rowPids(row: string, env: Env): Record<string, number> {
  const pids: Record<string, number> = {};
  if (isWs(row)) {
    if (row === "ws") Object.assign(pids, { workerd: env.relay.pid, agent: env.ws!.agent.proc.pid! });
    pids.backend = env.ws!.pid;
    return pids;
  }
  if (isTcp(row)) {
    if (row === "tcp") Object.assign(pids, { workerd: env.relay.pid, agent: env.tcp!.agent.proc.pid!, connect: env.tcp!.connect.pid });
    pids.backend = env.tcp!.pid;
    return pids;
  }
  if (row !== "direct") pids.workerd = env.relay.pid;
  if (row === "relay") pids.agent = env.agent.proc.pid!;
  if (OBSERVED[row]) pids.agent = env.observed![row].proc.pid!;
  if (row === "relay-hbone") Object.assign(pids, { agent: env.hbone!.agent.proc.pid!, proxy: env.hbone!.pid });
  if (row === "relay-bridge") return { ...pids, agent: env.bridge!.agent.proc.pid!, backend: env.bridge!.pid };
  if (row !== "do-ceiling" && row !== "ws-floor") pids.backend = env.backendPid;
  return pids;
}

function check(ok: boolean, message: string): void {
  if (!ok) throw new Error(message);
}

/** Runs `work` and returns its result with the CPU seconds each process spent meanwhile. */
async function cpuDuring<T>(pids: Record<string, number>, work: () => Promise<T>): Promise<[T, Record<string, number>]> {
  const before = Object.fromEntries(Object.entries(pids).map(([k, pid]) => [k, cpuSeconds(pid)]));
  const result = await work();
  return [result, Object.fromEntries(Object.entries(pids).map(([k, pid]) => [k, cpuSeconds(pid) - before[k]]))];
}

/** Runs a small-GET load and measures the CPU each process spent per request meanwhile. */
async function withCpu(
  pids: Record<string, number>,
  load: () => Promise<LoadResult>,
): Promise<{ result: LoadResult; cpuUsPerRequest: Record<string, number> }> {
  const [result, seconds] = await cpuDuring(pids, load);
  const cpuUsPerRequest = Object.fromEntries(Object.entries(seconds).map(([k, s]) => [k, (s * 1e6) / Math.max(1, result.requests)]));
  return { result, cpuUsPerRequest };
}

/**
 * An echo row (ws, tcp): 64-byte messages round-tripped one at a time on one connection and on 32
 * at once (messages/s, round-trip ms: the small-GET columns), then a stream echoed (MiB/s, in both
 * transfer columns: every byte goes up and comes back).
 */
async function measureEchoRow(row: string, env: Env, o: Options): Promise<RowRun> {
  const client = echoClient(row, env, o);
  const pids = rowPids(row, env);
  const rss = new PeakRss(pids);
  await client.stream(16); // warm-up
  const stream = await client.stream(client.mib);
  check(stream.exact, `${row}: the ${client.what} did not come back byte-exact`);
  await pingPong(client.open, 32, 1);
  const c1 = await withCpu(pids, () => pingPong(client.open, 1, o.duration));
  const c32 = await withCpu(pids, () => pingPong(client.open, 32, o.duration));
  for (const [name, r] of [
    ["c1", c1.result],
    ["c32", c32.result],
  ] as const) {
    check(
      r.errors === 0 && r.badStatus === 0,
      `${row}: the ${name} echo run had ${r.errors} closed sockets and ${r.badStatus} wrong echoes`,
    );
  }
  const peaks = rss.stop();
  return {
    c1: c1.result,
    c32: c32.result,
    download: stream,
    upload: stream,
    cpuUsPerRequest: c32.cpuUsPerRequest,
    cpuUsPerRequestC1: c1.cpuUsPerRequest,
    peakRssMiB: Object.fromEntries(Object.entries(peaks).map(([k, v]) => [k, v.peakMiB])),
  };
}

/** Rows with no transfers: their small requests only (measureSmallGets). */
const SMALL_ONLY = new Set(["relay-bridge", "ws-floor"]);

/** Whether measureRow moves a download and an upload through `row`. */
const hasTransfers = (row: string) => !isEcho(row) && !SMALL_ONLY.has(row);

/**
 * One full-size transfer each way through `row` (a row with transfers), not measured. In a
 * fresh relay `do-ceiling`'s first 200 MiB download ran at half the speed of its later ones
 * (373-389 against 708-726 MiB/s), and `relay`, measured after it, never did, so a run with
 * --reps 1 judged the download target on a cold `do-ceiling` (docs/performance.md "The
 * platform's floor against the targets").
 */
async function warmTransfers(row: string, env: Env, o: Options): Promise<void> {
  const base = baseUrl(row, env);
  await download(`${base}/bytes?n=${o.downloadMiB * MiB}`, o.downloadMiB * MiB);
  await upload(`${base}/echo`, o.uploadMiB * MiB);
}

async function measureRow(row: string, env: Env, o: Options): Promise<RowRun> {
  if (isEcho(row)) return measureEchoRow(row, env, o);
  if (SMALL_ONLY.has(row)) return { peakRssMiB: {} }; // small requests only: measureSmallGets
  const base = baseUrl(row, env);
  const pids = rowPids(row, env);
  const rss = new PeakRss(pids);
  // Transfers first: right after a burst of small GETs the backend's heap is full of garbage
  // and runs them at half speed. Warm-ups first: a fresh path runs cold code in every process.
  await download(`${base}/bytes?n=${16 * MiB}`, 16 * MiB);
  await upload(`${base}/echo`, 16 * MiB);
  // The client is this process (it hashes every byte it gets or sends): it shares the CPUs too.
  const cpuPids = { ...pids, client: process.pid };
  const [down, downCpu] = await cpuPerMiB(cpuPids, o.downloadMiB, () =>
    download(`${base}/bytes?n=${o.downloadMiB * MiB}`, o.downloadMiB * MiB),
  );
  check(down.exact, `${row}: the ${o.downloadMiB} MiB download was not byte-exact (${down.bytes} bytes)`);
  const [up, upCpu] = await cpuPerMiB(cpuPids, o.uploadMiB, () => upload(`${base}/echo`, o.uploadMiB * MiB));
  check(up.exact, `${row}: the ${o.uploadMiB} MiB upload did not arrive byte-exact`);
  const peaks = rss.stop();
  return {
    download: down,
    upload: up,
    transferCpu: { down: downCpu, up: upCpu },
    peakRssMiB: Object.fromEntries(Object.entries(peaks).map(([k, v]) => [k, v.peakMiB])),
  };
}

/** Runs a transfer of `mib` MiB and the CPU milliseconds each process spent per MiB meanwhile. */
async function cpuPerMiB<T>(pids: Record<string, number>, mib: number, transfer: () => Promise<T>): Promise<[T, Record<string, number>]> {
  const [result, seconds] = await cpuDuring(pids, transfer);
  return [result, Object.fromEntries(Object.entries(seconds).map(([k, s]) => [k, (s * 1000) / mib]))];
}

/** A row's small request: GET /small, or for relay-bridge a POST of one Redis GET; and the body it answers. */
function smallRequest(row: string, env: Env): { url: string; post?: string; answer: string } {
  if (row === "relay-bridge") return { url: `${baseUrl(row, env)}/`, post: BRIDGE_COMMAND, answer: JSON.stringify(BENCH_SMALL_BODY) };
  return { url: `${baseUrl(row, env)}/small`, answer: BENCH_SMALL_BODY };
}

/** A row's small requests with wrk. */
function smallLoad(row: string, env: Env, connections: number, seconds: number): Promise<LoadResult> {
  const { url, post } = smallRequest(row, env);
  return wrk(url, connections, seconds, post);
}

/**
 * Small GETs of every HTTP row, at concurrency 1 and 32: a warm-up per row, then 1 s slices
 * that take turns between the rows, each row's slices added up. workerd's speed drifts by up
 * to 2x within a run (its garbage collector, the JIT), for every row alike; taking turns puts
 * every row through the same drift, so their ratios hold from run to run where back-to-back
 * runs of a few seconds did not (59-73% for the same code).
 */
async function measureSmallGets(rows: string[], env: Env, o: Options): Promise<Map<string, SmallGets>> {
  const all: Record<string, number> = {};
  for (const row of rows) for (const [k, pid] of Object.entries(rowPids(row, env))) all[`${row}/${k}`] = pid;
  const rss = new PeakRss(all);
  const slices = Math.max(1, Math.round(o.duration));
  const perConcurrency = new Map<number, Map<string, { results: LoadResult[]; cpu: Record<string, number> }>>(
    [1, 32].map((c) => [c, new Map(rows.map((r) => [r, { results: [] as LoadResult[], cpu: {} as Record<string, number> }]))]),
  );
  // The rows through workerd take turns among themselves, the others apart afterwards: workerd's
  // drift is what the turns are for, and a direct turn at 40,000 req/s would load the backend
  // the relay's next turn shares.
  for (const group of [rows.filter(throughWorkerd), rows.filter((r) => !throughWorkerd(r))].filter((g) => g.length)) {
    for (const connections of [1, 32]) {
      const acc = perConcurrency.get(connections)!;
      for (const row of group) {
        await smallLoad(row, env, connections, o.warmup); // JIT, connection pools
      }
      for (let i = 0; i < slices; i++) {
        // Each slice starts with the next row, so no row always follows the same one.
        for (let j = 0; j < group.length; j++) {
          const row = group[(i + j) % group.length];
          const { result, cpuUsPerRequest } = await withCpu(rowPids(row, env), () => smallLoad(row, env, connections, o.duration / slices));
          check(
            result.errors === 0 && result.badStatus === 0,
            `${row}: a c${connections} small-GET run had ${result.errors} socket errors and ${result.badStatus} bad statuses`,
          );
          const a = acc.get(row)!;
          a.results.push(result);
          for (const [k, us] of Object.entries(cpuUsPerRequest)) a.cpu[k] = (a.cpu[k] ?? 0) + us * result.requests;
        }
      }
    }
  }
  const total = (results: LoadResult[], cpu: Record<string, number>) => {
    const requests = results.reduce((n, r) => n + r.requests, 0);
    const seconds = results.reduce((n, r) => n + r.seconds, 0);
    const result: LoadResult = {
      requests,
      seconds,
      rps: requests / seconds,
      p50Ms: median(results.map((r) => r.p50Ms)),
      p99Ms: median(results.map((r) => r.p99Ms)),
      errors: 0,
      badStatus: 0,
    };
    return { result, cpuUsPerRequest: Object.fromEntries(Object.entries(cpu).map(([k, us]) => [k, us / Math.max(1, requests)])) };
  };
  const peaks = rss.stop();
  const byRow = new Map<string, SmallGets>();
  for (const row of rows) {
    const peakRssMiB = Object.fromEntries(Object.keys(rowPids(row, env)).map((k) => [k, peaks[`${row}/${k}`]?.peakMiB ?? 0]));
    const c1 = total(perConcurrency.get(1)!.get(row)!.results, perConcurrency.get(1)!.get(row)!.cpu);
    const c32 = total(perConcurrency.get(32)!.get(row)!.results, perConcurrency.get(32)!.get(row)!.cpu);
    byRow.set(row, {
      c1: c1.result,
      c32: c32.result,
      cpuUsPerRequest: c32.cpuUsPerRequest,
      cpuUsPerRequestC1: c1.cpuUsPerRequest,
      peakRssMiB,
      slices: { c1: perConcurrency.get(1)!.get(row)!.results, c32: perConcurrency.get(32)!.get(row)!.results },
    });
  }
  return byRow;
}

/** A row's figures: medians of its repetitions, or its small GETs added up when it had them. */
function figures(runs: RowRun[], small?: SmallGets): RowFigures {
  if (small) {
    runs = runs.map((r) => {
      const peakRssMiB = { ...r.peakRssMiB };
      for (const [k, v] of Object.entries(small.peakRssMiB)) peakRssMiB[k] = Math.max(peakRssMiB[k] ?? 0, v);
      return { ...r, ...small, peakRssMiB };
    });
  }
  const m = (f: (r: RowRun) => number | undefined) => {
    const xs = runs.map(f).filter((x): x is number => x !== undefined);
    return xs.length ? median(xs) : undefined;
  };
  // Small GETs: every 1 s slice is a sample; echo rows and transfers: every repetition.
  const samples = (c: "c1" | "c32", f: (r: LoadResult) => number) =>
    small ? small.slices[c].map(f) : runs.map((r) => (r[c] ? f(r[c]) : undefined));
  const spread: Partial<Record<SpreadFigure, Spread>> = {};
  const add = (k: SpreadFigure, xs: Array<number | undefined>) => {
    const sp = spreadOf(xs);
    if (sp) spread[k] = sp;
  };
  add(
    "rpsC1",
    samples("c1", (r) => r.rps),
  );
  add(
    "p50C1",
    samples("c1", (r) => r.p50Ms),
  );
  add(
    "p99C1",
    samples("c1", (r) => r.p99Ms),
  );
  add(
    "rpsC32",
    samples("c32", (r) => r.rps),
  );
  add(
    "p50C32",
    samples("c32", (r) => r.p50Ms),
  );
  add(
    "p99C32",
    samples("c32", (r) => r.p99Ms),
  );
  add(
    "downloadMiBps",
    runs.map((r) => r.download?.mibps),
  );
  add(
    "uploadMiBps",
    runs.map((r) => r.upload?.mibps),
  );
  const withCpu = runs.filter((r) => r.transferCpu);
  const cpuMedians = (way: keyof TransferCpu) =>
    Object.fromEntries(Object.keys(withCpu[0].transferCpu![way]).map((k) => [k, median(withCpu.map((r) => r.transferCpu![way][k]))]));
  return {
    spread,
    ...(withCpu.length && { transferCpu: { down: cpuMedians("down"), up: cpuMedians("up") } }),
    rpsC1: m((r) => r.c1?.rps)!,
    p50C1: m((r) => r.c1?.p50Ms)!,
    p99C1: m((r) => r.c1?.p99Ms)!,
    rpsC32: m((r) => r.c32?.rps)!,
    p50C32: m((r) => r.c32?.p50Ms)!,
    p99C32: m((r) => r.c32?.p99Ms)!,
    downloadMiBps: m((r) => r.download?.mibps)!,
    uploadMiBps: m((r) => r.upload?.mibps)!,
    agentPeakMiB: runs.some((r) => r.peakRssMiB.agent) ? Math.max(...runs.map((r) => r.peakRssMiB.agent ?? 0)) : undefined,
    workerdPeakMiB: runs.some((r) => r.peakRssMiB.workerd) ? Math.max(...runs.map((r) => r.peakRssMiB.workerd ?? 0)) : undefined,
    workerdCpuUs: m((r) => r.cpuUsPerRequest?.workerd),
    agentCpuUs: m((r) => r.cpuUsPerRequest?.agent),
    backendCpuUs: m((r) => r.cpuUsPerRequest?.backend),
    proxyCpuUs: m((r) => r.cpuUsPerRequest?.proxy),
    connectCpuUs: m((r) => r.cpuUsPerRequest?.connect),
  };
}

// ---- output ----

const fmt = (n: number | undefined, digits = 0) => (n === undefined ? "-" : n.toFixed(digits));
const ms = (n: number | undefined) => (n === undefined ? "-" : n < 10 ? n.toFixed(2) : n.toFixed(1));
const ratio = (a: number, b: number) => (b > 0 ? a / b : NaN);
const pct = (r: number) => (Number.isFinite(r) ? `${(r * 100).toFixed(0)}%` : "-");

const COLUMNS = [
  "row",
  "c1 req/s",
  "c1 p50 ms",
  "c1 p99 ms",
  "c32 req/s",
  "c32 p50 ms",
  "c32 p99 ms",
  "↓ MiB/s",
  "↑ MiB/s",
  "agent peak MiB",
  "workerd peak MiB",
  "CPU µs/req (workerd / agent / backend)",
];

function tableRow(name: string, f: RowFigures): string[] {
  return [
    name,
    fmt(f.rpsC1),
    ms(f.p50C1),
    ms(f.p99C1),
    fmt(f.rpsC32),
    ms(f.p50C32),
    ms(f.p99C32),
    fmt(f.downloadMiBps),
    fmt(f.uploadMiBps),
    fmt(f.agentPeakMiB),
    fmt(f.workerdPeakMiB),
    `${fmt(f.workerdCpuUs)} / ${fmt(f.agentCpuUs)} / ${fmt(f.backendCpuUs)}${f.proxyCpuUs !== undefined ? ` (+ proxy ${fmt(f.proxyCpuUs)})` : ""}${f.connectCpuUs !== undefined ? ` (+ connect ${fmt(f.connectCpuUs)})` : ""}`,
  ];
}

/** A row of the spread table: "min / median / max" of each figure. */
function spreadRow(name: string, f: RowFigures): string[] {
  const cell = (k: SpreadFigure, show: (n: number | undefined) => string) => {
    const sp = f.spread[k];
    return sp ? `${show(sp.min)} / ${show(sp.median)} / ${show(sp.max)}` : "-";
  };
  return [
    name,
    cell("rpsC1", fmt),
    cell("p50C1", ms),
    cell("p99C1", ms),
    cell("rpsC32", fmt),
    cell("p50C32", ms),
    cell("p99C32", ms),
    cell("downloadMiBps", fmt),
    cell("uploadMiBps", fmt),
    "",
    "",
    "",
  ];
}

/** A ratio row: rates as a share, latency as a share with the difference in ms. */
function ratioRow(name: string, a: RowFigures, b: RowFigures): string[] {
  const lat = (x: number, y: number) => `${pct(ratio(x, y))} (${x - y >= 0 ? "+" : ""}${(x - y).toFixed(2)})`;
  return [
    name,
    pct(ratio(a.rpsC1, b.rpsC1)),
    lat(a.p50C1, b.p50C1),
    lat(a.p99C1, b.p99C1),
    pct(ratio(a.rpsC32, b.rpsC32)),
    lat(a.p50C32, b.p50C32),
    lat(a.p99C32, b.p99C32),
    pct(ratio(a.downloadMiBps, b.downloadMiBps)),
    pct(ratio(a.uploadMiBps, b.uploadMiBps)),
    "",
    "",
    "",
  ];
}

/** A Markdown table (readable as is in a terminal, pasteable into docs/performance.md). */
function markdown(rows: string[][], header: readonly string[] = COLUMNS): string {
  const widths = header.map((c, i) => Math.max(c.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: readonly string[]) => `| ${cells.map((c, i) => (c ?? "").padEnd(widths[i])).join(" | ")} |`;
  return [line(header), `|${widths.map((w) => "-".repeat(w + 2)).join("|")}|`, ...rows.map(line)].join("\n");
}

interface Target {
  target: string;
  figure: string;
  met: boolean | "pending" | "not run";
  /**
   * Not a target: the same threshold applied to a reference figure, printed apart under this
   * heading: the ws-floor row (FLOOR_REFERENCE) or the relay's transfers at their CPU cost with
   * every CPU busy (CPU_REFERENCE).
   */
  reference?: string;
}

/** The ws-floor row under the targets' thresholds: a tunnel through the object with no relay code. */
const FLOOR_REFERENCE = "ws-floor, no relay code (what the platform alone reaches; not targets)";
/**
 * The relay's transfers as fast as their CPU cost allows: the machine's CPUs divided by the CPU ms
 * per MiB that all the row's processes and the client spent (docs/performance.md "The transfers'
 * CPU per MiB"). A transfer target this misses cannot be met by any scheduling in that run.
 */
const CPU_REFERENCE =
  "the relay's transfers at their CPU ms per MiB with every CPU busy (what the processes' cost allows on this machine; not targets)";

/**
 * The targets of issue 19 judged from one run's table rows (medians): only those whose rows
 * ran. Each compares the relay with its reference row measured in the same run.
 */
function tableTargets(fig: Map<string, RowFigures>, o: Options): Target[] {
  const out: Target[] = [];
  const ceiling = fig.get("do-ceiling");
  const relayFig = fig.get("relay");
  // A figure a failed or cut-short row left at 0 or NaN judges nothing.
  const measured = (...xs: Array<number | undefined>) => xs.every((x) => x !== undefined && Number.isFinite(x) && x > 0);
  const share = (target: string, a: number | undefined, b: number | undefined, atLeast: number, unit: string, reference?: string) => {
    if (a === undefined || b === undefined || !measured(a, b)) return;
    const r = ratio(a, b);
    // A ratio that rounds to the threshold shows a decimal, so "35%" never reads as a miss.
    const shown = (r * 100).toFixed(0) === (atLeast * 100).toFixed(0) ? `${(r * 100).toFixed(1)}%` : pct(r);
    out.push({ target, figure: `${shown} (${fmt(a)} against ${fmt(b)} ${unit})`, met: r >= atLeast, ...(reference && { reference }) });
  };
  /** The c1 target for `row`: at most 0.3 ms over do-ceiling's p50. */
  const c1 = (row: string, f: RowFigures, c: RowFigures, reference?: string) => {
    if (!measured(f.p50C1, c.p50C1)) return;
    const added = f.p50C1 - c.p50C1;
    out.push({
      target: `c1 p50: ${row} <= do-ceiling + 0.3 ms`,
      figure: `${added >= 0 ? "+" : ""}${added.toFixed(2)} ms (${ms(f.p50C1)} against ${ms(c.p50C1)})`,
      met: added <= 0.3,
      ...(reference && { reference }),
    });
  };
  /** The workerd CPU target for `row`: at most 1.1x do-ceiling's per request at c32. */
  const workerd = (row: string, f: RowFigures | undefined, c: RowFigures | undefined, reference?: string) => {
    if (f?.workerdCpuUs === undefined || c?.workerdCpuUs === undefined || !measured(f.workerdCpuUs, c.workerdCpuUs)) return;
    const r = ratio(f.workerdCpuUs, c.workerdCpuUs);
    out.push({
      target: `workerd CPU per ${reference ? `${row} request` : "relayed request"} at c32 <= 1.1x do-ceiling's`,
      figure: `${r.toFixed(2)}x (${fmt(f.workerdCpuUs)} against ${fmt(c.workerdCpuUs)} µs)`,
      met: r <= 1.1,
      ...(reference && { reference }),
    });
  };
  if (relayFig && ceiling) {
    share(`${o.downloadMiB} MiB download: relay >= 60% of do-ceiling`, relayFig.downloadMiBps, ceiling.downloadMiBps, 0.6, "MiB/s");
    share(`${o.uploadMiB} MiB upload: relay >= 60% of do-ceiling`, relayFig.uploadMiBps, ceiling.uploadMiBps, 0.6, "MiB/s");
    c1("relay", relayFig, ceiling);
    share("small GET c32: relay >= 90% of do-ceiling", relayFig.rpsC32, ceiling.rpsC32, 0.9, "req/s");
  }
  const ws = fig.get("ws");
  if (ws) share("ws stream of 1 MiB messages: ws >= 80% of ws-direct", ws.downloadMiBps, fig.get(WS_DIRECT)?.downloadMiBps, 0.8, "MiB/s");
  const tcp = fig.get("tcp");
  if (tcp) share("tcp stream: tcp >= 35% of tcp-direct", tcp.downloadMiBps, fig.get(TCP_DIRECT)?.downloadMiBps, 0.35, "MiB/s");
  const hbone = fig.get("relay-hbone");
  if (hbone && relayFig) share("small GET c32: relay-hbone >= 70% of relay", hbone.rpsC32, relayFig.rpsC32, 0.7, "req/s");
  for (const row of Object.keys(OBSERVED)) {
    const f = fig.get(row);
    if (f && relayFig) share(`small GET c32: ${row} >= 90% of relay`, f.rpsC32, relayFig.rpsC32, 0.9, "req/s");
  }
  if (measured(relayFig?.agentCpuUs))
    out.push({
      target: "agent CPU per relayed request at c32 <= 60 µs",
      figure: `${fmt(relayFig!.agentCpuUs)} µs`,
      met: relayFig!.agentCpuUs! <= 60,
    });
  workerd("relay", relayFig, ceiling);
  // The platform's floor under the same thresholds: a target the floor misses, no relay through
  // one object meets in that run (docs/performance.md, "The platform's floor against the targets").
  const floor = fig.get("ws-floor");
  if (floor && ceiling) {
    c1("ws-floor", floor, ceiling, FLOOR_REFERENCE);
    share("small GET c32: ws-floor >= 90% of do-ceiling", floor.rpsC32, ceiling.rpsC32, 0.9, "req/s", FLOOR_REFERENCE);
    workerd("ws-floor", floor, ceiling, FLOOR_REFERENCE);
  }
  if (relayFig?.transferCpu && ceiling) {
    const cores = os.availableParallelism();
    for (const [way, size, measuredMiBps] of [
      ["down", `${o.downloadMiB} MiB download`, ceiling.downloadMiBps],
      ["up", `${o.uploadMiB} MiB upload`, ceiling.uploadMiBps],
    ] as const) {
      const bound = cpuBoundMiBps(relayFig.transferCpu[way], cores);
      share(
        `${size}: relay at its CPU per MiB, ${cores} CPUs busy, >= 60% of do-ceiling`,
        bound,
        measuredMiBps,
        0.6,
        "MiB/s",
        CPU_REFERENCE,
      );
    }
  }
  return out;
}

/** CPU ms per MiB of all the processes together. */
const cpuSum = (msPerMiB: Record<string, number>) => Object.values(msPerMiB).reduce((a, b) => a + b, 0);

/** MiB/s that `cpus` busy CPUs carry when a MiB costs the processes `msPerMiB` of CPU time in all. */
function cpuBoundMiBps(msPerMiB: Record<string, number>, cpus: number): number {
  const sum = cpuSum(msPerMiB);
  return sum > 0 ? (cpus * 1000) / sum : NaN;
}

/** The processes of the transfers' CPU table, in this order. */
const TRANSFER_PROCESSES = ["client", "workerd", "agent", "backend", "proxy"];

/**
 * The transfers' CPU table: per row and way, each process's CPU ms per MiB moved, their sum, the
 * MiB/s that sum allows with every CPU busy, and the MiB/s measured.
 */
function transferCpuTable(fig: Map<string, RowFigures>, rows: string[]): string | undefined {
  const cpus = os.availableParallelism();
  const processes = TRANSFER_PROCESSES.filter((p) => rows.some((r) => fig.get(r)?.transferCpu?.down[p] !== undefined));
  const header = ["row", "way", ...processes, "sum", `MiB/s at ${cpus} CPUs busy`, "MiB/s measured"];
  const out: string[][] = [];
  for (const row of rows) {
    const f = fig.get(row);
    if (!f?.transferCpu) continue;
    for (const [way, arrow, measured] of [
      ["down", "↓", f.downloadMiBps],
      ["up", "↑", f.uploadMiBps],
    ] as const) {
      const cpu = f.transferCpu[way];
      const cells = processes.map((p) => (cpu[p] === undefined ? "-" : cpu[p].toFixed(2)));
      out.push([row, arrow, ...cells, cpuSum(cpu).toFixed(2), fmt(cpuBoundMiBps(cpu, cpus)), fmt(measured)]);
    }
  }
  return out.length ? markdown(out, header) : undefined;
}

function machine(runtime: string) {
  const model = /model name\s*:\s*(.*)/.exec(readFileSync("/proc/cpuinfo", "utf8"))?.[1]?.trim() ?? os.cpus()[0]?.model ?? "unknown";
  return {
    nproc: os.availableParallelism(),
    cpu: model,
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    node: process.version,
    runtime,
    loadTool: wrkVersion() ?? "none",
  };
}

// ---- processes ----

/**
 * `--pin`: workerd (every thread) on CPU 0 and every other process on the rest, for the whole
 * run. Off by default: it steadied the ratios in short trials, but changing the pinning between
 * rows left the relay's agent idling workerd a third of the time, and pinned, direct shares
 * its CPUs with wrk. Returns what was done, for the output.
 */
function pin(workerdPid: number, others: Array<number | undefined>): string {
  const cpus = os.availableParallelism();
  if (cpus < 2) return "off (one CPU)";
  const rest = `1-${cpus - 1}`;
  try {
    execFileSync("taskset", ["-a", "-p", "-c", "0", String(workerdPid)], { stdio: "ignore" });
    for (const pid of [process.pid, ...others])
      if (pid !== undefined) execFileSync("taskset", ["-a", "-p", "-c", rest, String(pid)], { stdio: "ignore" });
  } catch (err) {
    return `failed (${(err as Error).message.split("\n")[0]})`;
  }
  return `workerd on CPU 0; wrk, agents, backends and this script on CPU ${rest}`;
}

/** Whether a row's requests run through workerd. */
const throughWorkerd = (row: string) => row !== "direct" && row !== WS_DIRECT && row !== TCP_DIRECT;

/** Runs `bench/<script>` in a node of its own; resolves with the JSON line it prints first. */
async function startScript<T extends { port: number }>(script: string): Promise<{ info: T; url: string; proc: ChildProcess }> {
  const proc = spawn(process.execPath, ["--import", "tsx", `${ROOT}bench/${script}`], { cwd: ROOT, stdio: ["ignore", "pipe", "inherit"] });
  const info = await new Promise<T>((resolve, reject) => {
    let buf = "";
    proc.once("exit", (code) => reject(new Error(`bench/${script} exited with ${code}`)));
    proc.stdout!.on("data", (d: Buffer) => {
      buf += d.toString();
      const line = buf.split("\n").find((l) => l.startsWith("{") && l.endsWith("}"));
      if (line) resolve(JSON.parse(line) as T);
    });
  });
  return { info, url: `http://127.0.0.1:${info.port}`, proc };
}

const startBackendProcess = () => startScript<{ port: number }>("backend.ts");

/** The path of a command on PATH, or undefined. */
function commandPath(command: string): string | undefined {
  try {
    return execFileSync("sh", ["-c", `command -v ${command}`], { encoding: "utf8" }).trim() || undefined;
  } catch {
    return undefined;
  }
}

/** A free TCP port on loopback (bound and released). */
async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Starts Debian's redis-server on loopback, without persistence; resolves once it answers PING. */
async function startRedis(): Promise<{ port: number; proc: ChildProcess }> {
  const port = await freePort();
  const proc = spawn(commandPath("redis-server")!, ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"], {
    stdio: "ignore",
  });
  const ping = () =>
    new Promise<boolean>((resolve) => {
      const socket = net.connect({ host: "127.0.0.1", port }, () => socket.write("PING\r\n"));
      socket.once("data", (d: Buffer) => (socket.destroy(), resolve(d.toString().startsWith("+PONG"))));
      socket.once("error", () => resolve(false));
    });
  const until = Date.now() + 10_000;
  while (!(await ping())) {
    if (proc.exitCode !== null || Date.now() > until) throw new Error(`redis-server did not answer PING on port ${port} within 10 s`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return { port, proc };
}

/** Starts `edge-relay <args>` with `nodeArgs` for node itself; resolves once its output matches `ready`. */
async function startEdgeRelay(nodeArgs: string[], args: string[], ready: RegExp): Promise<AgentProcess & { ready: RegExpExecArray }> {
  const proc = spawn(process.execPath, [...nodeArgs, await agentBin(), ...args], { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
  const exited = new Promise<void>((resolve) => proc.once("exit", () => resolve()));
  let output = "";
  const match = await new Promise<RegExpExecArray>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`edge-relay ${args[0]} was not ready within 20 s:\n${output}`)), 20_000);
    const onData = (d: Buffer) => {
      output += d.toString();
      const m = ready.exec(output);
      if (m) {
        clearTimeout(timer);
        resolve(m);
      }
    };
    proc.stdout!.on("data", onData);
    proc.stderr!.on("data", onData);
    void exited.then(() => reject(new Error(`edge-relay ${args[0]} exited:\n${output}`)));
  });
  return {
    proc,
    ready: match,
    stop: async () => {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill("SIGTERM");
      const timer = setTimeout(() => proc.kill("SIGKILL"), 5000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** Starts `edge-relay agent`; resolves once all its tunnels are up. */
const startAgentProcess = (nodeArgs: string[], args: string[]): Promise<AgentProcess> =>
  startEdgeRelay(nodeArgs, args, /tunnels=(\d+)\/\1\b/);

/** Starts `edge-relay connect` for `backend` on a free loopback port; resolves once it listens. */
async function startConnectProcess(nodeArgs: string[], relayUrl: string, backend: string): Promise<AgentProcess & { port: number }> {
  const p = await startEdgeRelay(
    nodeArgs,
    ["connect", relayUrl, "--backend", backend, "--listen", "127.0.0.1:0"],
    /listening on 127\.0\.0\.1:(\d+)/,
  );
  return { ...p, port: Number(p.ready[1]) };
}

/** Sends one message on each socket, `batch` at a time; resolves with how many came back echoed. */
async function echoAll(sockets: WebSocket[], batch: number, errors: string[]): Promise<number> {
  let ok = 0;
  for (let i = 0; i < sockets.length; i += batch) {
    await Promise.all(
      sockets.slice(i, i + batch).map(
        (ws, j) =>
          new Promise<void>((resolve) => {
            const text = `echo ${i + j}`;
            const timer = setTimeout(() => (errors.push(`socket ${i + j}: no echo within 30 s`), resolve()), 30_000);
            ws.once("message", (data) => {
              clearTimeout(timer);
              if (data.toString() === text) ok++;
              else errors.push(`socket ${i + j}: echoed ${String(data).slice(0, 40)}`);
              resolve();
            });
            ws.send(text);
          }),
      ),
    );
  }
  return ok;
}

/**
 * The idle row: `n` WebSockets through the relay to the backend's echo, left idle for `seconds`
 * (the Durable Object is evicted under its hibernatable sockets), then one echo on each.
 */
async function idleSockets(env: Env, n: number, seconds: number) {
  const errors: string[] = [];
  const instance = async () => (await fetch(`${env.relay.url}/_relay/bench/${BACKEND}/instance`)).text();
  const url = `${env.relay.url.replace(/^http/, "ws")}/r/${BACKEND}/ws`;
  const sockets: WebSocket[] = [];
  for (let i = 0; i < n; i += 100) {
    const opened = await Promise.allSettled(Array.from({ length: Math.min(100, n - i) }, () => openWs(url)));
    for (const o of opened) {
      if (o.status === "fulfilled") sockets.push(o.value);
      else errors.push(`open: ${(o.reason as Error).message}`);
    }
  }
  let closedWhileIdle = 0;
  const onClose = () => closedWhileIdle++;
  for (const ws of sockets) ws.on("close", onClose);
  // One round trip each first, so every stream has carried data before the idle period.
  await echoAll(sockets, 500, errors);
  const before = await instance();
  const workerdOpen = rssBytes(env.relay.pid) / 1048576;
  await new Promise((r) => setTimeout(r, seconds * 1000));
  const workerdIdle = rssBytes(env.relay.pid) / 1048576;
  const rebuilt = (await instance()) !== before;
  for (const ws of sockets) ws.off("close", onClose);
  const echoed = await echoAll(
    sockets.filter((ws) => ws.readyState === WebSocket.OPEN),
    500,
    errors,
  );
  await Promise.all(sockets.map((ws) => closeWs(ws, 10_000)));
  return {
    opened: sockets.length,
    echoed,
    closedWhileIdle,
    rebuilt,
    workerdMiB: { open: workerdOpen, idle: workerdIdle },
    errors: [...new Set(errors)].slice(0, 5),
  };
}

/** `argv` without each of `flags` and the value that follows it. */
function withoutFlags(argv: string[], flags: string[]): string[] {
  return argv.filter((a, i) => !flags.includes(a) && !flags.includes(argv[i - 1]));
}

/** Stops what the run started, last first. */
const cleanup: Array<() => unknown> = [];
async function stopAll(): Promise<void> {
  while (cleanup.length) await cleanup.pop()!();
}

async function main(): Promise<void> {
  const o = parseOptions(process.argv.slice(2));
  if (o.runs > 1) {
    const { repeatRuns } = await import("./runs.ts");
    return repeatRuns(o.runs, withoutFlags(process.argv.slice(2), ["--runs", "--out"]), o.out);
  }
  // Before this run starts anything: its own processes are not the noise it is asked about.
  const loadAtStart = os.loadavg();
  const busyAtStart = await otherWork();
  const asked = o.rows.flatMap((r) => [...(REFERENCES[r] ?? []), r]);
  const tableRows = TABLE_ROWS.filter((r) => asked.includes(r)) as string[];
  const loadTool = wrkVersion();
  if (tableRows.length && !loadTool) {
    console.error(`The benchmark drives small GETs with wrk, which is not installed. Install it with:\n  ${WRK_INSTALL}`);
    process.exit(2);
  }
  if (tableRows.includes("relay-bridge") && !commandPath("redis-server")) {
    console.error(`The relay-bridge row bridges to Debian's redis-server, which is not installed. Install it with:\n  ${REDIS_INSTALL}`);
    process.exit(2);
  }
  const started = Date.now();
  const backend = await startBackendProcess();
  cleanup.push(() => void backend.proc.kill("SIGTERM"));
  const relay = await startBenchRelay({}, { inspect: o.profile });
  cleanup.push(() => relay.stop());
  const profileDir = `${ROOT}bench/profiles`;
  if (o.profile) mkdirSync(profileDir, { recursive: true });
  const nodeArgs = [...o.agentNodeArgs, ...(o.profile ? ["--cpu-prof", `--cpu-prof-dir=${profileDir}`] : [])];
  const agent = await startAgentProcess(
    nodeArgs,
    agentArgs(relay.url, BACKEND, await relay.token(BACKEND), backend.url, o.connections ? ["--connections", String(o.connections)] : []),
  );
  cleanup.push(() => agent.stop());
  const env: Env = { relay, backendUrl: backend.url, backendPid: backend.proc.pid!, agent };
  if (tableRows.includes("relay-hbone")) {
    // The agent's target is hbone://: it reaches the backend through the mesh proxy, over mTLS.
    const proxy = await startScript<{ port: number; files: Record<string, string> }>("hbone-proxy.ts");
    cleanup.push(() => void proxy.proc.kill("SIGTERM"));
    const f = proxy.info.files;
    const hboneAgent = await startAgentProcess(
      nodeArgs,
      agentArgs(relay.url, HBONE, await relay.token(HBONE), `hbone://127.0.0.1:${new URL(backend.url).port}`, [
        ...["--hbone-proxy", `127.0.0.1:${proxy.info.port}`, "--hbone-cert", f.clientCert, "--hbone-key", f.clientKey],
        ...["--hbone-ca", f.ca, "--hbone-identity", HBONE_IDENTITY],
        ...(o.connections ? ["--connections", String(o.connections)] : []),
      ]),
    );
    cleanup.push(() => hboneAgent.stop());
    env.hbone = { pid: proxy.proc.pid!, agent: hboneAgent };
  }
  if (tableRows.includes("ws-floor")) {
    const peer = await startFloorPeer(`${relay.url.replace(/^http/, "ws")}/_relay/bench/${BACKEND}/floor-peer`);
    cleanup.push(() => peer.stop());
  }
  if (tableRows.includes("relay-bridge")) {
    const redis = await startRedis();
    cleanup.push(() => void redis.proc.kill("SIGTERM"));
    const bridgeAgent = await startAgentProcess(
      nodeArgs,
      agentArgs(relay.url, BRIDGE, await relay.token(BRIDGE), `bridge+tcp://127.0.0.1:${redis.port}`, [
        "--bridge-plugin",
        "resp",
        ...(o.connections ? ["--connections", String(o.connections)] : []),
      ]),
    );
    cleanup.push(() => bridgeAgent.stop());
    env.bridge = { pid: redis.proc.pid!, agent: bridgeAgent };
    const set = await fetch(`${baseUrl("relay-bridge", env)}/`, {
      method: "POST",
      body: JSON.stringify(["SET", "small", BENCH_SMALL_BODY]),
    });
    check(set.status === 200, `relay-bridge: SET answered ${set.status} ${await set.text()}`);
  }
  for (const row of tableRows.filter((r) => OBSERVED[r])) {
    const { backend: name, flags } = OBSERVED[row];
    const observedAgent = await startAgentProcess(
      nodeArgs,
      agentArgs(relay.url, name, await relay.token(name), backend.url, [
        ...flags,
        ...(o.connections ? ["--connections", String(o.connections)] : []),
      ]),
    );
    cleanup.push(() => observedAgent.stop());
    env.observed = { ...env.observed, [row]: observedAgent };
  }
  if (tableRows.includes("ws")) {
    const wsBackend = await startScript<{ port: number }>("ws-backend.ts");
    cleanup.push(() => void wsBackend.proc.kill("SIGTERM"));
    const wsAgent = await startAgentProcess(
      nodeArgs,
      agentArgs(relay.url, WS, await relay.token(WS), wsBackend.url, o.connections ? ["--connections", String(o.connections)] : []),
    );
    cleanup.push(() => wsAgent.stop());
    env.ws = { url: wsBackend.url, pid: wsBackend.proc.pid!, agent: wsAgent };
  }
  if (tableRows.includes("tcp")) {
    const tcpBackend = await startScript<{ port: number }>("tcp-backend.ts");
    cleanup.push(() => void tcpBackend.proc.kill("SIGTERM"));
    const tcpAgent = await startAgentProcess(
      nodeArgs,
      agentArgs(
        relay.url,
        TCP,
        await relay.token(TCP),
        `tcp://127.0.0.1:${tcpBackend.info.port}`,
        o.connections ? ["--connections", String(o.connections)] : [],
      ),
    );
    cleanup.push(() => tcpAgent.stop());
    const connect = await startConnectProcess(nodeArgs, relay.url, TCP);
    cleanup.push(() => connect.stop());
    env.tcp = {
      port: tcpBackend.info.port,
      pid: tcpBackend.proc.pid!,
      agent: tcpAgent,
      connect: { port: connect.port, pid: connect.proc.pid! },
    };
  }
  const pinned = o.pin
    ? pin(relay.pid, [
        backend.proc.pid,
        agent.proc.pid,
        env.hbone?.pid,
        env.hbone?.agent.proc.pid,
        env.bridge?.pid,
        env.bridge?.agent.proc.pid,
        ...Object.values(env.observed ?? {}).map((a) => a.proc.pid),
        env.ws?.pid,
        env.ws?.agent.proc.pid,
        env.tcp?.pid,
        env.tcp?.agent.proc.pid,
        env.tcp?.connect.pid,
      ])
    : "off (--pin to pin workerd to a CPU of its own)";
  const info = machine(relay.runtime);
  console.log(`edge-relay bench: ${info.nproc} cores, ${info.cpu}, Node ${info.node}, ${info.loadTool}`);
  console.log(`relay runtime: ${relay.runtime}`);
  console.log(`CPU pinning: ${pinned}`);
  const noisy = busyAtStart > NOISY_BUSY_SHARE;
  console.log(
    `other work at start: ${pct(busyAtStart)} of the machine's CPU over 2 s before the run (load average ${loadAtStart.map((l) => l.toFixed(2)).join(", ")})` +
      (noisy ? `: above ${pct(NOISY_BUSY_SHARE)}, other work shares this machine; targets are marked (noisy) and a miss may be noise` : ""),
  );
  console.log(
    `rows: ${[...tableRows, ...o.rows.filter((r) => (CHECK_ROWS as readonly string[]).includes(r))].join(", ")}; small GETs: ${o.warmup} s warm-up, then ${o.duration} s per row and concurrency in 1 s turns; transfers: ${o.reps} repetition(s)\n`,
  );

  const results: Record<string, unknown> = {};
  const targets: Target[] = [];
  try {
    // Every row answers the same small body, so the comparison is like for like.
    for (const row of tableRows.filter((r) => !isEcho(r))) {
      const { url, post, answer } = smallRequest(row, env);
      const res = await fetch(url, post === undefined ? {} : { method: "POST", body: post });
      const text = await res.text();
      check(res.status === 200 && text === answer, `${row}: its small request answered ${res.status} ${text.slice(0, 200)}`);
    }

    const workerdProfile = relay.inspectorPort ? await profileWorkerd(relay.inspectorPort) : undefined;
    const measured = tableRows.flatMap((r) => (DIRECT_OF[r] ? [DIRECT_OF[r], r] : [r]));
    const runs = new Map<string, RowRun[]>(measured.map((r) => [r, []]));
    const warmed = measured.filter(hasTransfers);
    if (warmed.length) process.stdout.write(`  warming up: one full-size transfer each way through ${warmed.join(", ")}...\n`);
    for (const row of warmed) await warmTransfers(row, env, o);
    for (let rep = 0; rep < o.reps; rep++) {
      for (const row of measured) {
        process.stdout.write(`  measuring ${row}${o.reps > 1 ? ` (${rep + 1}/${o.reps})` : ""}...\n`);
        runs.get(row)!.push(await measureRow(row, env, o));
      }
    }
    const httpRows = measured.filter((r) => !isEcho(r));
    if (httpRows.length) process.stdout.write(`  small GETs: ${httpRows.join(", ")} taking turns, c1 then c32...\n`);
    const small = httpRows.length ? await measureSmallGets(httpRows, env, o) : new Map<string, SmallGets>();
    if (workerdProfile) writeFileSync(`${profileDir}/workerd.${Date.now()}.cpuprofile`, JSON.stringify(await workerdProfile.stop()));
    const fig = new Map([...runs].map(([r, rs]) => [r, figures(rs, small.get(r))]));
    const lines: string[][] = [];
    for (const row of tableRows) {
      if (DIRECT_OF[row]) lines.push(tableRow(DIRECT_OF[row], fig.get(DIRECT_OF[row])!));
      lines.push(tableRow(row, fig.get(row)!));
    }
    const direct = fig.get("direct");
    const ceiling = fig.get("do-ceiling");
    const relayFig = fig.get("relay");
    const hboneFig = fig.get("relay-hbone");
    const bridgeFig = fig.get("relay-bridge");
    const floorFig = fig.get("ws-floor");
    if (relayFig && direct) lines.push(ratioRow("relay / direct", relayFig, direct));
    if (relayFig && ceiling) lines.push(ratioRow("relay / do-ceiling", relayFig, ceiling));
    if (hboneFig && direct) lines.push(ratioRow("relay-hbone / direct", hboneFig, direct));
    if (hboneFig && ceiling) lines.push(ratioRow("relay-hbone / do-ceiling", hboneFig, ceiling));
    if (hboneFig && relayFig) lines.push(ratioRow("relay-hbone / relay", hboneFig, relayFig));
    if (floorFig && ceiling) lines.push(ratioRow("ws-floor / do-ceiling", floorFig, ceiling));
    if (floorFig && relayFig) lines.push(ratioRow("relay / ws-floor", relayFig, floorFig));
    if (bridgeFig && ceiling) lines.push(ratioRow("relay-bridge / do-ceiling", bridgeFig, ceiling));
    if (bridgeFig && relayFig) lines.push(ratioRow("relay-bridge / relay", bridgeFig, relayFig));
    if (ceiling && direct) lines.push(ratioRow("do-ceiling / direct", ceiling, direct));
    for (const row of Object.keys(OBSERVED)) if (fig.get(row) && relayFig) lines.push(ratioRow(`${row} / relay`, fig.get(row)!, relayFig));
    for (const row of ["ws", "tcp"])
      if (fig.get(row)) lines.push(ratioRow(`${row} / ${DIRECT_OF[row]}`, fig.get(row)!, fig.get(DIRECT_OF[row])!));
    if (lines.length) {
      console.log(`\n${markdown(lines)}\n`);
      const spreadLines = measured.filter((r) => Object.keys(fig.get(r)!.spread).length).map((r) => spreadRow(r, fig.get(r)!));
      console.log(
        `Spread, min / median / max: small GETs over their ${Math.max(1, Math.round(o.duration))} slices of each concurrency, ` +
          `transfers and echo rows over the ${o.reps} repetition(s).\n${markdown(spreadLines)}\n`,
      );
      const cpuTable = transferCpuTable(fig, measured);
      if (cpuTable)
        console.log(
          "Transfers, CPU ms per MiB moved by process (medians of the repetitions; client = the bench's own process,\n" +
            "which hashes every byte), their sum, and the MiB/s that sum allows with every CPU busy:\n" +
            `${cpuTable}\n`,
        );
      console.log(
        "Latency ratios show the difference in ms in brackets. CPU µs/req is CPU time per request during the c32 run;\n" +
          "every download and upload was checked byte-exact (sha256). Small-GET p50/p99 are wrk's, corrected for\n" +
          "coordinated omission: a pause also counts every request that would have been sent during it (docs/performance.md)." +
          (fig.get("ws")
            ? "\nws rows: req/s = 64-byte messages echoed per second (one at a time per socket, 1 and 32 sockets), p50/p99 =\n" +
              `round trip; ↓ = ↑ = MiB/s of ${o.wsMiB} x 1 MiB binary messages echoed (each byte both ways), checked byte-exact.`
            : "") +
          (fig.get("tcp")
            ? "\ntcp rows: the same over TCP connections to an echo server, `tcp` through `edge-relay connect`, the relay\n" +
              `and an agent with a tcp:// target; ↓ = ↑ = MiB/s of a ${o.tcpMiB} MiB stream echoed, checked byte-exact; (+ connect) its CPU.`
            : "") +
          (bridgeFig
            ? '\nrelay-bridge: each request POSTs ["GET","small"] to an agent whose bridge+tcp:// target is redis-server with the\n' +
              "resp plugin (a TCP connection to Redis per request); the answer is the small body as a JSON string. No transfers."
            : "") +
          (floorFig
            ? "\nws-floor: the object answers each small GET once a WebSocket peer (in the bench's process) echoed its 8-byte\n" +
              "id, ids batched as the relay batches request heads and the peer's answers of one turn in one message: no relay\n" +
              "code, no agent, no backend. No transfers."
            : "") +
          (hboneFig
            ? "\nrelay-hbone: the agent reaches the backend through the HBONE proxy (mTLS, HTTP/2 CONNECT); its CPU is the (+ proxy)."
            : "") +
          "\n",
      );
    }

    targets.push(...tableTargets(fig, o));
    results.rows = Object.fromEntries([...fig].map(([r, f]) => [r, { median: f, runs: runs.get(r), smallGets: small.get(r) }]));

    if (o.rows.includes("streams")) {
      process.stdout.write(`  streams: ${o.streams} concurrent requests on one tunnel...\n`);
      // An agent of its own with one tunnel, so that every stream shares it.
      const single = await startAgentProcess(
        [],
        agentArgs(relay.url, SINGLE, await relay.token(SINGLE), backend.url, ["--connections", "1"]),
      );
      cleanup.push(() => single.stop());
      await fetch(`${backend.url}/stats`).then((r) => r.text());
      const res = await concurrentGets(`${relay.url}/r/${SINGLE}/hold?ms=2000`, o.streams, BENCH_SMALL_BODY);
      const { maxInFlight } = (await (await fetch(`${backend.url}/stats`)).json()) as { maxInFlight: number };
      const met = res.failed === 0 && maxInFlight >= o.streams;
      const figure = `${o.streams - res.failed}/${o.streams} ok, ${maxInFlight} at once at the backend, ${res.seconds.toFixed(1)} s${res.errors.length ? `; errors: ${res.errors.join("; ")}` : ""}`;
      console.log(`streams: ${figure}`);
      targets.push({ target: `${o.streams} concurrent streams on one tunnel, no error`, figure, met });
      results.streams = { ...res, count: o.streams, maxInFlight };
    }

    if (o.rows.includes("memory")) {
      const n = o.memoryMiB * MiB;
      process.stdout.write(
        `  memory: ${o.memoryMiB} MiB through the relay read at ${o.memoryRate} MiB/s (~${Math.round(o.memoryMiB / o.memoryRate)} s)...\n`,
      );
      const rss = new PeakRss({ workerd: relay.pid, agent: agent.proc.pid! }, 100);
      const t = await download(`${relay.url}/r/${BACKEND}/bytes?n=${n}`, n, o.memoryRate);
      const m = rss.stop();
      const growth = Math.max(m.workerd.growthMiB, m.agent.growthMiB);
      const figure = `workerd +${m.workerd.growthMiB.toFixed(1)} MiB, agent +${m.agent.growthMiB.toFixed(1)} MiB at ${t.mibps.toFixed(1)} MiB/s${t.exact ? ", byte-exact" : ", NOT byte-exact"}`;
      console.log(`memory: ${figure}`);
      targets.push({
        target: `${o.memoryMiB} MiB read at ${o.memoryRate} MiB/s: workerd and agent grow < 64 MiB`,
        figure,
        met: growth < 64 && t.exact,
      });
      results.memory = { ...m, transfer: t };
    }
    if (o.rows.includes("idle")) {
      process.stdout.write(`  idle: ${o.idleSockets} WebSockets through the relay, idle for ${o.idleSeconds} s...\n`);
      const r = await idleSockets(env, o.idleSockets, o.idleSeconds);
      const figure =
        `${r.echoed}/${o.idleSockets} echoed after ${o.idleSeconds} s idle, ${r.closedWhileIdle} closed while idle, ` +
        `object ${r.rebuilt ? "evicted and rebuilt (hibernated)" : "NOT evicted"}; workerd ${r.workerdMiB.open.toFixed(0)} MiB open, ` +
        `${r.workerdMiB.idle.toFixed(0)} MiB idle${r.errors.length ? `; errors: ${r.errors.join("; ")}` : ""}`;
      console.log(`idle: ${figure}`);
      targets.push({
        target: `${o.idleSockets} idle WebSockets on a hibernating object, no error`,
        figure,
        met: r.echoed === o.idleSockets && r.closedWhileIdle === 0 && r.rebuilt,
      });
      results.idle = r;
    }

    if (o.rows.includes("fleet")) {
      process.stdout.write(`  fleet: ${o.fleetBackends} backends from one agent process, with a relay of its own...\n`);
      const { fleetRow } = await import("./fleet.ts");
      const r = await fleetRow({
        backends: o.fleetBackends,
        connections: o.connections ?? 1,
        idleSeconds: o.fleetIdle,
        backendUrl: backend.url,
        log: (line) => process.stdout.write(`${line}\n`),
      });
      const figure =
        `${r.tunnels} tunnels; all answer ${r.allAnswerAfterStartS.toFixed(1)} s after the agent starts, ${r.allAnswerAfterRestartS.toFixed(1)} s after the relay restarts ` +
        `(${r.allAnswerAfterStopS.toFixed(1)} s after it stopped); reconnects spread over ${r.reconnects.spreadS.toFixed(1)} s, at most ${r.reconnects.peakPer100ms} in 100 ms; ` +
        `workerd ${r.workerdMiB.before.toFixed(0)} MiB fresh, ${r.workerdMiB.awake.toFixed(0)} with every object awake (${r.workerdKiBPerTunnelFromFresh.awake.toFixed(0)} KiB per tunnel), ` +
        `${r.workerdMiB.idle.toFixed(0)} after ${o.fleetIdle} s idle (${r.workerdKiBPerTunnelFromFresh.idle.toFixed(0)} KiB per tunnel from fresh; the allocator keeps what awake objects freed), ` +
        `${r.workerdMiB.idleCollected.toFixed(0)} after a garbage collection, ${r.workerdMiB.secondIdleCollected.toFixed(0)} with a second fleet as large idle too = ${r.workerdKiBPerIdleTunnel.toFixed(0)} KiB per idle tunnel; ` +
        `first request to an evicted object p50 ${r.evicted.p50Ms.toFixed(1)} ms, p99 ${r.evicted.p99Ms.toFixed(1)} ms (${r.evicted.evicted}/${r.evicted.sampled} evicted)`;
      console.log(`fleet: ${figure}`);
      targets.push({
        target: `${o.fleetBackends} backends from one agent: all back within 10 s of a relay restart`,
        figure: `${r.allAnswerAfterRestartS.toFixed(1)} s`,
        met: r.allAnswerAfterRestartS <= 10,
      });
      targets.push({
        target: "fleet: under 100 KiB of workerd memory per idle tunnel",
        figure: `${r.workerdKiBPerIdleTunnel.toFixed(0)} KiB (second fleet, idle and collected; ${r.workerdKiBPerTunnelFromFresh.idle.toFixed(0)} KiB from a fresh process)`,
        met: r.workerdKiBPerIdleTunnel < 100,
      });
      results.fleet = r;
    }

    if (o.rows.includes("parallel")) {
      process.stdout.write(`  parallel: c32 on one backend alone, then on two at once, ${o.parallelTurns} turns of 2 s each...\n`);
      const second = await startAgentProcess(
        nodeArgs,
        agentArgs(
          relay.url,
          PARALLEL,
          await relay.token(PARALLEL),
          backend.url,
          o.connections ? ["--connections", String(o.connections)] : [],
        ),
      );
      cleanup.push(() => second.stop());
      const { parallelLoad } = await import("./parallel.ts");
      const out: Record<string, unknown> = {};
      for (const [kind, path] of [
        ["do-ceiling", (b: string) => `${relay.url}/_relay/bench/${b}/small`],
        ["relay", (b: string) => `${relay.url}/r/${b}/small`],
      ] as const) {
        const r = await parallelLoad([path(BACKEND), path(PARALLEL)], relay.pid, o.parallelTurns, 2);
        const cores = (f: typeof r.one) =>
          `workerd ${f.workerdCores.toFixed(2)} cores, busiest thread ${f.busiestThreadCores.toFixed(2)}, ${f.busyThreads} thread(s) above 5%`;
        const span = (xs: number[]) => `${fmt(Math.min(...xs))}-${fmt(Math.max(...xs))}`;
        console.log(
          `parallel (${kind}): one object ${fmt(r.one.rps)} req/s (${cores(r.one)}; turns ${span(r.one.turns)}); ` +
            `two at once ${fmt(r.two.rps)} req/s = ${r.two.rpsEach.map((x) => fmt(x)).join(" + ")} (${cores(r.two)}; turns ${span(r.two.turns)}): ` +
            `${pct(r.two.rps / r.one.rps)} of one`,
        );
        out[kind] = r;
      }
      results.parallel = out;
    }

    if (o.rows.includes("auth")) {
      process.stdout.write("  auth: c32 small GETs through jwt and basicAuth policies, in turns with the plain relay...\n");
      const { authRow } = await import("./auth.ts");
      const r = await authRow({
        relayUrl: relay.url,
        secret: relay.secret,
        backendUrl: backend.url,
        plainUrl: `${relay.url}/r/${BACKEND}/small`,
        seconds: o.duration,
        warmup: o.warmup,
        connections: o.connections,
        startAgent: (args) => startAgentProcess(nodeArgs, args),
        log: (line) => process.stdout.write(`${line}\n`),
      });
      const figure = `relay ${r.rps.relay.toFixed(0)} req/s, jwt ${r.rps.jwt.toFixed(0)} (${pct(r.jwtRatio)}), basicAuth ${r.rps.basic.toFixed(0)} (${pct(r.basicRatio)}); p50 ${r.p50Ms.relay.toFixed(2)} / ${r.p50Ms.jwt.toFixed(2)} / ${r.p50Ms.basic.toFixed(2)} ms`;
      console.log(`auth: ${figure}`);
      targets.push({
        target: "auth: jwt and basicAuth each >= 90% of the plain relay's c32 req/s",
        figure,
        met: r.jwtRatio >= 0.9 && r.basicRatio >= 0.9,
      });
      results.auth = r;
    }

    const verdict = (t: Target) =>
      `  ${t.met === true ? "MET   " : t.met === false ? "MISSED" : "      "} ${t.target}: ${t.figure}${noisy ? " (noisy)" : ""}`;
    const goals = targets.filter((t) => !t.reference);
    if (goals.length) console.log(`\nTargets:\n${goals.map(verdict).join("\n")}`);
    printReferences(targets, verdict);
    console.log(`\nrun took ${((Date.now() - started) / 1000).toFixed(0)} s`);
  } finally {
    await stopAll();
  }
  if (o.profile) console.log(`agent CPU profile written to ${profileDir}/ (open in Chrome DevTools or speedscope)`);
  const load = { start: loadAtStart, end: os.loadavg(), busyAtStart, noisy, noisyAboveBusyShare: NOISY_BUSY_SHARE };
  const out = { date: new Date().toISOString(), machine: info, load, options: { ...o, out: undefined }, targets, ...results };
  writeFileSync(o.out, JSON.stringify(out, null, 2) + "\n");
  console.log(`figures written to ${o.out}`);
}

for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => void stopAll().finally(() => process.exit(130)));
}

main().catch(async (err) => {
  console.error(err instanceof Error ? err.message : err);
  await stopAll();
  process.exit(1);
});
