// Debian tools some tests drive as real peers. A missing tool skips those tests with the
// apt-get line that installs it, except under CI=true, where .ci/run installs every tool and a
// missing one must fail the run.
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";

export interface Tool {
  /** Absolute path, when installed. */
  path?: string;
  /** Why the tests that need it are skipped, when it is missing. */
  skip?: string;
}

/** Finds `command` (a name on PATH, or an absolute path); `pkg` is the Debian package. */
export function tool(command: string, pkg: string, check?: () => boolean): Tool {
  let path: string | undefined;
  if (command.startsWith("/")) path = existsSync(command) ? command : undefined;
  else {
    try {
      path = execFileSync("sh", ["-c", `command -v ${command}`], { encoding: "utf8" }).trim() || undefined;
    } catch {
      path = undefined;
    }
  }
  if (path && (!check || check())) return { path };
  const skip = `${command} (Debian package ${pkg}) is missing: apt-get install -y ${pkg}`;
  if (process.env.CI === "true") throw new Error(`${skip}. Under CI=true every tool must be installed (.ci/run does it).`);
  console.warn(`skipping: ${skip}`);
  return { skip };
}

/** Debian's own python3 with its python3-websockets module (not a pyenv or venv python). */
export function debianPythonWebsockets(): Tool {
  return tool("/usr/bin/python3", "python3-websockets", () => {
    try {
      execFileSync("/usr/bin/python3", ["-c", "import websockets"], { stdio: "ignore" });
      return true;
    } catch {
      return false;
    }
  });
}

/**
 * A Node binary of major version `major`: this process's own, or else the npm registry's `node`
 * package of that version, which npx fetches once into npm's cache (it ships the binary).
 */
export function nodeRuntime(major: number): Tool {
  if (Number(process.versions.node.split(".")[0]) === major) return { path: process.execPath };
  let path: string | undefined;
  try {
    const args = ["-y", "--prefer-offline", `node@${major}`, "-p", "process.execPath"];
    path = execFileSync("npx", args, { encoding: "utf8", timeout: 300_000, stdio: ["ignore", "pipe", "ignore"] }).trim();
  } catch {
    path = undefined;
  }
  if (path && existsSync(path)) return { path };
  const skip = `Node ${major} is missing: \`npx -y node@${major} --version\` fetches it from the npm registry (or install it from nodejs.org)`;
  if (process.env.CI === "true") throw new Error(`${skip}. Under CI=true every runtime the package supports must be tested.`);
  console.warn(`skipping: ${skip}`);
  return { skip };
}
