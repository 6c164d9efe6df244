// One agent process, many backends, from one YAML --config file: 50 backends each answering its
// own name; one file mixing http (path rules, stripPrefix, header rewrites), tcp, bridge+tcp and
// hbone rules; the agent's 404 for a path no rule takes; validate and ingress match.
import { execFile } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import http from "node:http";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mintToken, verifyToken } from "../../src/auth.ts";
import { BIN, startAgent, type AgentProcess } from "../helpers/agent.ts";
import { startBackend, type Backend } from "../helpers/backend.ts";
import { closedPort, tcpServer, type TestServer } from "../helpers/bridge.ts";
import { makePki, type Pki } from "../helpers/certs.ts";
import { startHboneServer, type HboneServer } from "../helpers/hbone-server.ts";
import { startRelay, type RelayHandle } from "../helpers/relay.ts";

const run = promisify(execFile);
let relay: RelayHandle;
const agents: AgentProcess[] = [];
const closers: Array<() => Promise<unknown> | unknown> = [];
const dir = mkdtempSync(join(tmpdir(), "edge-relay-ingress-"));

beforeAll(async () => {
  // A copy of src/: the tree may change while this runs, and wrangler would reload the Worker.
  relay = await startRelay({ snapshot: true });
});

afterAll(async () => {
  await Promise.all(agents.map((a) => a.stop()));
  for (const close of closers) await close();
  await relay?.stop();
});

/** Writes a config file and starts one agent process on it; resolves once every backend has `connections` tunnels. */
async function agentFor(name: string, yaml: string, backends: string[], connections = 1): Promise<{ agent: AgentProcess; file: string }> {
  const file = join(dir, `${name}.yaml`);
  writeFileSync(file, yaml);
  const agent = await startAgent(["agent", "--config", file], { env: { EDGE_RELAY_TOKEN: await mintToken(relay.secret, backends) } });
  agents.push(agent);
  await Promise.all(
    backends.map((b) => agent.waitForLine(new RegExp(`up: .* backend=${b} tunnels=${connections}/${connections}$`), 60_000)),
  );
  return { agent, file };
}

/** An HTTP server answering every request with its name. */
async function namedServer(name: string): Promise<number> {
  const server = http.createServer((_req, res) => res.end(name));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  closers.push(() => new Promise((resolve) => server.close(resolve)));
  return (server.address() as net.AddressInfo).port;
}

describe("one agent process, 50 backends", () => {
  it("keeps a tunnel for each and each answers its own name through the relay", async () => {
    const names = Array.from({ length: 50 }, (_, i) => `svc-${i + 1}`);
    const ports = await Promise.all(names.map(namedServer));
    const rules = names.map((name, i) => `  - backend: ${name}\n    service: http://127.0.0.1:${ports[i]}\n`).join("");
    const { agent } = await agentFor(
      "fifty",
      `relay: ${relay.url}\ntoken: \${EDGE_RELAY_TOKEN}\nconnections: 1\ningress:\n${rules}`,
      names,
    );
    const answers = await Promise.all(names.map(async (name) => (await fetch(`${relay.url}/r/${name}/`)).text()));
    expect(answers).toEqual(names);
    expect(new Set(agent.lines.filter((l) => / up: /.test(l)).map((l) => /backend=(\S+)/.exec(l)![1])).size).toBe(50);
  }, 120_000);
});

describe("a backend whose target is down", () => {
  it("answers 502 origin_unreachable while the other backends of the same agent answer", async () => {
    const [port] = await Promise.all([namedServer("healthy")]);
    const closed = await closedPort();
    const yaml = `relay: ${relay.url}\ntoken: \${EDGE_RELAY_TOKEN}\nconnections: 1\ningress:\n  - backend: healthy\n    service: http://127.0.0.1:${port}\n  - backend: broken\n    service: http://127.0.0.1:${closed}\n`;
    const { agent } = await agentFor("isolation", yaml, ["healthy", "broken"]);
    for (let i = 0; i < 5; i++) {
      const broken = await fetch(`${relay.url}/r/broken/`);
      expect(broken.status).toBe(502);
      expect(await broken.json()).toMatchObject({ error: "origin_unreachable", backend: "broken" });
      expect(await (await fetch(`${relay.url}/r/healthy/`)).text()).toBe("healthy");
    }
    expect(agent.lines.filter((l) => / down: /.test(l))).toEqual([]);
  }, 60_000);
});

describe("a token for several backends", () => {
  it("is minted by `edge-relay token` with every name, and verifies for those", async () => {
    const { stdout } = await run(process.execPath, [BIN, "token", "shop", "cache", "mesh", "--ttl", "30d"], {
      env: { ...process.env, RELAY_SECRET: relay.secret },
    });
    const verdict = await verifyToken(relay.secret, stdout.trim());
    expect(verdict).toMatchObject({ ok: true, backend: "shop", backends: ["shop", "cache", "mesh"], scope: "agent" });
    const bad = await run(process.execPath, [BIN, "token", "shop", "Bad_Name"], {
      env: { ...process.env, RELAY_SECRET: relay.secret },
    }).catch((err: { code: number; stderr: string }) => err);
    expect(bad).toMatchObject({
      code: 2,
      stderr:
        'edge-relay: "Bad_Name" is not a valid backend name; use 1 to 63 lowercase letters, digits or hyphens, starting and ending with a letter or digit.\n',
    });
  });

  it("is accepted at the relay for exactly its backends, each named with ?backend=", async () => {
    const token = await mintToken(relay.secret, ["shop", "cache"]);
    const connect = (query: string) => fetch(`${relay.url}/_relay/connect${query}`, { headers: { authorization: `Bearer ${token}` } });
    // Past the token checks, a plain GET meets the upgrade check: the backend was accepted.
    expect((await connect("?backend=cache")).status).toBe(426);
    expect((await connect("?backend=shop")).status).toBe(426);
    const other = await connect("?backend=blog");
    expect(other.status).toBe(403);
    expect(await other.json()).toEqual({
      error: "token_backend_mismatch",
      message: 'The token is for backends "shop", "cache", not "blog".',
      backend: "blog",
    });
    const unnamed = await connect("");
    expect(unnamed.status).toBe(403);
    expect(await unnamed.json()).toMatchObject({
      error: "token_backend_mismatch",
      message: "The token is for several backends: name one with ?backend=<name>.",
    });
  });
});

describe("one file mixing http, tcp, bridge+tcp and hbone rules", () => {
  let backend: Backend;
  let echo: TestServer;
  let upper: TestServer;
  let hbone: HboneServer;
  let pki: Pki;
  let file = "";

  beforeAll(async () => {
    pki = makePki();
    backend = await startBackend();
    backend.route("/cookies", (_req, res) => {
      res.setHeader("set-cookie", ["a=1", "b=2", "c=3"]);
      res.setHeader("x-internal", "secret-ish");
      res.setHeader("x-powered-by", "test");
      res.end("ok");
    });
    echo = await tcpServer((socket) => socket.pipe(socket));
    upper = await tcpServer((socket) => socket.on("data", (d: Buffer) => socket.write(d.toString().toUpperCase())));
    hbone = await startHboneServer(pki);
    closers.push(
      () => backend.stop(),
      () => echo.close(),
      () => upper.close(),
      () => hbone.stop(),
    );
    const yaml = `relay: ${relay.url}
token: \${EDGE_RELAY_TOKEN}
connections: 1
ingress:
  - backend: shop
    path: /api/
    stripPrefix: true
    service: http://127.0.0.1:${backend.port}
    headers:
      request:  { set: { x-env: prod, x-tag: [one, two] }, remove: [x-debug] }
      response: { set: { strict-transport-security: max-age=63072000 }, remove: [x-internal] }
  - backend: shop
    path: /static
    service: http://127.0.0.1:${backend.port}
  - backend: shop
    service: http://127.0.0.1:${backend.port}
    originRequest: { preserveHost: true, connectTimeout: 5s }
  - backend: cache
    service: tcp://127.0.0.1:${echo.port}
  - backend: queue
    service: bridge+tcp://127.0.0.1:${upper.port}
    bridge: { plugin: raw, idle: 200ms }
  - backend: mesh
    service: hbone://127.0.0.1:${backend.port}
    hbone: { proxy: 127.0.0.1:${hbone.port}, cert: ${pki.files.clientCert}, key: ${pki.files.clientKey}, ca: ${pki.files.ca} }
  - backend: docs
    path: /guide
    service: http://127.0.0.1:${backend.port}
`;
    ({ file } = await agentFor("mixed", yaml, ["shop", "cache", "queue", "mesh", "docs"]));
  }, 90_000);

  type Echo = { url: string; rawHeaders: string[] };
  /** The values of every field named `name` the target received, in order. */
  const headersOf = (echoed: Echo, name: string) =>
    echoed.rawHeaders.flatMap((v, i, all) => (i % 2 === 0 && v.toLowerCase() === name ? [all[i + 1]] : []));

  it("strips the path prefix and rewrites the request's headers, keeping repeated ones in order", async () => {
    const res = await fetch(`${relay.url}/r/shop/api/v1/orders?q=1`, {
      headers: [
        ["x-debug", "1"],
        ["x-env", "dev"],
        ["x-keep", "k1"],
        ["x-keep", "k2"],
      ],
    });
    expect(res.status).toBe(200);
    const echoed = (await res.json()) as Echo;
    expect(echoed.url).toBe("/v1/orders?q=1");
    expect(headersOf(echoed, "x-env")).toEqual(["prod"]);
    expect(headersOf(echoed, "x-tag")).toEqual(["one", "two"]);
    expect(headersOf(echoed, "x-debug")).toEqual([]);
    expect(headersOf(echoed, "x-keep").flatMap((v) => v.split(/,\s*/))).toEqual(["k1", "k2"]);
  });

  it("rewrites the response's headers and keeps repeated Set-Cookie fields in order", async () => {
    const res = await fetch(`${relay.url}/r/shop/api/cookies`);
    expect(await res.text()).toBe("ok");
    expect(res.headers.getSetCookie()).toEqual(["a=1", "b=2", "c=3"]);
    expect(res.headers.get("strict-transport-security")).toBe("max-age=63072000");
    expect(res.headers.get("x-internal")).toBeNull();
    expect(res.headers.get("x-powered-by")).toBe("test");
  });

  it("sends a path without the prefix rule as it came, and leaves other rules' headers alone", async () => {
    const statics = (await (await fetch(`${relay.url}/r/shop/static/app.css`, { headers: { "x-debug": "1" } })).json()) as Echo;
    expect(statics.url).toBe("/static/app.css");
    expect(headersOf(statics, "x-debug")).toEqual(["1"]);
    const rest = await fetch(`${relay.url}/r/shop/apix`);
    expect(((await rest.json()) as Echo).url).toBe("/apix");
    expect(rest.headers.get("strict-transport-security")).toBeNull();
    const cookies = await fetch(`${relay.url}/r/shop/cookies`);
    expect(cookies.headers.get("x-internal")).toBe("secret-ish");
  });

  it("answers a path no rule of the backend takes with the agent's JSON 404", async () => {
    const res = await fetch(`${relay.url}/r/docs/blog/post?x=1`, { method: "POST", body: "ignored" });
    expect(res.status).toBe(404);
    expect(await res.json()).toEqual({
      error: "no_ingress_rule",
      message: 'No ingress rule of backend "docs" takes /blog/post; add a rule for it or a catch-all.',
      backend: "docs",
    });
    const guide = await fetch(`${relay.url}/r/docs/guide/intro`);
    expect(((await guide.json()) as Echo).url).toBe("/guide/intro");
  });

  it("carries raw TCP for the tcp:// rule", async () => {
    const connect = await startAgent(["connect", relay.url, "--backend", "cache", "--listen", "127.0.0.1:0"]);
    agents.push(connect);
    const port = Number(/127\.0\.0\.1:(\d+)/.exec(await connect.waitForLine(/listening on 127\.0\.0\.1:\d+/))![1]);
    const socket = net.connect({ host: "127.0.0.1", port });
    const got = new Promise<string>((resolve) => {
      let text = "";
      socket.on("data", (d: Buffer) => {
        text += d.toString();
        if (text.length >= 9) resolve(text);
      });
    });
    socket.write("ping-pong");
    expect(await got).toBe("ping-pong");
    socket.destroy();
  });

  it("bridges HTTP to TCP for the bridge+tcp:// rule", async () => {
    const res = await fetch(`${relay.url}/r/queue/`, { method: "POST", body: "hello bridge" });
    expect(res.status).toBe(200);
    expect(await res.text()).toBe("HELLO BRIDGE");
  });

  it("reaches the mesh workload for the hbone:// rule", async () => {
    const res = await fetch(`${relay.url}/r/mesh/echo?via=hbone`);
    expect(res.status).toBe(200);
    expect(((await res.json()) as Echo).url).toBe("/echo?via=hbone");
    expect(hbone.connects.at(-1)!.authority).toBe(`127.0.0.1:${backend.port}`);
  });

  it("prints the resolved rules with validate, and the rule a request takes with ingress match", async () => {
    const env = { ...process.env, EDGE_RELAY_TOKEN: await mintToken(relay.secret, ["shop", "cache", "queue", "mesh", "docs"]) };
    const { stdout } = await run(process.execPath, [BIN, "validate", "--config", file], { env });
    expect(stdout.split("\n")[0]).toBe(
      `${file}: ok, 7 rules for 5 backends (shop, cache, queue, mesh, docs), relay ${relay.url.replace(/^http/, "ws")}/_relay/connect, 1 tunnel each`,
    );
    expect(stdout).toContain(
      `ingress[0]: backend shop, path /api (stripped), -> http://127.0.0.1:${backend.port} [request set x-env, x-tag; request remove x-debug; response set strict-transport-security; response remove x-internal]`,
    );
    expect(stdout).not.toContain(env.EDGE_RELAY_TOKEN);
    const match = await run(process.execPath, [BIN, "ingress", "match", "--config", file, "shop", "/api/v1/x"], { env });
    expect(match.stdout).toMatch(/^ingress\[0\]: backend shop, path \/api \(stripped\).*\n {2}the target sees \/v1\/x\n$/);
    const none = await run(process.execPath, [BIN, "ingress", "match", "--config", file, "docs", "/blog"], { env }).catch(
      (err: { code: number; stdout: string }) => err,
    );
    expect(none).toMatchObject({
      code: 1,
      stdout:
        'no rule: the agent answers 404 no_ingress_rule: No ingress rule of backend "docs" takes /blog; add a rule for it or a catch-all.\n',
    });
  });
});
