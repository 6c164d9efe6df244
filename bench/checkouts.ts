// What the paired scripts (bench/transfer-pairs.ts, bench/stream-pairs.ts) share: their command
// line of `name=<checkout>` variants, and starting a checkout's own bench scripts.
import { spawn, type ChildProcess } from "node:child_process";
import { resolve } from "node:path";

/**
 * Reads `name=<checkout>` arguments, the flags in `flags` (each takes the next argument) and the
 * switches in `switches` (none takes one);
 * `--help` prints `usage` and exits, anything else or no checkout prints it and exits with 2.
 */
export function parseCheckouts(
  argv: string[],
  usage: string,
  flags: Record<string, (value: string) => void>,
  switches: Record<string, () => void> = {},
): Array<{ name: string; root: string }> {
  const variants: Array<{ name: string; root: string }> = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--help" || a === "-h") {
      console.log(usage);
      process.exit(0);
    } else if (flags[a]) flags[a](argv[++i]);
    else if (switches[a]) switches[a]();
    else if (/^[\w-]+=/.test(a)) {
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
  return variants;
}

/** Starts a checkout's bench script with its own tsx; resolves with the port it prints. */
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

export const median = (xs: number[]) => (xs.length ? [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] : Number.NaN);
