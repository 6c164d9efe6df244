// The agent's direct WebSocket frame writes (agent/frame-writer.ts) against the ws library's own
// frames, and read back by a real ws server over loopback.
import type net from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { createRequire } from "node:module";
import WebSocket, { WebSocketServer } from "ws";
import { writeFrames, writeWsHeader, wsHeaderBytes } from "../../agent/frame-writer.ts";
import { encodeFrames, decodeMessage } from "../../src/protocol/codec.ts";
import { Flag, FrameType, type Frame } from "../../src/protocol/frame.ts";
import { until } from "../helpers/wait.ts";

/** ws's frame builder (exported by the library, not in its type definitions). */
const { Sender } = createRequire(import.meta.url)("ws") as { Sender: { frame(data: Buffer, options: object): Buffer[] } };
const zeroMask = (mask: Buffer) => void mask.fill(0);

describe("frame-writer", () => {
  it.each([0, 1, 125, 126, 65535, 65536, 1024 * 1024 + 10])("writes ws's own header for a %i-byte binary frame", (n) => {
    const ws = Sender.frame(Buffer.alloc(n), { fin: true, opcode: 2, mask: true, generateMask: zeroMask, readOnly: false, rsv1: false });
    const ours = new Uint8Array(wsHeaderBytes(n));
    writeWsHeader(ours, n);
    expect(Buffer.from(ours).toString("hex")).toBe(ws[0].subarray(0, wsHeaderBytes(n)).toString("hex"));
  });

  const servers: WebSocketServer[] = [];
  afterEach(() => {
    for (const s of servers.splice(0)) s.close();
  });

  it("writes messages a ws server reads as the session's messages, between the library's own sends", async () => {
    const server = new WebSocketServer({ host: "127.0.0.1", port: 0 });
    servers.push(server);
    await new Promise<void>((resolve) => server.once("listening", () => resolve()));
    const received: Array<{ data: Buffer; binary: boolean }> = [];
    server.on("connection", (peer) => peer.on("message", (data: Buffer, binary) => received.push({ data, binary })));
    const { port } = server.address() as net.AddressInfo;
    const client = new WebSocket(`ws://127.0.0.1:${port}`, { generateMask: zeroMask });
    let socket: net.Socket | undefined;
    client.once("upgrade", (res) => (socket = res.socket as net.Socket));
    await new Promise<void>((resolve, reject) => (client.once("open", () => resolve()), client.once("error", reject)));
    const big = new Uint8Array(300_000).map((_, i) => i & 0xff);
    const messages: Frame[][] = [
      [{ type: FrameType.WindowUpdate, flags: 0, streamId: 1, payload: new Uint8Array([0, 0, 1, 0]) }],
      [
        { type: FrameType.Data, flags: 0, streamId: 3, payload: big.subarray(0, 65536) },
        { type: FrameType.Data, flags: 0, streamId: 5, payload: new Uint8Array([1, 2, 3]) },
        { type: FrameType.Data, flags: Flag.FIN, streamId: 3, payload: big.subarray(65536) },
      ],
    ];
    // 65,540 bytes as two frames, 65,530 once merged: the message's WebSocket header shrinks.
    const halves: Frame[] = [
      { type: FrameType.Data, flags: 0, streamId: 7, payload: big.subarray(0, 32_760) },
      { type: FrameType.Data, flags: Flag.FIN, streamId: 7, payload: big.subarray(32_760, 65_520) },
    ];
    const size = (frames: Frame[]) => frames.reduce((n, f) => n + 10 + f.payload.byteLength, 0);
    writeFrames(socket!, messages[0], size(messages[0]));
    client.send("ping");
    writeFrames(socket!, messages[1], size(messages[1]));
    writeFrames(socket!, halves, size(halves), 256 * 1024);
    await until(() => received.length === 4, "four messages at the server", 5000);
    expect(received.map((m) => m.binary)).toEqual([true, false, true, true]);
    expect(received[1].data.toString()).toBe("ping");
    expect(Buffer.from(received[0].data).equals(Buffer.from(encodeFrames(messages[0])))).toBe(true);
    expect(Buffer.from(received[2].data).equals(Buffer.from(encodeFrames(messages[1])))).toBe(true);
    expect(decodeMessage(new Uint8Array(received[2].data), 1 << 20).map((f) => f.streamId)).toEqual([3, 5, 3]);
    const merged = decodeMessage(new Uint8Array(received[3].data), 1 << 20);
    expect(merged.map((f) => [f.streamId, f.flags, f.payload.byteLength])).toEqual([[7, Flag.FIN, 65_520]]);
    expect(Buffer.from(merged[0].payload).equals(Buffer.from(big.subarray(0, 65_520)))).toBe(true);
    client.close();
  });
});
