// Starts the bench's processes from another checkout of this repository (a git worktree of
// another commit), for the scripts that compare checkouts in turns.
import { agentBin } from "./agent-bin.ts";
import { spawn, type ChildProcess } from "node:child_process";
import { loadavg } from "node:os";
import { resolve } from "node:path";

/** Starts a checkout's bench script with its own tsx; resolves with the port its JSON line names. */
export async function startScript(root: string, script: string): Promise<{ proc: ChildProcess; port: number }> {
  const proc = spawn(process.execPath, ["--import", "tsx", `${root}/bench/${script}`], { cwd: root, stdio: ["ignore", "pipe", "inherit"] });
  const port = await new Promise<number>((res, rej) => {
    let buf = "";
    proc.once("exit", (code) => rej(new Error(`${script} exited with ${code}`)));
    proc.stdout!.on("data", (d: Buffer) => {
      buf += d.toString();
      const line = buf.split("\n").find((l) => l.startsWith("{"));
      if (line) res((JSON.parse(line) as { port: number }).port);
    });
  });
  return { proc, port };
}

/** Starts `edge-relay <args>` of a checkout; resolves with the first match of `ready` in its output. */
export async function startEdgeRelay(
  root: string,
  nodeArgs: string[],
  args: string[],
  ready: RegExp,
): Promise<{ proc: ChildProcess; match: RegExpExecArray }> {
  const proc = spawn(process.execPath, [...nodeArgs, await agentBin(root), ...args], { stdio: ["ignore", "pipe", "pipe"] });
  const match = await new Promise<RegExpExecArray>((res, rej) => {
    let out = "";
    const on = (d: Buffer) => {
      out += d.toString();
      const m = ready.exec(out);
      if (m) res(m);
    };
    proc.stdout!.on("data", on);
    proc.stderr!.on("data", on);
    proc.once("exit", () => rej(new Error(`edge-relay ${args[0]} of ${root} exited:\n${out}`)));
  });
  return { proc, match };
}

/** Starts a checkout's agent with `nodeArgs` for node; resolves once all its tunnels are up. */
export async function startAgent(root: string, args: string[], nodeArgs: string[] = []): Promise<ChildProcess> {
  return (await startEdgeRelay(root, nodeArgs, args, /tunnels=(\d+)\/\1\b/)).proc;
}

export const median = (xs: number[]) => (xs.length ? [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] : Number.NaN);

/** A checkout named on the command line: `name=<path>`. */
export interface Checkout {
  name: string;
  root: string;
}

/**
 * Parses a comparison script's arguments: `name=<checkout>` pairs, and the options of `flags`
 * (flag -> key of `defaults`: a boolean key is set by the flag alone, a number or string key takes
 * the next argument). Prints `usage` and exits for --help, an unknown argument or no checkout.
 */
export function parseCheckoutArgs<O extends Record<string, number | string | boolean>>(
  argv: string[],
  usage: string,
  defaults: O,
  flags: Record<string, keyof O>,
): O & { variants: Checkout[] } {
  const o: Record<string, number | string | boolean> = { ...defaults };
  const variants: Checkout[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const key = flags[a] as string | undefined;
    if (a === "--help" || a === "-h") {
      console.log(usage);
      process.exit(0);
    } else if (key !== undefined) {
      const kind = typeof defaults[key];
      o[key] = kind === "boolean" ? true : kind === "number" ? Number(argv[++i]) : argv[++i];
    } else if (/^[\w-]+=/.test(a)) {
      const [name, root] = a.split("=", 2);
      variants.push({ name, root: resolve(root) });
    } else {
      console.error(`unknown argument ${a}\n\n${usage}`);
      process.exit(2);
    }
  }
  if (!variants.length) {
    console.error(usage);
    process.exit(2);
  }
  return { ...(o as O), variants };
}

/** "load average at the <when>: 1.0 0.8 0.5", for a comparison's output. */
export function loadLine(when: string): string {
  return `load average at the ${when}: ${loadavg()
    .map((l) => l.toFixed(1))
    .join(" ")}`;
}

/** A comparison's figures: their median, then each in brackets. */
export function spread(xs: number[], digits: number): string {
  return `${median(xs).toFixed(digits)} [${xs.map((x) => x.toFixed(digits)).join(" ")}]`;
}
