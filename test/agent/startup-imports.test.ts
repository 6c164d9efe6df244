// What the agent loads at start-up: only Node's own modules and ws; other libraries load on first
// use, and a --config file's parsers (yaml, ajv) only in the thread that reads the file, never the
// agent's main thread. Loaded at start-up (yaml, ajv, pino, prom-client were measured) they made
// V8 collect the whole heap several times a second while bodies streamed through the agent
// (docs/performance.md, "Libraries loaded at start-up").
import { execFile } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { mintToken } from "../../src/auth.ts";
import { BIN, startAgent } from "../helpers/agent.ts";
import { startBackend } from "../helpers/backend.ts";
import { startRelay } from "../helpers/relay.ts";

const AGENT = resolve(dirname(fileURLToPath(import.meta.url)), "../../agent");
/** The modules `edge-relay agent` always runs: the command's entry and the supervisor it imports. */
const ROOTS = [resolve(AGENT, "bin/edge-relay.ts"), resolve(AGENT, "supervisor.ts")];
/** Packages the agent may load at start-up. */
const ALLOWED = new Set(["ws"]);

/** The specifiers a module imports statically for their values (`import type` is erased). */
function valueImports(source: string): string[] {
  const found: string[] = [];
  const statement = /^\s*(import|export)\s+([^;]*?)\s*from\s+"([^"]+)"|^\s*import\s+"([^"]+)"/gm;
  for (const m of source.matchAll(statement)) {
    if (m[4]) {
      found.push(m[4]);
      continue;
    }
    const clause = m[2].trim();
    if (clause.startsWith("type ")) continue;
    const braces = /^\{([^}]*)\}$/.exec(clause);
    // `import { type A, type B } from` brings in nothing at run time either.
    if (braces && braces[1].split(",").every((s) => s.trim() === "" || s.trim().startsWith("type "))) continue;
    found.push(m[3]);
  }
  return found;
}

/** Every package reached from `roots` through static value imports of relative modules. */
function startupPackages(roots: string[]): Map<string, string> {
  const packages = new Map<string, string>();
  const seen = new Set<string>();
  const visit = (file: string) => {
    if (seen.has(file)) return;
    seen.add(file);
    for (const spec of valueImports(readFileSync(file, "utf8"))) {
      if (spec.startsWith(".")) visit(resolve(dirname(file), spec));
      else if (!spec.startsWith("node:")) {
        const name = spec.startsWith("@") ? spec.split("/").slice(0, 2).join("/") : spec.split("/")[0];
        if (!packages.has(name)) packages.set(name, file);
      }
    }
  };
  for (const root of roots) visit(root);
  return packages;
}

describe("agent start-up imports", () => {
  it("finds value imports and skips type-only ones", () => {
    const source = [
      'import { a } from "one";',
      'import type { B } from "two";',
      'import { type C, type D } from "three";',
      'import { type E, f } from "four";',
      'import "five";',
      'export { g } from "./six.ts";',
      'const lazy = await import("seven");',
    ].join("\n");
    expect(valueImports(source)).toEqual(["one", "four", "five", "./six.ts"]);
  });

  it("loads no package but ws before a feature asks for one", () => {
    const packages = startupPackages(ROOTS);
    expect(packages.has("ws")).toBe(true);
    const extra = [...packages].filter(([name]) => !ALLOWED.has(name)).map(([name, file]) => `${name} (imported by ${file})`);
    expect(extra, "load these on first use, as agent/config-parsers.ts loads yaml and ajv").toEqual([]);
  });
});

/** Preloaded into the agent: notes each package a thread loads (test/fixtures/package-loads.cjs). */
const PRELOAD = fileURLToPath(new URL("../fixtures/package-loads.cjs", import.meta.url));

/** The packages `thread` ("main" or "worker") loaded, as the preload noted them in `file`. */
function loadedBy(file: string, thread: "main" | "worker"): string[] {
  const lines = existsSync(file) ? readFileSync(file, "utf8").split("\n") : [];
  return lines.filter((line) => line.startsWith(`${thread} `)).map((line) => line.slice(thread.length + 1));
}

const PARSERS = ["yaml", "ajv"];

describe("the parsers of a --config file", () => {
  it("never load into the main thread of an agent run with --config: not at start-up, not on reload", async () => {
    const [relay, backend] = await Promise.all([startRelay(), startBackend()]);
    const dir = mkdtempSync(join(tmpdir(), "edge-relay-imports-"));
    const file = join(dir, "agent.yaml");
    const loads = join(dir, "loads.txt");
    writeFileSync(
      file,
      `relay: ${relay.url}\ntoken: \${EDGE_RELAY_TOKEN}\nconnections: 1\ningress:\n  - backend: imports\n    service: ${backend.url}\n`,
    );
    const agent = await startAgent(["agent", "--config", file], {
      waitUp: 1,
      env: { EDGE_RELAY_TOKEN: await mintToken(relay.secret, "imports"), PACKAGE_LOADS_FILE: loads },
      command: [process.execPath, "--require", PRELOAD, BIN],
    });
    try {
      const res = await fetch(`${relay.url}/r/imports/echo?from=imports`);
      expect(res.status).toBe(200);
      const from = agent.lines.length;
      agent.proc.kill("SIGHUP");
      await agent.waitForLine(/reloaded \(SIGHUP\)/, 30_000, from);
      expect(loadedBy(loads, "main").filter((name) => PARSERS.includes(name))).toEqual([]);
      // The preload does see the main thread's packages (ws), and the parsers where they load.
      expect(loadedBy(loads, "main")).toContain("ws");
      expect(loadedBy(loads, "worker")).toEqual(expect.arrayContaining(PARSERS));
    } finally {
      expect(await agent.stop()).toBe(0);
      await Promise.all([relay.stop(), backend.stop()]);
    }
  });

  it("load into the main thread of `edge-relay validate`, which ends once it has read the file", async () => {
    const dir = mkdtempSync(join(tmpdir(), "edge-relay-imports-"));
    const file = join(dir, "agent.yaml");
    const loads = join(dir, "loads.txt");
    const token = await mintToken("imports-secret-0123456789", "imports");
    writeFileSync(file, `relay: http://127.0.0.1:9\ntoken: ${token}\ningress:\n  - backend: imports\n    service: http://127.0.0.1:9\n`);
    const code = await new Promise<number>((done) => {
      const env = { ...process.env, PACKAGE_LOADS_FILE: loads };
      execFile(process.execPath, ["--require", PRELOAD, BIN, "validate", "--config", file], { env }, (error) =>
        done(error ? Number(error.code) : 0),
      );
    });
    expect(code).toBe(0);
    expect(loadedBy(loads, "main")).toEqual(expect.arrayContaining(PARSERS));
  });
});
