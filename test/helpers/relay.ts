// Starts the real relay Worker in workerd (wrangler's startWorker on a loopback port) for tests
// and the benchmark, with a throwaway RELAY_SECRET; stops it afterwards.
import { randomBytes } from "node:crypto";
import { copyFileSync, cpSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { useOfflineWrangler } from "../../scripts/offline-env.ts";
import { mintToken } from "../../src/auth.ts";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));

useOfflineWrangler();

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
  /** Fixed RELAY_SECRET (default: a random one), e.g. to mint tokens before the relay starts. */
  secret?: string;
  /**
   * Run a copy of src/ taken now. wrangler dev rebuilds and reloads the Worker whenever a source
   * file changes, whatever `watch` says, dropping every WebSocket: long tests use a snapshot so
   * edits to the tree while they run cannot break them.
   */
  snapshot?: boolean;
}

/** Copies the Worker's sources and config to a temporary directory; returns its path. */
function snapshotWorker(): string {
  const dir = mkdtempSync(join(tmpdir(), "edge-relay-worker-"));
  cpSync(join(ROOT, "src"), join(dir, "src"), { recursive: true });
  for (const file of ["wrangler.toml", "tsconfig.json", "package.json"]) copyFileSync(join(ROOT, file), join(dir, file));
  symlinkSync(join(ROOT, "node_modules"), join(dir, "node_modules"));
  return dir;
}

/**
 * What workerd prints when the relay errors a response body on purpose: a backend or a tunnel
 * went away mid-response, and the relay fails the body with the session's StreamReset so the
 * client sees the cut (a body that just ended would pass for complete). workerd reports that
 * error as uncaught while it pipes the body; it is the expected outcome, not a fault.
 */
const DELIBERATE_BODY_ABORT = /^[^\n]*Uncaught exception: [^\n]*\bjsg\.Error: StreamReset: /;
/** Terminal colour codes, which wrangler puts around the message. */
const COLOUR = new RegExp(`${String.fromCharCode(27)}\\[[0-9;]*m`, "g");

/**
 * Drops exactly workerd's reports of DELIBERATE_BODY_ABORT from what wrangler logs (one
 * console.error call per report, its stack included), so that a passing run reads clean.
 * Every other line, and any other uncaught exception, still prints.
 */
function quietDeliberateBodyAborts(): void {
  const error = console.error as typeof console.error & { quietsBodyAborts?: true };
  if (error.quietsBodyAborts) return;
  const filtered = (...args: unknown[]) => {
    if (typeof args[0] === "string" && DELIBERATE_BODY_ABORT.test(args[0].replace(COLOUR, ""))) return;
    error.apply(console, args);
  };
  console.error = Object.assign(filtered, { quietsBodyAborts: true as const });
}

/** Starts the relay Worker from wrangler.toml on 127.0.0.1. */
export async function startRelay(opts: RelayOptions = {}): Promise<RelayHandle> {
  const { unstable_startWorker } = await import("wrangler");
  quietDeliberateBodyAborts();
  const secret = opts.secret ?? randomBytes(32).toString("hex");
  const before = new Set(workerdDescendants());
  const vars = { RELAY_DOMAIN: "localhost", ...opts.vars };
  const bindings: Record<string, { type: "plain_text"; value: string }> = { RELAY_SECRET: { type: "plain_text", value: secret } };
  for (const [k, v] of Object.entries(vars)) bindings[k] = { type: "plain_text", value: v };
  const root = opts.snapshot ? snapshotWorker() : ROOT;
  const worker = await unstable_startWorker({
    config: join(root, "wrangler.toml"),
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
  const pids = workerdDescendants().filter((p) => !before.has(p));
  return {
    url,
    port: Number(new URL(url).port),
    secret,
    token: (backend, ttlSeconds) => mintToken(secret, backend, ttlSeconds ? { ttlSeconds } : {}),
    workerdPids: () => pids,
    stop: async () => {
      await worker.dispose();
      if (root !== ROOT) rmSync(root, { recursive: true, force: true });
    },
  };
}

/** Pids of workerd processes started by this process (directly or through wrangler). */
export function workerdDescendants(root: number = process.pid): number[] {
  const parent = new Map<number, number>();
  const names = new Map<number, string>();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      const close = stat.lastIndexOf(")");
      names.set(Number(entry), stat.slice(stat.indexOf("(") + 1, close));
      parent.set(Number(entry), Number(stat.slice(close + 2).split(" ")[1]));
    } catch {
      // The process ended while we looked.
    }
  }
  const isDescendant = (pid: number): boolean => {
    for (let p = parent.get(pid); p !== undefined && p > 1; p = parent.get(p)) if (p === root) return true;
    return false;
  };
  return [...names].filter(([pid, name]) => name === "workerd" && isDescendant(pid)).map(([pid]) => pid);
}

/** Resident memory of a process in bytes (Linux /proc), 0 when it is gone. */
export function rssBytes(pid: number): number {
  try {
    const kb = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1];
    return kb ? Number(kb) * 1024 : 0;
  } catch {
    return 0;
  }
}
