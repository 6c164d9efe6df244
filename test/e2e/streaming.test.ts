// Bodies end to end: large downloads and uploads byte-exact with flat memory, SSE, compressed
// pass-through, and flow control holding a stalled client's backlog at the backend.
import { createHash } from "node:crypto";
import http from "node:http";
import { gzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { agentArgs, startAgent, type AgentProcess } from "../helpers/agent.ts";
import { patternBlock, patternSha256, startBackend, writePattern, type Backend } from "../helpers/backend.ts";
import { headerValues, rawRequest } from "../helpers/client.ts";
import { sampleRss, waitUntilStable } from "../helpers/memory.ts";
import { RELAY_RUNTIMES, startRelay, type RelayHandle } from "../helpers/relay.ts";
import { deferred, within } from "../helpers/wait.ts";

const MiB = 1024 * 1024;
const NAME = "files";
/** Growth allowed while 200 MiB pass through (docs/performance.md "Memory and streaming bounds" has the figures). */
const MEMORY_BOUND_MiB = 64;

let relay: RelayHandle;
let backend: Backend;
let agent: AgentProcess;

describe.each(RELAY_RUNTIMES)("on %s", (runtime) => {
  beforeAll(async () => {
    [relay, backend] = await Promise.all([startRelay({ runtime }), startBackend()]);
    agent = await startAgent(agentArgs(relay.url, NAME, await relay.token(NAME), backend.url), { waitUp: 1 });
  });

  afterAll(async () => {
    await agent?.stop();
    await Promise.all([relay?.stop(), backend?.stop()]);
  });

  const pids = () => [...relay.workerdPids(), agent.proc.pid!];

  /** Uploads `n` pattern bytes to /echo with a Content-Length or chunked; returns the echo. */
  function upload(n: number, chunked: boolean): Promise<{ sha256: string; length: number; rawHeaders: string[] }> {
    const url = new URL(relay.url);
    return new Promise((resolve, reject) => {
      const req = http.request(
        {
          hostname: url.hostname,
          port: url.port,
          method: "POST",
          path: `/r/${NAME}/echo`,
          headers: chunked ? { "transfer-encoding": "chunked" } : { "content-length": n },
        },
        (res) => {
          let body = "";
          res.setEncoding("utf8");
          res.on("data", (d: string) => (body += d));
          res.on("end", () => (res.statusCode === 200 ? resolve(JSON.parse(body)) : reject(new Error(`${res.statusCode} ${body}`))));
        },
      );
      req.on("error", reject);
      void writePattern(req as unknown as http.ServerResponse, n).then(() => req.end());
    });
  }

  describe("large bodies", () => {
    it("streams a 200 MiB download byte-exact with flat relay and agent memory", async () => {
      // A fresh workerd grows its heaps once on its first large transfer, whichever runtime
      // runs it: a warm-up first, so what is measured is what a transfer holds.
      const warm = await fetch(`${relay.url}/r/${NAME}/bytes?n=${64 * MiB}`);
      for await (const _ of warm.body as unknown as AsyncIterable<Uint8Array>);
      const sampler = sampleRss(pids());
      const res = await fetch(`${relay.url}/r/${NAME}/bytes?n=${200 * MiB}`);
      expect(res.status).toBe(200);
      const hash = createHash("sha256");
      let length = 0;
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        hash.update(chunk);
        length += chunk.byteLength;
      }
      const memory = sampler.stop();
      expect(length).toBe(200 * MiB);
      expect(hash.digest("hex")).toBe(patternSha256(200 * MiB));
      for (const m of memory) expect(m.growthMiB).toBeLessThan(MEMORY_BOUND_MiB);
    });

    it.each([
      ["Content-Length", false],
      ["chunked", true],
    ])("streams a 100 MiB upload with %s byte-exact with flat memory", async (_label, chunked) => {
      const sampler = sampleRss(pids());
      const echo = await upload(100 * MiB, chunked as boolean);
      const memory = sampler.stop();
      expect(echo.length).toBe(100 * MiB);
      expect(echo.sha256).toBe(patternSha256(100 * MiB));
      for (const m of memory) expect(m.growthMiB).toBeLessThan(MEMORY_BOUND_MiB);
    });
  });

  describe("streaming responses", () => {
    it("delivers each server-sent event before the backend writes the next", async () => {
      const gates: Array<() => void> = [];
      backend.route("/sse", async (_req, res) => {
        res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
        for (let i = 0; i < 5; i++) {
          res.write(`id: ${i}\ndata: event ${i}\n\n`);
          // The next event is written only once the client has seen this one.
          await new Promise<void>((resolve) => (gates[i] = resolve));
        }
        res.end();
      });
      const res = await fetch(`${relay.url}/r/${NAME}/sse`, { headers: { accept: "text/event-stream" } });
      expect(res.headers.get("content-type")).toBe("text/event-stream");
      const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
      let text = "";
      const seen: string[] = [];
      while (seen.length < 5) {
        const { value, done } = await Promise.race([
          reader.read(),
          new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`event ${seen.length} did not arrive within 5 s`)), 5000)),
        ]);
        if (done) break;
        text += value;
        let end: number;
        while ((end = text.indexOf("\n\n")) >= 0) {
          seen.push(text.slice(0, end));
          text = text.slice(end + 2);
          gates[seen.length - 1]?.();
        }
      }
      expect(seen).toEqual([0, 1, 2, 3, 4].map((i) => `id: ${i}\ndata: event ${i}`));
    });

    it("passes a backend's gzip body through untouched", async () => {
      const plain = Buffer.from("compress me please ".repeat(5000));
      const gz = gzipSync(plain);
      backend.route("/gz", (_req, res) => {
        res.writeHead(200, { "content-type": "text/plain", "content-encoding": "gzip", "content-length": gz.length });
        res.end(gz);
      });
      const res = await rawRequest(relay.url, { path: `/r/${NAME}/gz`, headers: [["accept-encoding", "gzip"]] });
      expect(headerValues(res, "content-encoding")).toEqual(["gzip"]);
      expect(res.body.equals(gz)).toBe(true);
    });

    it("does not compress an uncompressed body, even for clients that accept gzip", async () => {
      const res = await rawRequest(relay.url, {
        path: `/r/${NAME}/bytes?n=100000&type=text/plain`,
        headers: [["accept-encoding", "gzip"]],
      });
      expect(headerValues(res, "content-encoding")).not.toContain("gzip");
      expect(res.body.length).toBe(100000);
      expect(res.body.subarray(0, 65536).equals(patternBlock())).toBe(true);
    });
  });

  describe("flow control", () => {
    it("holds back the backend when the public client stops reading", async () => {
      let written = 0;
      const closed = deferred();
      backend.route("/endless", async (_req, res) => {
        res.writeHead(200, { "content-type": "application/octet-stream" });
        res.on("close", () => closed.resolve());
        await writePattern(res, 10 * 1024 * MiB, (n) => (written += n));
      });
      const url = new URL(relay.url);
      const sampler = sampleRss(pids());
      const req = http.get({ hostname: url.hostname, port: url.port, path: `/r/${NAME}/endless` });
      const res = await new Promise<http.IncomingMessage>((resolve) => req.on("response", resolve));
      res.pause();
      const plateau = await waitUntilStable(() => written, 1500, 30_000);
      const memory = sampler.stop();
      // One window in the relay, one in the agent, plus the kernel's socket buffers on each hop.
      expect(plateau).toBeLessThan(48 * MiB);
      for (const m of memory) expect(m.growthMiB).toBeLessThan(MEMORY_BOUND_MiB);
      req.destroy();
      await within(closed.promise, "the backend's response to close", 10_000);
    });
  });
});
