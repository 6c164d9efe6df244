// Keeps each backend's tunnels up: reconnects with jittered backoff, prints one line per tunnel up
// or down, applies a reloaded config (new backends get tunnels, removed ones drain), and on
// SIGINT/SIGTERM drains in-flight streams then closes cleanly.
import { watch, type FSWatcher } from "node:fs";
import { basename, dirname } from "node:path";
import type { AgentConfig } from "./config.ts";
import { backoffDelay, DEFAULT_BACKOFF, FAST_CAP_MS, FAST_PHASE_MS, type BackoffOptions } from "./backoff.ts";
import { IngressTable, type Target } from "./target.ts";
import type { Log } from "./observe/log.ts";
import { startObservers } from "./observe/observers.ts";
import type { Observer } from "./observe/observer.ts";
import { accessScopes } from "./ingress.ts";
import { RelayRefusal } from "./relay-refusal.ts";
import { AgentTunnel, type TunnelSettings } from "./tunnel.ts";

/** Refusals of the token in a row (over all tunnels of a backend) after which the agent gives that backend up. */
export const MAX_TOKEN_REFUSALS = 3;
/** The exit code when the relay keeps refusing the token: restarting cannot help, a new token can. */
export const EXIT_TOKEN_REFUSED = 3;

export interface SupervisorOptions {
  log?: Log;
  /** Watches requests and tunnels (metrics, request log, inspector) when any is on. */
  observer?: Observer;
  backoff?: BackoffOptions;
  /** Aborting it starts a graceful shutdown (the CLI wires SIGINT/SIGTERM to it). */
  signal?: AbortSignal;
  /** Serves every backend instead of the config's rules (tests). */
  target?: Target;
}

/** The settings one backend's tunnels open with. */
type BackendSettings = TunnelSettings & Pick<AgentConfig, "connections" | "gracePeriodMs">;

interface BackendRun {
  controller: AbortController;
  /** Resolves with EXIT_TOKEN_REFUSED when the backend was given up, else 0. */
  done: Promise<number>;
  /** What the backend's tunnels announce and connect with: a change needs new tunnels. */
  identity: string;
}

/**
 * Keeps `connections` tunnels up for one backend until `signal` aborts, then drains them: GOAWAY,
 * in-flight streams finish within the grace period, then the tunnels close. Resolves with
 * EXIT_TOKEN_REFUSED when it gave up because the relay kept refusing the token, else 0.
 */
async function superviseBackend(
  settings: BackendSettings,
  target: Target,
  opts: SupervisorOptions & { signal: AbortSignal; onUp?: () => void },
): Promise<number> {
  const log: Log = opts.log ?? ((line: string) => console.log(line));
  const observer = opts.observer;
  const backend = settings.backend;
  const backoff = opts.backoff ?? DEFAULT_BACKOFF;
  const live = new Set<AgentTunnel>();
  /** Tunnels the relay asked us to replace, finishing their streams. */
  const draining = new Set<AgentTunnel>();
  let stopping = false;
  let exitCode = 0;
  /** Token refusals since a tunnel was last up. */
  let tokenRefusals = 0;
  let wakeSleepers: Array<() => void> = [];
  const where = `relay=${settings.relayUrl.origin} backend=${settings.backend}`;

  const sleep = (ms: number) =>
    new Promise<void>((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      wakeSleepers.push(done);
    });

  /** Lets a replaced tunnel's streams finish (within the grace period), then closes it. */
  async function retire(tunnel: AgentTunnel): Promise<void> {
    draining.add(tunnel);
    tunnel.drain();
    const deadline = Date.now() + settings.gracePeriodMs;
    while (!tunnel.idle && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    tunnel.close();
    await tunnel.closed;
    draining.delete(tunnel);
  }

  async function keepUp(slot: number): Promise<void> {
    let attempt = 0;
    let lastFailure = "";
    let lostAt = 0;
    while (!stopping) {
      const tunnel = new AgentTunnel(settings, target, protocols, undefined, observer);
      let replaced = false;
      try {
        await tunnel.open();
        live.add(tunnel);
        attempt = 0;
        tokenRefusals = 0;
        lastFailure = "";
        if (stopping) break;
        observer?.emit("tunnelUp", backend);
        log(`edge-relay: tunnel ${slot} up: ${where} tunnels=${live.size}/${settings.connections}`, {
          backend,
          tunnel: tunnel.relayTunnelId,
        });
        opts.onUp?.();
        const ended = await Promise.race([tunnel.closed, tunnel.replaced.then((reason) => ({ replaced: reason }))]);
        live.delete(tunnel);
        observer?.emit("tunnelDown", backend);
        if (stopping) break;
        if ("replaced" in ended) {
          // The relay asked for a new tunnel: open it now, let this one's streams finish.
          replaced = true;
          log(`edge-relay: tunnel ${slot} replaced: ${where} reason="${ended.replaced}"`, { backend, tunnel: tunnel.relayTunnelId });
          void retire(tunnel);
        } else {
          log(
            `edge-relay: tunnel ${slot} down: ${where} code=${ended.code}${ended.reason ? ` reason="${ended.reason}"` : ""} tunnels=${live.size}/${settings.connections}`,
            { level: "warn", backend, tunnel: tunnel.relayTunnelId },
          );
        }
        lostAt = Date.now();
        observer?.emit("reconnect", backend);
      } catch (err) {
        const message = (err as Error).message;
        if (err instanceof RelayRefusal && err.tokenRefused) {
          if (++tokenRefusals === 1) {
            log(
              `edge-relay: the relay refuses the token for backend ${settings.backend} (${err.code}): ${message}; mint a new one with \`edge-relay token ${settings.backend}\` (with the relay's secret).`,
              { level: "error", backend },
            );
          }
          if (tokenRefusals >= MAX_TOKEN_REFUSALS) {
            if (!stopping)
              log(`edge-relay: giving up backend ${settings.backend} after the relay refused the token ${tokenRefusals} times.`, {
                level: "error",
                backend,
              });
            exitCode = EXIT_TOKEN_REFUSED;
            void shutdown();
            break;
          }
        } else if (message !== lastFailure) {
          log(`edge-relay: tunnel ${slot} cannot connect: ${message}; retrying`, { level: "warn", backend });
        }
        lastFailure = message;
      }
      if (stopping) break;
      if (replaced) continue;
      // Soon after losing a working tunnel (a relay restart or deploy), retry at most every ~2 s.
      const cap = lostAt && Date.now() - lostAt < FAST_PHASE_MS ? FAST_CAP_MS : backoff.capMs;
      await sleep(backoffDelay(attempt++, backoff, cap));
    }
  }

  let drained!: () => void;
  const shutdownDone = new Promise<void>((resolve) => (drained = resolve));
  const shutdown = async () => {
    if (stopping) return;
    stopping = true;
    for (const wake of wakeSleepers) wake();
    wakeSleepers = [];
    const deadline = Date.now() + settings.gracePeriodMs;
    for (const t of live) t.drain();
    const busy = () => [...live, ...draining].some((t) => !t.idle);
    while (busy() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    for (const t of [...live, ...draining]) t.close();
    drained();
  };

  if (opts.signal.aborted) return 0;
  // What the target speaks (ALPN for https): asked once, never holding the tunnels up for long.
  const protocols = await Promise.race([
    target.protocols?.() ?? Promise.resolve([]),
    new Promise<string[]>((resolve) => setTimeout(() => resolve(["unknown"]), 2000).unref()),
  ]).catch(() => ["unknown"]);
  opts.signal.addEventListener("abort", () => void shutdown(), { once: true });
  if (opts.signal.aborted) void shutdown();
  const slots = Array.from({ length: settings.connections }, (_, i) => keepUp(i + 1));
  await Promise.all(slots);
  if (stopping) await shutdownDone;
  // A tunnel still opening when the shutdown began is closed here.
  for (const t of live) t.close();
  await Promise.all([...live, ...draining].map((t) => t.closed));
  return exitCode;
}

/**
 * Every backend of the config with its tunnels, and the rules their requests follow. `apply`
 * moves it to a reloaded config without dropping a request.
 */
export class Fleet {
  private readonly runs = new Map<string, BackendRun>();
  private readonly retiring = new Set<Promise<unknown>>();
  private readonly table: IngressTable;
  private givenUp = new Set<string>();
  private resolveAllRefused!: () => void;
  /** Resolves once the relay refused the token of every backend, which only a new token mends. */
  readonly allRefused = new Promise<void>((resolve) => (this.resolveAllRefused = resolve));

  constructor(
    private config: AgentConfig,
    private readonly opts: SupervisorOptions = {},
  ) {
    this.table = new IngressTable(config.rules, opts.log);
    for (const backend of config.backends) this.runs.set(backend, this.start(backend));
  }

  /**
   * Applies a reloaded config: rules change for new requests at once; added backends get tunnels;
   * removed ones drain (GOAWAY, in-flight requests finish within the grace period). A backend
   * whose tunnels must announce or connect differently (its target kinds, the relay, the token)
   * gets new tunnels first, then its old ones drain.
   */
  apply(next: AgentConfig): { added: string[]; removed: string[]; renewed: string[] } {
    const previous = this.config;
    this.config = next;
    this.table.update(next.rules, previous.gracePeriodMs);
    const added: string[] = [];
    const renewed: string[] = [];
    for (const backend of next.backends) {
      const run = this.runs.get(backend);
      this.givenUp.delete(backend);
      if (!run) {
        added.push(backend);
        this.runs.set(backend, this.start(backend));
      } else if (run.identity !== this.identity(backend)) {
        renewed.push(backend);
        let up!: () => void;
        const first = new Promise<void>((resolve) => (up = resolve));
        this.runs.set(backend, this.start(backend, up));
        // The old tunnels drain once a new one is up (or after 10 s), so the relay always has one.
        void Promise.race([first, new Promise((r) => setTimeout(r, 10_000).unref())]).then(() => this.retire(run));
      }
    }
    const removed = [...this.runs.keys()].filter((backend) => !next.backends.includes(backend));
    for (const backend of removed) {
      const log = this.opts.log ?? ((line: string) => console.log(line));
      this.retire(this.runs.get(backend)!, () => log(`edge-relay: backend ${backend} removed: its tunnels drained and closed`));
      this.runs.delete(backend);
    }
    return { added, removed, renewed };
  }

  /** Drains every backend and resolves once all tunnels are closed. */
  async stop(): Promise<void> {
    for (const run of this.runs.values()) this.retire(run);
    this.runs.clear();
    while (this.retiring.size) await Promise.all([...this.retiring]);
    this.table.close();
    this.opts.target?.close();
  }

  private retire(run: BackendRun, then?: () => void): void {
    run.controller.abort();
    const done = run.done.finally(() => {
      this.retiring.delete(done);
      then?.();
    });
    this.retiring.add(done);
  }

  private settings(backend: string): BackendSettings {
    const { relayUrl, token, heartbeatMs, requireAccess, connections, gracePeriodMs } = this.config;
    const access = accessScopes(this.config.rules, backend);
    return { relayUrl, token, heartbeatMs, requireAccess, connections, gracePeriodMs, backend, ...(access ? { access } : {}) };
  }

  private identity(backend: string): string {
    const target = this.opts.target ?? this.table.forBackend(backend);
    const { relayUrl, token, heartbeatMs, requireAccess, connections } = this.config;
    const access = accessScopes(this.config.rules, backend);
    return JSON.stringify([relayUrl.href, token, heartbeatMs, requireAccess, connections, [...target.caps].sort(), access]);
  }

  private start(backend: string, onUp?: () => void): BackendRun {
    const controller = new AbortController();
    const target = this.opts.target ?? this.table.forBackend(backend);
    const done = superviseBackend(this.settings(backend), target, { ...this.opts, signal: controller.signal, onUp });
    const run: BackendRun = { controller, done, identity: this.identity(backend) };
    void done.then((code) => {
      if (code !== EXIT_TOKEN_REFUSED || this.runs.get(backend) !== run) return;
      this.givenUp.add(backend);
      if (this.config.backends.every((b) => this.givenUp.has(b))) this.resolveAllRefused();
    });
    return run;
  }
}

/** Runs every backend's tunnels until `signal` aborts; resolves with the exit code. */
export async function superviseTunnels(config: AgentConfig, opts: SupervisorOptions = {}): Promise<number> {
  if (opts.signal?.aborted) return 0;
  const log = opts.log ?? ((line: string) => console.log(line));
  const fleet = new Fleet(config, opts);
  const refused = await Promise.race([
    new Promise<false>((resolve) => opts.signal?.addEventListener("abort", () => resolve(false), { once: true })),
    fleet.allRefused.then(() => true),
  ]);
  await fleet.stop();
  if (refused) log(`edge-relay: giving up after the relay refused the token ${MAX_TOKEN_REFUSALS} times (exit ${EXIT_TOKEN_REFUSED}).`);
  const served = config.backends.length === 1 ? `backend=${config.backend}` : `backends=${config.backends.length}`;
  log(`edge-relay: stopped (relay=${config.relayUrl.origin} ${served})`);
  return refused ? EXIT_TOKEN_REFUSED : 0;
}

/**
 * Entry point of `edge-relay agent`: runs until SIGINT or SIGTERM. With a --config file, SIGHUP
 * (and with --watch, a change of the file) reloads it through `load`; a file that fails
 * validation changes nothing.
 */
export async function runAgent(config: AgentConfig, load?: () => Promise<AgentConfig>): Promise<number> {
  const controller = new AbortController();
  const stop = () => controller.abort();
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
  const observers = await startObservers(config);
  const { log } = observers;
  const fleet = new Fleet(config, { log, observer: observers.observer });
  let current = config;
  let reloading = Promise.resolve();
  const reload = (why: string) => {
    if (!load || controller.signal.aborted) return;
    reloading = reloading.then(async () => {
      try {
        const next = await load();
        const { added, removed, renewed } = fleet.apply(next);
        current = next;
        observers.reconfigure(next);
        const list = (names: string[]) => (names.length ? names.join(",") : "-");
        log(
          `edge-relay: reloaded (${why}): rules=${next.rules.length} backends=${next.backends.length} added=${list(added)} removed=${list(removed)} renewed=${list(renewed)}`,
        );
      } catch (err) {
        log(`edge-relay: reload (${why}) failed, nothing changed: ${(err as Error).message}`, { level: "error" });
      }
    });
  };
  const onHup = () => reload("SIGHUP");
  // Without a file there is nothing to reload: SIGHUP keeps its default meaning.
  if (load) process.on("SIGHUP", onHup);
  let watcher: FSWatcher | undefined;
  if (config.watch && config.configFile) watcher = watchFile(config.configFile, () => reload("file changed"));
  try {
    const refused = await Promise.race([
      new Promise<false>((resolve) => controller.signal.addEventListener("abort", () => resolve(false), { once: true })),
      fleet.allRefused.then(() => true),
    ]);
    watcher?.close();
    await reloading;
    await fleet.stop();
    if (refused) log(`edge-relay: giving up after the relay refused the token ${MAX_TOKEN_REFUSALS} times (exit ${EXIT_TOKEN_REFUSED}).`);
    const served = current.backends.length === 1 ? `backend=${current.backend}` : `backends=${current.backends.length}`;
    log(`edge-relay: stopped (relay=${current.relayUrl.origin} ${served})`);
    return refused ? EXIT_TOKEN_REFUSED : 0;
  } finally {
    await observers.close();
    process.off("SIGINT", stop);
    process.off("SIGTERM", stop);
    process.off("SIGHUP", onHup);
  }
}

/**
 * Calls `changed` once a burst of changes to `file` settles. Watches the folder, so an editor
 * that replaces the file (write to a temp file, rename) is seen too.
 */
function watchFile(file: string, changed: () => void): FSWatcher {
  let timer: NodeJS.Timeout | undefined;
  const name = basename(file);
  const watcher = watch(dirname(file), (_event, changedName) => {
    if (changedName !== null && changedName !== name) return;
    clearTimeout(timer);
    timer = setTimeout(changed, 100);
  });
  watcher.unref();
  return watcher;
}
