// Count limits on the real relay with the real agent (docs/limits.md "Counts"): an agent asking
// for more tunnels than the backend may hold is told so, logs it, keeps the ones it got and
// serves through them.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { agentArgs, startAgent, type AgentProcess } from "../helpers/agent.ts";
import { startBackend, type Backend } from "../helpers/backend.ts";
import { RELAY_RUNTIMES, startRelay, type RelayHandle } from "../helpers/relay.ts";

let relay: RelayHandle;
let backend: Backend;
let agent: AgentProcess | undefined;

describe.each(RELAY_RUNTIMES)("on %s", (runtime) => {
  beforeAll(async () => {
    [relay, backend] = await Promise.all([startRelay({ runtime, vars: { RELAY_MAX_TUNNELS: "2" } }), startBackend()]);
    backend.route("/limits", (_req, res) => void res.end("through"));
  });

  afterAll(async () => {
    await agent?.stop();
    await Promise.all([relay?.stop(), backend?.stop()]);
  });

  describe("tunnels per backend", () => {
    it("refuses the third tunnel with 429 too_many_tunnels, which the agent logs while the two it got serve", async () => {
      const name = "limits-tunnels";
      agent = await startAgent(agentArgs(relay.url, name, await relay.token(name), backend.url, ["--connections", "3"]));
      const refused = await agent.waitForLine(/too_many_tunnels/, 30_000);
      expect(refused).toMatch(/429/);
      expect(refused).toMatch(/RELAY_MAX_TUNNELS/);
      await agent.waitForLine(/tunnels=2\/3/, 30_000);
      const resp = await fetch(`${relay.url}/r/${name}/limits`);
      expect(resp.status).toBe(200);
      expect(await resp.text()).toBe("through");
      expect(agent.proc.exitCode).toBeNull();
      expect(agent.lines.filter((l) => /tunnel \d+ up/.test(l))).toHaveLength(2);
    });
  });
});
