// The agent process's life end to end: what it prints, a relay that is down or goes away,
// SIGTERM/SIGINT with a graceful drain, and bad command lines. Real relay, agent and backend.
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { mintToken } from "../../src/auth.ts";
import { agentArgs, BIN, startAgent, type AgentProcess } from "../helpers/agent.ts";
import { startBackend, type Backend } from "../helpers/backend.ts";
import { rawRequest } from "../helpers/client.ts";
import { startRelay, type RelayHandle } from "../helpers/relay.ts";
import { freePort } from "../helpers/ports.ts";
import { within } from "../helpers/wait.ts";

let relay: RelayHandle;
let backend: Backend;
/** Agents and relays a test started; stopped after it, whatever happened. */
let agents: AgentProcess[] = [];
let relays: RelayHandle[] = [];

beforeAll(async () => {
  [relay, backend] = await Promise.all([startRelay(), startBackend()]);
});

afterEach(async () => {
  await Promise.all(agents.map((a) => a.stop()));
  await Promise.all(relays.map((r) => r.stop()));
  agents = [];
  relays = [];
});

afterAll(async () => {
  await Promise.all([relay?.stop(), backend?.stop()]);
});

async function agentFor(args: string[], opts: Parameters<typeof startAgent>[1] = {}): Promise<AgentProcess> {
  const started = startAgent(args, opts);
  // Registered before waiting, so a failed wait still stops the process.
  void started.then(
    (a) => agents.push(a),
    () => {},
  );
  return started;
}

const alive = (a: AgentProcess) => a.proc.exitCode === null && a.proc.signalCode === null;
const upLines = (a: AgentProcess) => a.lines.filter((l) => / up: /.test(l));

/** No line the agent printed holds the token or its signature. */
function expectNoToken(a: AgentProcess, token: string): void {
  const signature = token.split(".")[2];
  for (const line of a.lines) {
    expect(line).not.toContain(token);
    expect(line).not.toContain(signature);
  }
}

/** Resolves once the process exited (it may have already). */
function exited(a: AgentProcess): Promise<number | null> {
  if (!alive(a)) return Promise.resolve(a.proc.exitCode);
  return new Promise((resolve) => a.proc.once("exit", (code) => resolve(code)));
}

async function expectServed(base: string, name: string, tag: string): Promise<void> {
  const res = await rawRequest(base, { path: `/r/${name}/echo?${tag}` });
  expect(res.status).toBe(200);
  expect(JSON.parse(res.body.toString()).url).toBe(`/echo?${tag}`);
}

async function expectNoAgent(base: string, name: string): Promise<void> {
  const res = await rawRequest(base, { path: `/r/${name}/echo` });
  expect(res.status).toBe(502);
  expect(JSON.parse(res.body.toString())).toMatchObject({ error: "no_agent", backend: name });
}

describe("what the agent prints", () => {
  it("one up line for its tunnel, with relay, backend and count, and never the token", async () => {
    const token = await relay.token("lines");
    const agent = await agentFor(agentArgs(relay.url, "lines", token, backend.url, ["--connections", "1"]), { waitUp: 1 });
    await expectServed(relay.url, "lines", "a=1");
    await expectServed(relay.url, "lines", "a=2");
    const ups = upLines(agent);
    expect(ups).toHaveLength(1);
    expect(ups[0]).toMatch(
      new RegExp(`^edge-relay: tunnel 1 up: relay=(ws|http)://127\\.0\\.0\\.1:${relay.port} backend=lines tunnels=1/1$`),
    );
    expect(await agent.stop()).toBe(0);
    expect(agent.lines.some((l) => /stopped/.test(l))).toBe(true);
    expectNoToken(agent, token);
  });

  it("one up line per tunnel with --connections 3", async () => {
    const token = await relay.token("lines3");
    const agent = await agentFor(agentArgs(relay.url, "lines3", token, backend.url, ["--connections", "3"]), { waitUp: 3 });
    await Promise.all([1, 2, 3, 4, 5, 6].map((i) => expectServed(relay.url, "lines3", `i=${i}`)));
    const ups = upLines(agent);
    expect(ups).toHaveLength(3);
    const slots = ups.map((l) => /tunnel (\d+) up: relay=\S+ backend=lines3 tunnels=\d\/3$/.exec(l)?.[1]).sort();
    expect(slots).toEqual(["1", "2", "3"]);
    // The counts run 1/3, 2/3, 3/3 in the order the tunnels came up.
    expect(ups.map((l) => /tunnels=(\d)\/3$/.exec(l)?.[1])).toEqual(["1", "2", "3"]);
    expect(await agent.stop()).toBe(0);
    expectNoToken(agent, token);
  });
});

describe("relay availability", () => {
  it("a relay that is down at start is not fatal: the agent retries until it comes up", async () => {
    const port = await freePort();
    const secret = randomBytes(32).toString("hex");
    const token = await mintToken(secret, "early");
    const agent = await agentFor(agentArgs(`http://127.0.0.1:${port}`, "early", token, backend.url, ["--connections", "1"]));
    const failure = await agent.waitForLine(/tunnel 1 cannot connect: .*retrying/, 20_000);
    expect(failure).toMatch(/ECONNREFUSED/);
    expect(alive(agent)).toBe(true);

    const late = await startRelay({ port, secret });
    relays.push(late);
    expect(late.port).toBe(port);
    const up = await agent.waitForLine(/tunnel 1 up: .* tunnels=1\/1$/, 45_000);
    expect(up).toContain(`backend=early`);
    await expectServed(late.url, "early", "late=1");
    expect(upLines(agent)).toHaveLength(1);
    expectNoToken(agent, token);
  });

  it("a relay that goes away: the agent prints a down line, stays alive and reconnects when it is back", async () => {
    const secret = randomBytes(32).toString("hex");
    const first = await startRelay({ secret });
    relays.push(first);
    const { port } = first;
    const token = await mintToken(secret, "comeback");
    const agent = await agentFor(agentArgs(first.url, "comeback", token, backend.url, ["--connections", "1"]), { waitUp: 1 });
    await expectServed(first.url, "comeback", "before=1");

    const mark = agent.lines.length;
    await first.stop();
    relays = relays.filter((r) => r !== first);
    const down = await agent.waitForLine(/tunnel 1 down: /, 20_000, mark);
    expect(down).toMatch(new RegExp(`tunnel 1 down: relay=\\S+:${port} backend=comeback code=\\d+.* tunnels=0/1$`));
    expect(alive(agent)).toBe(true);

    const again = await startRelay({ port, secret });
    relays.push(again);
    await agent.waitForLine(/tunnel 1 up: .* tunnels=1\/1$/, 45_000, mark);
    expect(alive(agent)).toBe(true);
    await expectServed(again.url, "comeback", "after=1");
    expect(upLines(agent)).toHaveLength(2);
    expectNoToken(agent, token);
  });
});

describe("signals", () => {
  it.each(["SIGTERM", "SIGINT"] as const)("%s: exits 0 promptly, and the relay then answers no_agent", async (signal) => {
    const name = `sig-${signal.toLowerCase()}`;
    const agent = await agentFor(agentArgs(relay.url, name, await relay.token(name), backend.url), { waitUp: 1 });
    await expectServed(relay.url, name, "before=1");
    // Idle: nothing to drain, so no grace period to wait out.
    const code = await within(agent.stop(signal), "the agent to exit", 10_000);
    expect(code).toBe(0);
    expect(agent.lines.some((l) => /stopped/.test(l))).toBe(true);
    await expectNoAgent(relay.url, name);
  });

  it("SIGTERM lets a request in flight finish (graceful drain)", async () => {
    const name = "drain";
    let arrived!: () => void;
    const arrivedP = new Promise<void>((resolve) => (arrived = resolve));
    let answered = false;
    backend.route("/slow", (_req, res) => {
      arrived();
      res.on("finish", () => (answered = true));
      // The backend takes about a second to answer.
      setTimeout(() => res.end("slow answer"), 1000);
    });
    const agent = await agentFor(agentArgs(relay.url, name, await relay.token(name), backend.url), { waitUp: 1 });
    /** Whether the backend had answered when the agent process ended. */
    let answeredAtExit: boolean | undefined;
    const exit = exited(agent).then((code) => {
      answeredAtExit = answered;
      return code;
    });
    const request = rawRequest(relay.url, { path: `/r/${name}/slow` });
    await within(arrivedP, "the slow request to reach the backend", 10_000);
    agent.proc.kill("SIGTERM");

    const res = await within(request, "the slow response", 15_000);
    expect(res.status).toBe(200);
    expect(res.body.toString()).toBe("slow answer");
    expect(await within(exit, "the agent to exit", 15_000)).toBe(0);
    // The agent waited for the answer before it went.
    expect(answeredAtExit).toBe(true);
    await expectNoAgent(relay.url, name);
  });
});

describe("bad command lines", () => {
  /** Runs `edge-relay <args>` to its end. */
  function run(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
    return new Promise((resolve) => {
      const child = execFile(process.execPath, [BIN, ...args], { timeout: 20_000, encoding: "utf8" }, (_err, stdout, stderr) =>
        resolve({ code: child.exitCode, stdout, stderr }),
      );
    });
  }

  it("without --to: exit 2 naming --to", async () => {
    const token = await mintToken("any-secret", "cli");
    const { code, stdout, stderr } = await run(["agent", "--relay", relay.url, "--backend", "cli", "--token", token]);
    expect(code).toBe(2);
    expect(stderr).toMatch(/^edge-relay: .*--to/);
    expect(stdout + stderr).not.toContain(token);
  });

  it("--to ftp://x: exit 2 naming the flag", async () => {
    const token = await mintToken("any-secret", "cli");
    const { code, stdout, stderr } = await run(["agent", "--relay", relay.url, "--backend", "cli", "--token", token, "--to", "ftp://x"]);
    expect(code).toBe(2);
    expect(stderr).toMatch(/^edge-relay: .*--to/);
    expect(stderr).toContain("ftp://x");
    expect(stdout + stderr).not.toContain(token);
  });
});
