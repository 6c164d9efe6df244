// The agent's log: a sentence a line (text), or through pino a JSON object a line (json) with time,
// level, backend, tunnel and request ids. Known secrets are scrubbed from every line before it is
// written. pino loads only for JSON: a package loaded at start-up slows the agent's transfers
// (test/agent/startup-imports.test.ts).
import type { Logger } from "pino";
import type { LogFormat, LogLevel } from "../config.ts";
import type { Exchange, ObserverSink } from "./observer.ts";

export type Level = "debug" | "info" | "warn" | "error";

/** Fields a line carries in JSON (text prints the sentence only). `level` defaults to info. */
export interface LogFields {
  level?: Level;
  backend?: string;
  tunnel?: string;
  request?: string;
  trace?: string;
  [key: string]: unknown;
}

/** What the agent's modules log through: `log(sentence, fields)`. */
export type Log = (line: string, fields?: LogFields) => void;

export interface AgentLogger {
  log: Log;
  /** Whether lines of `level` are written. */
  enabled(level: Level): boolean;
  /** Adds a value that must never be written (the token); lines holding it show [redacted]. */
  addSecret(secret: string): void;
}

/**
 * Header values that are credentials, whatever the line: scrubbed with the known secrets. The
 * scheme stands as a word of its own (not the end of a name like "acc-basic") and the credential
 * is a whole token68 (RFC 7235: "=" only as trailing padding), so "basic tunnels=1/1" is no match.
 */
const BEARER = /(?<=^|[\s"'`:=,(])(Bearer|Basic)\s+[A-Za-z0-9._~+/-]+=*(?![A-Za-z0-9._~+/=-])/gi;

/** Levels from the most to the least verbose, with "silent" above them all. */
const LEVELS: Record<LogLevel, number> = { debug: 20, info: 30, warn: 40, error: 50, silent: 100 };

/**
 * A logger writing to `write` (default: stdout). Text lines are the sentence alone, as the agent
 * always printed them; JSON lines are pino's, with an ISO time and the level's name.
 */
export async function createLogger(
  opts: { format?: LogFormat; level?: LogLevel; write?: (line: string) => void } = {},
): Promise<AgentLogger> {
  const secrets = new Set<string>();
  const write = opts.write ?? ((line: string) => void process.stdout.write(line));
  const scrub = (text: string): string => {
    let out = text.replace(BEARER, "$1 [redacted]");
    for (const s of secrets) if (out.includes(s)) out = out.split(s).join("[redacted]");
    return out;
  };
  const threshold = LEVELS[opts.level ?? "info"];
  const enabled = (level: Level) => LEVELS[level] >= threshold;
  const addSecret = (secret: string) => {
    if (secret.length >= 4) secrets.add(secret);
  };
  if (opts.format !== "json") {
    return {
      log(line, fields) {
        if (enabled(fields?.level ?? "info")) write(`${scrub(line)}\n`);
      },
      enabled,
      addSecret,
    };
  }
  // A plain object destination: pino formats in this thread and hands each line over (no
  // worker-thread transport, so the bundled agent needs nothing beside its one file).
  const { pino } = await import("pino");
  const logger: Logger = pino(
    {
      level: opts.level ?? "info",
      base: undefined,
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    { write: (line: string) => write(line) },
  );
  return {
    log(line, fields) {
      const level = fields?.level ?? "info";
      if (!enabled(level)) return;
      if (!fields) return logger[level](scrub(line));
      const clean: Record<string, unknown> = {};
      for (const [key, value] of Object.entries(fields)) {
        if (key !== "level" && value !== undefined) clean[key] = typeof value === "string" ? scrub(value) : value;
      }
      logger[level](clean, scrub(line));
    },
    enabled,
    addSecret,
  };
}

/**
 * A debug line per finished request: method, path without its query (a query may carry a
 * token), status, timings, bytes and the target. No header or body ever reaches the log.
 */
export function requestLog(logger: AgentLogger): ObserverSink {
  return {
    end(x: Exchange) {
      if (!logger.enabled("debug")) return;
      const path = x.path.split("?")[0];
      const status = x.status ?? 0;
      const outcome = x.error ? `${x.error.code}` : String(status);
      logger.log(`edge-relay: ${x.method} ${path} ${outcome} ${Math.round(x.durationMs ?? 0)}ms backend=${x.backend}`, {
        level: "debug",
        backend: x.backend,
        tunnel: x.tunnel,
        request: x.id,
        trace: x.trace,
        method: x.method,
        path,
        status: x.status,
        target: x.target,
        headMs: x.headMs === undefined ? undefined : round(x.headMs),
        durationMs: round(x.durationMs ?? 0),
        bytesIn: x.bytesIn,
        bytesOut: x.bytesOut,
        error: x.error?.code,
        replayOf: x.replayOf,
      });
    },
  };
}

function round(ms: number): number {
  return Math.round(ms * 100) / 100;
}
