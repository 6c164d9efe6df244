// The real `edge-relay` bin as a child process: help, token minting, usage errors (exit 2)
// and that neither the secret nor a token ever reaches the output.
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { TARGET_FORMS } from "../../agent/config.ts";
import { mintToken, verifyToken } from "../../src/auth.ts";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const BIN = join(ROOT, "agent/bin/edge-relay.mjs");
/** A working directory without a .dev.vars (the checkout may hold one from `npm start`). */
const EMPTY_DIR = mkdtempSync(join(tmpdir(), "edge-relay-cli-"));
afterAll(() => rmSync(EMPTY_DIR, { recursive: true, force: true }));
const SECRET = "cli-test-secret-6f1d2c";

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function run(args: string[], env: Record<string, string> = {}, cwd = EMPTY_DIR): Promise<Run> {
  const childEnv: Record<string, string | undefined> = {
    ...process.env,
    RELAY_SECRET: undefined,
    EDGE_RELAY_URL: undefined,
    EDGE_RELAY_TOKEN: undefined,
    ...env,
  };
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [BIN, ...args], { cwd, env: childEnv as NodeJS.ProcessEnv, timeout: 20_000 }, (error, stdout, stderr) => {
      if (error && typeof error.code !== "number") reject(error);
      else resolve({ code: typeof error?.code === "number" ? error.code : 0, stdout, stderr });
    });
  });
}

describe("edge-relay bin", { timeout: 30_000 }, () => {
  it.each([["--help"], ["-h"], ["help"]])("prints the usage for %s", async (flag) => {
    const { code, stdout, stderr } = await run([flag]);
    expect(code).toBe(0);
    expect(stderr).toBe("");
    for (const text of [
      "edge-relay agent",
      "edge-relay token",
      "npx edge-relay agent --relay http://127.0.0.1:8787 --backend demo --token $(npx edge-relay token demo) --to http://127.0.0.1:3000",
    ]) {
      expect(stdout).toContain(text);
    }
  });

  it("prints every agent flag, the env fallbacks and the target forms for agent --help", async () => {
    const { code, stdout } = await run(["agent", "--help"]);
    expect(code).toBe(0);
    for (const flag of [
      "--relay",
      "--backend",
      "--token",
      "--to",
      "--preserve-host",
      "--origin-ca",
      "--origin-insecure",
      "--connections",
      "--grace-period",
      "--config",
      "--help",
    ]) {
      expect(stdout).toMatch(new RegExp(`^\\s+(-h, )?${flag}\\b`, "m"));
    }
    for (const text of ["EDGE_RELAY_URL", "EDGE_RELAY_TOKEN", "http://host:port", "https://host:port", "unix:/"])
      expect(stdout).toContain(text);
  });

  it("prints the token flags for help token", async () => {
    const { code, stdout } = await run(["help", "token"]);
    expect(code).toBe(0);
    for (const text of ["--ttl", "--secret", "RELAY_SECRET"]) expect(stdout).toContain(text);
  });

  it("mints a token with --secret, prints only the token on stdout and its id on stderr", async () => {
    const { code, stdout, stderr } = await run(["token", "demo", "--secret", SECRET]);
    expect(code).toBe(0);
    expect(stdout).toMatch(/^er1\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\n$/);
    const verdict = await verifyToken(SECRET, stdout.trim());
    expect(verdict).toMatchObject({ ok: true, backend: "demo", scope: "agent" });
    expect(stderr).toBe(`edge-relay: token id ${verdict.ok ? verdict.id : "?"} (note it to revoke this token alone; docs/tokens.md)\n`);
    for (const text of [stdout, stderr]) expect(text).not.toContain(SECRET);
    expect(stderr).not.toContain(stdout.trim().split(".")[2]);
  });

  it("--inspect prints a token's claims without a secret and never the token", async () => {
    const token = await mintToken(SECRET, "demo", { now: 1_700_000_000, ttlSeconds: 60, id: "inspect-id-0001" });
    const { code, stdout } = await run(["token", "--inspect", token], { RELAY_SECRET: "" });
    expect(code).toBe(0);
    expect(JSON.parse(stdout)).toEqual({
      backend: "demo",
      id: "inspect-id-0001",
      scope: "agent",
      issuedAt: "2023-11-14T22:13:20.000Z",
      expiresAt: "2023-11-14T22:14:20.000Z",
    });
    expect(stdout).not.toContain(token.split(".")[2]);
    const bad = await run(["token", "--inspect", "er1.nope.nope"]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/^edge-relay: --inspect: that is not a token/);
  });

  it("lists every --to form from the one list in agent --help, and --access in token's usage", async () => {
    const agent = await run(["agent", "--help"]);
    const targets = agent.stdout.slice(agent.stdout.indexOf("Targets:"));
    for (const form of TARGET_FORMS) expect(targets).toContain(form);
    const token = await run(["token", "--help"]);
    expect(token.stdout.split("\n")[0]).toBe("Usage: edge-relay token <name>... [--ttl <duration>] [--access] [--secret <secret>]");
  });

  it("mints with RELAY_SECRET from ./.dev.vars when the env has none, saying so on stderr", async () => {
    const project = mkdtempSync(join(tmpdir(), "edge-relay-devvars-"));
    try {
      writeFileSync(join(project, ".dev.vars"), `OTHER=1\nRELAY_SECRET="${SECRET}"\n`);
      const { code, stdout, stderr } = await run(["token", "demo"], {}, project);
      expect(code).toBe(0);
      expect(await verifyToken(SECRET, stdout.trim())).toMatchObject({ ok: true, backend: "demo" });
      expect(stderr.split("\n")[0]).toBe("edge-relay: signing with RELAY_SECRET from ./.dev.vars (the local relay's secret).");
      const fromEnv = await run(["token", "demo"], { RELAY_SECRET: "env-secret-wins-0123" }, project);
      expect(await verifyToken("env-secret-wins-0123", fromEnv.stdout.trim())).toMatchObject({ ok: true });
      expect(fromEnv.stderr).not.toContain(".dev.vars");
    } finally {
      rmSync(project, { recursive: true, force: true });
    }
  });

  it("mints with RELAY_SECRET from the env, honouring --ttl", async () => {
    const { code, stdout } = await run(["token", "demo", "--ttl", "1h"], { RELAY_SECRET: SECRET });
    expect(code).toBe(0);
    const verdict = await verifyToken(SECRET, stdout.trim());
    expect(verdict).toMatchObject({ ok: true, backend: "demo" });
    const exp = verdict.ok ? (verdict.exp ?? 0) : 0;
    expect(Math.abs(exp - (Date.now() / 1000 + 3600))).toBeLessThan(60);
  });

  it.each<[string, string[], RegExp]>([
    ["an unknown agent flag", ["agent", "--bogus", "x"], /^edge-relay: --bogus is not a flag of `edge-relay agent`/],
    ["a flag without its value", ["agent", "--relay"], /^edge-relay: --relay needs a value/],
    [
      "a malformed --token",
      ["agent", "--relay", "http://r", "--backend", "demo", "--token", "er1.x.y", "--to", "ftp://x"],
      /^edge-relay: --token is not an agent token/,
    ],
    [
      "a missing --token",
      ["agent", "--connections", "lots", "--relay", "http://r", "--backend", "demo", "--to", "http://h:1"],
      /^edge-relay: --token is required/,
    ],
    ["an unknown command", ["frobnicate"], /^edge-relay: "frobnicate" is not a command/],
    [
      "a token without a secret",
      ["token", "demo"],
      /^edge-relay: there is no secret to sign with; set RELAY_SECRET .*\.\/\.dev\.vars holds it/,
    ],
    ["a bad backend name", ["token", "Not_Valid", "--secret", SECRET], /^edge-relay: "Not_Valid" is not a valid backend name/],
    ["a bad ttl", ["token", "demo", "--ttl", "soon", "--secret", SECRET], /^edge-relay: --ttl "soon"/],
    ["no arguments", [], /^edge-relay: reach an HTTP service/],
  ])("exits 2 on %s, naming it", async (_label, args, message) => {
    const { code, stdout, stderr } = await run(args);
    expect(code).toBe(2);
    expect(stdout).toBe("");
    expect(stderr).toMatch(message);
    expect(stderr).not.toContain(SECRET);
  });

  it("names the flag in a config error and never prints the token or the secret", async () => {
    const token = await mintToken(SECRET, "other");
    const args = ["agent", "--relay", "http://127.0.0.1:9", "--backend", "demo", "--token", token, "--to", "ftp://x", "--connections", "2"];
    const { code, stdout, stderr } = await run(args, { RELAY_SECRET: SECRET, EDGE_RELAY_TOKEN: token });
    expect(code).toBe(2);
    expect(stderr).toBe(
      'edge-relay: --token was minted for backend "other", but --backend is "demo"; mint one with `edge-relay token demo`.\n',
    );
    for (const secret of [SECRET, token, token.split(".")[2]]) expect(stdout + stderr).not.toContain(secret);

    const good = await mintToken(SECRET, "demo");
    const bad = await run(["agent", "--relay", "http://127.0.0.1:9", "--backend", "demo", "--token", good, "--to", "ftp://x"]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toBe(
      'edge-relay: --to "ftp://x": the target must be http://host:port, https://host:port, unix:/path, h2c://host:port, hbone://ip:port, tcp://host:port or bridge+tcp://host:port.\n',
    );
    expect(bad.stderr).not.toContain(good);
  });
});
