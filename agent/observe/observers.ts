// Starts what the config asks to watch the agent with: the logger always; the request log, the
// metrics endpoint and the inspector when turned on. With all of them off no request is watched.
import type { AgentConfig } from "../config.ts";
import { createLogger, requestLog, type Log } from "./log.ts";
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
  const observer = sinks.length ? new Observer(sinks) : undefined;
  return {
    log: logger.log,
    ...(observer ? { observer } : {}),
    reconfigure(next) {
      logger.addSecret(next.token);
      for (const follow of followers) follow(next);
    },
    async close() {
      await Promise.all(closers.map((close) => close()));
    },
  };
}
