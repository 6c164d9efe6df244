// Starts the real relay Worker in workerd on a loopback port for tests, with a throwaway
// RELAY_SECRET, under wrangler dev (wrangler's startWorker) or `npm run serve` (bare workerd, its
// script started as a user starts it); stops it afterwards.
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { copyFileSync, cpSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { useOfflineWrangler } from "../../scripts/offline-env.ts";
import { mintToken } from "../../src/auth.ts";
import { DELIBERATE_BODY_ABORT, quietConsole } from "./console.ts";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const TSX = join(ROOT, "node_modules", "tsx", "dist", "cli.mjs");

/** What runs the relay: `wrangler dev` (what `npm start` runs) or `npm run serve` (bare workerd). */
export type RelayRuntime = "wrangler" | "serve";
/** Both runtimes, for suites run against each (`describe.each(RELAY_RUNTIMES)`). */
export const RELAY_RUNTIMES: readonly RelayRuntime[] = ["wrangler", "serve"];

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
  /** The runtime (default wrangler). `serve` builds its bundle once, so it needs no snapshot. */
  runtime?: RelayRuntime;
  /** serve: TLS from these PEM files (the URL is then https://). */
  tls?: { certFile: string; keyFile: string };
  /** serve: the Durable Object storage folder (default: a fresh one, removed on stop). */
  state?: string;
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
 * What workerd prints when a public client closes its connection while a response is still
 * being written to it (a browser leaving a page, a test done with a body): the client's choice,
 * which the relay answers by cancelling the stream, not a fault.
 */
const CLIENT_WENT_AWAY = /kj::getCaughtExceptionAsKj\(\) = [^\n]*disconnected: ::write\([^\n]*\): (Broken pipe|Connection reset by peer)/;
/**
 * What wrangler's bundler prints when a relay is disposed while its esbuild context still
 * resolves the entry in the temporary folder that dispose removes: teardown noise, not a build.
 */
const TEARDOWN_REBUILD = /Build failed with \d+ error[\s\S]*\.wrangler\/tmp\/bundle-[^/]+\/middleware-loader\.entry\.ts/;
/** Starts the relay Worker from wrangler.toml on 127.0.0.1. */
export async function startRelay(opts: RelayOptions = {}): Promise<RelayHandle> {
  if (opts.runtime === "serve") return startServe(opts);
  const { unstable_startWorker } = await import("wrangler");
  quietConsole("error", DELIBERATE_BODY_ABORT);
  quietConsole("error", TEARDOWN_REBUILD);
  quietConsole("error", CLIENT_WENT_AWAY);
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
  return relayHandle(url, secret, pids, async () => {
    await worker.dispose();
    if (root !== ROOT) rmSync(root, { recursive: true, force: true });
  });
}

/**
 * Runs scripts/serve.ts as a child process, as `npm run serve -- --port ...` would: the secret in
 * an env file, RELAY_DOMAIN in the environment, other vars as --var flags. Resolves once it prints
 * its banner.
 */
async function startServe(opts: RelayOptions): Promise<RelayHandle> {
  const secret = opts.secret ?? randomBytes(32).toString("hex");
  const dir = mkdtempSync(join(tmpdir(), "edge-relay-serve-"));
  const envFile = join(dir, "serve.vars");
  writeFileSync(envFile, `RELAY_SECRET=${secret}\n`, { mode: 0o600 });
  const { RELAY_DOMAIN = "localhost", ...vars } = opts.vars ?? {};
  const args = [TSX, "scripts/serve.ts", "--port", String(opts.port ?? 0), "--env-file", envFile];
  args.push("--state", opts.state ?? join(dir, "state"));
  for (const [k, v] of Object.entries(vars)) args.push("--var", `${k}=${v}`);
  if (opts.tls) args.push("--tls-cert", opts.tls.certFile, "--tls-key", opts.tls.keyFile);
  // The secret comes from the env file alone, as the test's own environment must not add one.
  const env: NodeJS.ProcessEnv = { ...process.env, RELAY_DOMAIN };
  delete env.RELAY_SECRET;
  const proc = spawn(process.execPath, args, { cwd: ROOT, env, stdio: ["ignore", "pipe", "pipe"] });
  const exited = new Promise<void>((resolve) => proc.once("exit", () => resolve()));
  let output = "";
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`npm run serve printed no relay URL within 60 s:\n${output}`)), 60_000);
    const onData = (d: Buffer) => {
      output += d.toString();
      const m = /^ {4}relay +(https?:\/\/\S+)/m.exec(output);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    };
    proc.stdout!.on("data", onData);
    proc.stderr!.on("data", (d: Buffer) => {
      onData(d);
      if (process.env.RELAY_LOG) process.stderr.write(d);
    });
    void exited.then(() => {
      clearTimeout(timer);
      reject(new Error(`npm run serve exited before listening:\n${output}`));
    });
  });
  const pids = workerdDescendants(proc.pid);
  return relayHandle(url, secret, pids, async () => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill("SIGTERM");
    const timer = setTimeout(() => proc.kill("SIGKILL"), 10_000);
    await exited;
    clearTimeout(timer);
    // A serve process killed before it stopped its workerd leaves that workerd running.
    await endProcesses(pids, 5_000);
    rmSync(dir, { recursive: true, force: true });
  });
}

/** Waits up to `ms` for each of `pids` to end, then kills with SIGKILL those still running. */
async function endProcesses(pids: number[], ms: number): Promise<void> {
  const alive = (pid: number) => {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  };
  const deadline = Date.now() + ms;
  while (pids.some(alive) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  for (const pid of pids.filter(alive)) process.kill(pid, "SIGKILL");
}

/** The handle of a relay listening at `url` with `secret`, whichever runtime runs it. */
function relayHandle(url: string, secret: string, pids: number[], stop: () => Promise<void>): RelayHandle {
  return {
    url,
    port: Number(new URL(url).port),
    secret,
    token: (backend, ttlSeconds) => mintToken(secret, backend, ttlSeconds ? { ttlSeconds } : {}),
    workerdPids: () => pids,
    stop,
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
