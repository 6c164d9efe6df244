// Runs the real agent (`edge-relay agent`) as a child process and waits on its output lines.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { mintToken } from "../../src/auth.ts";

export const BIN = fileURLToPath(new URL("../../agent/bin/edge-relay.mjs", import.meta.url));

export interface AgentProcess {
  proc: ChildProcess;
  /** Every stdout and stderr line so far. */
  lines: string[];
  /** Resolves with the first line (past or future) matching `re`; rejects after `ms`. */
  waitForLine(re: RegExp, ms?: number, from?: number): Promise<string>;
  /** Sends a signal and waits for the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/**
 * Starts `edge-relay <args>`; with `waitUp`, resolves once `waitUp` tunnels are up (and kills the
 * process if they do not come up). `command` is
 * the program and its first arguments (default: this Node running the sources through tsx).
 */
export async function startAgent(
  args: string[],
  opts: { waitUp?: number; env?: NodeJS.ProcessEnv; command?: [string, ...string[]] } = {},
): Promise<AgentProcess> {
  const [program, ...first] = opts.command ?? [process.execPath, BIN];
  const proc = spawn(program, [...first, ...args], {
    env: { ...process.env, ...opts.env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const lines: string[] = [];
  const listeners = new Set<(line: string) => void>();
  const exited = new Promise<number | null>((resolve) => proc.on("exit", (code) => resolve(code)));
  for (const s of [proc.stdout!, proc.stderr!]) {
    let rest = "";
    s.setEncoding("utf8");
    s.on("data", (d: string) => {
      const parts = (rest + d).split("\n");
      rest = parts.pop()!;
      for (const line of parts) {
        lines.push(line);
        for (const l of listeners) l(line);
      }
    });
  }
  const waitForLine = (re: RegExp, ms = 20_000, from = 0) =>
    new Promise<string>((resolve, reject) => {
      const seen = lines.slice(from).find((l) => re.test(l));
      if (seen) return resolve(seen);
      const timer = setTimeout(() => {
        listeners.delete(check);
        reject(new Error(`agent printed no line matching ${re} within ${ms} ms; output:\n${lines.join("\n")}`));
      }, ms);
      const check = (line: string) => {
        if (!re.test(line)) return;
        clearTimeout(timer);
        listeners.delete(check);
        resolve(line);
      };
      listeners.add(check);
      void exited.then(() => {
        if (!listeners.has(check)) return;
        clearTimeout(timer);
        listeners.delete(check);
        reject(new Error(`agent exited before printing ${re}; output:\n${lines.join("\n")}`));
      });
    });
  const agent: AgentProcess = {
    proc,
    lines,
    waitForLine,
    stop: async (signal = "SIGTERM") => {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
      return exited;
    },
  };
  if (opts.waitUp) {
    try {
      await waitForLine(new RegExp(`tunnels=${opts.waitUp}/`));
    } catch (error) {
      // The caller never gets the process to stop: do it here.
      await agent.stop("SIGKILL");
      throw error;
    }
  }
  return agent;
}

/** Arguments for `edge-relay agent` against a relay, backend name and target. */
export function agentArgs(relayUrl: string, backend: string, token: string, target: string, extra: string[] = []): string[] {
  return ["agent", "--relay", relayUrl, "--backend", backend, "--token", token, "--to", target, ...extra];
}

/**
 * Writes `yaml` to a config file in a fresh temporary folder and starts `edge-relay agent
 * --config` on it with an agent token (signed with `secret`) for `backends`; resolves once each
 * backend has `connections` tunnels up (and kills the process if they do not come up).
 */
export async function startConfigAgent(secret: string, yaml: string, backends: string[], connections = 1): Promise<AgentProcess> {
  const file = join(mkdtempSync(join(tmpdir(), "edge-relay-agent-")), "agent.yaml");
  writeFileSync(file, yaml);
  const agent = await startAgent(["agent", "--config", file, "--connections", String(connections)], {
    env: { EDGE_RELAY_TOKEN: await mintToken(secret, backends) },
  });
  try {
    await Promise.all(
      backends.map((b) => agent.waitForLine(new RegExp(`up: .* backend=${b} tunnels=${connections}/${connections}$`), 60_000)),
    );
  } catch (error) {
    await agent.stop("SIGKILL");
    throw error;
  }
  return agent;
}
