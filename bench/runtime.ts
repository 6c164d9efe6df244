// Starts the relay Worker for the benchmark on the fastest faithful local runtime, the one
// `npm run serve` runs (scripts/workerd.ts): bare `workerd serve`, the bundle `wrangler deploy
// --dry-run` builds from bench/wrangler.toml (the app plus the bench's route, bench/worker.ts),
// in-memory Durable Object storage. No dev proxy.
import { randomBytes } from "node:crypto";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { createServer, type AddressInfo } from "node:net";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { startWorkerd } from "../scripts/workerd.ts";
import { mintToken } from "../src/auth.ts";

const ROOT = fileURLToPath(new URL("../", import.meta.url));
/** The bench's Worker config: the production app plus its own route. */
const CONFIG = join(ROOT, "bench", "wrangler.toml");

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

/**
 * Starts the bench's relay (bench/wrangler.toml) on 127.0.0.1 with `vars` added to its [vars], on
 * the runtime of `npm run serve` (scripts/workerd.ts) with in-memory storage; a fixed `port` and
 * `secret` let a restarted relay take over from a stopped one (the fleet row).
 */
export async function startBenchRelay(
  vars: Record<string, string> = {},
  opts: { inspect?: boolean; port?: number; secret?: string; storage?: "memory" | "disk" } = {},
): Promise<BenchRelay> {
  const secret = opts.secret ?? randomBytes(32).toString("hex");
  const inspectorPort = opts.inspect ? await freePort() : undefined;
  const workerd = await startWorkerd({
    config: CONFIG,
    address: `127.0.0.1:${opts.port ?? 0}`,
    // On disk (as `wrangler dev` and `npm run serve` keep it) in a folder of this run's own.
    storage: opts.storage === "disk" ? { dir: mkdtempSync(join(tmpdir(), "edge-relay-bench-do-")) } : "memory",
    bindings: (fileVars) => ({ ...fileVars, ...vars, RELAY_SECRET: secret }),
    inspectorPort,
  });
  return {
    url: `http://127.0.0.1:${workerd.port}`,
    secret,
    token: (backend) => mintToken(secret, backend),
    pid: workerd.proc.pid!,
    inspectorPort,
    runtime: `${workerd.version} (bare \`workerd serve\` as \`npm run serve\` runs it, wrangler's own binary; bundle from \`wrangler deploy --dry-run\`; ${opts.storage === "disk" ? "on-disk" : "in-memory"} DO storage; no dev proxy)`,
    stop: () => workerd.stop(),
  };
}
