// The systemd unit in deploy/ as systemd itself reads it: `systemd-analyze verify` must find
// nothing to report (it prints unknown keys, bad values and missing programs).
import { execFile } from "node:child_process";
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { tool } from "../helpers/tools.ts";

const UNIT = fileURLToPath(new URL("../../deploy/edge-relay-agent.service", import.meta.url));
const analyze = tool("systemd-analyze", "systemd");
const dir = mkdtempSync(join(tmpdir(), "edge-relay-unit-"));

afterAll(() => rmSync(dir, { recursive: true, force: true }));

function verify(path: string): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    execFile(analyze.path!, ["verify", path], { timeout: 30_000, encoding: "utf8" }, (error, stdout, stderr) => {
      resolve({ code: error ? Number(error.code ?? 1) : 0, output: `${stdout}${stderr}`.trim() });
    });
  });
}

describe.skipIf(!!analyze.skip)("deploy/edge-relay-agent.service", () => {
  it("passes systemd-analyze verify with nothing to report", async () => {
    const copy = join(dir, "edge-relay-agent.service");
    copyFileSync(UNIT, copy);
    expect(await verify(copy)).toEqual({ code: 0, output: "" });
  });

  it("is checked for real: a copy with a bad Restart= and a missing program is reported", async () => {
    const broken = join(dir, "edge-relay-broken.service");
    const text = readFileSync(UNIT, "utf8")
      .replace("Restart=on-failure", "Restart=sometimes")
      .replace("ExecStart=/usr/bin/env", "ExecStart=/nonexistent/env");
    writeFileSync(broken, text);
    const result = await verify(broken);
    expect(result.output).toMatch(/restart specifier.*sometimes/i);
    expect(result.output).toMatch(/\/nonexistent\/env is not executable/);
  });

  it("keeps the token out of the unit and runs unprivileged and read-only", () => {
    const settings = readFileSync(UNIT, "utf8")
      .split("\n")
      .filter((line) => !line.startsWith("#"));
    expect(settings).toContain("EnvironmentFile=/etc/edge-relay/agent.env");
    expect(settings.filter((line) => /EDGE_RELAY_TOKEN=|--token/.test(line))).toEqual([]);
    for (const line of ["DynamicUser=yes", "NoNewPrivileges=yes", "ProtectSystem=strict", "Restart=on-failure"]) {
      expect(settings).toContain(line);
    }
  });
});
