// The bridge's settings: bridge+tcp:// targets, --bridge-plugin resolution and --bridge-idle in
// flags and --config files, loading plugins (built-in, file, package), and the bin's errors.
import { execFile } from "node:child_process";
import { resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { BUILT_IN_PLUGINS, loadBridgePlugin } from "../../../agent/bridge/load.ts";
import { buildAgentConfig, BUILT_IN_BRIDGE_PLUGINS, ConfigError, redactedConfig, type RawAgentOptions } from "../../../agent/config.ts";
import { mintToken } from "../../../src/auth.ts";
import { configError } from "../../helpers/config-error.ts";

const ROOT = fileURLToPath(new URL("../../..", import.meta.url));
const FIXTURES = resolve(ROOT, "test/fixtures/bridge");
const TOKEN = await mintToken("bridge-test-secret", "demo");
const BASE: RawAgentOptions = { relay: "https://relay.example.com", backend: "demo", token: TOKEN, to: "bridge+tcp://127.0.0.1:6379" };

function files(contents: Record<string, string>): (path: string) => string {
  return (path) => {
    if (Object.hasOwn(contents, path)) return contents[path];
    throw Object.assign(new Error(`ENOENT: no such file or directory, open '${path}'`), { code: "ENOENT" });
  };
}

function bridgeOf(raw: RawAgentOptions, readFile?: (path: string) => string) {
  const { target } = buildAgentConfig(raw, {}, readFile);
  if (target.kind !== "bridge") throw new Error(`not a bridge target: ${target.kind}`);
  return target;
}

async function loadError(promise: Promise<unknown>): Promise<ConfigError> {
  const error = await promise.then(
    () => undefined,
    (err: unknown) => err,
  );
  if (error instanceof ConfigError) return error;
  throw new Error(`expected a ConfigError, got ${String(error)}`);
}

describe("bridge+tcp:// targets", () => {
  it("default to the raw plugin and a 1s idle time", () => {
    const target = bridgeOf(BASE);
    expect(target).toMatchObject({ kind: "bridge", host: "127.0.0.1", port: 6379, idleMs: 1000 });
    expect(target.plugin).toMatchObject({ kind: "builtin", specifier: "raw", text: "raw" });
  });

  it("read --bridge-plugin and --bridge-idle", () => {
    const target = bridgeOf({ ...BASE, to: "bridge+tcp://[::1]:7000", "bridge-plugin": "resp", "bridge-idle": "250ms" });
    expect(target).toMatchObject({ host: "::1", port: 7000, idleMs: 250, plugin: { kind: "builtin", specifier: "resp" } });
    expect(bridgeOf({ ...BASE, "bridge-idle": "2s" }).idleMs).toBe(2000);
    expect(bridgeOf({ ...BASE, "bridge-idle": "3" }).idleMs).toBe(3000);
  });

  it("resolve a plugin path against the working directory, and a package name as a package", () => {
    expect(bridgeOf({ ...BASE, "bridge-plugin": "./codecs/mine.ts" }).plugin).toMatchObject({
      kind: "file",
      specifier: resolve(process.cwd(), "codecs/mine.ts"),
    });
    expect(bridgeOf({ ...BASE, "bridge-plugin": "/opt/codec.js" }).plugin).toMatchObject({ kind: "file", specifier: "/opt/codec.js" });
    expect(bridgeOf({ ...BASE, "bridge-plugin": "file:///opt/codec.mjs" }).plugin).toMatchObject({
      kind: "file",
      specifier: "/opt/codec.mjs",
    });
    expect(bridgeOf({ ...BASE, "bridge-plugin": "@acme/redis-codec" }).plugin).toMatchObject({
      kind: "package",
      specifier: "@acme/redis-codec",
      from: process.cwd(),
    });
  });

  it("resolve a path in the --config file against the file's folder", () => {
    const config = JSON.stringify({ to: "bridge+tcp://10.0.0.2:9000", "bridge-plugin": "./codec.ts", "bridge-idle": 5 }, null, 2);
    const target = bridgeOf(
      { relay: BASE.relay, backend: "demo", token: TOKEN, config: "/etc/edge/agent.json" },
      files({ "/etc/edge/agent.json": config }),
    );
    expect(target).toMatchObject({ host: "10.0.0.2", port: 9000, idleMs: 5000 });
    expect(target.plugin).toMatchObject({
      kind: "file",
      specifier: "/etc/edge/codec.ts",
      subject: '/etc/edge/agent.json:3:3: bridge-plugin "./codec.ts"',
      where: { field: "bridge-plugin", file: "/etc/edge/agent.json", line: 3 },
    });
  });

  it.each([
    [{ to: "bridge+tcp://127.0.0.1" }, "to", '--to "bridge+tcp://127.0.0.1": the target must be bridge+tcp://host:port, with the port.'],
    [
      { to: "bridge+udp://127.0.0.1:53" },
      "to",
      '--to "bridge+udp://127.0.0.1:53": the target must be bridge+tcp://host:port, with the port.',
    ],
    [
      { to: "bridge+tcp://127.0.0.1:1/x" },
      "to",
      '--to "bridge+tcp://127.0.0.1:1/x": the target must be only bridge+tcp://host:port, with no user, path, query or fragment.',
    ],
    [
      { "bridge-idle": "0ms" },
      "bridge-idle",
      '--bridge-idle "0ms": the bridge idle time must be a duration from 10ms to 10m, like 250ms, 1s or 30s.',
    ],
    [
      { "bridge-idle": "soon" },
      "bridge-idle",
      '--bridge-idle "soon": the bridge idle time must be a duration from 10ms to 10m, like 250ms, 1s or 30s.',
    ],
    [
      { "bridge-plugin": "my codec" },
      "bridge-plugin",
      '--bridge-plugin "my codec": the bridge plugin must be a built-in plugin (raw, resp), a path like ./codec.ts, or a package name.',
    ],
    [
      { to: "tcp://127.0.0.1:6379", "bridge-plugin": "resp" },
      "bridge-plugin",
      '--bridge-plugin "resp" applies only to bridge+tcp:// targets.',
    ],
    [{ to: "http://127.0.0.1:3000", "bridge-idle": "1s" }, "bridge-idle", '--bridge-idle "1s" applies only to bridge+tcp:// targets.'],
  ])("refuses %j naming the flag", (options, field, message) => {
    const error = configError(() => buildAgentConfig({ ...BASE, ...options } as RawAgentOptions, {}));
    expect(error.field).toBe(field);
    expect(error.message).toBe(message);
  });

  it("shows the plugin and idle time in the printable config", () => {
    const config = buildAgentConfig({ ...BASE, "bridge-plugin": "resp" }, {});
    expect(redactedConfig(config)).toMatchObject({ target: "bridge+tcp://127.0.0.1:6379", bridgePlugin: "resp", bridgeIdleMs: 1000 });
  });
});

describe("loadBridgePlugin", () => {
  it("has a module for every built-in the config accepts", () => {
    expect(Object.keys(BUILT_IN_PLUGINS).sort()).toEqual([...BUILT_IN_BRIDGE_PLUGINS].sort());
  });

  it.each(BUILT_IN_BRIDGE_PLUGINS)("loads the built-in %s", async (name) => {
    const loaded = await loadBridgePlugin(bridgeOf({ ...BASE, "bridge-plugin": name }).plugin);
    expect(loaded.name).toBe(name);
    expect(typeof loaded.plugin.onUpstreamData).toBe("function");
  });

  it("loads a plugin file, once", async () => {
    const ref = bridgeOf({ ...BASE, "bridge-plugin": resolve(ROOT, "docs/examples/length-prefixed.ts") }).plugin;
    const first = loadBridgePlugin(ref);
    expect(loadBridgePlugin(ref)).toBe(first);
    expect((await first).name).toBe("length-prefixed");
  });

  it("names the flag when the file does not exist", async () => {
    const error = await loadError(loadBridgePlugin(bridgeOf({ ...BASE, "bridge-plugin": "./no-such-codec.ts" }).plugin));
    expect(error.field).toBe("bridge-plugin");
    expect(error.message).toBe(
      `--bridge-plugin "./no-such-codec.ts" names a file that does not exist (${resolve(process.cwd(), "no-such-codec.ts")}).`,
    );
  });

  it("names the file and line of a --config entry", async () => {
    const config = JSON.stringify({ to: "bridge+tcp://127.0.0.1:1", "bridge-plugin": "./named-export.ts" }, null, 2);
    const path = resolve(FIXTURES, "agent.json");
    const ref = bridgeOf({ relay: BASE.relay, backend: "demo", token: TOKEN, config: path }, files({ [path]: config })).plugin;
    const error = await loadError(loadBridgePlugin(ref));
    expect(error).toMatchObject({ field: "bridge-plugin", file: path, line: 3 });
    expect(error.message).toBe(
      `${path}:3:3: bridge-plugin "./named-export.ts" has no bridge plugin as its default export (export the plugin object as the module's default: \`export default { ... }\`).`,
    );
  });

  it.each([
    [
      "missing-hook.ts",
      "exports a default that is not a bridge plugin: it needs the functions encodeHeaders, encodeData, onUpstreamData (missing onUpstreamData).",
    ],
    ["throws-at-load.ts", "could not be loaded: the codec tables are missing."],
  ])("explains why %s is not a plugin", async (file, predicate) => {
    const path = resolve(FIXTURES, file);
    const error = await loadError(loadBridgePlugin(bridgeOf({ ...BASE, "bridge-plugin": path }).plugin));
    expect(error.message).toBe(`--bridge-plugin "${path}" ${predicate}`);
  });

  it("tells a missing package from a file", async () => {
    const error = await loadError(loadBridgePlugin(bridgeOf({ ...BASE, "bridge-plugin": "edge-relay-no-such-codec" }).plugin));
    expect(error.message).toBe(
      `--bridge-plugin "edge-relay-no-such-codec" is neither a built-in plugin (raw, resp) nor a package installed in ${process.cwd()} or beside edge-relay; to load a file, write a path like ./edge-relay-no-such-codec.`,
    );
  });

  it("resolves an installed package and checks its default export", async () => {
    const error = await loadError(loadBridgePlugin(bridgeOf({ ...BASE, "bridge-plugin": "ws" }).plugin));
    expect(error.message).toBe('--bridge-plugin "ws" has no bridge plugin as its default export.');
  });
});

describe("edge-relay agent", () => {
  const run = (args: string[]) =>
    new Promise<{ code: number; stdout: string; stderr: string }>((done, reject) => {
      execFile(process.execPath, ["agent/bin/edge-relay.mjs", ...args], { cwd: ROOT, timeout: 20_000 }, (error, stdout, stderr) => {
        if (error && typeof error.code !== "number") reject(error);
        else done({ code: typeof error?.code === "number" ? error.code : 0, stdout, stderr });
      });
    });

  it("lists the bridge flags and target in --help", async () => {
    const { stdout } = await run(["agent", "--help"]);
    expect(stdout).toMatch(/^\s+--bridge-plugin <module>/m);
    expect(stdout).toMatch(/^\s+--bridge-idle <duration>/m);
    expect(stdout).toMatch(/^\s+bridge\+tcp:\/\/host:port/m);
  });

  it("exits 2 before connecting when the plugin cannot be loaded", async () => {
    const args = ["agent", "--relay", "http://127.0.0.1:1", "--backend", "demo", "--token", TOKEN, "--to", "bridge+tcp://127.0.0.1:1"];
    const { code, stderr } = await run([...args, "--bridge-plugin", "./test/fixtures/bridge/missing-hook.ts"]);
    expect(code).toBe(2);
    expect(stderr).toBe(
      'edge-relay: --bridge-plugin "./test/fixtures/bridge/missing-hook.ts" exports a default that is not a bridge plugin: it needs the functions encodeHeaders, encodeData, onUpstreamData (missing onUpstreamData).\n',
    );
  });
});
