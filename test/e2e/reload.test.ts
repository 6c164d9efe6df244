// Reloading the agent's --config file under load: a file change (--watch) adds a backend, removes
// one and changes a rule with zero failed requests on the backends that stay; the removed one
// finishes its in-flight request before it goes to 502 no_agent; a bad file and SIGHUP.
import { mkdtempSync, renameSync, writeFileSync } from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mintToken } from "../../src/auth.ts";
import { startAgent, type AgentProcess } from "../helpers/agent.ts";
import { startRelay, type RelayHandle } from "../helpers/relay.ts";

let relay: RelayHandle;
let agent: AgentProcess | undefined;
const servers: http.Server[] = [];
const dir = mkdtempSync(join(tmpdir(), "edge-relay-reload-"));
const file = join(dir, "edge-relay.yaml");
let token = "";

beforeAll(async () => {
  relay = await startRelay({ snapshot: true });
});

afterAll(async () => {
  await agent?.stop();
  for (const s of servers) s.closeAllConnections();
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  await relay?.stop();
});

/** An HTTP server answering its name; `/hold` answers only once `release` is called. */
async function server(name: string): Promise<{ port: number; held: Promise<void>; release: () => void }> {
  let release!: () => void;
  const released = new Promise<void>((r) => (release = r));
  let seen!: () => void;
  const held = new Promise<void>((r) => (seen = r));
  const s = http.createServer((req, res) => {
    if (req.url === "/hold") {
      seen();
      void released.then(() => res.end(`${name} held`));
      return;
    }
    res.end(name);
  });
  servers.push(s);
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  return { port: (s.address() as AddressInfo).port, held, release };
}

/** Replaces the file the way editors do: write a temporary file, rename it over. */
function writeConfig(rules: Array<[backend: string, port: number]>, connections = 2): void {
  const body = rules.map(([b, p]) => `  - backend: ${b}\n    service: http://127.0.0.1:${p}\n`).join("");
  writeFileSync(
    `${file}.tmp`,
    `relay: ${relay.url}\ntoken: \${EDGE_RELAY_TOKEN}\nconnections: ${connections}\ngracePeriod: 60s\ningress:\n${body}`,
  );
  renameSync(`${file}.tmp`, file);
}

describe("reload under load", () => {
  it("adds, removes and changes backends without a failed request on those that stay", async () => {
    const [a, a2, b, c, d] = await Promise.all(["a", "a2", "b", "c", "d"].map(server));
    writeConfig([
      ["alpha", a.port],
      ["beta", b.port],
      ["gamma", c.port],
    ]);
    token = await mintToken(relay.secret, ["alpha", "beta", "gamma", "delta"]);
    agent = await startAgent(["agent", "--config", file, "--watch"], { env: { EDGE_RELAY_TOKEN: token } });
    for (const name of ["alpha", "beta", "gamma"]) await agent.waitForLine(new RegExp(`up: .* backend=${name} tunnels=2/2$`));

    // The load: one loop per backend, each request checked.
    const results = new Map<string, { ok: number; failed: string[]; answers: string[] }>();
    let stop = false;
    const loop = async (backend: string, expect: (body: string, status: number) => boolean) => {
      const r = { ok: 0, failed: [] as string[], answers: [] as string[] };
      results.set(backend, r);
      while (!stop) {
        try {
          const res = await fetch(`${relay.url}/r/${backend}/`);
          const body = await res.text();
          if (expect(body, res.status)) r.ok++;
          else r.failed.push(`${res.status} ${body.slice(0, 120)}`);
          r.answers.push(body);
        } catch (err) {
          r.failed.push(String(err));
        }
      }
    };
    const loops = [
      loop("alpha", (body, status) => status === 200 && (body === "a" || body === "a2")),
      loop("gamma", (body, status) => status === 200 && body === "c"),
      loop("beta", (_body, status) => status === 200 || status === 502),
    ];
    const countsReach = async (n: number) => {
      while ([...results.values()].some((r) => r.ok < n)) await new Promise((r) => setTimeout(r, 20));
    };
    await countsReach(20);

    // One request in flight at beta while beta is removed.
    const heldResponse = fetch(`${relay.url}/r/beta/hold`).then(async (res) => ({ status: res.status, body: await res.text() }));
    await b.held;
    const mark = agent.lines.length;
    writeConfig([
      ["alpha", a2.port],
      ["gamma", c.port],
      ["delta", d.port],
    ]);
    await agent.waitForLine(/reloaded \(file changed\): rules=3 backends=3 added=delta removed=beta renewed=-$/, 20_000, mark);
    await agent.waitForLine(/up: .* backend=delta tunnels=2\/2$/, 20_000, mark);
    expect(await (await fetch(`${relay.url}/r/delta/`)).text()).toBe("d");
    expect(await (await fetch(`${relay.url}/r/alpha/`)).text()).toBe("a2");

    // beta drains: its held request is still in flight, so its tunnels stay open.
    expect(agent.lines.slice(mark).some((l) => /backend beta removed/.test(l))).toBe(false);
    const before = results.get("alpha")!.ok;
    while (results.get("alpha")!.ok < before + 20) await new Promise((r) => setTimeout(r, 20));
    expect(agent.lines.slice(mark).some((l) => /backend beta removed/.test(l))).toBe(false);
    b.release();
    expect(await heldResponse).toEqual({ status: 200, body: "b held" });
    await agent.waitForLine(/backend beta removed: its tunnels drained and closed/, 20_000, mark);
    const gone = await fetch(`${relay.url}/r/beta/`);
    expect(gone.status).toBe(502);
    expect(await gone.json()).toMatchObject({ error: "no_agent", backend: "beta" });

    stop = true;
    await Promise.all(loops);
    for (const name of ["alpha", "gamma"]) {
      expect(results.get(name)!.failed).toEqual([]);
      expect(results.get(name)!.ok).toBeGreaterThan(40);
    }
    // Once the new rule applied, alpha never went back to the old target.
    const answers = results.get("alpha")!.answers;
    expect(answers.slice(answers.indexOf("a2")).every((body) => body === "a2")).toBe(true);
  }, 120_000);

  it("keeps the running rules when the new file fails validation, and reloads on SIGHUP", async () => {
    const mark = agent!.lines.length;
    writeFileSync(file, `relay: ${relay.url}\ntoken: \${EDGE_RELAY_TOKEN}\ningress:\n  - backend: alpha\n    service: ftp://nope\n`);
    const failed = await agent!.waitForLine(/reload \(file changed\) failed, nothing changed: /, 20_000, mark);
    expect(failed).toContain(`${file}:5:5: ingress[0].service must be http://host:port`);
    expect(await (await fetch(`${relay.url}/r/delta/`)).text()).toBe("d");
    expect(await (await fetch(`${relay.url}/r/gamma/`)).text()).toBe("c");

    const [e] = await Promise.all(["e"].map(server));
    const hup = agent!.lines.length;
    // Written in place without --watch seeing a rename; the SIGHUP (or the watcher) reloads it.
    writeConfig([
      ["alpha", e.port],
      ["gamma", e.port],
    ]);
    agent!.proc.kill("SIGHUP");
    await agent!.waitForLine(/reloaded \((SIGHUP|file changed)\): rules=2 backends=2 added=- removed=delta renewed=-$/, 20_000, hup);
    expect(await (await fetch(`${relay.url}/r/alpha/`)).text()).toBe("e");
    expect(agent!.lines.join("\n")).not.toContain(token);
  }, 60_000);

  it("replaces a backend's tunnels, new ones first, when connections change, without a failed request", async () => {
    const [f] = await Promise.all(["f"].map(server));
    writeConfig([["alpha", f.port]]);
    await agent!.waitForLine(/reloaded \(file changed\): rules=1 backends=1 added=- removed=gamma renewed=-$/, 20_000);
    let stop = false;
    const failed: string[] = [];
    let ok = 0;
    const loop = (async () => {
      while (!stop) {
        const res = await fetch(`${relay.url}/r/alpha/`).catch((err: Error) => err);
        if (res instanceof Error) failed.push(res.message);
        else if (res.status === 200 && (await res.text()) === "f") ok++;
        else failed.push(`${res.status} ${await res.text()}`);
      }
    })();
    const mark = agent!.lines.length;
    writeConfig([["alpha", f.port]], 1);
    await agent!.waitForLine(/reloaded \(file changed\): rules=1 backends=1 added=- removed=- renewed=alpha$/, 20_000, mark);
    await agent!.waitForLine(/up: .* backend=alpha tunnels=1\/1$/, 20_000, mark);
    const after = ok;
    while (ok < after + 30) await new Promise((r) => setTimeout(r, 20));
    stop = true;
    await loop;
    expect(failed).toEqual([]);
  }, 60_000);
});
