// The relay on bare `workerd serve`: the bundle `wrangler deploy --dry-run` builds, a generated
// capnp config and the workerd binary wrangler ships. Shared by `npm run serve` and the benchmark.
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { useOfflineWrangler } from "./offline-env.ts";

const ROOT = fileURLToPath(new URL("../", import.meta.url));

/** The Worker config's fields the runtime reads (wrangler's own types do not resolve under every tsconfig here). */
export interface WorkerConfig {
  vars: Record<string, string>;
  compatibilityDate: string;
  compatibilityFlags: string[];
  /** Durable Object classes: binding name, class name and whether the class is SQLite-backed. */
  namespaces: Array<{ binding: string; className: string; sql: boolean }>;
}

export interface WorkerdOptions {
  /** The wrangler.toml to build. */
  config: string;
  /** host:port to listen on; port 0 picks a free one. */
  address: string;
  /** PEM files: serve HTTPS instead of HTTP. */
  tls?: { certFile: string; keyFile: string };
  /** Durable Object storage: a directory (kept across restarts), or memory (lost on exit). */
  storage: { dir: string } | "memory";
  /**
   * Every binding value, vars and secrets alike, from the config's [vars]. They reach workerd
   * through its environment (`fromEnvironment` bindings), so no value is written to the config.
   */
  bindings: (vars: Record<string, string>) => Record<string, string>;
  inspectorPort?: number;
  /** Where workerd's own output goes (default: this process's). */
  stdio?: "inherit" | "ignore";
}

export interface Workerd {
  proc: ChildProcess;
  /** The port it listens on. */
  port: number;
  /** e.g. "workerd 2026-04-26". */
  version: string;
  /** The binding values it runs with. */
  bindings: Record<string, string>;
  /** Resolves when workerd has exited. */
  exited: Promise<number | null>;
  /** Stops workerd (SIGTERM, then SIGKILL after 3 s) and removes the build folder. */
  stop(): Promise<void>;
}

/** The workerd binary wrangler itself runs (its nested copy when it has one). */
export function workerdBinary(): string {
  const require = createRequire(import.meta.url);
  const wranglerDir = dirname(require.resolve("wrangler/package.json"));
  const nested = join(wranglerDir, "node_modules", "workerd", "bin", "workerd");
  if (existsSync(nested)) return nested;
  return join(dirname(require.resolve("workerd/package.json")), "bin", "workerd");
}

function run(cmd: string, args: string[], cwd = ROOT): Promise<string> {
  return new Promise((resolve, reject) =>
    execFile(cmd, args, { cwd, encoding: "utf8", maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) =>
      err ? reject(new Error(`${cmd} ${args.join(" ")} failed: ${stderr || err.message}`)) : resolve(stdout.trim()),
    ),
  );
}

/** Reads the fields of `config` (a wrangler.toml) the runtime needs, top-level environment. */
export async function readWorkerConfig(config: string): Promise<WorkerConfig> {
  useOfflineWrangler();
  const { unstable_readConfig } = await import("wrangler");
  const c = unstable_readConfig({ config }, {}) as unknown as {
    vars?: Record<string, unknown>;
    compatibility_date?: string;
    compatibility_flags?: string[];
    migrations: Array<{ new_sqlite_classes?: string[] }>;
    durable_objects: { bindings: Array<{ name: string; class_name: string }> };
  };
  const sqlite = new Set(c.migrations.flatMap((m) => m.new_sqlite_classes ?? []));
  return {
    vars: Object.fromEntries(Object.entries(c.vars ?? {}).map(([k, v]) => [k, typeof v === "string" ? v : JSON.stringify(v)])),
    compatibilityDate: c.compatibility_date!,
    compatibilityFlags: c.compatibility_flags ?? [],
    namespaces: c.durable_objects.bindings.map((b) => ({ binding: b.name, className: b.class_name, sql: sqlite.has(b.class_name) })),
  };
}

/** A capnp string literal. */
const q = (s: string) => JSON.stringify(s);

/** The capnp config for `modules` (main first) in the folder it is written to; see workerd.capnp. */
export function capnpConfig(
  worker: WorkerConfig,
  modules: string[],
  o: Pick<WorkerdOptions, "address" | "storage"> & { bindingNames: string[]; tls?: { cert: string; key: string } },
): string {
  // The client's own CF-Connecting-IP would pass for the address the relay puts in
  // X-Forwarded-For; without Cloudflare's edge in front, nothing else removes it.
  const http = '(injectRequestHeaders = [ (name = "cf-connecting-ip") ])';
  const socket = o.tls
    ? `https = (options = ${http}, tlsOptions = (keypair = (privateKey = embed ${q(o.tls.key)}, certificateChain = embed ${q(o.tls.cert)})))`
    : `http = ${http}`;
  const storage = o.storage === "memory" ? "(inMemory = void)" : '(localDisk = "do-storage")';
  const services = [
    '(name = "main", worker = .relay)',
    ...(o.storage === "memory" ? [] : [`(name = "do-storage", disk = (path = ${q(o.storage.dir)}, writable = true))`]),
  ];
  return `using Workerd = import "/workerd/workerd.capnp";
const config :Workerd.Config = (
  services = [ ${services.join(", ")} ],
  sockets = [ (name = "http", address = ${q(o.address)}, ${socket}, service = "main") ],
);
const relay :Workerd.Worker = (
  modules = [ ${modules.map((m) => `(name = ${q(m)}, esModule = embed ${q(m)})`).join(", ")} ],
  compatibilityDate = ${q(worker.compatibilityDate)},
  compatibilityFlags = [ ${worker.compatibilityFlags.map(q).join(", ")} ],
  bindings = [ ${[
    ...o.bindingNames.map((k) => `(name = ${q(k)}, fromEnvironment = ${q(k)})`),
    ...worker.namespaces.map((n) => `(name = ${q(n.binding)}, durableObjectNamespace = ${q(n.className)})`),
  ].join(",\n    ")} ],
  durableObjectNamespaces = [ ${worker.namespaces
    .map((n) => `(className = ${q(n.className)}, uniqueKey = ${q(`edge-relay-${n.className}`)}, enableSql = ${n.sql})`)
    .join(", ")} ],
  durableObjectStorage = ${storage},
);
`;
}

/** Builds `config`'s bundle as `wrangler deploy` would into `dir`; returns its modules, main first. */
export async function buildBundle(config: string, dir: string): Promise<string[]> {
  useOfflineWrangler();
  await run(join(ROOT, "node_modules", ".bin", "wrangler"), ["deploy", "--dry-run", "--config", config, "--outdir", dir]);
  const modules = readdirSync(dir).filter((f) => f.endsWith(".js") || f.endsWith(".mjs"));
  const main = modules.includes("index.js") ? "index.js" : modules[0];
  if (!main) throw new Error(`wrangler deploy --dry-run left no module in ${dir}`);
  return [main, ...modules.filter((m) => m !== main)];
}

/** Builds and starts the Worker of `o.config` on bare workerd; resolves once it listens. */
export async function startWorkerd(o: WorkerdOptions): Promise<Workerd> {
  const dir = mkdtempSync(join(tmpdir(), "edge-relay-workerd-"));
  try {
    const [worker, modules] = await Promise.all([readWorkerConfig(o.config), buildBundle(o.config, dir)]);
    // The key and certificate are linked, not copied, into the folder the config embeds from.
    if (o.tls) {
      symlinkSync(resolve(o.tls.certFile), join(dir, "tls-cert.pem"));
      symlinkSync(resolve(o.tls.keyFile), join(dir, "tls-key.pem"));
    }
    const bindings = o.bindings(worker.vars);
    if (o.storage !== "memory") mkdirSync(o.storage.dir, { recursive: true });
    const storage = o.storage === "memory" ? "memory" : { dir: resolve(o.storage.dir) };
    const config = capnpConfig(worker, modules, {
      address: o.address,
      storage,
      bindingNames: Object.keys(bindings),
      tls: o.tls ? { cert: "tls-cert.pem", key: "tls-key.pem" } : undefined,
    });
    writeFileSync(join(dir, "config.capnp"), config);

    const bin = workerdBinary();
    const version = await run(bin, ["--version"]);
    const args = ["serve", join(dir, "config.capnp"), "--control-fd=3"];
    if (o.inspectorPort) args.push(`--inspector-addr=127.0.0.1:${o.inspectorPort}`);
    const out = o.stdio ?? "inherit";
    const proc = spawn(bin, args, { cwd: dir, env: { ...process.env, ...bindings }, stdio: ["ignore", out, out, "pipe"] });
    const exited = new Promise<number | null>((resolve) => proc.once("exit", (code) => resolve(code)));
    const port = await new Promise<number>((resolve, reject) => {
      let buf = "";
      const timer = setTimeout(() => reject(new Error("workerd did not start listening within 20 s")), 20_000);
      void exited.then((code) => {
        clearTimeout(timer);
        reject(new Error(`workerd exited with ${code} before listening`));
      });
      proc.stdio[3]!.on("data", (d: Buffer) => {
        buf += d.toString();
        for (const line of buf.split("\n")) {
          try {
            const ev = JSON.parse(line) as { event?: string; port?: number };
            if (ev.event === "listen" && ev.port) {
              clearTimeout(timer);
              resolve(ev.port);
            }
          } catch {
            // A partial line: wait for the rest.
          }
        }
      });
    }).catch((err: Error) => {
      proc.kill("SIGKILL");
      throw err;
    });
    return {
      proc,
      port,
      version,
      bindings,
      exited,
      stop: async () => {
        if (proc.exitCode === null && proc.signalCode === null) proc.kill("SIGTERM");
        const timer = setTimeout(() => proc.kill("SIGKILL"), 3000);
        await exited;
        clearTimeout(timer);
        rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}
