// `npm start` (scripts/start.ts) when its port is taken: one line saying so, exit 1, nothing started.
import { execFile } from "node:child_process";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startRelay, type RelayHandle } from "../helpers/relay.ts";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const TSX = fileURLToPath(new URL("../../node_modules/tsx/dist/cli.mjs", import.meta.url));

let relay: RelayHandle;

beforeAll(async () => {
  relay = await startRelay();
});

afterAll(async () => {
  await relay?.stop();
});

function start(port: number): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [TSX, "scripts/start.ts"],
      { cwd: ROOT, env: { ...process.env, PORT: String(port) }, timeout: 30_000, encoding: "utf8" },
      (error, stdout, stderr) => resolve({ code: error ? Number(error.code ?? 1) : 0, stdout, stderr }),
    );
  });
}

describe("npm start on a taken port", () => {
  it("says a relay already answers there, in one line, and exits 1", async () => {
    const { code, stdout, stderr } = await start(relay.port);
    expect(code).toBe(1);
    expect(stdout).toBe("");
    expect(stderr).toBe(
      `npm start: port ${relay.port} on 127.0.0.1 is taken: an edge-relay relay already answers there (another \`npm start\`?); stop it, or run PORT=${relay.port + 1} npm start.\n`,
    );
  });

  it("says another program listens there when it is not a relay", async () => {
    const server = http.createServer((_req, res) => res.writeHead(404).end());
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const { port } = server.address() as AddressInfo;
    try {
      const { code, stderr } = await start(port);
      expect(code).toBe(1);
      expect(stderr).toBe(
        `npm start: port ${port} on 127.0.0.1 is taken: another program listens there; stop it, or run PORT=${port + 1} npm start.\n`,
      );
    } finally {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});
