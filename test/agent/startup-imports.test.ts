// What the agent loads at start-up: only Node's own modules and ws; other libraries load on first
// use. Loaded at start-up (yaml, ajv, pino, prom-client were measured) they made V8 collect the
// whole heap several times a second while bodies streamed through the agent (docs/performance.md,
// "Libraries loaded at start-up").
import { readFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

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
