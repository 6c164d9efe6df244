// The README and docs/ stay usable: the README short, every relative link and anchor reaching a
// file and heading that exist, no code comment citing a file that is not in the tree, and the
// README's error table matching src/errors.ts code for code.
import { existsSync, readFileSync, readdirSync, statSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { ERROR_STATUS } from "../src/errors.ts";

const ROOT = fileURLToPath(new URL("../", import.meta.url));
const README = join(ROOT, "README.md");
const DOCS = join(ROOT, "docs");

/** README.md and every Markdown file directly in docs/ (docs/ is flat). */
const MARKDOWN = [
  README,
  ...readdirSync(DOCS)
    .filter((f) => f.endsWith(".md"))
    .map((f) => join(DOCS, f)),
];

/** Every file under `dir`, recursively. */
function filesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? filesUnder(path) : [path];
  });
}

/** Markdown links `[text](target)` outside code blocks and code spans. */
function links(markdown: string): string[] {
  const prose = markdown.replace(/^```[\s\S]*?^```/gm, "").replace(/`[^`\n]*`/g, "");
  return [...prose.matchAll(/\]\(([^)\s]+)\)/g)].map((m) => m[1]);
}

/** GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens. */
function slug(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s_-]/gu, "")
    .replace(/\s/g, "-");
}

/** The anchors a Markdown file's headings define. */
function anchors(markdown: string): Set<string> {
  const prose = markdown.replace(/^```[\s\S]*?^```/gm, "");
  return new Set([...prose.matchAll(/^#{1,6}\s+(.+)$/gm)].map((m) => slug(m[1])));
}

/** The README's error table as code -> status. */
function errorTable(readme: string): Record<string, number> {
  const section = readme.slice(readme.indexOf("\n## Errors"));
  const end = section.indexOf("\n## ", 1);
  const table: Record<string, number> = {};
  for (const line of section.slice(0, end === -1 ? undefined : end).split("\n")) {
    const row = /^\|\s*(\d{3})\s*\|([^|]*)\|/.exec(line);
    if (!row) continue;
    for (const [, code] of row[2].matchAll(/`([a-z_]+)`/g)) table[code] = Number(row[1]);
  }
  return table;
}

describe("docs", () => {
  it("keeps the README under 250 lines", () => {
    const lines = readFileSync(README, "utf8").split("\n").length;
    expect(lines, "README.md is for users: move the rest to docs/").toBeLessThanOrEqual(250);
  });

  it("has a README and docs/ to check", () => {
    expect(MARKDOWN.map((f) => relative(ROOT, f))).toEqual(
      expect.arrayContaining(["README.md", "docs/architecture.md", "docs/performance.md", "docs/platform-notes.md", "docs/hbone.md"]),
    );
  });

  it("links only to files and headings that exist", () => {
    const broken: string[] = [];
    for (const file of MARKDOWN) {
      const text = readFileSync(file, "utf8");
      for (const link of links(text)) {
        if (/^[a-z][a-z0-9+.-]*:/i.test(link)) continue; // https:, mailto:
        const [path, anchor] = link.split("#", 2);
        const target = path ? resolve(dirname(file), decodeURIComponent(path)) : file;
        const where = `${relative(ROOT, file)} -> ${link}`;
        if (!existsSync(target)) {
          broken.push(`${where}: no such file`);
          continue;
        }
        if (anchor && target.endsWith(".md") && !anchors(readFileSync(target, "utf8")).has(anchor)) {
          broken.push(`${where}: no such heading`);
        }
      }
    }
    expect(broken).toEqual([]);
  });

  it("finds a broken link and a broken anchor (the checker itself)", () => {
    expect(links("see [a](docs/nope.md) and [b](#x), `[a-z](0-9)`\n```\n[c](ignored.md)\n```\n")).toEqual(["docs/nope.md", "#x"]);
    expect(anchors("# Top\n## Bridging HTTP to a TCP protocol\n## `encodeBody` and (gzip)\n")).toEqual(
      new Set(["top", "bridging-http-to-a-tcp-protocol", "encodebody-and-gzip"]),
    );
  });

  it("has no source file citing PLATFORM-NOTES, which is docs/platform-notes.md", () => {
    const sources = ["src", "agent", "bench", "scripts"].flatMap((d) => filesUnder(join(ROOT, d)));
    sources.push(join(ROOT, "wrangler.toml"));
    const citing = sources.filter((f) => readFileSync(f, "utf8").includes("PLATFORM-NOTES")).map((f) => relative(ROOT, f));
    expect(citing).toEqual([]);
  });

  it("points source comments only at docs/ files that exist", () => {
    const sources = ["src", "agent", "bench", "scripts"].flatMap((d) => filesUnder(join(ROOT, d)));
    sources.push(join(ROOT, "wrangler.toml"));
    const missing = new Set<string>();
    for (const file of sources) {
      for (const [, doc] of readFileSync(file, "utf8").matchAll(/\bdocs\/([\w.-]+\.md)/g)) {
        if (!existsSync(join(DOCS, doc))) missing.add(`${relative(ROOT, file)} -> docs/${doc}`);
      }
    }
    expect([...missing]).toEqual([]);
  });

  it("lists every error code of src/errors.ts in the README's error table with its status", () => {
    expect(errorTable(readFileSync(README, "utf8"))).toEqual({ ...ERROR_STATUS });
  });
});
