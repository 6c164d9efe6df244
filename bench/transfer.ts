// Large-body clients for the benchmark: a download hashed as it arrives, an upload of pattern
// bytes checked against the backend's hash, and a download read at a fixed rate.
import { createHash } from "node:crypto";
import http from "node:http";
import { patternSha256, writePattern } from "../test/helpers/backend.ts";

const MiB = 1024 * 1024;

export interface Transfer {
  bytes: number;
  seconds: number;
  mibps: number;
  /** The sha256 matched the pattern's: bytes arrived byte-exact. */
  exact: boolean;
}

/** GETs `url`, which must answer `n` pattern bytes; hashes them as they arrive. */
export function download(url: string, n: number, rateMiBps?: number): Promise<Transfer> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const req = http.get(url, { agent: false }, (res) => {
      if (res.statusCode !== 200) {
        res.resume();
        return reject(new Error(`GET ${url} answered ${res.statusCode}`));
      }
      const hash = createHash("sha256");
      let bytes = 0;
      let pacer: NodeJS.Timeout | undefined;
      if (rateMiBps) {
        // Reads no faster than the rate: pause once ahead of schedule, resume when behind.
        pacer = setInterval(() => {
          const allowed = ((performance.now() - started) / 1000) * rateMiBps * MiB;
          if (bytes < allowed && res.isPaused()) res.resume();
        }, 20);
      }
      res.on("data", (chunk: Buffer) => {
        hash.update(chunk);
        bytes += chunk.length;
        if (rateMiBps && bytes > ((performance.now() - started) / 1000) * rateMiBps * MiB) res.pause();
      });
      res.on("end", () => {
        clearInterval(pacer);
        const seconds = (performance.now() - started) / 1000;
        resolve({ bytes, seconds, mibps: bytes / MiB / seconds, exact: bytes === n && hash.digest("hex") === patternSha256(n) });
      });
      res.on("error", (err) => {
        clearInterval(pacer);
        reject(err);
      });
    });
    req.on("error", reject);
  });
}

/** POSTs `n` pattern bytes with a Content-Length to `url`, which answers `{length, sha256}`. */
export function upload(url: string, n: number): Promise<Transfer> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const req = http.request(
      url,
      { method: "POST", agent: false, headers: { "content-type": "application/octet-stream", "content-length": n } },
      (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (d: string) => (body += d));
        res.on("end", () => {
          const seconds = (performance.now() - started) / 1000;
          if (res.statusCode !== 200) return reject(new Error(`POST ${url} answered ${res.statusCode}: ${body.slice(0, 300)}`));
          const echo = JSON.parse(body) as { length: number; sha256: string };
          resolve({ bytes: n, seconds, mibps: n / MiB / seconds, exact: echo.length === n && echo.sha256 === patternSha256(n) });
        });
      },
    );
    req.on("error", reject);
    void writePattern(req as unknown as http.ServerResponse, n).then(() => req.end());
  });
}

/** Sends `count` GETs at once, each on its own connection; resolves with how many failed. */
export async function concurrentGets(
  url: string,
  count: number,
  expectBody: string,
): Promise<{ failed: number; errors: string[]; seconds: number }> {
  const agent = new http.Agent({ keepAlive: false, maxSockets: Infinity });
  const started = performance.now();
  const errors: string[] = [];
  const one = () =>
    new Promise<void>((resolve) => {
      const req = http.get(url, { agent }, (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (d: string) => (body += d));
        res.on("end", () => {
          if (res.statusCode !== 200 || body !== expectBody) errors.push(`${res.statusCode} ${body.slice(0, 200)}`);
          resolve();
        });
        res.on("error", (err) => (errors.push(err.message), resolve()));
      });
      req.on("error", (err) => (errors.push(err.message), resolve()));
    });
  await Promise.all(Array.from({ length: count }, one));
  agent.destroy();
  return { failed: errors.length, errors: [...new Set(errors)].slice(0, 5), seconds: (performance.now() - started) / 1000 };
}
