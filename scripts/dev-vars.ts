// `.dev.vars`, the git-ignored file of local secrets wrangler dev reads (KEY=VALUE lines): read by
// npm start and npm run serve, created with a random RELAY_SECRET when it has none.
import { randomBytes } from "node:crypto";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { basename } from "node:path";

/** The KEY=VALUE pairs of a .dev.vars file (quotes around a value dropped; # comments skipped). */
export function readDevVars(file: string): Record<string, string> {
  const vars: Record<string, string> = {};
  if (!existsSync(file)) return vars;
  for (const line of readFileSync(file, "utf8").split(/\r?\n/)) {
    const m = /^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$/.exec(line);
    if (!m) continue;
    const quoted = /^(["'])(.*)\1$/.exec(m[2]);
    vars[m[1]] = quoted ? quoted[2] : m[2];
  }
  return vars;
}

/** The RELAY_SECRET of `file`, appended to it (mode 0600) as a random one when missing. */
export function localSecret(file: string): string {
  const existing = readDevVars(file).RELAY_SECRET;
  if (existing) return existing;
  const secret = randomBytes(32).toString("hex");
  const before = existsSync(file) ? readFileSync(file, "utf8") : "";
  writeFileSync(file, `${before && !before.endsWith("\n") ? `${before}\n` : before}RELAY_SECRET=${secret}\n`, { mode: 0o600 });
  console.log(`created ${basename(file)} with a random RELAY_SECRET (git-ignored)`);
  return secret;
}
