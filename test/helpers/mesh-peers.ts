// Independent HBONE peers from Debian: nghttpx (nghttp2-proxy) as the HTTP/2 CONNECT proxy with
// client-certificate checks, handing each CONNECT to tinyproxy, which dials the target.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import net from "node:net";
import { freePort } from "./ports.ts";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Pki } from "./certs.ts";

export interface Peer {
  port: number;
  proc: ChildProcess;
  output: () => string;
  stop(): Promise<void>;
}

/** A free loopback port (kept for the tests that import it from here). */
export { freePort };

/** Resolves once something accepts connections on the port; rejects after `ms`. */
export async function waitForPort(port: number, ms = 15_000, proc?: ChildProcess, what = "peer"): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (proc && proc.exitCode !== null) throw new Error(`${what} exited with ${proc.exitCode}`);
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, "127.0.0.1", () => (s.destroy(), resolve(true)));
      s.on("error", () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`${what} did not listen on ${port} within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function run(cmd: string, args: string[], port: number, what: string): Promise<Peer> {
  const proc = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  proc.stdout!.on("data", (d) => (out += d));
  proc.stderr!.on("data", (d) => (out += d));
  const exited = new Promise<void>((r) => proc.on("exit", () => r()));
  const peer: Peer = {
    port,
    proc,
    output: () => out,
    stop: async () => {
      if (proc.exitCode === null) proc.kill("SIGTERM");
      await exited;
    },
  };
  return waitForPort(port, 15_000, proc, what).then(
    () => peer,
    (err: Error) => {
      proc.kill("SIGKILL");
      throw new Error(`${err.message}; output:\n${out}`);
    },
  );
}

/** tinyproxy on loopback, allowing CONNECT to any port (no ConnectPort lines). */
export async function startTinyproxy(path: string): Promise<Peer> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), "edge-relay-tinyproxy-"));
  const conf = join(dir, "tinyproxy.conf");
  writeFileSync(
    conf,
    [`Port ${port}`, "Listen 127.0.0.1", "Timeout 600", "Allow 127.0.0.1", "MaxClients 2048", "LogLevel Error", ""].join("\n"),
  );
  return run(path, ["-d", "-c", conf], port, "tinyproxy");
}

/**
 * nghttpx in secure-proxy mode (-s): TLS + HTTP/2 on the front, verifying client certificates
 * against the mesh CA, forwarding CONNECT to `proxyPort` (tinyproxy). The window and connection
 * settings lift nghttpx's defaults, which cap throughput and concurrency.
 */
export async function startNghttpx(path: string, pki: Pki, proxyPort: number): Promise<Peer> {
  const port = await freePort();
  return run(
    path,
    [
      "-s",
      `--frontend=127.0.0.1,${port}`,
      `--backend=127.0.0.1,${proxyPort}`,
      "--verify-client",
      `--verify-client-cacert=${pki.files.ca}`,
      "--frontend-http2-window-size=4194304",
      "--frontend-http2-connection-window-size=16777216",
      "--backend-connections-per-host=1024",
      "--workers=1",
      "--no-ocsp",
      "--conf=/dev/null",
      "--errorlog-file=/dev/stderr",
      "--accesslog-file=/dev/null",
      pki.files.serverKey,
      pki.files.serverCert,
    ],
    port,
    "nghttpx",
  );
}
