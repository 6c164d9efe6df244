// The backend directory and the backends' counters inside workerd: whole-count reports ordered by their stamp, kept current
// by the backends' objects on connect and close, and never double counted by an object rebuilt
// after an eviction; counts that outlive an eviction.
import { env, exports } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { backendDirectory } from "../../src/observe/directory.ts";
import type { HubView } from "../../src/observe/hub-view.ts";
import { askHub } from "../../src/hub-route.ts";
import { BASE, backendName, closeAgent, expectError, publicFetch, readyAgent, respond, stubFor } from "../helpers/hub-agent.ts";
import { until } from "../helpers/wait.ts";
import { EVICTION_MS, evicted } from "../helpers/eviction.ts";

const ADMIN = env.RELAY_ADMIN_TOKEN!;

/** The directory's count for `backend` as /_relay/metrics would see it: listed or not. */
async function listed(backend: string, recent = false): Promise<boolean> {
  return (await backendDirectory(env).backends(recent)).includes(backend);
}

describe("the backend directory", () => {
  it("keeps the newest whole count per backend: a late, older report changes nothing", async () => {
    const dir = backendDirectory(env);
    const name = backendName();
    await dir.report(name, 2, 100);
    await dir.report(name, 2, 101);
    expect(await listed(name)).toBe(true);
    await dir.report(name, 0, 102);
    expect(await listed(name)).toBe(false);
    expect(await listed(name, true)).toBe(true);
    await dir.report(name, 3, 90);
    expect(await listed(name)).toBe(false);
  });

  it("hears of connects and closes from the backend's object, and a rebuilt object does not count twice", {
    timeout: 20_000 + EVICTION_MS,
  }, async () => {
    const name = backendName();
    const a = await readyAgent(name);
    const b = await readyAgent(name);
    await until(() => listed(name), "the connects to reach the directory");

    // Rebuilt after eviction: the listing has the object count again, the same two.
    await evicted(stubFor(name));
    const res = await exports.default.fetch(`${BASE}/_relay/backends`, { headers: { authorization: `Bearer ${ADMIN}` } });
    const { backends } = (await res.json()) as { backends: Array<{ backend: string; tunnels: unknown[] }> };
    expect(backends.find((v) => v.backend === name)?.tunnels).toHaveLength(2);

    await closeAgent(a);
    expect(await listed(name)).toBe(true);
    await closeAgent(b);
    await until(async () => !(await listed(name)), "the last close to reach the directory");
    expect(await listed(name, true)).toBe(true);
  });
});

describe("a backend's counters", () => {
  it("count responses by status class and relay errors by code, and keep them across an eviction", {
    timeout: 20_000 + EVICTION_MS,
  }, async () => {
    const name = backendName();
    const observe = async () => (await (await askHub(env, BASE, { op: "observe", backend: name })).json()) as HubView;
    const agent = await readyAgent(name);
    for (const status of [200, 404, 204]) {
      const pending = publicFetch(name, "/");
      await respond((await agent.next()).stream, status);
      const res = await pending;
      expect(res.status).toBe(status);
      // Eviction waits on open bodies: read each to its end.
      await res.arrayBuffer();
    }
    await closeAgent(agent);
    await expectError(await publicFetch(name, "/"), 502, "no_agent", name);
    const before = await observe();
    expect(before.counters.requests).toEqual({ "2xx": 2, "4xx": 1, "5xx": 1 });
    expect(before.counters.errors).toEqual({ no_agent: 1 });
    expect(before.counters.bytes.fromAgent).toBeGreaterThan(0);
    expect(before.counters.bytes.toAgent).toBeGreaterThan(0);
    expect(before.tunnels).toEqual([]);

    await evicted(stubFor(name));
    await expectError(await publicFetch(name, "/"), 502, "no_agent", name);
    const after = await observe();
    expect(after.counters).toEqual({
      requests: { "2xx": 2, "4xx": 1, "5xx": 2 },
      errors: { no_agent: 2 },
      bytes: before.counters.bytes,
    });
  });
});
