// A relay, a backend and an agent with --inspect on, for the inspector's browser tests, its
// memory test and scripts/screenshot-inspector.ts, which shows the same page.
import { BIN, agentArgs, startAgent, type AgentProcess } from "./agent.ts";
import { startBackend, type Backend } from "./backend.ts";
import { rawRequest, type RawResponse } from "./client.ts";
import { startRelay, type RelayHandle } from "./relay.ts";

export interface InspectedAgent {
  relay: RelayHandle;
  backend: Backend;
  agent: AgentProcess;
  /** http://127.0.0.1:<port> of the inspector. */
  inspector: string;
  name: string;
  /** Sends a request through the relay to the backend: `path` after /r/<name>. */
  send(path: string, opts?: { method?: string; headers?: Array<[string, string]>; body?: string | Buffer }): Promise<RawResponse>;
  stop(): Promise<void>;
}

/** Starts the three with the inspector on a free loopback port; `extra` agent flags, `nodeFlags` Node's. */
export async function startInspectedAgent(extra: string[] = [], name = "inspected", nodeFlags: string[] = []): Promise<InspectedAgent> {
  const [relay, backend] = await Promise.all([startRelay({ snapshot: true }), startBackend()]);
  backend.route("/api/orders", async (req, res) => {
    let body = "";
    for await (const chunk of req) body += chunk;
    res.setHeader("content-type", "application/json");
    res.setHeader("set-cookie", "session=backend-session-secret; HttpOnly");
    res.end(JSON.stringify({ received: body ? JSON.parse(body) : null, id: 1042, status: "accepted" }));
  });
  const agent = await startAgent(
    agentArgs(relay.url, name, await relay.token(name), backend.url, ["--inspect", "127.0.0.1:0", "--connections", "1", ...extra]),
    { waitUp: 1, command: [process.execPath, ...nodeFlags, BIN] },
  );
  const line = await agent.waitForLine(/inspector on http:\/\/127\.0\.0\.1:\d+\//);
  const inspector = /(http:\/\/127\.0\.0\.1:\d+)\//.exec(line)![1];
  return {
    relay,
    backend,
    agent,
    inspector,
    name,
    send: (path, opts = {}) => rawRequest(relay.url, { path: `/r/${name}${path}`, ...opts }),
    async stop() {
      await agent.stop();
      await Promise.all([relay.stop(), backend.stop()]);
    },
  };
}
