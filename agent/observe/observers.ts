// Starts what the config asks to watch the agent with: the logger always; the request log, the
// metrics endpoint and the inspector when turned on. With all of them off no request is watched.
import type { AgentConfig } from "../config.ts";
import { serveLocal } from "./listen.ts";
import { createLogger, requestLog, type Log } from "./log.ts";
import { AgentMetrics } from "./metrics.ts";
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
  const logger = createLogger({ format: config.logFormat, level: config.logLevel });
  logger.addSecret(config.token);
  const sinks: ObserverSink[] = [];
  const closers: Array<() => Promise<void>> = [];
  const followers: Array<(config: AgentConfig) => void> = [];
  if (logger.enabled("debug")) sinks.push(requestLog(logger));
  const closeAll = () => Promise.all(closers.map((close) => close())).then(() => {});
  if (config.metrics) {
    const metrics = new AgentMetrics(config.backends);
    const server = await serveLocal(config.metrics, "metrics", (req, res) => metrics.handle(req, res)).catch(async (err) => {
      await closeAll();
      throw err;
    });
    sinks.push(metrics);
    closers.push(server.close);
    followers.push((next) => metrics.setBackends(next.backends));
    logger.log(`edge-relay: metrics on ${server.url}/metrics (and /healthz, /ready)`);
  }
  const observer = sinks.length ? new Observer(sinks) : undefined;
  return {
    log: logger.log,
    ...(observer ? { observer } : {}),
    reconfigure(next) {
      logger.addSecret(next.token);
      for (const follow of followers) follow(next);
    },
    close: closeAll,
  };
}
