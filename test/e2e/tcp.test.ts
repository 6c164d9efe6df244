// Raw TCP end to end: a TCP client -> `edge-relay connect` -> relay (workerd) -> agent with a
// tcp:// target -> a TCP server; and Debian's redis-server and redis-cli as real peers.
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { writeFileSync, mkdtempSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { agentArgs, startAgent, type AgentProcess } from "../helpers/agent.ts";
import { patternBlock, patternSha256 } from "../helpers/backend.ts";
import { sampleRss, waitUntilStable } from "../helpers/memory.ts";
import { startRelay, type RelayHandle } from "../helpers/relay.ts";
import { tool } from "../helpers/tools.ts";
import { within } from "../helpers/wait.ts";

const MiB = 1024 * 1024;
let relay: RelayHandle;
const agents: AgentProcess[] = [];
const servers: net.Server[] = [];

beforeAll(async () => {
  relay = await startRelay();
});

afterAll(async () => {
  await Promise.all(agents.map((a) => a.stop()));
  for (const s of servers) s.close();
  await relay?.stop();
});

/** A TCP server on loopback; `handler` gets each connection. */
async function tcpServer(handler: (socket: net.Socket) => void): Promise<number> {
  const server = net.createServer({ allowHalfOpen: true }, handler);
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return (server.address() as net.AddressInfo).port;
}

/** Starts an agent for `name` with a tcp:// target, and `edge-relay connect` for it; returns the local port. */
async function expose(name: string, port: number, opts: { agentExtra?: string[]; connectToken?: string } = {}): Promise<number> {
  agents.push(
    await startAgent(agentArgs(relay.url, name, await relay.token(name), `tcp://127.0.0.1:${port}`, opts.agentExtra), { waitUp: 1 }),
  );
  const connect = await startAgent([
    "connect",
    relay.url,
    "--backend",
    name,
    "--listen",
    "127.0.0.1:0",
    ...(opts.connectToken ? ["--token", opts.connectToken] : []),
  ]);
  agents.push(connect);
  const line = await connect.waitForLine(/listening on 127\.0\.0\.1:\d+/);
  return Number(/127\.0\.0\.1:(\d+)/.exec(line)![1]);
}

/** Connects to a local port; resolves once connected. */
function dial(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: "127.0.0.1", port, allowHalfOpen: true }, () => resolve(s));
    s.once("error", reject);
  });
}

/** Reads a socket to its end (the peer's FIN); resolves with sha256 and length. */
function drain(socket: net.Socket): Promise<{ sha256: string; length: number; text: string }> {
  return new Promise((resolve, reject) => {
    const h = createHash("sha256");
    let length = 0;
    let head = "";
    socket.on("data", (c: Buffer) => {
      h.update(c);
      length += c.length;
      if (head.length < 200) head += c.toString("latin1");
    });
    socket.once("end", () => resolve({ sha256: h.digest("hex"), length, text: head }));
    socket.once("error", reject);
  });
}

/** Writes `n` pattern bytes with backpressure, then half-closes. */
async function sendPattern(socket: net.Socket, n: number): Promise<string> {
  const block = patternBlock();
  const h = createHash("sha256");
  for (let left = n; left > 0; left -= block.length) {
    const chunk = left >= block.length ? block : block.subarray(0, left);
    h.update(chunk);
    if (!socket.write(chunk)) await new Promise((r) => socket.once("drain", r));
  }
  socket.end();
  return h.digest("hex");
}

describe("raw TCP", () => {
  it("carries 100 MiB byte-exact each way with half-close in each direction", async () => {
    // Upload: the client's FIN reaches the server, which then answers with its digest.
    // Download: the server's FIN reaches the client, which then still sends a last word.
    let lastWord: Promise<string> = Promise.resolve("");
    const port = await tcpServer((socket) => {
      socket.once("data", (first: Buffer) => {
        const mode = first.subarray(0, 4).toString();
        if (mode === "UPLD") {
          const h = createHash("sha256");
          let n = 0;
          h.update(first.subarray(4));
          n += first.length - 4;
          socket.on("data", (c: Buffer) => {
            h.update(c);
            n += c.length;
          });
          socket.on("end", () => socket.end(`${h.digest("hex")} ${n}`));
        } else {
          lastWord = new Promise((resolve) => {
            let text = "";
            socket.on("data", (c: Buffer) => (text += c.toString()));
            socket.on("end", () => {
              resolve(text);
              socket.destroy();
            });
          });
          void sendPattern(socket, 100 * MiB);
        }
      });
    });
    const local = await expose("tcp-bytes", port);

    const up = await dial(local);
    const answer = drain(up);
    up.write("UPLD");
    const sent = await sendPattern(up, 100 * MiB);
    expect((await within(answer, "upload digest", 120_000)).text).toBe(`${sent} ${100 * MiB}`);

    const down = await dial(local);
    const received = drain(down);
    down.write("DOWN");
    const got = await within(received, "download", 120_000);
    expect(got.length).toBe(100 * MiB);
    expect(got.sha256).toBe(patternSha256(100 * MiB));
    down.end("thanks after your FIN");
    expect(await within(lastWord, "last word", 10_000)).toBe("thanks after your FIN");
  });

  it("turns a reset on either end into a reset on the other", async () => {
    const seen: Array<Promise<string>> = [];
    const port = await tcpServer((socket) => {
      socket.once("data", (d: Buffer) => {
        if (d.toString() === "reset-me") return socket.resetAndDestroy();
        seen.push(
          new Promise((resolve) => {
            socket.on("error", (e: NodeJS.ErrnoException) => resolve(e.code ?? "error"));
            socket.on("close", () => resolve("closed"));
            socket.on("end", () => resolve("fin"));
          }),
        );
        socket.write("ready");
      });
    });
    const local = await expose("tcp-reset", port);
    const a = await dial(local);
    const aClosed = new Promise<string>((resolve) => {
      a.on("error", (e: NodeJS.ErrnoException) => resolve(e.code ?? "error"));
      a.on("end", () => resolve("fin"));
    });
    a.write("reset-me");
    expect(await within(aClosed, "client sees the server's reset", 15_000)).toBe("ECONNRESET");

    const b = await dial(local);
    b.write("hello");
    await new Promise((r) => b.once("data", r));
    b.resetAndDestroy();
    expect(await within(seen[0], "server sees the client's reset", 15_000)).toBe("ECONNRESET");
  });

  it("keeps 50 connections at once independent", async () => {
    const port = await tcpServer((socket) => socket.pipe(socket));
    const local = await expose("tcp-many", port);
    const results = await Promise.all(
      Array.from({ length: 50 }, async (_, i) => {
        const s = await dial(local);
        const body = drain(s);
        const payload = randomBytes(100_000 + i);
        s.end(payload);
        const got = await within(body, `echo ${i}`, 30_000);
        return got.sha256 === createHash("sha256").update(payload).digest("hex");
      }),
    );
    expect(results.every(Boolean)).toBe(true);
  });

  it("holds a client that stops reading with bounded buffers, then resumes it", async () => {
    // The server writes an endless pattern honouring backpressure; `written` counts what write() took.
    const block = patternBlock();
    let written = 0;
    const port = await tcpServer((socket) => {
      socket.on("error", () => {});
      void (async () => {
        while (!socket.destroyed) {
          written += block.length;
          if (!socket.write(block)) {
            await new Promise<void>((resolve) => {
              const done = () => {
                socket.off("drain", done);
                socket.off("close", done);
                resolve();
              };
              socket.on("drain", done);
              socket.on("close", done);
            });
          }
        }
      })();
    });
    const local = await expose("tcp-stall", port);
    const pids = [...relay.workerdPids(), ...agents.slice(-2).map((a) => a.proc.pid!)];
    const rss = sampleRss(pids);

    const client = await dial(local);
    client.pause();
    let received = 0;
    let corrupt = false;
    const progress: Array<() => void> = [];
    client.on("data", (c: Buffer) => {
      // Each chunk must be the pattern at its offset in the stream.
      for (let at = 0; at < c.length; ) {
        const offset = (received + at) % block.length;
        const n = Math.min(block.length - offset, c.length - at);
        if (!c.subarray(at, at + n).equals(block.subarray(offset, offset + n))) corrupt = true;
        at += n;
      }
      received += c.length;
      for (const p of progress.splice(0)) p();
    });
    client.on("error", () => {});

    // Everything in between fills up and the server stops being able to write.
    const plateau = await waitUntilStable(() => written, 3_000, 60_000);
    const memory = rss.stop();
    expect(plateau).toBeGreaterThan(MiB);
    expect(plateau).toBeLessThan(64 * MiB);
    expect(memory.filter((m) => m.growthMiB >= 64)).toEqual([]);

    // Reading again: what was held arrives, and the server writes on.
    const target = plateau + 32 * MiB;
    const reached = new Promise<void>((resolve) => {
      const check = () => (received >= target ? resolve() : progress.push(check));
      check();
    });
    client.resume();
    await within(reached, `${target} bytes at the resumed client`, 60_000);
    expect(corrupt).toBe(false);
    expect(written).toBeGreaterThan(plateau + 32 * MiB - 1);
    client.resetAndDestroy();
  }, 120_000);

  it("answers a plain HTTP request to a TCP backend with 426 JSON", async () => {
    const port = await tcpServer((socket) => socket.end());
    agents.push(
      await startAgent(agentArgs(relay.url, "tcp-plain", await relay.token("tcp-plain"), `tcp://127.0.0.1:${port}`), { waitUp: 1 }),
    );
    const res = await fetch(`${relay.url}/r/tcp-plain/`);
    expect(res.status).toBe(426);
    expect(await res.json()).toMatchObject({ error: "upgrade_required" });
  });

  it("requires an access token when the agent asks for one", async () => {
    const port = await tcpServer((socket) => socket.pipe(socket));
    const accessToken = (await import("../../src/auth.ts")).mintToken(relay.secret, "tcp-locked", { scope: "access" });
    const open = await expose("tcp-locked", port, { agentExtra: ["--require-access-token"], connectToken: await accessToken });
    const s = await dial(open);
    const echoed = drain(s);
    s.end("let me in");
    expect((await within(echoed, "echo with token", 10_000)).text).toBe("let me in");

    const res = await fetch(`${relay.url}/r/tcp-locked/`);
    expect(res.status).toBe(401);
    expect(await res.json()).toMatchObject({ error: "access_denied", backend: "tcp-locked" });
    const agentToken = await relay.token("tcp-locked");
    const wrong = await fetch(`${relay.url}/r/tcp-locked/`, { headers: { "x-relay-access-token": agentToken } });
    expect(wrong.status).toBe(401);
  });
});

const redis = tool("redis-server", "redis-server");
const redisCli = tool("redis-cli", "redis-tools");

describe.skipIf(!!redis.skip || !!redisCli.skip)("Redis through edge-relay connect", () => {
  let local = 0;

  // Registered here, not inside beforeAll: a hook added from a hook never runs, and redis outlived the run.
  let redisServer: ChildProcess | undefined;
  afterAll(() => void redisServer?.kill());

  beforeAll(async () => {
    const probe = net.createServer();
    await new Promise<void>((r) => probe.listen(0, "127.0.0.1", r));
    const port = (probe.address() as net.AddressInfo).port;
    await new Promise((r) => probe.close(r));
    redisServer = spawn(redis.path!, ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"], {
      stdio: "ignore",
    });
    // Wait until redis accepts connections.
    for (let i = 0; ; i++) {
      try {
        (await dial(port)).destroy();
        break;
      } catch (err) {
        if (i > 100) throw err;
        await new Promise((r) => setTimeout(r, 50));
      }
    }
    local = await expose("redis", port);
  });

  const cli = (args: string[], input?: string): Promise<string> =>
    new Promise((resolve, reject) => {
      const child = execFile(redisCli.path!, ["-p", String(local), ...args], { maxBuffer: 32 * MiB, timeout: 30_000 }, (err, out) =>
        err ? reject(err) : resolve(out),
      );
      if (input !== undefined) child.stdin!.end(input);
    });

  it("answers PING", async () => {
    expect((await cli(["PING"])).trim()).toBe("PONG");
  });

  it("sets and gets a 5 MiB value", async () => {
    const value = randomBytes((5 * MiB) / 2).toString("hex");
    const dir = mkdtempSync(join(tmpdir(), "edge-relay-redis-"));
    writeFileSync(join(dir, "v"), value);
    expect((await cli(["-x", "SET", "big"], value)).trim()).toBe("OK");
    const got = (await cli(["--no-raw", "STRLEN", "big"])).trim();
    expect(got).toBe(`(integer) ${value.length}`);
    expect((await cli(["GET", "big"])).trim()).toBe(value);
  });

  it("delivers published messages to a subscriber", async () => {
    const sub = spawn(redisCli.path!, ["-p", String(local), "SUBSCRIBE", "news"]);
    let out = "";
    const got = new Promise<void>((resolve) =>
      sub.stdout.on("data", (d: Buffer) => {
        out += d.toString();
        if (out.includes("hello subscribers")) resolve();
      }),
    );
    try {
      // Publish until the subscription is in place (PUBLISH returns the receiver count).
      for (let i = 0; i < 100 && (await cli(["PUBLISH", "news", "hello subscribers"])).trim() === "0"; i++) {
        await new Promise((r) => setTimeout(r, 100));
      }
      await within(got, "message at the subscriber", 10_000);
      expect(out).toContain("hello subscribers");
    } finally {
      sub.kill();
    }
  });
});
