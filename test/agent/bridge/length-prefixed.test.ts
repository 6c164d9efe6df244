// The worked example plugin of docs/bridge-plugins.md (docs/examples/length-prefixed.ts) against a
// tiny server speaking its 4-byte length-prefixed protocol.
import { readFileSync } from "node:fs";
import { afterEach, describe, expect, it } from "vitest";
import { ErrorCode } from "../../../src/protocol/frame.ts";
import lengthPrefixed from "../../../docs/examples/length-prefixed.ts";
import { bridgeRequest, lengthPrefixedServer, type TestServer } from "../../helpers/bridge.ts";

let server: TestServer | undefined;
afterEach(async () => server?.close());

describe("the length-prefixed example plugin", () => {
  it("sends the body as one message and answers with the reply message", async () => {
    server = await lengthPrefixedServer((payload) => Buffer.from(payload.toString().toUpperCase()));
    const res = await bridgeRequest(lengthPrefixed, server.port, { body: ["hello ", "world"] });
    expect(res.status).toBe(200);
    expect(res.headers).toContainEqual(["content-type", "application/octet-stream"]);
    expect(res.body.toString()).toBe("HELLO WORLD");
  });

  it("carries an empty message and a 1 MiB one", async () => {
    server = await lengthPrefixedServer((payload) => Buffer.from(payload).reverse());
    expect((await bridgeRequest(lengthPrefixed, server.port, { body: [""] })).body.length).toBe(0);
    const big = Buffer.alloc(1024 * 1024, "ab");
    const res = await bridgeRequest(lengthPrefixed, server.port, { body: [big] });
    expect(res.body.equals(Buffer.from(big).reverse())).toBe(true);
  });

  it("answers 405 to a GET and 413 to a body over the limit, without connecting", async () => {
    server = await lengthPrefixedServer((payload) => payload);
    const get = await bridgeRequest(lengthPrefixed, server.port, { method: "GET" });
    expect(get.status).toBe(405);
    expect(get.headers).toContainEqual(["allow", "POST"]);
    const declared = await bridgeRequest(lengthPrefixed, server.port, {
      headers: [["content-length", String(2 * 1024 * 1024)]],
      body: ["x"],
    });
    expect(declared.status).toBe(413);
    const streamed = await bridgeRequest(lengthPrefixed, server.port, { body: [Buffer.alloc(1024 * 1024 + 1)] });
    expect(streamed.status).toBe(413);
    expect(server.connections).toBe(0);
  });

  it("fails with the plugin's message when the server closes mid-reply", async () => {
    server = await lengthPrefixedServer(() => "close-midway");
    const res = await bridgeRequest(lengthPrefixed, server.port, { body: ["x"] });
    expect(res.reset).toEqual({
      code: ErrorCode.BridgeError,
      message: 'plugin "length-prefixed" failed in onUpstreamData: the server closed the connection after 6 bytes of a reply',
      afterHeaders: false,
    });
  });
});

describe("docs/bridge-plugins.md", () => {
  it("shows the example plugin exactly as docs/examples/length-prefixed.ts has it", () => {
    const page = readFileSync(new URL("../../../docs/bridge-plugins.md", import.meta.url), "utf8");
    const file = readFileSync(new URL("../../../docs/examples/length-prefixed.ts", import.meta.url), "utf8");
    const section = page.slice(page.indexOf("## Worked example"));
    const block = /```ts\n([\s\S]*?)```/.exec(section)?.[1];
    expect(block).toBe(file);
  });
});
