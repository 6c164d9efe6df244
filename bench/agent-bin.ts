// The agent every benchmark runs: the checkout's agent bundled as the package ships it
// (scripts/build-agent.ts), never its sources through tsx, whose start-up leaves the agent's heap
// shaped differently from the installed program's (docs/performance.md "The agent the bench runs").
import { fileURLToPath } from "node:url";
import { buildAgent } from "../scripts/build-agent.ts";

const ROOT = fileURLToPath(new URL("../", import.meta.url));
const built = new Map<string, Promise<string>>();

/** The path of `root`'s bundled agent (this checkout by default), built once per run. */
export function agentBin(root: string = ROOT): Promise<string> {
  const key = root.endsWith("/") ? root : `${root}/`;
  let bin = built.get(key);
  if (!bin) {
    bin = buildAgent(key);
    built.set(key, bin);
  }
  return bin;
}
