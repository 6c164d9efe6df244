// Keeps the configured number of tunnels up: reconnects with jittered backoff, prints one line
// per tunnel up or down, and on SIGINT/SIGTERM drains in-flight streams then closes cleanly.
import type { AgentConfig } from "./config.ts";
import { backoffDelay, DEFAULT_BACKOFF, FAST_CAP_MS, FAST_PHASE_MS, type BackoffOptions } from "./backoff.ts";
import { createOrigin, type Origin } from "./origin.ts";
import { RelayRefusal } from "./relay-refusal.ts";
import { TargetFailureLog, targetText } from "./target-failures.ts";
import { AgentTunnel } from "./tunnel.ts";

/** Refusals of the token in a row (over all tunnels) after which the agent gives up. */
export const MAX_TOKEN_REFUSALS = 3;
/** The exit code when the relay keeps refusing the token: restarting cannot help, a new token can. */
export const EXIT_TOKEN_REFUSED = 3;

export interface SupervisorOptions {
  log?: (line: string) => void;
  backoff?: BackoffOptions;
  /** Aborting it starts a graceful shutdown (the CLI wires SIGINT/SIGTERM to it). */
  signal?: AbortSignal;
  origin?: Origin;
}

/** Runs tunnels until `signal` aborts or the relay refuses the token; resolves with the exit code. */
export async function superviseTunnels(config: AgentConfig, opts: SupervisorOptions = {}): Promise<number> {
  const log = opts.log ?? ((line: string) => console.log(line));
  const origin = opts.origin ?? createOrigin(config);
  const backoff = opts.backoff ?? DEFAULT_BACKOFF;
  const live = new Set<AgentTunnel>();
  /** Tunnels the relay asked us to replace, finishing their streams. */
  const draining = new Set<AgentTunnel>();
  let stopping = false;
  let exitCode = 0;
  /** Token refusals since a tunnel was last up. */
  let tokenRefusals = 0;
  let wakeSleepers: Array<() => void> = [];
  const where = `relay=${config.relayUrl.origin} backend=${config.backend}`;
  const failures = new TargetFailureLog(targetText(config.target), log);

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
    const deadline = Date.now() + config.gracePeriodMs;
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
      const tunnel = new AgentTunnel(config, origin, protocols, failures);
      let replaced = false;
      try {
        await tunnel.open();
        live.add(tunnel);
        attempt = 0;
        tokenRefusals = 0;
        lastFailure = "";
        log(`edge-relay: tunnel ${slot} up: ${where} tunnels=${live.size}/${config.connections}`);
        const ended = await Promise.race([tunnel.closed, tunnel.replaced.then((reason) => ({ replaced: reason }))]);
        live.delete(tunnel);
        if (stopping) break;
        if ("replaced" in ended) {
          // The relay asked for a new tunnel: open it now, let this one's streams finish.
          replaced = true;
          log(`edge-relay: tunnel ${slot} replaced: ${where} reason="${ended.replaced}"`);
          void retire(tunnel);
        } else {
          log(`edge-relay: tunnel ${slot} down: ${where} code=${ended.code}${ended.reason ? ` reason="${ended.reason}"` : ""} tunnels=${live.size}/${config.connections}`);
        }
        lostAt = Date.now();
      } catch (err) {
        const message = (err as Error).message;
        if (err instanceof RelayRefusal && err.tokenRefused) {
          if (++tokenRefusals === 1) {
            log(`edge-relay: the relay refuses the token for backend ${config.backend} (${err.code}): ${message}; mint a new one with \`edge-relay token ${config.backend}\` (with the relay's secret).`);
          }
          if (tokenRefusals >= MAX_TOKEN_REFUSALS) {
            if (!stopping) log(`edge-relay: giving up after the relay refused the token ${tokenRefusals} times (exit ${EXIT_TOKEN_REFUSED}).`);
            exitCode = EXIT_TOKEN_REFUSED;
            void shutdown();
            break;
          }
        } else if (message !== lastFailure) {
          log(`edge-relay: tunnel ${slot} cannot connect: ${message}; retrying`);
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

  const shutdown = async () => {
    if (stopping) return;
    stopping = true;
    for (const wake of wakeSleepers) wake();
    wakeSleepers = [];
    const deadline = Date.now() + config.gracePeriodMs;
    for (const t of live) t.drain();
    const busy = () => [...live, ...draining].some((t) => !t.idle);
    while (busy() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    for (const t of [...live, ...draining]) t.close();
  };

  if (opts.signal?.aborted) return 0;
  // What the target speaks (ALPN for https): asked once, never holding the tunnels up for long.
  const protocols = await Promise.race([
    origin.protocols?.() ?? Promise.resolve([]),
    new Promise<string[]>((resolve) => setTimeout(() => resolve(["unknown"]), 2000).unref()),
  ]).catch(() => ["unknown"]);
  opts.signal?.addEventListener("abort", () => void shutdown(), { once: true });
  const slots = Array.from({ length: config.connections }, (_, i) => keepUp(i + 1));
  await Promise.all(slots);
  await Promise.all([...live, ...draining].map((t) => t.closed));
  origin.close();
  log(`edge-relay: stopped (${where})`);
  return exitCode;
}

/** Entry point of `edge-relay agent`: runs until SIGINT or SIGTERM. */
export async function runAgent(config: AgentConfig): Promise<number> {
  const controller = new AbortController();
  const stop = () => controller.abort();
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
  try {
    return await superviseTunnels(config, { signal: controller.signal });
  } finally {
    process.off("SIGINT", stop);
    process.off("SIGTERM", stop);
  }
}
