// Builds the settings of an agent run with a --config (or --policy) file in a worker thread, so the
// file's parsers (yaml, ajv) load into that thread's isolate and end with it, never the agent's own.
import { isMainThread, parentPort, Worker, workerData } from "node:worker_threads";
import { buildAgentConfig, ConfigError, withRedaction, type AgentConfig, type RawAgentOptions, type TargetSpec } from "./config.ts";
import type { IngressRule } from "./ingress.ts";

const ROLE = "edge-relay config worker";

/**
 * What the worker runs: the command's entry again, which runs the job when it finds itself in a
 * config worker (agent/bin/edge-relay.ts). The bundle (`npm run build`) is that entry itself; the
 * TypeScript sources start from agent/bin/edge-relay.mjs, which registers tsx in the new thread too.
 */
const WORKER_SCRIPT = import.meta.url.endsWith(".ts") ? new URL("./bin/edge-relay.mjs", import.meta.url) : new URL(import.meta.url);

interface Job {
  role: typeof ROLE;
  raw: RawAgentOptions;
  env: Record<string, string | undefined>;
}

/** A target as it crosses threads: a structured clone keeps no URL, so it travels as its href. */
type PlainTarget<T = TargetSpec> = T extends { url: URL } ? Omit<T, "url"> & { url: string } : T;

/** An AgentConfig as plain data. */
interface PlainConfig extends Omit<AgentConfig, "relayUrl" | "rules" | "target"> {
  relayUrl: string;
  rules: Array<Omit<IngressRule, "target"> & { target: PlainTarget }>;
}

type Reply = { config: PlainConfig } | { error: { message: string; field: string; file?: string; line?: number; column?: number } };

/**
 * buildAgentConfig for the agent command. Options that name a file to parse (--config, --policy)
 * are built in a worker thread that ends before this resolves: the agent's main thread never
 * loads yaml or ajv, whose presence in its heap made V8 collect the whole heap several times a
 * second while bodies streamed through (docs/performance.md, "Libraries loaded at start-up").
 * Errors are the same ConfigError sentences, with file, line and key path. Flags alone are
 * built here, without a thread.
 */
export async function loadAgentConfig(raw: RawAgentOptions, env: Record<string, string | undefined>): Promise<AgentConfig> {
  if (raw.config === undefined && raw.policy === undefined) return buildAgentConfig(raw, env);
  const job: Job = { role: ROLE, raw, env: { ...env } };
  const worker = new Worker(WORKER_SCRIPT, { workerData: job });
  let reply: Reply;
  try {
    reply = await new Promise<Reply>((resolve, reject) => {
      worker.once("message", resolve);
      worker.once("error", reject);
      worker.once("exit", (code) => reject(new Error(`the thread reading ${raw.config ?? raw.policy} stopped (exit code ${code}).`)));
    });
  } finally {
    await worker.terminate();
  }
  if ("error" in reply) throw new ConfigError(reply.error.message, reply.error);
  const rules = reply.config.rules.map((rule) => ({ ...rule, target: fromPlain(rule.target) }));
  return withRedaction({ ...reply.config, relayUrl: new URL(reply.config.relayUrl), rules, target: rules[0].target });
}

/** True in a thread loadAgentConfig started: the entry then calls runConfigJob instead of the command. */
export function isConfigWorker(): boolean {
  return !isMainThread && (workerData as Partial<Job> | null)?.role === ROLE;
}

/** The worker's side: builds the config and posts it (or its ConfigError) back as plain data. */
export function runConfigJob(): void {
  const { raw, env } = workerData as Job;
  let reply: Reply;
  try {
    const config = buildAgentConfig(raw, env);
    const rules = config.rules.map((rule) => ({ ...rule, target: toPlain(rule.target) }));
    const { target: _first, ...rest } = config;
    reply = { config: { ...rest, relayUrl: config.relayUrl.href, rules } };
  } catch (error) {
    // Anything else is a bug: it reaches the main thread as the worker's error event.
    if (!(error instanceof ConfigError)) throw error;
    const { message, field, file, line, column } = error;
    reply = { error: { message, field, file, line, column } };
  }
  parentPort!.postMessage(reply);
}

function toPlain(target: TargetSpec): PlainTarget {
  return target.kind === "http" || target.kind === "https" ? { ...target, url: target.url.href } : target;
}

function fromPlain(target: PlainTarget): TargetSpec {
  return target.kind === "http" || target.kind === "https" ? { ...target, url: new URL(target.url) } : target;
}
