// Starts the relay Worker for the benchmark on the fastest faithful local runtime: bare
// `workerd serve` (the very binary `wrangler dev` runs) with a generated config, the bundle
// `wrangler deploy --dry-run` builds from bench/wrangler.toml (the app plus the bench's route,
// bench/worker.ts), and in-memory Durable Object storage. No dev proxy.
import { spawn, execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync, existsSync, readdirSync } from "node:fs";
import { createRequire } from "node:module";
import { createServer, type AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { useOfflineWrangler } from "../scripts/offline-env.ts";
import { mintToken } from "../src/auth.ts";

const ROOT = fileURLToPath(new URL("../", import.meta.url));
/** The bench's Worker config: the production app plus its own route. */
const CONFIG = join(ROOT, "bench", "wrangler.toml");

useOfflineWrangler();

export interface BenchRelay {
  url: string;
  secret: string;
  /** Mints an agent token for `backend`. */
  token(backend: string): Promise<string>;
  /** The workerd process (for RSS and CPU figures). */
  pid: number;
  /** The inspector's port when started with `inspect` (for CPU profiles). */
  inspectorPort?: number;
  /** What runs it, for the output: e.g. "workerd 2026-04-26 (bare `workerd serve`, ...)". */
  runtime: string;
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

/** A port free right now on 127.0.0.1. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/** A capnp string literal. */
const q = (s: string) => JSON.stringify(s);

/**
 * Starts the bench's relay (bench/wrangler.toml) on 127.0.0.1 with `vars` added to its [vars]; a
 * fixed `port` and `secret` let a restarted relay take over from a stopped one (the fleet row).
 */
export async function startBenchRelay(
  vars: Record<string, string> = {},
  opts: { inspect?: boolean; port?: number; secret?: string } = {},
): Promise<BenchRelay> {
  const { unstable_readConfig } = await import("wrangler");
  // The few fields used, typed here: wrangler's own types do not resolve under the agent's tsconfig.
  const config = unstable_readConfig({ config: CONFIG }, {}) as unknown as {
    vars?: Record<string, unknown>;
    compatibility_date?: string;
    compatibility_flags?: string[];
    migrations: Array<{ new_sqlite_classes?: string[] }>;
    durable_objects: { bindings: Array<{ name: string; class_name: string }> };
  };
  const dir = mkdtempSync(join(tmpdir(), "edge-relay-bench-"));
  const wrangler = join(ROOT, "node_modules", ".bin", "wrangler");
  await run(wrangler, ["deploy", "--dry-run", "--config", CONFIG, "--outdir", dir]);
  const modules = readdirSync(dir).filter((f) => f.endsWith(".js") || f.endsWith(".mjs"));
  const main = modules.includes("index.js") ? "index.js" : modules[0];

  const secret = opts.secret ?? randomBytes(32).toString("hex");
  const text: Record<string, string> = { ...(config.vars as Record<string, string>), ...vars, RELAY_SECRET: secret };
  const sqlite = new Set(config.migrations.flatMap((m) => m.new_sqlite_classes ?? []));
  const namespaces = config.durable_objects.bindings;
  const bindings = [
    ...Object.entries(text).map(([k, v]) => `(name = ${q(k)}, text = ${q(String(v))})`),
    ...namespaces.map((b) => `(name = ${q(b.name)}, durableObjectNamespace = ${q(b.class_name)})`),
  ];
  const capnp = `using Workerd = import "/workerd/workerd.capnp";
const config :Workerd.Config = (
  # The relay's own fetches (a jwt policy's JWKS in the auth row) go to loopback servers.
  services = [ (name = "main", worker = .relay), (name = "loopback-net", network = (allow = ["public", "private", "local"])) ],
  sockets = [ (name = "http", address = "127.0.0.1:${opts.port ?? 0}", http = (), service = "main") ],
);
const relay :Workerd.Worker = (
  modules = [ ${modules.map((m) => `(name = ${q(m)}, esModule = embed ${q(m)})`).join(", ")} ],
  compatibilityDate = ${q(config.compatibility_date!)},
  compatibilityFlags = [ ${(config.compatibility_flags ?? []).map(q).join(", ")} ],
  bindings = [ ${bindings.join(",\n    ")} ],
  durableObjectNamespaces = [ ${namespaces
    .map((b) => `(className = ${q(b.class_name)}, uniqueKey = ${q(`edge-relay-${b.class_name}`)}, enableSql = ${sqlite.has(b.class_name)})`)
    .join(", ")} ],
  durableObjectStorage = (inMemory = void),
  globalOutbound = "loopback-net",
);
`;
  writeFileSync(join(dir, "config.capnp"), capnp);
  // The main module must be the first; put it there.
  if (main !== modules[0]) throw new Error(`unexpected bundle layout: ${modules.join(", ")}`);

  const bin = workerdBinary();
  const version = await run(bin, ["--version"]);
  const inspectorPort = opts.inspect ? await freePort() : undefined;
  const args = [
    "serve",
    join(dir, "config.capnp"),
    "--control-fd=3",
    ...(inspectorPort ? [`--inspector-addr=127.0.0.1:${inspectorPort}`] : []),
  ];
  const proc = spawn(bin, args, {
    cwd: dir,
    stdio: ["ignore", "inherit", "inherit", "pipe"],
  });
  const port = await new Promise<number>((resolve, reject) => {
    let buf = "";
    const timer = setTimeout(() => reject(new Error("workerd did not start listening within 20 s")), 20_000);
    proc.once("exit", (code) => reject(new Error(`workerd exited with ${code} before listening`)));
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
  });
  const exited = new Promise<void>((resolve) => proc.once("exit", () => resolve()));
  return {
    url: `http://127.0.0.1:${port}`,
    secret,
    token: (backend) => mintToken(secret, backend),
    pid: proc.pid!,
    inspectorPort,
    runtime: `${version} (bare \`workerd serve\`, wrangler's own binary; bundle from \`wrangler deploy --dry-run\`; in-memory DO storage; no dev proxy)`,
    stop: async () => {
      proc.kill("SIGTERM");
      await Promise.race([exited, new Promise((r) => setTimeout(r, 3000))]);
      if (proc.exitCode === null) proc.kill("SIGKILL");
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
