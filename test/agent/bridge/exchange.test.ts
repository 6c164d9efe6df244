// The bridge's hook state machine: what each status does in each hook, when the TCP connection
// opens and closes, backpressure, and every way a plugin can fail turning into BRIDGE_ERROR.
import { createHash, randomBytes } from "node:crypto";
import { connect, type Socket } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { BridgeExchange, MAX_ERROR_MESSAGE } from "../../../agent/bridge/exchange.ts";
import type { BridgePlugin, BridgeStatus } from "../../../agent/bridge/plugin.ts";
import raw from "../../../agent/bridge/raw.ts";
import { ErrorCode } from "../../../src/protocol/frame.ts";
import { decodeRequestHead, encodeRequestHead } from "../../../src/protocol/head.ts";
import { bridgeRequest, closedPort, tcpServer, type TestServer } from "../../helpers/bridge.ts";
import { memoryPair } from "../../helpers/memory-pair.ts";
import { deferred, until, within } from "../../helpers/wait.ts";

const servers: TestServer[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

async function server(handler: (socket: Socket) => void): Promise<TestServer> {
  const s = await tcpServer(handler);
  servers.push(s);
  return s;
}

/** A server that records what it received and when the client half-closed. */
async function recorder(reply?: (socket: Socket, received: () => Buffer) => void) {
  const seen = { bytes: [] as Buffer[], fin: false };
  const s = await server((socket) => {
    socket.on("data", (d: Buffer) => seen.bytes.push(d));
    socket.on("end", () => (seen.fin = true));
    reply?.(socket, () => Buffer.concat(seen.bytes));
  });
  return { server: s, seen, received: () => Buffer.concat(seen.bytes).toString() };
}

/** A plugin that logs its hook calls and answers with the statuses it is given. */
function scripted(script: Partial<Record<"headers" | "data" | "upstream", BridgeStatus[]>>, extra: Partial<BridgePlugin> = {}) {
  const calls: string[] = [];
  const next = (list: BridgeStatus[] | undefined, fallback: BridgeStatus) => list?.shift() ?? fallback;
  const plugin: BridgePlugin = {
    name: "scripted",
    encodeHeaders(request) {
      calls.push(`headers ${request.method} ${request.path} body=${request.hasBody}`);
      return next(script.headers, "continue");
    },
    encodeData(chunk, end, ctx) {
      calls.push(`data ${JSON.stringify(Buffer.from(chunk).toString())} end=${end}`);
      const status = next(script.data, "continue");
      if (status !== "buffer") ctx.write(chunk);
      return status;
    },
    onUpstreamData(chunk, end, ctx) {
      calls.push(`upstream ${JSON.stringify(Buffer.from(chunk).toString())} end=${end}`);
      const status = next(script.upstream, "continue");
      if (status === "end" || (status === "continue" && chunk.byteLength > 0)) {
        if (!ctx.headersSent) ctx.sendHeaders(200, [["x-test", "1"]]);
        ctx.sendData(chunk);
      }
      return status;
    },
    ...extra,
  };
  return { plugin, calls };
}

/** For `beforeChunk`: waits until the plugin's encodeData was called for each chunk before chunk `i`. */
const dataCalls = (calls: string[]) => (i: number) =>
  until(() => calls.filter((c) => c.startsWith("data")).length >= i, `encodeData for chunk ${i - 1}`);

describe("request side", () => {
  it('"continue" from encodeHeaders streams each chunk to encodeData, the last with endOfStream', async () => {
    const peer = await recorder((socket, received) => socket.on("data", () => received().length === 4 && socket.end("done")));
    const { plugin, calls } = scripted({});
    const res = await bridgeRequest(plugin, peer.server.port, { body: ["ab", "cd"], beforeChunk: dataCalls(calls) });
    expect(res.status).toBe(200);
    expect(res.body.toString()).toBe("done");
    expect(calls[0]).toBe("headers POST / body=true");
    expect(calls.filter((c) => c.startsWith("data"))).toEqual(['data "ab" end=false', 'data "cd" end=false', 'data "" end=true']);
    expect(peer.received()).toBe("abcd");
  });

  it('"buffer" from encodeHeaders gives encodeData the whole body once', async () => {
    const peer = await recorder((socket) => socket.on("data", () => socket.end("ok")));
    const { plugin, calls } = scripted({ headers: ["buffer"] });
    const res = await bridgeRequest(plugin, peer.server.port, { body: ["one ", "two ", "three"] });
    expect(res.status).toBe(200);
    expect(calls.filter((c) => c.startsWith("data"))).toEqual(['data "one two three" end=true']);
    expect(peer.received()).toBe("one two three");
  });

  it('"buffer" from encodeData keeps the chunk for the next call', async () => {
    const peer = await recorder((socket, received) => socket.on("data", () => received().length === 6 && socket.end("ok")));
    const { plugin, calls } = scripted({ data: ["buffer", "continue"] });
    const res = await bridgeRequest(plugin, peer.server.port, { body: ["ab", "cd", "ef"], beforeChunk: dataCalls(calls) });
    expect(res.status).toBe(200);
    expect(calls.filter((c) => c.startsWith("data")).slice(0, 3)).toEqual([
      'data "ab" end=false',
      'data "abcd" end=false',
      'data "ef" end=false',
    ]);
  });

  it("a request without a body still gets one final, empty encodeData", async () => {
    const peer = await recorder((socket) => socket.end("hi"));
    const { plugin, calls } = scripted({});
    const res = await bridgeRequest(plugin, peer.server.port, { method: "GET" });
    expect(res.body.toString()).toBe("hi");
    expect(calls.slice(0, 2)).toEqual(["headers GET / body=false", 'data "" end=true']);
  });

  it('"end" from encodeHeaders skips the body; what it wrote is answered from onUpstreamData', async () => {
    const peer = await recorder((socket) => socket.on("data", (d: Buffer) => socket.end(`echo:${d}`)));
    const { plugin, calls } = scripted(
      {},
      {
        encodeHeaders(request, ctx) {
          ctx.write(`GET ${request.path}`);
          return "end";
        },
      },
    );
    const res = await bridgeRequest(plugin, peer.server.port, { path: "/k", body: ["ignored body"] });
    expect(res.body.toString()).toBe("echo:GET /k");
    expect(calls.some((c) => c.startsWith("data"))).toBe(false);
    expect(peer.received()).toBe("GET /k");
  });

  it("a local answer from encodeHeaders never opens a TCP connection", async () => {
    const peer = await recorder();
    const plugin: BridgePlugin = {
      encodeHeaders(_request, ctx) {
        ctx.respond(400, { "content-type": "text/plain" }, "bad request\n");
        return "end";
      },
      encodeData: () => "continue",
      onUpstreamData: () => "continue",
    };
    const res = await bridgeRequest(plugin, peer.server.port, { body: ["x".repeat(100_000)] });
    expect(res.status).toBe(400);
    expect(res.headers).toContainEqual(["content-length", "12"]);
    expect(res.body.toString()).toBe("bad request\n");
    expect(peer.server.connections).toBe(0);
  });

  it("does not half-close the TCP connection unless the plugin asks", async () => {
    for (const halfClose of [false, true]) {
      let finBeforeReply: boolean | undefined;
      const peer = await recorder((socket) =>
        setTimeout(() => {
          finBeforeReply = peer.seen.fin;
          socket.end("bye");
        }, 150),
      );
      const plugin: BridgePlugin = {
        encodeHeaders: () => "continue",
        encodeData(chunk, end, ctx) {
          ctx.write(chunk);
          if (end && halfClose) ctx.halfClose();
          return "continue";
        },
        onUpstreamData: raw.onUpstreamData,
      };
      const res = await bridgeRequest(plugin, peer.server.port, { body: ["data"] });
      expect(res.body.toString()).toBe("bye");
      expect(finBeforeReply).toBe(halfClose);
    }
  });

  it("carries an 8 MiB body byte-exact to a slow server under backpressure", async () => {
    const body = randomBytes(8 * 1024 * 1024);
    const digest = createHash("sha256").update(body).digest("hex");
    const peer = await server((socket) => {
      const h = createHash("sha256");
      let n = 0;
      socket.on("data", (d: Buffer) => {
        h.update(d);
        n += d.length;
        // Read slowly: the bridge must wait for the socket to drain.
        socket.pause();
        setTimeout(() => socket.resume(), 1);
        if (n === body.length) socket.end(h.digest("hex"));
      });
    });
    const chunks = Array.from({ length: 32 }, (_, i) => body.subarray(i * 262144, (i + 1) * 262144));
    const res = await bridgeRequest(raw, peer.port, { body: chunks, idleMs: 5000 });
    expect(res.reset).toBeUndefined();
    expect(res.body.toString()).toBe(digest);
  });

  it("answers 413 when a buffered body passes the limit", async () => {
    const peer = await recorder();
    const { plugin } = scripted({ headers: ["buffer"] });
    const chunk = new Uint8Array(4 * 1024 * 1024);
    const res = await bridgeRequest(plugin, peer.server.port, { body: Array.from({ length: 17 }, () => chunk) });
    expect(res.status).toBe(413);
    expect(JSON.parse(res.body.toString())).toMatchObject({ error: "body_too_large" });
    expect(peer.server.connections).toBe(0);
  });
});

describe("reply side", () => {
  it('"buffer" from onUpstreamData gathers the server\'s bytes until a whole reply is in', async () => {
    const peer = await recorder((socket) => {
      socket.write("wh");
      setTimeout(() => socket.write("ole|"), 30);
      setTimeout(() => socket.write("extra"), 60);
    });
    const calls: string[] = [];
    const plugin: BridgePlugin = {
      encodeHeaders: () => "continue",
      encodeData: () => "continue",
      onUpstreamData(chunk, _end, ctx) {
        const text = Buffer.from(chunk).toString();
        calls.push(text);
        if (!text.includes("|")) return "buffer";
        ctx.respond(201, { "x-reply": "yes" }, text.slice(0, text.indexOf("|")));
        return "end";
      },
    };
    const res = await bridgeRequest(plugin, peer.server.port, { method: "GET" });
    expect(res.status).toBe(201);
    expect(res.headers).toContainEqual(["x-reply", "yes"]);
    expect(res.body.toString()).toBe("whole");
    expect(calls).toEqual(["wh", "whole|"]);
  });

  it("streams a long reply with sendHeaders and sendData, ending when the server closes", async () => {
    const block = randomBytes(1024 * 1024);
    const peer = await server((socket) => {
      void (async () => {
        for (let i = 0; i < 6; i++) if (!socket.write(block)) await new Promise((r) => socket.once("drain", r));
        socket.end();
      })();
    });
    const res = await bridgeRequest(raw, peer.port, { method: "GET", idleMs: 5000 });
    expect(res.status).toBe(200);
    expect(res.headers).toContainEqual(["content-type", "application/octet-stream"]);
    expect(res.body.length).toBe(6 * block.length);
    expect(res.body.subarray(5 * block.length).equals(block)).toBe(true);
  });

  it("raw ends the reply after the idle time when the server stays open", async () => {
    const peer = await recorder((socket) => socket.on("data", (d: Buffer) => socket.write(`got ${d}`)));
    const started = Date.now();
    const res = await bridgeRequest(raw, peer.server.port, { body: ["ping"], idleMs: 150 });
    expect(res.status).toBe(200);
    expect(res.body.toString()).toBe("got ping");
    expect(Date.now() - started).toBeGreaterThanOrEqual(150);
  });

  it("sends no body for HEAD, 204 and 304", async () => {
    const peer = await recorder((socket) => socket.end("body bytes"));
    for (const [method, status] of [
      ["HEAD", 200],
      ["GET", 204],
      ["GET", 304],
    ] as const) {
      const plugin: BridgePlugin = {
        encodeHeaders: () => "end",
        encodeData: () => "continue",
        onUpstreamData(chunk, end, ctx) {
          if (!ctx.headersSent) ctx.sendHeaders(status);
          ctx.sendData(chunk);
          return end ? "end" : "continue";
        },
      };
      const res = await bridgeRequest(plugin, peer.server.port, { method });
      expect(res.reset).toBeUndefined();
      expect(res.status).toBe(status);
      expect(res.body.length).toBe(0);
    }
  });

  it("a connection that cannot be made is ORIGIN_UNREACHABLE", async () => {
    const res = await bridgeRequest(raw, 0, { port: await closedPort(), body: ["x"] });
    expect(res.reset).toMatchObject({ code: ErrorCode.OriginUnreachable, afterHeaders: false });
    expect(res.reset?.message).toMatch(/ECONNREFUSED/);
  });

  it("closes the TCP connection when the public client goes away", async () => {
    const arrived = deferred();
    const ended = deferred<string>();
    // The bridge closes its end; the server (allowHalfOpen) sees that as 'end'.
    const peer = await server((socket) => {
      const bytes: Buffer[] = [];
      socket.on("data", (d: Buffer) => {
        bytes.push(d);
        if (Buffer.concat(bytes).toString() === "hello") arrived.resolve();
      });
      socket.on("end", () => ended.resolve(Buffer.concat(bytes).toString()));
    });
    const pair = await memoryPair({
      agent: {
        onStream: (stream, list, fin) =>
          new BridgeExchange(stream, decodeRequestHead(list), !fin, Promise.resolve({ plugin: raw, name: "raw" }), {
            dial: () => connect({ host: "127.0.0.1", port: peer.port, allowHalfOpen: true }),
            settings: { idleMs: 60_000 },
          }).start(),
      },
    });
    const stream = pair.relay.open(encodeRequestHead({ method: "POST", path: "/", scheme: "https", authority: "x", headers: [] }));
    await stream.write(new TextEncoder().encode("hello"));
    await within(arrived.promise, "the body at the TCP server");
    stream.reset(ErrorCode.Cancel, "client gone");
    // Idle time is a minute: only the reset can end the connection this soon.
    expect(await within(ended.promise, "the bridge to close the TCP connection")).toBe("hello");
    expect(peer.connections).toBe(1);
  });
});

describe("plugin failures", () => {
  const hooks = ["encodeHeaders", "encodeData", "onUpstreamData"] as const;

  it.each(hooks)("an exception in %s is BRIDGE_ERROR with the plugin's message, before headers", async (hook) => {
    const peer = await recorder((socket) => socket.on("data", () => socket.write("reply")));
    const plugin: BridgePlugin = { ...raw, name: "boom" };
    plugin[hook] = () => {
      throw new Error(`bad ${hook}.`);
    };
    const res = await bridgeRequest(plugin, peer.server.port, { body: ["x"] });
    expect(res.reset).toEqual({
      code: ErrorCode.BridgeError,
      message: `plugin "boom" failed in ${hook}: bad ${hook}`,
      afterHeaders: false,
    });
  });

  it.each(hooks)("a rejected promise from %s is BRIDGE_ERROR too", async (hook) => {
    const peer = await recorder((socket) => socket.on("data", () => socket.write("reply")));
    const plugin: BridgePlugin = { ...raw, name: "async" };
    plugin[hook] = async () => {
      await new Promise((r) => setTimeout(r, 5));
      throw new TypeError("nope");
    };
    const res = await bridgeRequest(plugin, peer.server.port, { body: ["x"] });
    expect(res.reset).toMatchObject({ code: ErrorCode.BridgeError, message: `plugin "async" failed in ${hook}: nope` });
  });

  it("a failure after the response headers resets the stream mid-body", async () => {
    const peer = await recorder((socket) => {
      socket.write("first");
      setTimeout(() => socket.write("second"), 50);
    });
    const plugin: BridgePlugin = {
      ...raw,
      onUpstreamData(chunk, _end, ctx) {
        if (ctx.headersSent) throw new Error("lost track");
        ctx.sendHeaders(200);
        ctx.sendData(chunk);
        return "continue";
      },
    };
    const res = await bridgeRequest(plugin, peer.server.port, { method: "GET" });
    expect(res.status).toBe(200);
    expect(res.reset).toMatchObject({ code: ErrorCode.BridgeError, afterHeaders: true, message: expect.stringContaining("lost track") });
  });

  it.each([
    [
      "an unknown status",
      { encodeHeaders: () => "stop" as BridgeStatus },
      'returned "stop" from encodeHeaders, not "continue", "buffer" or "end"',
    ],
    [
      "no status",
      { encodeData: () => undefined as unknown as BridgeStatus },
      'returned undefined from encodeData, not "continue", "buffer" or "end"',
    ],
    [
      "buffer at the end of the request",
      { encodeData: () => "buffer" as BridgeStatus },
      'returned "buffer" from encodeData at the end of the request',
    ],
    [
      "sendData before sendHeaders",
      {
        onUpstreamData: (_c: Uint8Array, _e: boolean, ctx: { sendData(b: string): void }) => (
          ctx.sendData("x"), "continue" as BridgeStatus
        ),
      },
      "failed in onUpstreamData: sendData was called before sendHeaders",
    ],
    [
      "a bad header name",
      {
        encodeHeaders: (_r: unknown, ctx: { respond(s: number, h: Record<string, string>): void }) => (
          ctx.respond(200, { "bad name": "x" }), "end" as BridgeStatus
        ),
      },
      'failed in encodeHeaders: "bad name" is not a valid header name',
    ],
    [
      "a bad status",
      { encodeHeaders: (_r: unknown, ctx: { respond(s: number): void }) => (ctx.respond(99), "end" as BridgeStatus) },
      "failed in encodeHeaders: the status must be a whole number from 200 to 599, not 99",
    ],
  ])("%s is BRIDGE_ERROR", async (_what, override, message) => {
    const peer = await recorder((socket) => socket.on("data", () => socket.write("reply")));
    const plugin = { ...raw, name: "rules", ...override } as BridgePlugin;
    const res = await bridgeRequest(plugin, peer.server.port, { body: ["x"] });
    expect(res.reset).toEqual({ code: ErrorCode.BridgeError, message: `plugin "rules" ${message}`, afterHeaders: false });
  });

  it("a server that closes before any response is BRIDGE_ERROR", async () => {
    const peer = await recorder((socket) => socket.on("data", () => socket.end()));
    const plugin: BridgePlugin = { ...raw, name: "quiet", onUpstreamData: (_c, end) => (end ? "continue" : "buffer") };
    const res = await bridgeRequest(plugin, peer.server.port, { body: ["x"] });
    expect(res.reset).toMatchObject({
      code: ErrorCode.BridgeError,
      message: 'plugin "quiet" let the TCP stream end without sending a response',
    });
  });

  it('"buffer" when the server closed is BRIDGE_ERROR', async () => {
    const peer = await recorder((socket) => socket.on("data", () => socket.end("partial")));
    const plugin: BridgePlugin = { ...raw, name: "framed", onUpstreamData: () => "buffer" };
    const res = await bridgeRequest(plugin, peer.server.port, { body: ["x"] });
    expect(res.reset?.message).toMatch(/^plugin "framed" returned "buffer" from onUpstreamData at the end of the TCP stream/);
  });

  it("truncates long messages and keeps non-Error throws", async () => {
    const peer = await recorder();
    const long = await bridgeRequest(
      {
        ...raw,
        name: "long",
        encodeHeaders: () => {
          throw new Error("x".repeat(5000));
        },
      },
      peer.server.port,
    );
    expect(long.reset?.message.length).toBe(MAX_ERROR_MESSAGE);
    const odd = await bridgeRequest(
      {
        ...raw,
        name: "odd",
        encodeHeaders: () => {
          throw "a string";
        },
      },
      peer.server.port,
    );
    expect(odd.reset?.message).toBe('plugin "odd" failed in encodeHeaders: a string');
  });
});
