// Access policies inside the Durable Object (workerd), the test playing the agent: the relay
// announces "access", keeps a tunnel's policies in storage so they hold after an eviction,
// drops them when the tunnel closes, and closes a tunnel whose policies are malformed.
import { runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import type { AccessScope } from "../../src/access/policy.ts";
import { accessKey } from "../../src/hub/tunnels.ts";
import {
  backendName,
  closeAgent,
  connectAgent,
  expectError,
  publicFetch,
  readyAgent,
  respond,
  stubFor,
  within,
} from "../helpers/hub-agent.ts";
import { EVICTION_MS, evicted } from "../helpers/eviction.ts";

const ONLY_TEST_NET: AccessScope[] = [{ policies: [{ ip: { allow: ["203.0.113.0/24"] } }] }];

describe("access policies in the Durable Object", () => {
  it("announces the access capability", async () => {
    const agent = await readyAgent(backendName());
    expect((await agent.relayHello).caps).toContain("access");
    await closeAgent(agent);
  });

  it("keeps a tunnel's policies in storage, enforces them after an eviction, and drops them with the tunnel", {
    timeout: 20_000 + EVICTION_MS,
  }, async () => {
    const backend = backendName();
    const stub = stubFor(backend);
    const agent = await readyAgent(backend, { access: ONLY_TEST_NET });
    const tunnelId = (await agent.relayHello).id;
    const admitted = async (path: string) => {
      const pending = publicFetch(backend, path, { headers: { "cf-connecting-ip": "203.0.113.5" } });
      await respond((await agent.next()).stream, 200, [], "ok");
      expect(await (await pending).text()).toBe("ok");
    };

    await expectError(
      await publicFetch(backend, "/before", { headers: { "cf-connecting-ip": "198.51.100.1" } }),
      403,
      "forbidden_ip",
      backend,
    );
    await admitted("/before");
    const stored = await runInDurableObject(stub, (_i, state) => state.storage.get<string>(accessKey(tunnelId)));
    expect(JSON.parse(stored!)).toEqual(ONLY_TEST_NET);

    await evicted(stub);
    await expectError(await publicFetch(backend, "/after"), 403, "forbidden_ip", backend);
    await admitted("/after");

    await closeAgent(agent);
    await within(
      (async () => {
        for (;;) {
          const left = await runInDurableObject(stub, (_i, state) => state.storage.get(accessKey(tunnelId)));
          if (left === undefined) return;
          await new Promise((r) => setTimeout(r, 50));
        }
      })(),
      "the policies to leave storage",
    );
  });

  it.each([
    [[{ policies: [{ ip: { allow: ["203.0.113.0/33"] } }] }], /access\[0\]\.policies\[0\]\.ip\.allow\[0\]/],
    [[{ policies: [{ basicAuth: { users: [{ name: "ann", passwordHash: "plain" }] } }] }], /passwordHash/],
    [[], /access must be a list of 1 to/],
    [[{ path: "api", policies: [] }], /access\[0\]\.path/],
  ])("closes a tunnel whose hello carries malformed policies %j with 4400", async (access, reason) => {
    const agent = await connectAgent(backendName(), { hello: { access: access as AccessScope[] } });
    const closed = await within(agent.closed, "the close");
    expect(closed.code).toBe(4400);
    expect(closed.reason).toMatch(reason);
  });
});
