// Starts the real relay Worker in workerd (wrangler's startWorker on a loopback port) for tests
// and the benchmark, with a throwaway RELAY_SECRET; stops it afterwards.
import { randomBytes } from "node:crypto";
import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { mintToken } from "../../src/auth.ts";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));

// Offline and quiet (PLATFORM-NOTES "Local runs and tests").
process.env.CLOUDFLARE_CF_FETCH_ENABLED = "false";
process.env.WRANGLER_SEND_METRICS = "false";
process.env.WRANGLER_HIDE_BANNER = "true";
process.env.WRANGLER_LOG ??= "error";

export interface RelayHandle {
  /** http://127.0.0.1:<port> */
  url: string;
  port: number;
  secret: string;
  /** Mints an agent token for `backend` with this relay's secret. */
  token(backend: string, ttlSeconds?: number): Promise<string>;
  /** Pids of the workerd processes this relay runs (for memory figures). */
  workerdPids(): number[];
  stop(): Promise<void>;
}

export interface RelayOptions {
  /** Extra [vars], e.g. RELAY_RESPONSE_TIMEOUT. RELAY_DOMAIN defaults to "localhost". */
  vars?: Record<string, string>;
  /** Fixed port (default: any free one). */
  port?: number;
}

/** Starts the relay Worker from wrangler.toml on 127.0.0.1. */
export async function startRelay(opts: RelayOptions = {}): Promise<RelayHandle> {
  const { unstable_startWorker } = await import("wrangler");
  const secret = randomBytes(32).toString("hex");
  const before = new Set(workerdProcesses());
  const vars = { RELAY_DOMAIN: "localhost", ...opts.vars };
  const bindings: Record<string, { type: "plain_text"; value: string }> = { RELAY_SECRET: { type: "plain_text", value: secret } };
  for (const [k, v] of Object.entries(vars)) bindings[k] = { type: "plain_text", value: v };
  const worker = await unstable_startWorker({
    config: `${ROOT}wrangler.toml`,
    envFiles: [],
    bindings,
    dev: {
      server: { hostname: "127.0.0.1", port: opts.port ?? 0 },
      inspector: false,
      persist: false,
      watch: false,
      logLevel: (process.env.RELAY_LOG as "error") ?? "error",
    },
  } as Parameters<typeof unstable_startWorker>[0]);
  await worker.ready;
  const url = (await worker.url).origin;
  const pids = workerdProcesses().filter((p) => !before.has(p));
  return {
    url,
    port: Number(new URL(url).port),
    secret,
    token: (backend, ttlSeconds) => mintToken(secret, backend, ttlSeconds ? { ttlSeconds } : {}),
    workerdPids: () => pids,
    stop: () => worker.dispose(),
  };
}

/** Pids of running workerd processes. */
export function workerdProcesses(): number[] {
  try {
    return execFileSync("pgrep", ["-x", "workerd"], { encoding: "utf8" })
      .split("\n")
      .filter(Boolean)
      .map(Number);
  } catch {
    return [];
  }
}

/** Resident memory of a process in bytes (Linux /proc), 0 when it is gone. */
export function rssBytes(pid: number): number {
  try {
    const status = execFileSync("cat", [`/proc/${pid}/status`], { encoding: "utf8" });
    const kb = /VmRSS:\s+(\d+) kB/.exec(status)?.[1];
    return kb ? Number(kb) * 1024 : 0;
  } catch {
    return 0;
  }
}
