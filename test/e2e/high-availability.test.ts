// High availability end to end: several agents and tunnels per backend, the admin API, graceful
// drains and rolling restarts, failover when an agent dies, relay restarts, heartbeats on both
// sides, and a kill-every-second chaos run. Real relay (workerd), real agents, real backend.
import { createHash, randomBytes, randomUUID } from "node:crypto";
import { readFileSync, readdirSync, readlinkSync } from "node:fs";
import http from "node:http";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { agentArgs, startAgent, type AgentProcess } from "../helpers/agent.ts";
import { digestBody, startBackend, type Backend } from "../helpers/backend.ts";
import { fakeAgent, type FakeAgent } from "../helpers/fake-agent.ts";
import { startRelay, type RelayHandle } from "../helpers/relay.ts";
import { startTcpProxy, type TcpProxy } from "../helpers/tcp-proxy.ts";
import { until, within } from "../helpers/wait.ts";

const ADMIN = `admin-${randomBytes(16).toString("hex")}`;

/** The relay most tests use: admin API on. */
let relay: RelayHandle;
/** A relay without RELAY_ADMIN_TOKEN and with a 2 s heartbeat deadline. */
let strict: RelayHandle;
let backend: Backend;
/** Processes, relays and proxies a test started; stopped after it, whatever happened. */
let agents: AgentProcess[] = [];
let cleanups: Array<() => Promise<unknown> | void> = [];

beforeAll(async () => {
  // Snapshots: an edit to src/ while this file runs must not reload the relay under its tunnels.
  [relay, strict, backend] = await Promise.all([
    startRelay({ vars: { RELAY_ADMIN_TOKEN: ADMIN }, snapshot: true }),
    startRelay({ vars: { RELAY_HEARTBEAT_DEADLINE: "2" }, snapshot: true }),
    startBackend(),
  ]);
}, 120_000);

afterEach(async () => {
  // SIGKILL: a test that failed midway must not wait out a grace period here.
  await Promise.all(agents.map((a) => a.stop("SIGKILL")));
  for (const c of cleanups.reverse()) await c();
  agents = [];
  cleanups = [];
});

afterAll(async () => {
  await Promise.all([relay?.stop(), strict?.stop(), backend?.stop()]);
});

// ---------------------------------------------------------------------------------------------
// Helpers

interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

/** One HTTP request to `base`; rejects on a connection error or after `ms`. */
function send(
  base: string,
  opts: { method?: string; path: string; headers?: Record<string, string>; body?: Buffer; agent?: http.Agent },
  ms = 30_000,
): Promise<Reply> {
  const url = new URL(base);
  const headers: Record<string, string | number> = { ...opts.headers };
  if (opts.body) headers["content-length"] = opts.body.length;
  let req: http.ClientRequest;
  const reply = new Promise<Reply>((resolve, reject) => {
    req = http.request(
      { hostname: url.hostname, port: url.port, method: opts.method ?? "GET", path: opts.path, headers, agent: opts.agent ?? false },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }));
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    req.end(opts.body);
  });
  return within(reply, `${opts.method ?? "GET"} ${opts.path}`, ms).catch((err: Error) => {
    req.destroy();
    throw err;
  });
}

/** The relay's JSON error code of a reply, or "" when it is none. */
function errorCode(reply: Reply): string {
  try {
    return (JSON.parse(reply.body.toString()) as { error?: string }).error ?? "";
  } catch {
    return "";
  }
}

interface TunnelStatus {
  tunnelId: string;
  agentId: string | null;
  software: string | null;
  connectedAt: string;
  lastHeartbeat: string;
  streams: number;
  draining: boolean;
  open: boolean;
}

/** GET /_relay/backends/<name> with the admin token. */
async function listing(name: string, on: RelayHandle = relay): Promise<{ backend: string; tunnels: TunnelStatus[] }> {
  const reply = await send(on.url, { path: `/_relay/backends/${name}`, headers: { authorization: `Bearer ${ADMIN}` } }, 10_000);
  expect(reply.status).toBe(200);
  return JSON.parse(reply.body.toString());
}

/** Open tunnels of `agentId` in a listing. */
const tunnelsOf = (list: { tunnels: TunnelStatus[] }, agentId: string) => list.tunnels.filter((t) => t.open && t.agentId === agentId);

/** A running agent and the id its hellos carry (what the admin API lists). */
interface Tracked {
  proc: AgentProcess;
  id: string;
  pid: number;
}

function agentFor(args: string[], opts: Parameters<typeof startAgent>[1] = {}): Promise<AgentProcess> {
  const started = startAgent(args, opts);
  // Registered before waiting, so a failed wait still stops the process.
  void started.then(
    (a) => agents.push(a),
    () => {},
  );
  return started;
}

/** Starts an agent with `connections` tunnels for `name` on the main relay, waits until they are up and learns its id. */
async function startTracked(name: string, connections = 2, extra: string[] = []): Promise<Tracked> {
  const before = new Set((await listing(name)).tunnels.map((t) => t.agentId));
  const proc = await agentFor(
    agentArgs(relay.url, name, await relay.token(name), backend.url, ["--connections", String(connections), ...extra]),
    {
      waitUp: connections,
    },
  );
  const ids = new Set((await listing(name)).tunnels.filter((t) => t.open && !before.has(t.agentId)).map((t) => t.agentId));
  expect(ids.size).toBe(1);
  return { proc, id: [...ids][0]!, pid: proc.proc.pid! };
}

const alive = (a: AgentProcess) => a.proc.exitCode === null && a.proc.signalCode === null;

/**
 * The pid among `pids` that owns the TCP socket with local port `port` (Linux /proc): which
 * agent process carries a request the backend received from remote port `port`.
 */
function pidOwningPort(port: number, pids: number[]): number | undefined {
  const inodes = new Set<string>();
  for (const table of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    let text = "";
    try {
      text = readFileSync(table, "utf8");
    } catch {
      continue;
    }
    for (const line of text.split("\n").slice(1)) {
      const cols = line.trim().split(/\s+/);
      if (cols.length > 9 && parseInt(cols[1].split(":")[1], 16) === port && cols[9] !== "0") inodes.add(cols[9]);
    }
  }
  for (const pid of pids) {
    let fds: string[] = [];
    try {
      fds = readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      try {
        const inode = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`))?.[1];
        if (inode && inodes.has(inode)) return pid;
      } catch {
        // The descriptor closed while we looked.
      }
    }
  }
  return undefined;
}

/** A request a held route received, and how to answer it. */
interface Held {
  req: http.IncomingMessage;
  res: http.ServerResponse;
  id: string;
  /** sha256 of the request body once it was read. */
  body: Promise<{ sha256: string; length: number }>;
  release(): void;
}

/**
 * A backend route that holds every request (`shouldHold`) until the test releases it, then
 * answers `released <id>`; requests it does not hold are answered at once with `direct <id> <sha256>`.
 */
function heldRoute(path: string, shouldHold: (id: string, seen: number) => boolean = () => true) {
  const arrivals: Held[] = [];
  const seen = new Map<string, number>();
  const waiters = new Set<() => void>();
  backend.route(path, (req, res) => {
    const id = String(req.headers["x-req-id"] ?? new URL(req.url!, "http://x").searchParams.get("id") ?? "");
    const count = (seen.get(id) ?? 0) + 1;
    seen.set(id, count);
    const body = digestBody(req);
    if (!shouldHold(id, count)) {
      return void body.then((b) => res.end(`direct ${id} ${b.sha256}`));
    }
    let release!: () => void;
    const released = new Promise<void>((r) => (release = r));
    arrivals.push({ req, res, id, body, release });
    for (const w of waiters) w();
    void Promise.all([released, body]).then(() => {
      if (!res.destroyed) res.end(`released ${id}`);
    });
  });
  return {
    arrivals,
    seen,
    /** Resolves once `n` requests are held. */
    arrived(n: number, ms = 15_000): Promise<void> {
      return within(
        new Promise<void>((resolve) => {
          const check = () => {
            if (arrivals.length < n) return;
            waiters.delete(check);
            resolve();
          };
          waiters.add(check);
          check();
        }),
        `${n} held requests at the backend`,
        ms,
      );
    },
    releaseAll: () => {
      for (const h of arrivals) h.release();
    },
  };
}

const sha256 = (b: Buffer) => createHash("sha256").update(b).digest("hex");

interface Load {
  readonly ok: number;
  readonly failures: string[];
  /** Resolves once `n` more requests succeeded than when called. */
  more(n: number, ms?: number): Promise<void>;
  /** Stops sending, waits for the requests in flight; resolves with the totals. */
  stop(): Promise<{ ok: number; failures: string[] }>;
}

/**
 * Keeps `concurrency` requests in flight to /r/<name>/echo, alternating GET and POST with a
 * random body, and checks every answer (status, echoed path, body digest).
 */
function startLoad(base: string, name: string, concurrency: number): Load {
  const pool = new http.Agent({ keepAlive: true, maxSockets: concurrency });
  let stopping = false;
  let ok = 0;
  let next = 0;
  const failures: string[] = [];
  const listeners = new Set<() => void>();
  const worker = async () => {
    // Bounded: the test stops the load long before this many requests.
    while (!stopping && next < 200_000) {
      const n = next++;
      const post = n % 2 === 1;
      const body = post ? randomBytes(512 + (n % 8) * 1024) : undefined;
      try {
        const reply = await send(base, { method: post ? "POST" : "GET", path: `/r/${name}/echo?n=${n}`, body, agent: pool });
        if (reply.status !== 200) throw new Error(`${reply.status} ${reply.body.toString().slice(0, 200)}`);
        const echoed = JSON.parse(reply.body.toString()) as { url: string; sha256: string; length: number };
        if (echoed.url !== `/echo?n=${n}`) throw new Error(`echoed ${echoed.url}`);
        if (post && (echoed.sha256 !== sha256(body!) || echoed.length !== body!.length)) throw new Error("body digest differs");
        ok++;
        for (const l of listeners) l();
      } catch (err) {
        failures.push(`${post ? "POST" : "GET"} n=${n}: ${(err as Error).message}`);
      }
    }
  };
  const workers = Array.from({ length: concurrency }, worker);
  return {
    get ok() {
      return ok;
    },
    failures,
    more(n, ms = 20_000) {
      const target = ok + n;
      return within(
        new Promise<void>((resolve) => {
          const check = () => {
            if (ok < target) return;
            listeners.delete(check);
            resolve();
          };
          listeners.add(check);
        }),
        `${n} more successful requests (failures so far: ${failures.length})`,
        ms,
      );
    },
    async stop() {
      stopping = true;
      await Promise.all(workers);
      pool.destroy();
      return { ok, failures };
    },
  };
}

// ---------------------------------------------------------------------------------------------

describe("load balancing and the admin API", () => {
  it("lists 4 tunnels of 2 agents, and 8 held requests are spread 2/2/2/2", async () => {
    const name = "ha-lb";
    const started = Date.now();
    const a = await startTracked(name, 2);
    const b = await startTracked(name, 2);
    expect(a.id).not.toBe(b.id);

    const list = await listing(name);
    expect(list.backend).toBe(name);
    expect(list.tunnels).toHaveLength(4);
    for (const t of list.tunnels) {
      expect(t).toMatchObject({ streams: 0, draining: false, open: true });
      expect(t.tunnelId).toEqual(expect.any(String));
      expect(t.software).toMatch(/^edge-relay-agent\/\d+\.\d+\.\d+/);
      const at = Date.parse(t.connectedAt);
      expect(at).toBeGreaterThanOrEqual(started - 1000);
      expect(at).toBeLessThanOrEqual(Date.now() + 1000);
    }
    expect(new Set(list.tunnels.map((t) => t.tunnelId)).size).toBe(4);
    expect(new Set(list.tunnels.map((t) => t.agentId)).size).toBe(2);
    expect(tunnelsOf(list, a.id)).toHaveLength(2);
    expect(tunnelsOf(list, b.id)).toHaveLength(2);

    const held = heldRoute("/lb-held");
    const pending = Array.from({ length: 8 }, (_, i) => send(relay.url, { path: `/r/${name}/lb-held?id=${i}` }));
    await held.arrived(8);
    const during = await listing(name);
    expect(during.tunnels.map((t) => t.streams)).toEqual([2, 2, 2, 2]);
    expect(during.tunnels.every((t) => !t.draining)).toBe(true);
    // Each agent's process carries four of them.
    const owners = held.arrivals.map((h) => pidOwningPort(h.req.socket.remotePort!, [a.pid, b.pid]));
    expect(owners.filter((p) => p === a.pid)).toHaveLength(4);
    expect(owners.filter((p) => p === b.pid)).toHaveLength(4);

    held.releaseAll();
    const replies = await within(Promise.all(pending), "the released replies", 15_000);
    expect(replies.map((r) => `${r.status} ${r.body}`)).toEqual(Array.from({ length: 8 }, (_, i) => `200 released ${i}`));
    await until(async () => (await listing(name)).tunnels.every((t) => t.streams === 0), "every stream to end", 5000);
  });

  it("answers 401 admin_unauthorized for a wrong or missing admin token", async () => {
    const cases: Array<[string, string, Record<string, string>]> = [
      ["GET", "/_relay/backends/ha-lb", {}],
      ["GET", "/_relay/backends/ha-lb", { authorization: `Bearer ${ADMIN}x` }],
      ["GET", "/_relay/backends/ha-lb", { authorization: `Bearer ${ADMIN.slice(0, -1)}` }],
      ["GET", "/_relay/backends/ha-lb", { authorization: ADMIN }],
      ["POST", "/_relay/backends/ha-lb/drain", {}],
      ["POST", "/_relay/backends/ha-lb/drain", { authorization: "Bearer wrong" }],
    ];
    for (const [method, path, headers] of cases) {
      const reply = await send(relay.url, { method, path, headers });
      expect(reply.status, `${method} ${path} ${JSON.stringify(headers)}`).toBe(401);
      expect(reply.headers["content-type"]).toMatch(/^application\/json/);
      const body = JSON.parse(reply.body.toString()) as { error: string; message: string };
      expect(body.error).toBe("admin_unauthorized");
      expect(body.message).toEqual(expect.any(String));
      expect(reply.body.toString()).not.toContain(ADMIN);
    }
  });

  it("answers 404 when RELAY_ADMIN_TOKEN is not configured", async () => {
    for (const [method, path] of [
      ["GET", "/_relay/backends/ha-lb"],
      ["POST", "/_relay/backends/ha-lb/drain"],
    ]) {
      const reply = await send(strict.url, { method, path, headers: { authorization: `Bearer ${ADMIN}` } });
      expect(reply.status).toBe(404);
      expect(errorCode(reply)).toBe("not_found");
    }
  });
});

describe("graceful drain and rolling restart", () => {
  it("restarts both agents in turn under ~20 requests in flight with 0 failures; a held request on each draining agent completes", async () => {
    const name = "ha-roll";
    const held = heldRoute("/roll-held");
    let current = { A: await startTracked(name, 2), B: await startTracked(name, 2) };
    const load = startLoad(relay.url, name, 20);
    cleanups.push(() => load.stop());
    await load.more(100);

    for (const which of ["A", "B"] as const) {
      const agent = current[which];
      const others = Object.values(current).filter((t) => t !== agent);
      // Held requests until one is carried by this agent (least-loaded: about half of them are);
      // the others are released at once.
      let mine: { held: Held; reply: Promise<Reply> } | undefined;
      for (let tries = 0; tries < 20 && !mine; tries++) {
        const id = `${which}-${tries}`;
        const reply = send(relay.url, { path: `/r/${name}/roll-held?id=${id}` });
        await held.arrived(held.arrivals.length + 1);
        const h = held.arrivals.at(-1)!;
        const owner = pidOwningPort(h.req.socket.remotePort!, [agent.pid, ...others.map((o) => o.pid)]);
        expect(owner).toBeDefined();
        if (owner === agent.pid) {
          mine = { held: h, reply };
        } else {
          h.release();
          void reply.then(
            (r) => r.status !== 200 && load.failures.push(`held ${id}: ${r.status} ${r.body}`),
            (err: Error) => load.failures.push(`held ${id}: ${err.message}`),
          );
        }
      }
      expect(mine, `a held request on agent ${which}`).toBeDefined();

      const exit = agent.proc.stop("SIGTERM");
      // The relay has the agent's GOAWAY: its tunnels are draining, the held request still in flight.
      await until(
        async () => {
          const mineNow = tunnelsOf(await listing(name), agent.id);
          return mineNow.length > 0 && mineNow.every((t) => t.draining);
        },
        `agent ${which}'s tunnels to be draining`,
        10_000,
      );
      // New requests keep succeeding on the other agent meanwhile.
      await load.more(50);
      expect(alive(agent.proc)).toBe(true);
      mine!.held.release();
      const heldReply = await within(mine!.reply, "the held reply", 15_000);
      expect(`${heldReply.status} ${heldReply.body}`).toBe(`200 released ${mine!.held.id}`);
      expect(await within(exit, `agent ${which} to exit`, 15_000)).toBe(0);
      current = { ...current, [which]: await startTracked(name, 2) };
      await load.more(100);
    }

    const { ok, failures } = await load.stop();
    expect(failures).toEqual([]);
    expect(ok).toBeGreaterThan(400);
    const list = await listing(name);
    expect(tunnelsOf(list, current.A.id)).toHaveLength(2);
    expect(tunnelsOf(list, current.B.id)).toHaveLength(2);
  }, 180_000);
});

describe("graceful drain under light load", () => {
  it("SIGTERM of an agent never costs a POST without Idempotency-Key (15 restarts, 2 requests in flight)", async () => {
    const name = "ha-drain-light";
    const stay = await startTracked(name, 2);
    /** Requests each agent process served, and how many it has in flight at the backend. */
    const served = new Map<number, number>();
    const inFlight = new Map<number, number>();
    /** Called when a request an agent carried was answered by the backend, with that agent's pid. */
    let onAnswered: ((pid: number) => void) | undefined;
    backend.route("/drain-post", async (req, res) => {
      const pid = pidOwningPort(req.socket.remotePort!, [stay.pid, ...agents.map((a) => a.proc.pid!)]) ?? 0;
      served.set(pid, (served.get(pid) ?? 0) + 1);
      inFlight.set(pid, (inFlight.get(pid) ?? 0) + 1);
      res.on("finish", () => {
        inFlight.set(pid, inFlight.get(pid)! - 1);
        onAnswered?.(pid);
      });
      const { length } = await digestBody(req);
      res.end(`got ${length}`);
    });
    /**
     * Resolves the moment the backend answered the last request `pid` had in flight, once it
     * served at least `n`: the agent is about to be idle, and the client's next request follows
     * at once, probably to its now least-loaded tunnels.
     */
    const idleAfter = (pid: number, n: number) =>
      within(
        new Promise<void>((resolve) => {
          onAnswered = (p) => {
            if (p !== pid || (served.get(pid) ?? 0) < n || inFlight.get(pid) !== 0) return;
            onAnswered = undefined;
            resolve();
          };
        }),
        `agent ${pid} to serve ${n} requests`,
        15_000,
      );

    // Two requests at a time: the agent that is stopped is often idle, the case where closing
    // right after GOAWAY loses requests the relay had just sent it.
    const pool = new http.Agent({ keepAlive: true, maxSockets: 2 });
    cleanups.push(() => pool.destroy());
    let stopping = false;
    let ok = 0;
    const failures: string[] = [];
    const loops = [0, 1].map(async (w) => {
      for (let i = w; !stopping && i < 1_000_000; i += 2) {
        const body = randomBytes(100 + (i % 50));
        try {
          const reply = await send(relay.url, { method: "POST", path: `/r/${name}/drain-post?i=${i}`, body, agent: pool });
          if (reply.status === 200 && reply.body.toString() === `got ${body.length}`) ok++;
          else failures.push(`POST ${i}: ${reply.status} ${reply.body.toString().slice(0, 200)}`);
        } catch (err) {
          failures.push(`POST ${i}: ${(err as Error).message}`);
        }
      }
    });
    cleanups.push(async () => {
      stopping = true;
      await Promise.all(loops);
    });

    const exits: Array<number | null> = [];
    const ROUNDS = 15;
    for (let round = 0; round < ROUNDS; round++) {
      const restarted = await startTracked(name, 2);
      // It carries part of the traffic, and is stopped as it goes idle.
      await idleAfter(restarted.pid, 3);
      exits.push(await within(restarted.proc.stop("SIGTERM"), "the agent to exit", 15_000));
    }
    stopping = true;
    await Promise.all(loops);
    expect(exits).toEqual(Array(ROUNDS).fill(0));
    expect(failures).toEqual([]);
    expect(ok).toBeGreaterThan(100);
    // Fifteen agent starts: minutes on a loaded machine.
  }, 240_000);
});

describe("failover when an agent dies", () => {
  const name = "ha-fail";
  let pool: Tracked[] = [];

  /** Two agents serving the backend; replaces any that died. */
  async function twoAgents(): Promise<Tracked[]> {
    pool = pool.filter((t) => alive(t.proc));
    while (pool.length < 2) pool.push(await startTracked(name, 2));
    return pool;
  }

  /** SIGKILLs the agent that carries the request the backend received as `req`. */
  async function killCarrier(req: http.IncomingMessage): Promise<Tracked> {
    const carrier = pool.find(
      (t) =>
        t.pid ===
        pidOwningPort(
          req.socket.remotePort!,
          pool.map((p) => p.pid),
        ),
    );
    expect(carrier, "the agent carrying the request").toBeDefined();
    await carrier!.proc.stop("SIGKILL");
    return carrier!;
  }

  afterAll(() => {
    pool = [];
  });

  // The first arrival of each id is held (its agent is killed under it); a repeat is answered.
  const held = () => heldRoute("/fail-held", (_id, seen) => seen === 1);

  it("a GET whose tunnel dies before the response head is retried on the other agent", async () => {
    await twoAgents();
    const route = held();
    const pending = send(relay.url, { path: `/r/${name}/fail-held?id=get-1` });
    await route.arrived(1);
    const killed = await killCarrier(route.arrivals[0].req);
    const reply = await within(pending, "the retried GET", 15_000);
    expect(reply.status).toBe(200);
    expect(reply.body.toString()).toMatch(/^direct get-1 /);
    expect(route.seen.get("get-1")).toBe(2);
    expect(killed.proc.proc.signalCode).toBe("SIGKILL");
  });

  it("a POST without Idempotency-Key gets 502 tunnel_lost and reaches the backend once", async () => {
    await twoAgents();
    const route = held();
    const body = randomBytes(20_000);
    const pending = send(relay.url, { method: "POST", path: `/r/${name}/fail-held`, headers: { "x-req-id": "post-1" }, body });
    await route.arrived(1);
    expect((await route.arrivals[0].body).sha256).toBe(sha256(body));
    await killCarrier(route.arrivals[0].req);
    const reply = await within(pending, "the POST's answer", 15_000);
    expect(reply.status).toBe(502);
    expect(errorCode(reply)).toBe("tunnel_lost");
    // A later request through the same relay and backend: a stray retry would have come first.
    const after = await send(relay.url, { path: `/r/${name}/echo?after=1` });
    expect(after.status).toBe(200);
    expect(route.seen.get("post-1")).toBe(1);
  });

  it("a POST with Idempotency-Key is retried, body and all, and succeeds", async () => {
    await twoAgents();
    const route = held();
    const body = randomBytes(200_000);
    const pending = send(relay.url, {
      method: "POST",
      path: `/r/${name}/fail-held`,
      headers: { "x-req-id": "post-2", "idempotency-key": randomUUID() },
      body,
    });
    await route.arrived(1);
    // The whole body reached the first agent's backend request before it died.
    expect((await route.arrivals[0].body).sha256).toBe(sha256(body));
    await killCarrier(route.arrivals[0].req);
    const reply = await within(pending, "the retried POST", 15_000);
    expect(reply.status).toBe(200);
    expect(reply.body.toString()).toBe(`direct post-2 ${sha256(body)}`);
    expect(route.seen.get("post-2")).toBe(2);
  });

  it.each([
    ["with Content-Length", true],
    ["chunked", false],
  ])("a response already streaming (%s) when its agent is SIGKILLed ends, never hangs", async (_label, withLength) => {
    await twoAgents();
    const total = 4 * 1024 * 1024;
    let request!: (req: http.IncomingMessage) => void;
    const arrived = new Promise<http.IncomingMessage>((resolve) => (request = resolve));
    backend.route("/fail-stream", (req, res) => {
      res.writeHead(
        200,
        withLength
          ? { "content-type": "application/octet-stream", "content-length": total }
          : { "content-type": "application/octet-stream" },
      );
      res.write(Buffer.alloc(64 * 1024, 7));
      request(req);
      // The rest never comes: the agent dies mid-body.
    });
    let firstBytes!: () => void;
    const gotFirstBytes = new Promise<void>((resolve) => (firstBytes = resolve));
    const result = new Promise<{ status: number; received: number; outcome: string }>((resolve) => {
      let received = 0;
      let status = 0;
      const req = http.get(`${relay.url}/r/${name}/fail-stream`, { agent: false }, (res) => {
        status = res.statusCode!;
        res.on("data", (c: Buffer) => {
          received += c.length;
          firstBytes();
        });
        res.on("end", () => resolve({ status, received, outcome: "end" }));
        res.on("error", (err) => resolve({ status, received, outcome: `error ${err.message}` }));
      });
      req.on("error", (err) => resolve({ status, received, outcome: `error ${err.message}` }));
    });
    const req = await within(arrived, "the streaming request at the backend", 15_000);
    // Headers and the first bytes reached the client before the kill.
    await within(gotFirstBytes, "the first body bytes at the client", 15_000);
    await killCarrier(req);
    const { status, received, outcome } = await within(result, "the broken response to end at the client", 15_000);
    expect(status).toBe(200);
    expect(received).toBeLessThan(total);
    // With a Content-Length the relay keeps it, so the cut shows as an error (README "Errors");
    // chunked bodies end like complete ones in the runtime (workerd#6818): short, but not a hang.
    if (withLength) expect(outcome).toMatch(/^error/);
  });
});

describe("relay restart", () => {
  // How soon agents retry after losing a tunnel (at most ~2 s) is test/agent/backoff.test.ts's.
  it("both agents are up again once a new relay listens on the same port", async () => {
    const secret = randomBytes(32).toString("hex");
    const name = "ha-restart";
    const first = await startRelay({ secret, snapshot: true });
    let current: RelayHandle | undefined = first;
    cleanups.push(() => current?.stop());
    const token = await first.token(name);
    const [a, b] = await Promise.all(
      [0, 1].map(() => agentFor(agentArgs(first.url, name, token, backend.url, ["--connections", "2"]), { waitUp: 2 })),
    );
    expect((await send(first.url, { path: `/r/${name}/echo?before=1` })).status).toBe(200);

    const marks = [a.lines.length, b.lines.length];
    await first.stop();
    current = undefined;
    await Promise.all([a, b].map((agent, i) => agent.waitForLine(/ down: .*tunnels=0\/2$/, 20_000, marks[i])));

    const second = await startRelay({ port: first.port, secret, snapshot: true });
    current = second;
    await Promise.all([a, b].map((agent, i) => agent.waitForLine(/ up: .*tunnels=2\/2$/, 30_000, marks[i])));
    expect((await send(second.url, { path: `/r/${name}/echo?after=1` })).status).toBe(200);
  });
});

describe("heartbeats", () => {
  /** A fake agent on `on` for `name` that pings only if told; dropped after the test. */
  async function fakeAgentOn(on: RelayHandle, name: string, pingEveryMs?: number): Promise<FakeAgent> {
    const agent = await fakeAgent(on, name, { software: "ha-test", pingEveryMs });
    cleanups.push(() => agent.stop());
    return agent;
  }

  it("relay side: a tunnel silent past RELAY_HEARTBEAT_DEADLINE (2 s) is closed with 1001, one that pings stays", async () => {
    // Taken before the connect: the relay's deadline runs from when it accepted the socket.
    const connected = performance.now();
    const silent = await fakeAgentOn(strict, "ha-hb-silent");
    // Eight pings per deadline: a busy machine can delay a few without the tunnel going silent.
    const pinging = await fakeAgentOn(strict, "ha-hb-pinging", 250);
    let sawClose = false;
    void silent.closed.then(() => (sawClose = true));

    // A request every 250 ms to each until the silent one's backend answers no_agent: a paced
    // probe of the deadline (the relay checks it when it picks a tunnel), bounded at 10 s.
    const answers: string[] = [];
    let refusedAt = 0;
    for (let i = 0; i < 40 && !refusedAt; i++) {
      const [s, p] = await Promise.all([
        send(strict.url, { path: `/r/ha-hb-silent/probe?${i}` }),
        send(strict.url, { path: `/r/ha-hb-pinging/probe?${i}` }),
      ]);
      expect(`${p.status} ${p.body}`).toBe(`200 fake /probe?${i}`);
      answers.push(s.status === 200 ? "200" : `${s.status} ${errorCode(s)}`);
      if (s.status !== 200) refusedAt = performance.now() - connected;
      else await new Promise((r) => setTimeout(r, 250));
    }
    expect(answers.at(-1)).toBe("502 no_agent");
    // It served while within the deadline, and was refused only past it.
    expect(answers[0]).toBe("200");
    expect(refusedAt).toBeGreaterThanOrEqual(1950);
    const { code } = await within(silent.closed, "the relay to close the silent tunnel", 10_000);
    expect(code).toBe(1001);
    expect(sawClose).toBe(true);
    // The pinging tunnel is still up, well past the deadline.
    expect(pinging.ws.readyState).toBe(WebSocket.OPEN);
    expect((await send(strict.url, { path: "/r/ha-hb-pinging/last" })).body.toString()).toBe("fake /last");
  });

  it("agent side: a frozen path is noticed after 3 missed heartbeats (--heartbeat 1s), and the agent reconnects", async () => {
    const proxy: TcpProxy = await startTcpProxy(strict.port);
    cleanups.push(() => proxy.close());
    const name = "ha-hb-agent";
    const agent = await agentFor(
      agentArgs(proxy.url, name, await strict.token(name), backend.url, ["--connections", "1", "--heartbeat", "1s"]),
      {
        waitUp: 1,
      },
    );
    expect(proxy.accepted).toBe(1);
    // Pings every second keep the tunnel alive through the relay's 2 s deadline.
    const first = await send(strict.url, { path: `/r/${name}/echo?before=1` });
    expect(first.status).toBe(200);

    const mark = agent.lines.length;
    proxy.freeze();
    const t0 = performance.now();
    await agent.waitForLine(/tunnel 1 down: /, 20_000, mark);
    // Not before the missed heartbeats: a freeze alone does not end the tunnel.
    expect(performance.now() - t0).toBeGreaterThanOrEqual(2000);
    await agent.waitForLine(/tunnel 1 up: .*tunnels=1\/1$/, 20_000, mark);
    // The new tunnel went through the proxy again, on a fresh connection.
    expect(proxy.accepted).toBe(2);
    // The relay may still hold the frozen tunnel until its own deadline notices it; requests must not fail.
    const after = await send(strict.url, { path: `/r/${name}/echo?after=1` });
    expect(after.status).toBe(200);
    expect(alive(agent)).toBe(true);
  });
});

describe("chaos: agent A SIGKILLed and restarted every second", () => {
  const name = "ha-chaos";
  const TOTAL = 5000;
  const CONCURRENCY = 50;

  /** Runs `fn(i)` for i in [0, TOTAL) at CONCURRENCY while agent A is killed and restarted every second. */
  async function underChaos(fn: (i: number, pool: http.Agent) => Promise<void>): Promise<{ kills: number }> {
    // Agent B stays up throughout; agent A is the one killed.
    await startTracked(name, 2);
    let a = (await startTracked(name, 2)).proc;
    const pool = new http.Agent({ keepAlive: true, maxSockets: CONCURRENCY });
    let done = false;
    let kills = 0;
    const chaos = (async () => {
      let lastKill = performance.now();
      // Bounded by the requests finishing (and at most 300 rounds).
      for (let round = 0; round < 300 && !done; round++) {
        const wait = lastKill + 1000 - performance.now();
        if (wait > 0) await new Promise((r) => setTimeout(r, wait));
        if (done) break;
        lastKill = performance.now();
        await a.stop("SIGKILL");
        kills++;
        a = await agentFor(agentArgs(relay.url, name, await relay.token(name), backend.url, ["--connections", "2"]));
        await a.waitForLine(/ up: /, 15_000);
      }
    })();
    let next = 0;
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        while (next < TOTAL) await fn(next++, pool);
      }),
    );
    done = true;
    await chaos;
    pool.destroy();
    return { kills };
  }

  it(`${TOTAL} GETs at concurrency ${CONCURRENCY}: every one succeeds`, async () => {
    backend.route("/chaos-get", (req, res) => {
      const body = `ok ${new URL(req.url!, "http://x").searchParams.get("i")}`;
      res.writeHead(200, { "content-type": "text/plain", "content-length": Buffer.byteLength(body) });
      res.end(body);
    });
    const failures: string[] = [];
    let ok = 0;
    const { kills } = await underChaos(async (i, pool) => {
      try {
        const reply = await send(relay.url, { path: `/r/${name}/chaos-get?i=${i}`, agent: pool });
        if (reply.status === 200 && reply.body.toString() === `ok ${i}`) ok++;
        else failures.push(`GET ${i}: ${reply.status} ${reply.body.toString().slice(0, 200)}`);
      } catch (err) {
        failures.push(`GET ${i}: ${(err as Error).message}`);
      }
    });
    expect(kills).toBeGreaterThanOrEqual(3);
    expect(failures).toEqual([]);
    expect(ok).toBe(TOTAL);
  }, 150_000);

  it(`${TOTAL} POSTs without Idempotency-Key: each reaches the backend at most once; every 200 exactly once`, async () => {
    const receipts = new Map<string, number>();
    backend.route("/chaos-post", async (req, res) => {
      const id = String(req.headers["x-req-id"]);
      receipts.set(id, (receipts.get(id) ?? 0) + 1);
      const { length } = await digestBody(req);
      const body = `got ${id} ${length}`;
      res.writeHead(200, { "content-type": "text/plain", "content-length": Buffer.byteLength(body) });
      res.end(body);
    });
    const outcomes = new Map<string, string>();
    const unexpected: string[] = [];
    const { kills } = await underChaos(async (i, pool) => {
      const id = `p${i}-${randomUUID().slice(0, 8)}`;
      const body = randomBytes(256 + (i % 16) * 64);
      try {
        const reply = await send(relay.url, {
          method: "POST",
          path: `/r/${name}/chaos-post`,
          headers: { "x-req-id": id },
          body,
          agent: pool,
        });
        if (reply.status === 200 && reply.body.toString() === `got ${id} ${body.length}`) outcomes.set(id, "ok");
        else if (reply.status === 502 && errorCode(reply) === "tunnel_lost") outcomes.set(id, "tunnel_lost");
        else unexpected.push(`POST ${id}: ${reply.status} ${reply.body.toString().slice(0, 200)}`);
      } catch (err) {
        unexpected.push(`POST ${id}: ${(err as Error).message}`);
      }
    });
    // A last request through the relay: a stray retry of any POST would have reached the backend first.
    expect((await send(relay.url, { path: `/r/${name}/echo?last=1` })).status).toBe(200);

    const twice = [...receipts].filter(([, n]) => n > 1);
    const okIds = [...outcomes].filter(([, o]) => o === "ok").map(([id]) => id);
    const lost = [...outcomes].filter(([, o]) => o === "tunnel_lost").map(([id]) => id);
    expect(kills).toBeGreaterThanOrEqual(3);
    expect(unexpected).toEqual([]);
    expect(twice).toEqual([]);
    expect(okIds.length + lost.length).toBe(TOTAL);
    for (const id of okIds) expect(receipts.get(id), id).toBe(1);
    expect([...receipts.keys()].every((id) => outcomes.has(id))).toBe(true);
  }, 150_000);
});
