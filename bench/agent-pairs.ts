// `npx tsx bench/agent-pairs.ts [--rounds N] name=<checkout> ...`: the agents of several checkouts
// of this repository under small GETs from an in-process stand-in for the relay, in turns, with
// each agent's CPU time per request. No workerd: the agent's own cost, with far less noise.
import { randomUUID } from "node:crypto";
import type { AddressInfo } from "node:net";
import http from "node:http";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { WebSocketServer } from "ws";
import { DEFAULT_MAX_FRAME, DEFAULT_WINDOW, HEARTBEAT_PING, HEARTBEAT_PONG, PROTOCOL_VERSION } from "../src/protocol/frame.ts";
import { encodeRequestHead } from "../src/protocol/head.ts";
import { Session } from "../src/protocol/session.ts";
import { mintToken } from "../src/auth.ts";
import { cpuSeconds } from "./procs.ts";
import { loadLine, median, parseCheckoutArgs, spread, startAgent, startScript } from "./checkouts.ts";

const PROFILES = fileURLToPath(new URL("./profiles/", import.meta.url));
const USAGE = `npx tsx bench/agent-pairs.ts [--rounds N] [--seconds S] [--c1-seconds S] [--concurrency N] [--profile | --gc] name=<checkout> ...

Runs one backend (bench/backend.ts), a stand-in for the relay in this process (a WebSocket server
speaking the tunnel protocol with the relay's batching: a message per 8 request heads), and per
checkout its own agent (bundled by bench/agent-bin.ts). Every round sends GET /small through each agent in
turn, --concurrency (32) requests in flight for --seconds (2), then one at a time for
--c1-seconds (1; 0 skips it). Prints per checkout each round's agent CPU µs per request and
requests/s, and the median round trip at c1 in ms (relay to agent to backend and back).
--profile runs each agent under node --cpu-prof into bench/profiles/. --gc runs each agent with
V8's --trace-gc-nvp and prints, over its --concurrency turns, what each request left to the old
generation (bytes promoted by scavenges per request), its scavenges and mark-compacts, and the
main thread's GC pauses per request.`;

function parse(argv: string[]) {
  const defaults = { rounds: 6, seconds: 2, c1Seconds: 1, concurrency: 32, profile: false, gc: false };
  return parseCheckoutArgs(argv, USAGE, defaults, {
    "--rounds": "rounds",
    "--seconds": "seconds",
    "--c1-seconds": "c1Seconds",
    "--concurrency": "concurrency",
    "--profile": "profile",
    "--gc": "gc",
  });
}

/** The relay's side of each agent's tunnel, by backend name. */
function startRelay(): Promise<{ url: string; tunnels: Map<string, Session>; close(): void }> {
  const tunnels = new Map<string, Session>();
  const server = http.createServer();
  const wss = new WebSocketServer({ server, perMessageDeflate: false, maxPayload: 64 * 1024 * 1024 });
  wss.on("connection", (ws, req) => {
    const backend = new URL(req.url ?? "/", "http://x").searchParams.get("backend") ?? "";
    const session: Session = new Session({
      role: "relay",
      hello: {
        v: PROTOCOL_VERSION,
        software: "bench-relay/0",
        id: randomUUID(),
        caps: [],
        window: DEFAULT_WINDOW,
        maxFrame: DEFAULT_MAX_FRAME,
      },
      send: (m) => ws.send(m),
      schedule: (flush) => setImmediate(flush),
      scheduleAlone: (flush) => queueMicrotask(flush),
      headsPerMessage: 8,
      onHello: () => {
        session.sendHello();
        tunnels.set(backend, session);
      },
    });
    ws.on("message", (data, binary) => {
      if (binary) session.receive(data as Buffer);
      else if (data.toString() === HEARTBEAT_PING) ws.send(HEARTBEAT_PONG);
    });
    ws.on("close", () => session.destroy());
  });
  return new Promise((done) =>
    server.listen(0, "127.0.0.1", () =>
      done({
        url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
        tunnels,
        close: () => (wss.close(), server.close()),
      }),
    ),
  );
}

/** One GET /small through `session`; resolves with its round trip in ms. */
function request(session: Session, authority: string): Promise<number> {
  const start = performance.now();
  return new Promise((done, fail) => {
    const head = encodeRequestHead({
      method: "GET",
      path: "/small",
      scheme: "http",
      authority,
      headers: [
        ["user-agent", "bench"],
        ["x-forwarded-for", "127.0.0.1"],
        ["x-forwarded-proto", "http"],
        ["x-forwarded-host", authority],
      ],
    });
    const stream = session.open(head, true);
    let status = "";
    stream.onHeaders = (list) => (status = list[0][1]);
    stream.onData = (chunk) => stream.consumed(chunk.byteLength);
    stream.onEnd = () => (status === "200" ? done(performance.now() - start) : fail(new Error(`status ${status}`)));
    stream.onReset = (reset) => fail(reset);
  });
}

/** Keeps `concurrency` requests in flight for `seconds`; returns how many completed and their round trips. */
async function load(session: Session, concurrency: number, seconds: number): Promise<number[]> {
  const until = performance.now() + seconds * 1000;
  const times: number[] = [];
  const worker = async () => {
    while (performance.now() < until) times.push(await request(session, "bench.example"));
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return times;
}

/** An agent's garbage collections while `counting`, from the lines of node --trace-gc-nvp. */
class GcTally {
  counting = false;
  scavenges = 0;
  markCompacts = 0;
  pauseMs = 0;
  promoted = 0;

  /** Counts one line of the agent's output, if it is a collection's. */
  line(line: string): void {
    const gc = this.counting ? / gc=(\w+) /.exec(line)?.[1] : undefined;
    if (!gc) return;
    if (gc === "s") this.scavenges++;
    else this.markCompacts++;
    this.pauseMs += Number(/ pause=([\d.]+)/.exec(line)?.[1] ?? 0);
    this.promoted += Number(/ promoted=(\d+)/.exec(line)?.[1] ?? 0);
  }
}

const GC_FLAGS = ["--trace-gc", "--trace-gc-nvp"];

async function main(): Promise<void> {
  const o = parse(process.argv.slice(2));
  const stops: Array<() => unknown> = [];
  console.log(loadLine("start"));
  const backend = await startScript(o.variants[0].root, "backend.ts");
  stops.push(() => backend.proc.kill("SIGTERM"));
  const relay = await startRelay();
  stops.push(() => relay.close());
  try {
    const agents: Array<{ name: string; pid: number; session: Session; gc: GcTally; requests: number }> = [];
    for (const { name, root } of o.variants) {
      const args = [
        "agent",
        "--relay",
        relay.url,
        "--backend",
        name,
        "--token",
        await mintToken("bench-agent-pairs", name),
        "--to",
        `http://127.0.0.1:${backend.port}`,
      ];
      const nodeArgs = o.profile ? ["--cpu-prof", "--cpu-prof-interval=200", `--cpu-prof-dir=${PROFILES}`] : o.gc ? GC_FLAGS : [];
      const proc = await startAgent(root, args, nodeArgs);
      const gc = new GcTally();
      if (o.gc) createInterface({ input: proc.stdout! }).on("line", (line) => gc.line(line));
      stops.push(() => new Promise<void>((done) => (proc.once("exit", () => done()), proc.kill("SIGTERM"))));
      while (!relay.tunnels.get(name)?.ready) await new Promise((r) => setTimeout(r, 10));
      agents.push({ name, pid: proc.pid!, session: relay.tunnels.get(name)!, gc, requests: 0 });
      console.log(`agent ${name}: pid ${proc.pid}`);
    }
    const turn = async (a: (typeof agents)[number], concurrency: number, seconds: number, counted = false) => {
      const cpu0 = cpuSeconds(a.pid);
      const t0 = performance.now();
      a.gc.counting = counted;
      const times = await load(a.session, concurrency, seconds);
      a.gc.counting = false;
      if (counted) a.requests += times.length;
      const wall = (performance.now() - t0) / 1000;
      return { cpuUs: ((cpuSeconds(a.pid) - cpu0) * 1e6) / times.length, rps: times.length / wall, p50: median(times) };
    };
    for (const a of agents) await turn(a, o.concurrency, 2);
    const figures = new Map(
      agents.map((a) => [a.name, { cpu: [] as number[], rps: [] as number[], p50: [] as number[], cpuC1: [] as number[] }]),
    );
    for (let round = 0; round < o.rounds; round++) {
      const order = round % 2 ? [...agents].reverse() : agents;
      for (const a of order) {
        const t = await turn(a, o.concurrency, o.seconds, true);
        figures.get(a.name)!.cpu.push(t.cpuUs);
        figures.get(a.name)!.rps.push(t.rps);
      }
      if (o.c1Seconds > 0) {
        for (const a of [...order].reverse()) {
          const t = await turn(a, 1, o.c1Seconds);
          figures.get(a.name)!.p50.push(t.p50);
          figures.get(a.name)!.cpuC1.push(t.cpuUs);
        }
      }
    }
    console.log(loadLine("end"));
    for (const a of agents) {
      const f = figures.get(a.name)!;
      console.log(`${a.name.padEnd(10)} c${o.concurrency} agent µs/req ${spread(f.cpu, 1)}; req/s ${spread(f.rps, 0)}`);
      if (o.c1Seconds > 0) console.log(`${"".padEnd(10)} c1 p50 ms ${spread(f.p50, 3)}; agent µs/req ${spread(f.cpuC1, 0)}`);
      if (o.gc) {
        const { gc, requests } = a;
        console.log(
          `${"".padEnd(10)} gc over ${requests} requests at c${o.concurrency}: promoted ${Math.round(gc.promoted / requests)} B/req; ` +
            `${gc.scavenges} scavenges, ${gc.markCompacts} mark-compacts; pauses ${((gc.pauseMs * 1000) / requests).toFixed(1)} µs/req`,
        );
      }
    }
  } finally {
    for (const stop of stops.reverse()) await stop();
  }
}

await main();
process.exit(0);
