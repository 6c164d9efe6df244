// Memory of an agent with the inspector on: its ring is bounded (500 requests), so 20,000 requests
// with bodies leave the agent holding no more than it held with a full ring (issue 17: "stays
// within 64 MiB of growth").
//
// What is measured is memory kept: V8's heap in use and the Buffers outside it, and the resident
// size, each read inside the agent right after a full garbage collection (through V8's inspector
// protocol, Node's --inspect), before and after the load. The resident peak during the load is
// printed but not bounded: it is V8's choice of when to collect garbage, not memory kept. It read
// 25-34 MiB over the baseline on an idle machine and 108 MiB in a CI run sharing its two cores
// with other suites (why V8 collected later there was not traced). A ring that never drops an
// entry keeps 114 MiB more after collection (resident +127 MiB), and fails both bounds.
import http from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startInspectedAgent, type InspectedAgent } from "../helpers/inspected-agent.ts";
import { inspectProcess, sampleRss } from "../helpers/memory.ts";

/** Growth of the resident size, after collection. */
const BOUND_MiB = 64;
/** Growth of the heap in use plus Buffers, after collection: the ring was full before the load too. */
const KEPT_BOUND_MiB = 16;
const REQUESTS = 20_000;
let setup: InspectedAgent;

beforeAll(async () => {
  setup = await startInspectedAgent([], "inspected-mem", ["--inspect=127.0.0.1:0"]);
}, 120_000);

afterAll(async () => {
  await setup?.stop();
});

/** POSTs `count` requests with a 2 KiB body, `concurrency` at a time over kept-alive connections. */
async function load(count: number, concurrency: number): Promise<number> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
  const url = new URL(setup.relay.url);
  const body = Buffer.alloc(2048, "a");
  let next = 0;
  let ok = 0;
  const one = () =>
    new Promise<void>((resolve, reject) => {
      const req = http.request(
        {
          host: url.hostname,
          port: url.port,
          method: "POST",
          path: `/r/${setup.name}/echo?n=${next}`,
          agent,
          headers: { "content-type": "text/plain", "content-length": body.length },
        },
        (res) => {
          if (res.statusCode === 200) ok++;
          res.resume();
          res.on("end", resolve);
        },
      );
      req.on("error", reject);
      req.end(body);
    });
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < count) {
        next++;
        await one();
      }
    }),
  );
  agent.destroy();
  return ok;
}

describe("an agent with --inspect", () => {
  it(`keeps less than ${KEPT_BOUND_MiB} MiB more, and grows by less than ${BOUND_MiB} MiB, over ${REQUESTS} requests`, async () => {
    const line = await setup.agent.waitForLine(/Debugger listening on ws:\/\//);
    const v8 = await inspectProcess(/(ws:\/\/\S+)/.exec(line)![1]);
    try {
      // Fill the ring once, so the baseline holds a full one.
      expect(await load(1000, 16)).toBe(1000);
      const before = await v8.retained();
      const sampler = sampleRss([setup.agent.proc.pid!]);
      expect(await load(REQUESTS, 32)).toBe(REQUESTS);
      const [{ growthMiB: peakGrowthMiB }] = sampler.stop();
      const after = await v8.retained();
      const kept = after.heapUsedMiB + after.externalMiB - (before.heapUsedMiB + before.externalMiB);
      console.log(
        `agent with --inspect over ${REQUESTS} requests: kept ${kept.toFixed(1)} MiB more (heap ${before.heapUsedMiB} -> ${after.heapUsedMiB}, ` +
          `Buffers ${before.externalMiB} -> ${after.externalMiB}), resident ${before.rssMiB} -> ${after.rssMiB} MiB after collection, ` +
          `peak ${peakGrowthMiB} MiB over the baseline during the load`,
      );
      expect(kept).toBeLessThan(KEPT_BOUND_MiB);
      expect(after.rssMiB - before.rssMiB).toBeLessThan(BOUND_MiB);
    } finally {
      v8.close();
    }
    const entries = ((await (await fetch(`${setup.inspector}/api/requests`)).json()) as { requests: unknown[] }).requests;
    expect(entries).toHaveLength(500);
  }, 300_000);
});
