// A raw HTTP/1.1 client for tests: exact paths and repeated headers, full access to what came
// back. fetch and curl are used too; this one sends bytes the others normalise.
import http from "node:http";
import { execFile } from "node:child_process";
import { pairs } from "../../src/http-headers.ts";

export interface RawResponse {
  status: number;
  headers: Array<[string, string]>;
  body: Buffer;
}

/** Sends one request to `base` (http://host:port) with the exact path and header list. */
export function rawRequest(
  base: string,
  opts: { method?: string; path: string; headers?: Array<[string, string]>; body?: Buffer | string },
): Promise<RawResponse> {
  const url = new URL(base);
  const flat: string[] = [];
  let hasHost = false;
  for (const [k, v] of opts.headers ?? []) {
    if (k.toLowerCase() === "host") hasHost = true;
    flat.push(k, v);
  }
  if (!hasHost) flat.push("host", url.host);
  // Node frames a DELETE or OPTIONS body only with an explicit length; curl always sends one.
  if (opts.body !== undefined && !flat.some((v, i) => i % 2 === 0 && /^(content-length|transfer-encoding)$/i.test(v))) {
    flat.push("content-length", String(Buffer.byteLength(opts.body)));
  }
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        hostname: url.hostname,
        port: url.port,
        method: opts.method ?? "GET",
        path: opts.path,
        headers: flat,
        setHost: false,
        agent: false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () =>
          resolve({
            status: res.statusCode!,
            headers: pairs(res.rawHeaders).map(([k, v]) => [k.toLowerCase(), v]),
            body: Buffer.concat(chunks),
          }),
        );
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    req.end(opts.body);
  });
}

/** All values of a header in a raw response. */
export function headerValues(res: RawResponse, name: string): string[] {
  return res.headers.filter(([k]) => k === name).map(([, v]) => v);
}

/** Runs curl with `args`; resolves with stdout (rejects on a non-zero exit). */
export function curl(args: string[], timeoutMs = 60_000): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile("curl", ["-sS", ...args], { timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024, encoding: "utf8" }, (err, stdout, stderr) => {
      if (err) reject(new Error(`curl ${args.join(" ")} failed: ${stderr || err.message}`));
      else resolve(stdout);
    });
  });
}

/**
 * Starts a request to `base` (http://host:port) on its own connection, head sent at once; the
 * caller writes the body (req.write / req.end) when it chooses. `response` resolves with the
 * status and the body as text.
 */
export function openRequest(
  base: string,
  opts: { method: string; path: string; headers?: http.OutgoingHttpHeaders },
): { req: http.ClientRequest; response: Promise<{ status: number; body: string }> } {
  const url = new URL(base);
  const req = http.request({
    hostname: url.hostname,
    port: url.port,
    method: opts.method,
    path: opts.path,
    headers: opts.headers,
    agent: false,
  });
  const response = new Promise<{ status: number; body: string }>((resolve, reject) => {
    req.on("response", (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (d: string) => (body += d));
      res.on("end", () => resolve({ status: res.statusCode!, body }));
      res.on("error", reject);
    });
    req.on("error", reject);
  });
  req.flushHeaders();
  return { req, response };
}
