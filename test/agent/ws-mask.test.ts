// The agent's word-at-a-time masking of client WebSocket frames (agent/ws-mask.ts): the same
// bytes as RFC 6455's byte loop at every alignment, and frames a real `ws` server reads back.
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import * as wsModule from "ws";
import WebSocket, { WebSocketServer } from "ws";
import { sendDisposable, xorMask } from "../../agent/ws-mask.ts";
import { within } from "../helpers/wait.ts";

const pattern = (n: number, seed: number) => Buffer.from(Array.from({ length: n }, (_, i) => (i * 31 + seed) & 255));

describe("xorMask", () => {
  it("masks like the byte loop at every start and length", () => {
    const mask = [0x12, 0x9a, 0x00, 0xff];
    for (const start of [0, 1, 2, 3, 5]) {
      for (const length of [0, 1, 3, 4, 5, 7, 8, 63, 1025]) {
        const buf = pattern(start + length + 3, start + length);
        const expected = Buffer.from(buf);
        for (let i = 0; i < length; i++) expected[start + i] ^= mask[i & 3];
        xorMask(buf, start, length, mask);
        expect(buf.equals(expected), `start ${start}, length ${length}`).toBe(true);
      }
    }
  });
});

describe("client frames masked by the agent", () => {
  let server: WebSocketServer;
  let client: WebSocket;

  beforeAll(async () => {
    server = new WebSocketServer({ port: 0, host: "127.0.0.1", maxPayload: 4 * 1024 * 1024 });
    server.on("connection", (socket) => socket.on("message", (data, isBinary) => socket.send(data, { binary: isBinary })));
    await within(new Promise((resolve) => server.once("listening", resolve)), "the server to listen");
    client = new WebSocket(`ws://127.0.0.1:${(server.address() as AddressInfo).port}`);
    await within(new Promise((resolve) => client.once("open", resolve)), "the client to open");
  });

  afterAll(() => {
    client.terminate();
    server.close();
  });

  const echo = (data: Buffer, fin = true) =>
    within(
      new Promise<Buffer>((resolve) => {
        client.once("message", (d) => resolve(d as Buffer));
        client.send(data, { fin });
      }),
      "the echo",
    );

  it("are built by the agent's frame function (bufferutil is not installed here)", () => {
    const { Sender } = wsModule as unknown as { Sender: { frame: () => void } };
    expect(Sender.frame.toString()).toContain("xorMask");
  });

  it("come back unchanged at every size and offset, and leaves the sent buffer unchanged", async () => {
    for (const n of [1, 125, 126, 1024, 1025, 65535, 65536, 65537, 1024 * 1024 + 3]) {
      for (const offset of [0, 1, 2, 3]) {
        const backing = pattern(n + offset + 4, n);
        const sent = backing.subarray(offset, offset + n);
        const copy = Buffer.from(sent);
        const back = await echo(sent);
        expect(back.equals(copy), `${n} bytes at offset ${offset}`).toBe(true);
        expect(sent.equals(copy)).toBe(true);
      }
    }
  });

  it("carry a disposable buffer masked in place", async () => {
    const data = new Uint8Array(pattern(300_000, 9));
    const expected = Buffer.from(data);
    const back = within(new Promise<Buffer>((resolve) => client.once("message", (d) => resolve(d as Buffer))), "the echo");
    sendDisposable(client, data);
    expect((await back).equals(expected)).toBe(true);
  });

  it("carry a message sent in fragments", async () => {
    client.send(pattern(3000, 1), { fin: false });
    const back = await echo(pattern(70_000, 2));
    expect(back.equals(Buffer.concat([pattern(3000, 1), pattern(70_000, 2)]))).toBe(true);
  });
});
