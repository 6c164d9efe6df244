// The resp plugin's HTTP side: which bodies are commands, how replies become JSON, and the
// hooks against a scripted Redis stand-in (the real redis-server is in test/e2e/bridge.test.ts).
import type { Socket } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import resp, { parseCommands, REDIS_ERROR_STATUS, replyToJson } from "../../../agent/bridge/resp.ts";
import { RespErrorReply } from "../../../agent/bridge/resp-codec.ts";
import { ErrorCode } from "../../../src/protocol/frame.ts";
import { bridgeRequest, tcpServer, type TestServer } from "../../helpers/bridge.ts";

const body = (text: string) => new TextEncoder().encode(text);

describe("parseCommands", () => {
  it.each([
    ['["PING"]', [["PING"]], false],
    ['["SET","k","v"]', [["SET", "k", "v"]], false],
    ['["EXPIRE","k",10]', [["EXPIRE", "k", "10"]], false],
    [
      '[["SET","k","v"],["GET","k"]]',
      [
        ["SET", "k", "v"],
        ["GET", "k"],
      ],
      true,
    ],
  ])("reads %s", (text, commands, pipeline) => {
    expect(parseCommands(body(text))).toEqual({ commands, pipeline });
  });

  it.each([
    ["", /The body is empty/],
    ['{"cmd":"GET"', /The body is not JSON/],
    ['{"cmd":"GET"}', /must be a non-empty JSON array/],
    ["[]", /must be a non-empty JSON array/],
    ['["GET",["k"]]', /mixes commands and arguments/],
    ['[["GET","k"],[]]', /Command 2 is empty/],
    ['["SET","k",null]', /Argument 3 of the command is null/],
    ['["SET","k",{"a":1}]', /Argument 3 of the command is object/],
    ['[["GET","k"],["SET","k",true]]', /Argument 3 of command 2 is boolean/],
    ['["subscribe","news"]', /SUBSCRIBE is not available over the HTTP bridge/],
    ['[["PING"],["MONITOR"]]', /MONITOR is not available/],
  ])("refuses %j", (text, message) => {
    const parsed = parseCommands(body(text));
    expect(parsed).toHaveProperty("error");
    expect((parsed as { error: string }).error).toMatch(message);
  });

  it("refuses a body that is not UTF-8", () => {
    expect(parseCommands(Uint8Array.of(0x5b, 0x22, 0xff, 0x22, 0x5d))).toMatchObject({ error: expect.stringMatching(/not JSON/) });
  });
});

describe("replyToJson", () => {
  it.each([
    ["OK", "OK"],
    [7, 7],
    [9223372036854775807n, "9223372036854775807"],
    [null, null],
    [body("héllo"), "héllo"],
    [Uint8Array.of(0xff, 0x00), { base64: "/wA=" }],
    [new RespErrorReply("ERR no"), { error: "redis_error", message: "ERR no" }],
    [
      [body("a"), [1, null]],
      ["a", [1, null]],
    ],
  ])("maps %o", (reply, json) => {
    expect(replyToJson(reply)).toEqual(json);
  });
});

describe("the resp plugin", () => {
  let server: TestServer | undefined;
  afterEach(async () => server?.close());

  /** A stand-in that answers each command line-wise with the scripted replies. */
  async function fakeRedis(replies: string[], seen: string[] = []): Promise<number> {
    server = await tcpServer((socket: Socket) => {
      socket.on("data", (d: Buffer) => {
        seen.push(d.toString("latin1"));
        // Split the replies over two writes to exercise reassembly.
        const all = replies.join("");
        socket.write(all.slice(0, 3));
        setTimeout(() => socket.write(all.slice(3)), 10);
      });
    });
    return server.port;
  }

  it("sends one command and answers its reply as JSON", async () => {
    const seen: string[] = [];
    const res = await bridgeRequest(resp, await fakeRedis(["$5\r\nhello\r\n"], seen), { body: ['["GET","greeting"]'] });
    expect(res.status).toBe(200);
    expect(res.headers).toContainEqual(["content-type", "application/json; charset=utf-8"]);
    expect(JSON.parse(res.body.toString())).toBe("hello");
    expect(seen.join("")).toBe("*2\r\n$3\r\nGET\r\n$8\r\ngreeting\r\n");
  });

  it("answers a pipeline with an array, errors in place", async () => {
    const res = await bridgeRequest(resp, await fakeRedis(["+OK\r\n", "-ERR bad\r\n", ":3\r\n"]), {
      body: ['[["SET","a","1"],["X"],["INCR","n"]]'],
    });
    expect(res.status).toBe(200);
    expect(JSON.parse(res.body.toString())).toEqual(["OK", { error: "redis_error", message: "ERR bad" }, 3]);
  });

  it(`answers an error reply to a single command with ${REDIS_ERROR_STATUS}`, async () => {
    const res = await bridgeRequest(resp, await fakeRedis(["-WRONGTYPE wrong kind\r\n"]), { body: ['["INCR","list"]'] });
    expect(res.status).toBe(REDIS_ERROR_STATUS);
    expect(JSON.parse(res.body.toString())).toEqual({ error: "redis_error", message: "WRONGTYPE wrong kind" });
  });

  it("answers 400 for malformed JSON without connecting, and 405 for GET", async () => {
    const port = await fakeRedis([]);
    const bad = await bridgeRequest(resp, port, { body: ['["GET",'] });
    expect(bad.status).toBe(400);
    expect(JSON.parse(bad.body.toString())).toMatchObject({ error: "bad_request", message: expect.stringMatching(/not JSON/) });
    const get = await bridgeRequest(resp, port, { method: "GET" });
    expect(get.status).toBe(405);
    expect(get.headers).toContainEqual(["allow", "POST"]);
    expect(server!.connections).toBe(0);
  });

  it("fails with BRIDGE_ERROR when the server closes early or speaks something else", async () => {
    server = await tcpServer((socket) => socket.on("data", () => socket.end("+OK\r\n")));
    const early = await bridgeRequest(resp, server.port, { body: ['[["PING"],["PING"]]'] });
    expect(early.reset).toMatchObject({
      code: ErrorCode.BridgeError,
      message: 'plugin "resp" failed in onUpstreamData: Redis closed the connection after 1 of 2 replies',
    });
    await server.close();
    server = await tcpServer((socket) => socket.on("data", () => socket.write("HTTP/1.1 400 Bad Request\r\n")));
    const http = await bridgeRequest(resp, server.port, { body: ['["PING"]'] });
    expect(http.reset?.message).toMatch(/byte 0x48 cannot start a RESP2 reply/);
  });
});
