// The packaged agent as a user gets it: `npm pack`, `npm install ./edge-relay-*.tgz` into an empty
// folder, then `npx edge-relay` under Node 20 and Node 22 against the real relay and a real backend.
import { execFile } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { delimiter, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { agentArgs, startAgent } from "../helpers/agent.ts";
import { startBackend, type Backend } from "../helpers/backend.ts";
import { startRelay, type RelayHandle } from "../helpers/relay.ts";
import { nodeRuntime } from "../helpers/tools.ts";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function run(command: string, args: string[], opts: { cwd: string; env?: NodeJS.ProcessEnv }): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      command,
      args,
      { cwd: opts.cwd, env: opts.env ?? process.env, timeout: 240_000, encoding: "utf8" },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === "number" ? error.code : 1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

let work: string;
let app: string;
let relay: RelayHandle;
let backend: Backend;

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), "edge-relay-package-"));
  const packed = await run("npm", ["pack", "--pack-destination", work], { cwd: ROOT });
  expect(packed.code, packed.stderr).toBe(0);
  const tarball = readdirSync(work).find((name) => /^edge-relay-.*\.tgz$/.test(name));
  expect(tarball, `npm pack wrote no tarball into ${work}`).toBeDefined();
  app = join(work, "app");
  mkdirSync(app);
  // The registry cannot be avoided (ws), so the local npm cache serves what it holds.
  const installed = await run("npm", ["install", "--prefer-offline", "--no-audit", "--no-fund", `../${tarball}`], { cwd: app });
  expect(installed.code, installed.stderr).toBe(0);
  [relay, backend] = await Promise.all([startRelay(), startBackend()]);
}, 300_000);

afterAll(async () => {
  await Promise.all([relay?.stop(), backend?.stop()]);
  if (work) rmSync(work, { recursive: true, force: true });
});

describe("the packed tarball", () => {
  it("holds the built agent, not its TypeScript, and depends on ws alone", () => {
    const manifest = JSON.parse(readFileSync(join(app, "node_modules/edge-relay/package.json"), "utf8")) as {
      bin: Record<string, string>;
      dependencies: Record<string, string>;
    };
    expect(manifest.bin["edge-relay"]).toMatch(/\.mjs$/);
    expect(Object.keys(manifest.dependencies)).toEqual(["ws"]);
    const installed = readdirSync(join(app, "node_modules")).filter((name) => !name.startsWith("."));
    expect(installed.sort()).toEqual(["edge-relay", "ws"]);
    const shipped = readdirSync(join(app, "node_modules/edge-relay"), { recursive: true }).map(String);
    expect(shipped.filter((file) => file.endsWith(".ts"))).toEqual([]);
  });
});

describe.each([20, 22])("under Node %i", (major) => {
  const runtime = nodeRuntime(major);
  const env = () => ({ ...process.env, PATH: `${dirname(runtime.path!)}${delimiter}${process.env.PATH}` });

  it.skipIf(!!runtime.skip)("npx edge-relay --help prints the usage", async () => {
    const version = await run("node", ["--version"], { cwd: app, env: env() });
    expect(version.stdout).toMatch(new RegExp(`^v${major}\\.`));
    const help = await run("npx", ["edge-relay", "--help"], { cwd: app, env: env() });
    expect(help.code, help.stderr).toBe(0);
    expect(help.stdout).toContain("edge-relay agent --relay <url>");
  });

  it.skipIf(!!runtime.skip)("edge-relay token mints a token the relay takes, and the agent carries a request", async () => {
    const name = `pkg-node${major}`;
    const minted = await run("npx", ["edge-relay", "token", name], { cwd: app, env: { ...env(), RELAY_SECRET: relay.secret } });
    expect(minted.code, minted.stderr).toBe(0);
    const token = minted.stdout.trim();
    expect(token).toMatch(/^er1\./);
    const bin = join(app, "node_modules/.bin/edge-relay");
    const agent = await startAgent(agentArgs(relay.url, name, token, backend.url, ["--connections", "1"]), {
      waitUp: 1,
      command: [runtime.path!, bin],
    });
    try {
      const res = await fetch(`${relay.url}/r/${name}/echo?from=package`);
      expect(res.status).toBe(200);
      expect(((await res.json()) as { url: string }).url).toBe("/echo?from=package");
    } finally {
      expect(await agent.stop()).toBe(0);
    }
  });

  it.skipIf(!!runtime.skip)("runs the agent from a --config file, which a worker thread of the bundle reads, and reloads it", async () => {
    const name = `cfg-node${major}`;
    const file = join(app, `agent-${major}.yaml`);
    const yaml = (path: string) =>
      `relay: ${relay.url}\ntoken: \${EDGE_RELAY_TOKEN}\nconnections: 1\ningress:\n  - backend: ${name}\n    path: ${path}\n    service: ${backend.url}\n`;
    writeFileSync(file, yaml("/one"));
    const agent = await startAgent(["agent", "--config", file], {
      waitUp: 1,
      env: { EDGE_RELAY_TOKEN: await relay.token(name) },
      command: [runtime.path!, join(app, "node_modules/.bin/edge-relay")],
    });
    try {
      expect((await fetch(`${relay.url}/r/${name}/one/echo`)).status).toBe(200);
      expect((await fetch(`${relay.url}/r/${name}/two/echo`)).status).toBe(404);
      writeFileSync(file, yaml("/two"));
      const from = agent.lines.length;
      agent.proc.kill("SIGHUP");
      await agent.waitForLine(/reloaded \(SIGHUP\)/, 30_000, from);
      const res = await fetch(`${relay.url}/r/${name}/two/echo?from=config`);
      expect(res.status).toBe(200);
      expect(((await res.json()) as { url: string }).url).toBe("/two/echo?from=config");
      writeFileSync(file, `${yaml("/two")}    bogus: 1\n`);
      const bad = agent.lines.length;
      agent.proc.kill("SIGHUP");
      expect(await agent.waitForLine(/reload \(SIGHUP\) failed/, 30_000, bad)).toContain(`${file}:8:5: ingress[0] has no key "bogus"`);
    } finally {
      expect(await agent.stop()).toBe(0);
    }
  });

  const PLUGIN = "export default { name: 'noop', encodeHeaders() {}, encodeData() {}, onUpstreamData() {} };\n";
  const pluginArgs = async (file: string) =>
    agentArgs(relay.url, "plugins", await relay.token("plugins"), "bridge+tcp://127.0.0.1:9", [
      "--connections",
      "1",
      "--bridge-plugin",
      file,
    ]);

  it.skipIf(!!runtime.skip)("loads a .mjs bridge plugin", async () => {
    const file = join(app, `codec-${major}.mjs`);
    writeFileSync(file, PLUGIN);
    const agent = await startAgent(await pluginArgs(file), {
      waitUp: 1,
      command: [runtime.path!, join(app, "node_modules/.bin/edge-relay")],
    });
    expect(await agent.stop()).toBe(0);
  });

  // Node 22.18 and later strip types, so only Node 20 refuses a .ts plugin.
  it.skipIf(!!runtime.skip || major !== 20)("names how to compile a .ts bridge plugin that Node cannot load", async () => {
    writeFileSync(join(app, "codec.ts"), PLUGIN.replace("export default {", "export default <const>{"));
    const ts = await run(runtime.path!, [join(app, "node_modules/.bin/edge-relay"), ...(await pluginArgs("./codec.ts"))], {
      cwd: app,
      env: env(),
    });
    expect(ts.code).toBe(2);
    expect(ts.stderr).toMatch(
      /--bridge-plugin "\.\/codec\.ts" is TypeScript, which Node 20\.[\d.]+ cannot load: compile it to a \.js or \.mjs file/,
    );
  });
});
