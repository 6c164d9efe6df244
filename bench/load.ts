// The load tool for small GETs: Debian's `wrk`, with a Lua `done` hook that prints the figures
// as JSON (latency in microseconds from wrk's own histogram).
import { execFile, execFileSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export const WRK_INSTALL = "apt-get install -y wrk";

export interface LoadResult {
  requests: number;
  seconds: number;
  rps: number;
  p50Ms: number;
  p99Ms: number;
  /** Socket errors and timeouts. */
  errors: number;
  /** Responses with a status outside 2xx/3xx. */
  badStatus: number;
}

/** The wrk version line, or undefined when wrk is not installed. */
export function wrkVersion(): string | undefined {
  try {
    // `wrk -v` prints its version and exits 1.
    execFileSync("wrk", ["-v"], { encoding: "utf8", stdio: "pipe" });
  } catch (err) {
    const out = String((err as { stdout?: string }).stdout ?? "");
    const line = out.split("\n").find((l) => l.startsWith("wrk "));
    if (line) return line.split(" [")[0].trim();
  }
  return undefined;
}

const LUA = `
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('WRK_JSON {"requests":%d,"duration_us":%d,"p50":%d,"p99":%d,"errors":%d,"status":%d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect + e.read + e.write + e.timeout, e.status))
end
`;
const scripts = new Map<string, string>();

/** The Lua script for wrk: the report hook, and a POST of `body` when there is one. */
function scriptFor(body: string | undefined): string {
  const key = body === undefined ? "GET" : `POST ${body}`;
  let script = scripts.get(key);
  if (!script) {
    script = join(mkdtempSync(join(tmpdir(), "edge-relay-wrk-")), "report.lua");
    const post =
      body === undefined
        ? ""
        : `wrk.method = "POST"\nwrk.body = ${JSON.stringify(body)}\nwrk.headers["Content-Type"] = "application/json"\n`;
    writeFileSync(script, post + LUA);
    scripts.set(key, script);
  }
  return script;
}

/**
 * Runs wrk against `url` with `connections` keep-alive connections for `seconds`; POSTs `body`
 * when given, and sends `headers` with every request.
 */
export function wrk(
  url: string,
  connections: number,
  seconds: number,
  body?: string,
  headers: Record<string, string> = {},
): Promise<LoadResult> {
  const script = scriptFor(body);
  const threads = Math.min(connections, 2);
  const extra = Object.entries(headers).flatMap(([k, v]) => ["-H", `${k}: ${v}`]);
  const args = ["-t", String(threads), "-c", String(connections), "-d", `${seconds}s`, "--timeout", "10s", ...extra, "-s", script, url];
  return new Promise((resolve, reject) =>
    execFile("wrk", args, { encoding: "utf8" }, (err, stdout, stderr) => {
      const line = stdout.split("\n").find((l) => l.startsWith("WRK_JSON "));
      if (err || !line) return reject(new Error(`wrk ${args.join(" ")} failed: ${stderr || stdout || err?.message}`));
      const r = JSON.parse(line.slice(9)) as {
        requests: number;
        duration_us: number;
        p50: number;
        p99: number;
        errors: number;
        status: number;
      };
      const secs = r.duration_us / 1e6;
      resolve({
        requests: r.requests,
        seconds: secs,
        rps: r.requests / secs,
        p50Ms: r.p50 / 1000,
        p99Ms: r.p99 / 1000,
        errors: r.errors,
        badStatus: r.status,
      });
    }),
  );
}
