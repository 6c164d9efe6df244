// The agent's structured log end to end: --log-format json lines parse one by one and carry the
// ids; a request's credentials and the agent's token never reach any line, in either format.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { agentArgs, startAgent } from "../helpers/agent.ts";
import { startBackend, type Backend } from "../helpers/backend.ts";
import { rawRequest } from "../helpers/client.ts";
import { startRelay, type RelayHandle } from "../helpers/relay.ts";
import { until } from "../helpers/wait.ts";

let relay: RelayHandle;
let backend: Backend;
const NAME = "logs";
const AUTH = "Bearer auth-secret-5f1e9c2a7b";
const COOKIE_VALUE = "cookie-secret-83d0a6e4";
const QUERY_TOKEN = "query-token-secret-c41b7e";
const TRACE = "4bf92f3577b34da6a3ce929d0e0e4736";

beforeAll(async () => {
  [relay, backend] = await Promise.all([startRelay(), startBackend()]);
});

afterAll(async () => {
  await Promise.all([relay?.stop(), backend?.stop()]);
});

/** Runs an agent with `extra` flags, sends one request carrying credentials, stops it; returns every line. */
async function linesAround(extra: string[]): Promise<{ lines: string[]; token: string }> {
  const token = await relay.token(NAME);
  // Below info there is no "tunnel up" line to wait on: the first answered request says it.
  const quiet = extra.includes("warn");
  const agent = await startAgent(agentArgs(relay.url, NAME, token, backend.url, extra), quiet ? {} : { waitUp: 2 });
  if (quiet) await until(async () => (await rawRequest(relay.url, { path: `/r/${NAME}/status?code=204` })).status === 204, "a tunnel up");
  const res = await rawRequest(relay.url, {
    method: "POST",
    path: `/r/${NAME}/echo?token=${QUERY_TOKEN}&x=1`,
    headers: [
      ["authorization", AUTH],
      ["cookie", `session=${COOKIE_VALUE}; theme=dark`],
      ["x-relay-access-token", token],
      ["traceparent", `00-${TRACE}-00f067aa0ba902b7-01`],
      ["content-type", "application/json"],
    ],
    body: JSON.stringify({ hello: "world" }),
  });
  expect(res.status).toBe(200);
  // The echo proves the credentials went through the agent.
  expect(res.body.toString()).toContain(COOKIE_VALUE);
  if (extra.includes("debug")) await agent.waitForLine(/POST \/echo 200/);
  expect(await agent.stop()).toBe(0);
  return { lines: agent.lines, token };
}

function expectNoSecrets(lines: string[], token: string): void {
  const all = lines.join("\n");
  for (const secret of [AUTH.split(" ")[1], COOKIE_VALUE, QUERY_TOKEN, token, token.split(".")[2]]) {
    expect(all).not.toContain(secret);
  }
}

describe("--log-format json", () => {
  it("writes one JSON object a line with time, level, backend, tunnel and request ids, and no secret", async () => {
    const { lines, token } = await linesAround(["--log-format", "json", "--log-level", "debug"]);
    const records = lines.filter((l) => l.trim() !== "").map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(records.length).toBeGreaterThanOrEqual(4);
    for (const r of records) {
      expect(Number.isNaN(Date.parse(String(r.time)))).toBe(false);
      expect(["debug", "info", "warn", "error"]).toContain(r.level);
      expect(typeof r.msg).toBe("string");
    }
    const ups = records.filter((r) => /tunnel \d up/.test(String(r.msg)));
    expect(ups).toHaveLength(2);
    for (const up of ups) {
      expect(up).toMatchObject({ level: "info", backend: NAME });
      expect(String(up.tunnel)).toMatch(/\S/);
    }
    const request = records.find((r) => r.method === "POST");
    expect(request).toMatchObject({ level: "debug", backend: NAME, path: "/echo", status: 200, trace: TRACE, target: backend.url });
    expect(ups.map((u) => u.tunnel)).toContain(request!.tunnel);
    expect(String(request!.request)).toMatch(/^[0-9a-z]+$/);
    expect(request!.bytesIn).toBe(JSON.stringify({ hello: "world" }).length);
    expect(request!.bytesOut).toBeGreaterThan(0);
    expect(records.at(-1)!.msg).toMatch(/^edge-relay: stopped/);
    expectNoSecrets(lines, token);
  });
});

describe("--log-format text", () => {
  it("keeps the sentences as they were, with a request line at debug and no secret", async () => {
    const { lines, token } = await linesAround(["--log-level", "debug"]);
    expect(lines.filter((l) => /^edge-relay: tunnel \d up: relay=\S+ backend=logs tunnels=\d\/2$/.test(l))).toHaveLength(2);
    expect(lines.some((l) => /^edge-relay: POST \/echo 200 \d+ms backend=logs$/.test(l))).toBe(true);
    expect(lines.every((l) => !l.startsWith("{"))).toBe(true);
    expectNoSecrets(lines, token);
  });

  it("--log-level warn leaves out the info lines", async () => {
    const { lines } = await linesAround(["--log-level", "warn"]);
    expect(lines.filter((l) => l.trim() !== "")).toEqual([]);
  });
});
