// Starts what the config asks to watch the agent with: the logger always; the request log, the
// metrics endpoint and the inspector when turned on. With all of them off no request is watched.
import type { RequestListener } from "node:http";
import type { AgentConfig, ListenAddress } from "../config.ts";
import { serveLocal } from "./listen.ts";
import { createLogger, requestLog, type Log } from "./log.ts";
import { Inspector } from "./inspector.ts";
import { DEFAULT_INSPECT_CAPACITY } from "../options.ts";
import { Observer, type ObserverSink } from "./observer.ts";

export interface Observers {
  log: Log;
  /** Absent when nothing watches requests. */
  observer?: Observer;
  /** Follows a reloaded config (its backends, its token). */
  reconfigure(config: AgentConfig): void;
  /** Closes the listeners. */
  close(): Promise<void>;
}

/** The logger and the observers `config` turns on; listeners are up when it resolves. */
export async function startObservers(config: AgentConfig): Promise<Observers> {
  const logger = await createLogger({ format: config.logFormat, level: config.logLevel });
  logger.addSecret(config.token);
  const sinks: ObserverSink[] = [];
  const closers: Array<() => Promise<void>> = [];
  const followers: Array<(config: AgentConfig) => void> = [];
  let inspector: Inspector | undefined;
  if (logger.enabled("debug")) sinks.push(requestLog(logger));
  const closeAll = () => Promise.all(closers.map((close) => close())).then(() => {});
  /** Listens, or closes what already listens and rejects. */
  const listen = (at: ListenAddress, flag: string, handler: RequestListener) =>
    serveLocal(at, flag, handler).catch(async (err) => {
      await closeAll();
      throw err;
    });
  if (config.metrics) {
    // Loaded when asked for: prom-client at start-up would slow every agent's transfers.
    const { AgentMetrics } = await import("./metrics.ts");
    const metrics = new AgentMetrics(config.backends);
    const server = await listen(config.metrics, "metrics", (req, res) => metrics.handle(req, res));
    sinks.push(metrics);
    closers.push(server.close);
    followers.push((next) => metrics.setBackends(next.backends));
    logger.log(`edge-relay: metrics on ${server.url}/metrics (and /healthz, /ready)`);
  }
  if (config.inspect) {
    const at = config.inspect;
    const own = new Inspector(DEFAULT_INSPECT_CAPACITY, config.inspectUnmask);
    inspector = own;
    const server = await listen(at, "inspect", (req, res) => own.handle(req, res));
    const port = new URL(server.url).port;
    // Bound to loopback: answer only names of loopback, so no other site can reach it by DNS rebinding.
    if (/^(127\.|::1$|localhost$)/.test(at.host)) {
      own.allowedHosts = [new URL(server.url).host, `localhost:${port}`, `127.0.0.1:${port}`, `[::1]:${port}`];
    }
    sinks.push(own);
    closers.push(async () => {
      own.close();
      await server.close();
    });
    logger.log(`edge-relay: inspector on ${server.url}/`);
  }
  const observer = sinks.length ? new Observer(sinks) : undefined;
  if (inspector) inspector.observer = observer;
  return {
    log: logger.log,
    ...(observer ? { observer } : {}),
    reconfigure(next) {
      logger.addSecret(next.token);
      if (watchSettings(next) !== watchSettings(config)) {
        logger.log("edge-relay: the log, metrics and inspect settings of a reloaded config apply at the next start", { level: "warn" });
      }
      for (const follow of followers) follow(next);
    },
    close: closeAll,
  };
}

/** The settings startObservers reads once. */
function watchSettings(c: AgentConfig): string {
  return JSON.stringify([c.logFormat, c.logLevel, c.metrics, c.inspect, c.inspectUnmask]);
}
