// The backend directory inside workerd: whole-count reports ordered by their stamp, kept current
// by the backends' objects on connect and close, and never double counted by an object rebuilt
// after an eviction.
import { evictDurableObject } from "cloudflare:test";
import { env, exports } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { backendDirectory } from "../../src/observe/directory.ts";
import { BASE, backendName, closeAgent, readyAgent, stubFor, within } from "../helpers/hub-agent.ts";
import { until } from "../helpers/wait.ts";

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

  it("hears of connects and closes from the backend's object, and a rebuilt object does not count twice", async () => {
    const name = backendName();
    const a = await readyAgent(name);
    const b = await readyAgent(name);
    await until(() => listed(name), "the connects to reach the directory");

    // Rebuilt after eviction: the listing has the object count again, the same two.
    await within(evictDurableObject(stubFor(name)), "the eviction", 10_000);
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
