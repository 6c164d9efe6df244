// WebSocket upgrades driven by an independent client: Debian's python3-websockets (asyncio) ->
// relay (workerd) -> agent -> ws echo backend. Each case runs a small script and reads its JSON lines.
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { agentArgs, startAgent, type AgentProcess } from "../helpers/agent.ts";
import { startRelay, type RelayHandle } from "../helpers/relay.ts";
import { debianPythonWebsockets } from "../helpers/tools.ts";
import { startWsBackend, type WsBackend } from "../helpers/ws-backend.ts";

const py = debianPythonWebsockets();
const NAME = "py-sockets";
const MiB = 1024 * 1024;

/**
 * The client: `script.py <mode> <url>`, one JSON object per line on stdout. Works with the
 * legacy asyncio API of websockets 10 (Debian 12) and newer releases alike.
 */
const SCRIPT = String.raw`
import asyncio, hashlib, json, sys
import websockets

mode, url = sys.argv[1], sys.argv[2]

def out(**kw):
    print(json.dumps(kw), flush=True)

def pattern(n):
    # Deterministic bytes, every value 0..255 many times over.
    return bytes((i * 7 + (i >> 8)) & 0xFF for i in range(n))

async def main():
    protocols = ["chat.v1", "chat.v2"] if mode == "negotiate" else None
    async with websockets.connect(url, subprotocols=protocols, max_size=None) as ws:
        out(event="open", subprotocol=ws.subprotocol)
        if mode == "negotiate":
            await ws.send("after negotiation")
            out(event="echo", data=await ws.recv())
        elif mode == "echo":
            text = "h\u00e9llo \u2713 \U0001F680 \u0000 end"
            await ws.send(text)
            got = await ws.recv()
            out(event="text", type=type(got).__name__, hex=got.encode("utf-8").hex() if isinstance(got, str) else got.hex(), sent=text.encode("utf-8").hex())
            data = bytes(range(256)) + b"\x00\xff\x80"
            await ws.send(data)
            got = await ws.recv()
            out(event="binary", type=type(got).__name__, hex=got.hex() if isinstance(got, bytes) else got, sent=data.hex())
            await ws.send(b"")
            got = await ws.recv()
            out(event="empty", type=type(got).__name__, length=len(got))
        elif mode == "big":
            data = pattern(1024 * 1024)
            await ws.send(data)
            got = await ws.recv()
            out(event="big", type=type(got).__name__, length=len(got), sent=hashlib.sha256(data).hexdigest(), received=hashlib.sha256(got).hexdigest())
        elif mode == "client-close":
            await ws.close(code=4001, reason="python says bye")
            out(event="closed", code=ws.close_code, reason=ws.close_reason)
        elif mode == "server-close":
            try:
                msg = await ws.recv()
                out(event="unexpected", data=repr(msg))
            except websockets.exceptions.ConnectionClosed:
                pass
            await ws.wait_closed()
            out(event="closed", code=ws.close_code, reason=ws.close_reason)

asyncio.run(main())
`;

interface Line {
  event: string;
  [key: string]: unknown;
}

let relay: RelayHandle;
let backend: WsBackend;
let agent: AgentProcess;
let dir: string;
let script: string;

const wsUrl = (path: string) => `${relay.url.replace("http", "ws")}/r/${NAME}${path}`;

/** Runs the client script; resolves with its JSON lines once it exits 0 (rejects otherwise or after `ms`). */
function python(mode: string, path: string, ms = 30_000): Promise<Line[]> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    execFile(py.path!, [script, mode, wsUrl(path)], { timeout: ms, maxBuffer: 8 * MiB, encoding: "utf8" }, (err, stdout, stderr) => {
      if (err) return reject(new Error(`python ${mode} failed after ${Date.now() - started} ms: ${err.message}\n${stderr}\n${stdout}`));
      resolve(
        stdout
          .trim()
          .split("\n")
          .filter(Boolean)
          .map((l) => JSON.parse(l) as Line),
      );
    });
  });
}

/** The line for `event`, failing with all lines when it is missing. */
function lineFor(lines: Line[], event: string): Line {
  const line = lines.find((l) => l.event === event);
  if (!line) throw new Error(`no "${event}" line in ${JSON.stringify(lines)}`);
  return line;
}

describe.skipIf(!!py.skip)("python3-websockets through the relay", () => {
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "edge-relay-py-"));
    script = join(dir, "client.py");
    writeFileSync(script, SCRIPT);
    [relay, backend] = await Promise.all([startRelay({ snapshot: true }), startWsBackend()]);
    agent = await startAgent(agentArgs(relay.url, NAME, await relay.token(NAME), backend.url), { waitUp: 1 });
  });

  afterAll(async () => {
    await agent?.stop();
    await Promise.all([relay?.stop(), backend?.stop()]);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("negotiates the backend's subprotocol from the client's offer", async () => {
    const lines = await python("negotiate", "/echo?id=py-proto");
    expect(lineFor(lines, "open").subprotocol).toBe("chat.v2");
    expect(lineFor(lines, "echo").data).toBe("after negotiation");
    const conn = await backend.connection("py-proto");
    expect(conn.headers["sec-websocket-protocol"]?.split(/\s*,\s*/)).toEqual(["chat.v1", "chat.v2"]);
    expect(conn.ws.protocol).toBe("chat.v2");
  });

  it("echoes text and binary messages byte-exact, keeping their types", async () => {
    const lines = await python("echo", "/echo?id=py-echo");
    const text = lineFor(lines, "text");
    expect(text.type).toBe("str");
    expect(text.hex).toBe(text.sent);
    expect(Buffer.from(text.hex as string, "hex").toString("utf8")).toBe("héllo ✓ 🚀 \u0000 end");
    const binary = lineFor(lines, "binary");
    expect(binary.type).toBe("bytes");
    expect(binary.hex).toBe(binary.sent);
    expect((binary.hex as string).length).toBe(259 * 2);
    expect(lineFor(lines, "empty")).toEqual({ event: "empty", type: "bytes", length: 0 });
  });

  it("echoes a 1 MiB binary message", async () => {
    const lines = await python("big", "/echo?id=py-big", 60_000);
    const big = lineFor(lines, "big");
    expect(big.type).toBe("bytes");
    expect(big.length).toBe(MiB);
    expect(big.received).toBe(big.sent);
    // The same pattern, computed here: the script really sent what it says.
    const pattern = Buffer.alloc(MiB);
    for (let i = 0; i < MiB; i++) pattern[i] = (i * 7 + (i >> 8)) & 0xff;
    expect(big.sent).toBe(createHash("sha256").update(pattern).digest("hex"));
  });

  it("passes the client's close code 4001 and reason to the backend", async () => {
    const run = python("client-close", "/echo?id=py-cclose");
    const conn = await backend.connection("py-cclose");
    const backendSide = await Promise.race([
      conn.closed,
      new Promise<never>((_, reject) => setTimeout(() => reject(new Error("the backend saw no close within 10 s")), 10_000)),
    ]);
    expect(backendSide).toEqual({ code: 4001, reason: "python says bye" });
    // The relay answers the close with the same code.
    expect(lineFor(await run, "closed")).toMatchObject({ code: 4001, reason: "python says bye" });
  });

  it("passes the backend's close code 4002 and reason to the client", async () => {
    // A close the relay starts ends its TCP connection ~10 s later locally, and python's
    // close_timeout is 10 s: the script gets 25 s to finish.
    const run = python("server-close", "/echo?id=py-sclose", 25_000);
    const conn = await backend.connection("py-sclose");
    conn.ws.close(4002, "backend says bye");
    const lines = await run;
    expect(lines.filter((l) => l.event === "unexpected")).toEqual([]);
    expect(lineFor(lines, "closed")).toEqual({ event: "closed", code: 4002, reason: "backend says bye" });
    expect(await conn.closed).toEqual({ code: 4002, reason: "backend says bye" });
  });
});
