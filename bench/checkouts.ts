// Starts the bench's processes from another checkout of this repository (a git worktree of
// another commit), for the scripts that compare checkouts in turns.
import { spawn, type ChildProcess } from "node:child_process";

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

/** Starts a checkout's agent with `nodeArgs` for node; resolves once all its tunnels are up. */
export async function startAgent(root: string, args: string[], nodeArgs: string[] = []): Promise<ChildProcess> {
  const proc = spawn(process.execPath, [...nodeArgs, `${root}/agent/bin/edge-relay.mjs`, ...args], { stdio: ["ignore", "pipe", "pipe"] });
  await new Promise<void>((res, rej) => {
    let out = "";
    const on = (d: Buffer) => {
      out += d.toString();
      if (/tunnels=(\d+)\/\1\b/.test(out)) res();
    };
    proc.stdout!.on("data", on);
    proc.stderr!.on("data", on);
    proc.once("exit", () => rej(new Error(`the agent of ${root} exited:\n${out}`)));
  });
  return proc;
}

export const median = (xs: number[]) => (xs.length ? [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] : Number.NaN);
