// BridgeTarget, the bridge+tcp:// target: serves plain requests through the configured plugin,
// refuses WebSocket upgrades, and fails requests (not the agent) when the plugin cannot load.
import { describe, expect, it } from "vitest";
import { buildAgentConfig } from "../../../agent/config.ts";
import { BridgeTarget } from "../../../agent/targets/bridge.ts";
import { ErrorCode } from "../../../src/protocol/frame.ts";
import { decodeRequestHead, decodeResponseHead, encodeRequestHead, type RequestHead } from "../../../src/protocol/head.ts";
import { mintToken } from "../../../src/auth.ts";
import { tcpServer } from "../../helpers/bridge.ts";
import { memoryPair } from "../../helpers/memory-pair.ts";

const TOKEN = await mintToken("bridge-target-secret", "demo");

function target(port: number, plugin: string): BridgeTarget {
  const { target } = buildAgentConfig(
    { relay: "https://relay.example.com", backend: "demo", token: TOKEN, to: `bridge+tcp://127.0.0.1:${port}`, "bridge-plugin": plugin },
    {},
  );
  if (target.kind !== "bridge") throw new Error("not a bridge target");
  return new BridgeTarget(target);
}

/** One request through `o`; resolves with the status and body, or the reset. */
async function serve(o: BridgeTarget, head: Partial<RequestHead>, body?: string) {
  const pair = await memoryPair({ agent: { onStream: (stream, list, fin) => o.serve(stream, decodeRequestHead(list), !fin) } });
  const stream = pair.relay.open(
    encodeRequestHead({ method: "POST", path: "/", scheme: "https", authority: "x", headers: [], ...head }),
    body === undefined,
  );
  let status: number | undefined;
  let text = "";
  const outcome = await new Promise<{ reset?: { code: number; message: string } }>((resolve) => {
    stream.onHeaders = (list, fin) => {
      status = decodeResponseHead(list).status;
      if (fin) resolve({});
    };
    stream.onData = (chunk) => {
      text += Buffer.from(chunk).toString();
      stream.consumed(chunk.byteLength);
    };
    stream.onEnd = () => resolve({});
    stream.onReset = (reset) => resolve({ reset: { code: reset.code, message: reset.message } });
    if (body !== undefined) void stream.write(new TextEncoder().encode(body)).then(() => stream.end());
  });
  return { status, text, ...outcome };
}

describe("BridgeTarget", () => {
  it("announces http and serves requests through its plugin", async () => {
    const server = await tcpServer((socket) => socket.on("data", (d: Buffer) => socket.end(`echo ${d}`)));
    try {
      const o = target(server.port, "raw");
      expect(o.caps).toEqual(["http"]);
      expect(await serve(o, {}, "hi")).toEqual({ status: 200, text: "echo hi" });
    } finally {
      await server.close();
    }
  });

  it("answers a WebSocket upgrade with 501", async () => {
    const res = await serve(target(1, "raw"), { method: "GET", protocol: "websocket" });
    expect(res.status).toBe(501);
    expect(JSON.parse(res.text)).toMatchObject({ error: "not_implemented" });
  });

  it("resets each request with BRIDGE_ERROR when the plugin cannot be loaded", async () => {
    const res = await serve(target(1, "./test/fixtures/bridge/missing-hook.ts"), {}, "x");
    expect(res.reset).toEqual({
      code: ErrorCode.BridgeError,
      message:
        '--bridge-plugin "./test/fixtures/bridge/missing-hook.ts" exports a default that is not a bridge plugin: it needs the functions encodeHeaders, encodeData, onUpstreamData (missing onUpstreamData).',
    });
  });
});
