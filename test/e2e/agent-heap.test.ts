// The agent's garbage collection while a body streams through it: V8 must not start incremental
// marking, which with the --config file's parsers loaded ran a full collection several times a
// second and halved transfer speed (docs/performance.md, "Libraries loaded at start-up").
import { createHash } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import http from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BIN, startAgent, type AgentProcess } from "../helpers/agent.ts";
import { patternSha256, startBackend, type Backend } from "../helpers/backend.ts";
import { startRelay, type RelayHandle } from "../helpers/relay.ts";
import { within } from "../helpers/wait.ts";

const MiB = 1024 * 1024;
const NAME = "heap";
const DOWNLOAD = 128 * MiB;

let relay: RelayHandle;
let backend: Backend;
let agent: AgentProcess;
let dir: string;

beforeAll(async () => {
  [relay, backend] = await Promise.all([startRelay(), startBackend()]);
  dir = mkdtempSync(join(tmpdir(), "edge-relay-heap-"));
  const config = join(dir, "agent.yaml");
  const token = await relay.token(NAME);
  writeFileSync(config, `relay: ${relay.url}\ntoken: ${token}\ningress:\n  - backend: ${NAME}\n    service: ${backend.url}\n`);
  // V8 prints a line each time it starts incremental marking.
  agent = await startAgent(["agent", "--config", config], { waitUp: 1, command: [process.execPath, "--trace-incremental-marking", BIN] });
});

afterAll(async () => {
  await agent?.stop();
  await Promise.all([relay?.stop(), backend?.stop()]);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** Downloads `n` pattern bytes through the relay; resolves with their sha256. */
function download(n: number): Promise<string> {
  return new Promise((resolve, reject) => {
    http
      .get(`${relay.url}/r/${NAME}/bytes?n=${n}`, (res) => {
        const hash = createHash("sha256");
        res.on("data", (chunk: Buffer) => hash.update(chunk));
        res.on("end", () => (res.statusCode === 200 ? resolve(hash.digest("hex")) : reject(new Error(`status ${res.statusCode}`))));
        res.on("error", reject);
      })
      .on("error", reject);
  });
}

describe("the agent's heap under a bulk transfer", () => {
  it("relays 128 MiB from a --config agent without V8 starting incremental marking", async () => {
    const from = agent.lines.length;
    expect(await within(download(DOWNLOAD), "the download", 120_000)).toBe(patternSha256(DOWNLOAD));
    const marking = agent.lines.slice(from).filter((line) => line.includes("[IncrementalMarking] Start"));
    expect(marking).toEqual([]);
  });
});
