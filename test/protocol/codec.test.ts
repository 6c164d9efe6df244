// The codec from hand-written hex fixtures (README "Frame layout", "Header block", "Hello"): each
// frame fed whole, split at every byte, and several at once; every protocol-error case rejected.
import { describe, expect, it } from "vitest";
import {
  FrameDecoder,
  decodeClose,
  decodeError,
  decodeHeaderBlock,
  decodeHello,
  decodeMessage,
  decodeU32,
  encodeClose,
  encodeError,
  encodeFrame,
  encodeFramePieces,
  encodeFrames,
  encodeHeaderBlock,
  encodeHello,
  encodeU32,
  headerBlockSize,
} from "../../src/protocol/codec.ts";
import {
  ErrorCode,
  Flag,
  FrameType,
  MAX_HEADER_BLOCK,
  MAX_HELLO_BYTES,
  MAX_HELLO_LIST,
  MAX_HELLO_STRING,
  MAX_MAX_FRAME,
  MAX_WINDOW,
  MIN_MAX_FRAME,
  MIN_WINDOW,
  ProtocolError,
  TunnelClose,
  type Frame,
  type HeaderList,
  type Hello,
} from "../../src/protocol/frame.ts";

import { concat } from "../../src/protocol/messages.ts";
import { fromHex as hex, toHex } from "../helpers/hex.ts";

const ascii = (s: string) => new TextEncoder().encode(s);

function frame(type: FrameType, flags: number, streamId: number, payload: Uint8Array): Frame {
  return { type, flags, streamId, payload };
}

/** Comparable form of decoded frames (payloads as hex). */
function plain(frames: Frame[]) {
  return frames.map((f) => ({ type: f.type, flags: f.flags, streamId: f.streamId, payload: toHex(f.payload) }));
}

/** Feeds `bytes` to a fresh decoder in pieces cut at `cuts`; returns every frame produced. */
function feed(bytes: Uint8Array, cuts: number[], maxPayload?: number): Frame[] {
  const decoder = new FrameDecoder(maxPayload);
  const frames: Frame[] = [];
  let at = 0;
  for (const cut of [...cuts, bytes.byteLength]) {
    frames.push(...decoder.push(bytes.subarray(at, cut)));
    at = cut;
  }
  expect(decoder.buffered).toBe(0);
  return frames;
}

function expectProtocolError(fn: () => unknown, message?: RegExp): ProtocolError {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(ProtocolError);
  if (message) expect((caught as ProtocolError).message).toMatch(message);
  return caught as ProtocolError;
}

// One fixture per frame type (and flag), hex written by hand from the spec:
// type(1) flags(1) stream id(4) length(4) payload.
const FIXTURES: Array<[name: string, hex: string, frame: Frame]> = [
  ["HELLO with payload {}", "00 00 00000000 00000002 7b7d", frame(FrameType.Hello, 0, 0, ascii("{}"))],
  [
    "HEADERS FIN on stream 1 with a: b",
    "01 01 00000001 0000000a 0001 0001 61 00000001 62",
    frame(FrameType.Headers, Flag.FIN, 1, hex("0001 0001 61 00000001 62")),
  ],
  [
    "HEADERS on stream 0x01020304 with an empty block",
    "01 00 01020304 00000002 0000",
    frame(FrameType.Headers, 0, 0x01020304, hex("0000")),
  ],
  ["DATA FIN on stream 3 with hi", "02 01 00000003 00000002 6869", frame(FrameType.Data, Flag.FIN, 3, ascii("hi"))],
  ["empty DATA on stream 5", "02 00 00000005 00000000", frame(FrameType.Data, 0, 5, new Uint8Array(0))],
  ["DATA on the largest stream id", "02 00 ffffffff 00000003 000102", frame(FrameType.Data, 0, 0xffffffff, hex("000102"))],
  ["WINDOW_UPDATE of 32768 on stream 5", "03 00 00000005 00000004 00008000", frame(FrameType.WindowUpdate, 0, 5, hex("00008000"))],
  [
    "RST_STREAM CANCEL bye on stream 7",
    "04 00 00000007 00000007 00000006 627965",
    frame(FrameType.RstStream, 0, 7, hex("00000006 627965")),
  ],
  ["PING", "05 00 00000000 00000008 0102030405060708", frame(FrameType.Ping, 0, 0, hex("0102030405060708"))],
  ["PING ACK", "05 02 00000000 00000008 0102030405060708", frame(FrameType.Ping, Flag.ACK, 0, hex("0102030405060708"))],
  ["GOAWAY NO_ERROR without reason", "06 00 00000000 00000004 00000000", frame(FrameType.GoAway, 0, 0, hex("00000000"))],
  ["GOAWAY INTERNAL_ERROR drain", "06 00 00000000 00000009 00000002 647261696e", frame(FrameType.GoAway, 0, 0, hex("00000002 647261696e"))],
  [
    "DATA EOM|TEXT on stream 1 with hi (a text message)",
    "02 0c 00000001 00000002 6869",
    frame(FrameType.Data, Flag.EOM | Flag.TEXT, 1, ascii("hi")),
  ],
  ["CLOSE 1000 bye on stream 1", "07 00 00000001 00000005 03e8 627965", frame(FrameType.Close, 0, 1, hex("03e8 627965"))],
];

describe("frame fixtures", () => {
  it("cover every frame type", () => {
    const types = new Set(FIXTURES.map(([, , f]) => f.type));
    const all = Object.values(FrameType).filter((v) => typeof v === "number");
    expect([...types].sort()).toEqual(all.sort());
  });

  describe.each(FIXTURES)("%s", (_name, fixture, expected) => {
    const bytes = hex(fixture);

    it("encodes to the fixture", () => {
      expect(toHex(encodeFrame(expected))).toBe(toHex(bytes));
    });

    it("decodes whole", () => {
      expect(plain(decodeMessage(bytes))).toEqual(plain([expected]));
    });

    it("decodes split at every byte boundary", () => {
      for (let cut = 0; cut <= bytes.byteLength; cut++) {
        expect(plain(feed(bytes, [cut])), `cut at ${cut}`).toEqual(plain([expected]));
      }
    });

    it("decodes fed one byte at a time", () => {
      const cuts = Array.from({ length: bytes.byteLength - 1 }, (_, i) => i + 1);
      expect(plain(feed(bytes, cuts))).toEqual(plain([expected]));
    });
  });

  const all = hex(FIXTURES.map(([, h]) => h).join(""));
  const expectedAll = plain(FIXTURES.map(([, , f]) => f));

  it("decodes every fixture concatenated into one message", () => {
    expect(plain(decodeMessage(all))).toEqual(expectedAll);
    expect(toHex(encodeFrames(FIXTURES.map(([, , f]) => f)))).toBe(toHex(all));
  });

  it("decodes the concatenation split at every byte boundary", () => {
    for (let cut = 0; cut <= all.byteLength; cut++) {
      expect(plain(feed(all, [cut])), `cut at ${cut}`).toEqual(expectedAll);
    }
  });

  it("decodes the concatenation split at every pair of byte boundaries", () => {
    for (let a = 1; a < all.byteLength; a += 7) {
      for (let b = a; b <= all.byteLength; b++) {
        expect(plain(feed(all, [a, b])), `cuts at ${a} and ${b}`).toEqual(expectedAll);
      }
    }
  });

  it("decodes the concatenation fed one byte at a time", () => {
    const cuts = Array.from({ length: all.byteLength - 1 }, (_, i) => i + 1);
    expect(plain(feed(all, cuts))).toEqual(expectedAll);
  });

  it("reads a message that is a view into a larger buffer", () => {
    const backing = new Uint8Array(all.byteLength + 13).fill(0xee);
    backing.set(all, 5);
    const view = backing.subarray(5, 5 + all.byteLength);
    expect(plain(decodeMessage(view))).toEqual(expectedAll);
  });

  it("holds back a partial frame and reports it as buffered", () => {
    const decoder = new FrameDecoder();
    const data = hex("02 01 00000003 00000002 6869");
    expect(decoder.push(data.subarray(0, 4))).toEqual([]);
    expect(decoder.buffered).toBe(4);
    expect(decoder.push(data.subarray(4, 11))).toEqual([]);
    expect(decoder.buffered).toBe(11);
    expect(plain(decoder.push(data.subarray(11)))).toEqual(plain([frame(FrameType.Data, Flag.FIN, 3, ascii("hi"))]));
    expect(decoder.buffered).toBe(0);
  });

  it("decoded payloads stay intact after later pushes", () => {
    const decoder = new FrameDecoder();
    const first = decoder.push(hex("02 00 00000001 00000002 aabb 02 00 00000001 00000002 cc"));
    const second = decoder.push(hex("dd"));
    expect(plain(first)).toEqual(plain([frame(FrameType.Data, 0, 1, hex("aabb"))]));
    expect(plain(second)).toEqual(plain([frame(FrameType.Data, 0, 1, hex("ccdd"))]));
  });
});

describe("round trip of every frame type", () => {
  const hello: Hello = { v: 1, software: "edge-relay-test/0", id: "t-1", caps: ["http"], window: 65536, maxFrame: 16384 };
  const frames: Frame[] = [
    frame(FrameType.Hello, 0, 0, encodeHello(hello)),
    frame(
      FrameType.Headers,
      0,
      1,
      encodeHeaderBlock([
        [":method", "GET"],
        [":path", "/?q=1"],
      ]),
    ),
    frame(FrameType.Headers, Flag.FIN, 2, encodeHeaderBlock([[":status", "204"]])),
    frame(
      FrameType.Data,
      0,
      1,
      Uint8Array.from({ length: 1000 }, (_, i) => i % 251),
    ),
    frame(FrameType.Data, Flag.FIN, 1, new Uint8Array(0)),
    frame(FrameType.WindowUpdate, 0, 1, encodeU32(0x7fffffff)),
    frame(FrameType.RstStream, 0, 9, encodeError(ErrorCode.OriginUnreachable, "connect ECONNREFUSED")),
    frame(FrameType.Ping, 0, 0, hex("ffffffffffffffff")),
    frame(FrameType.Ping, Flag.ACK, 0, hex("0000000000000000")),
    frame(FrameType.GoAway, 0, 0, encodeError(ErrorCode.NoError, "shutting down")),
  ];

  it.each(frames.map((f) => [FrameType[f.type], f.flags, f] as const))("%s flags %i", (_name, _flags, f) => {
    expect(plain(decodeMessage(encodeFrame(f)))).toEqual(plain([f]));
  });

  it("all of them in one message", () => {
    const decoded = decodeMessage(encodeFrames(frames));
    expect(plain(decoded)).toEqual(plain(frames));
    expect(decodeHello(decoded[0].payload)).toEqual(hello);
    expect(decodeHeaderBlock(decoded[1].payload)).toEqual([
      [":method", "GET"],
      [":path", "/?q=1"],
    ]);
    expect(decodeU32(decoded[5].payload)).toBe(0x7fffffff);
    expect(decodeError(decoded[6].payload)).toEqual({ code: 7, message: "connect ECONNREFUSED" });
  });

  it("as pieces for a gathered write: joined, they are the message; large payloads are not copied", () => {
    const big = new Uint8Array(70_000).fill(7);
    const mixed = [frames[1], frame(FrameType.Data, 0, 1, big), frames[5], frame(FrameType.Data, Flag.FIN, 1, big.subarray(3))];
    for (const list of [mixed, frames, [mixed[1]]]) {
      for (const [copyBelow, prefix] of [
        [1024, 0],
        [1024, 14],
        [Infinity, 6],
        [0, 8],
      ]) {
        const pieces = encodeFramePieces(list, copyBelow, prefix);
        const joined = concat(pieces);
        expect(toHex(joined.subarray(prefix))).toBe(toHex(encodeFrames(list)));
        expect(toHex(joined.subarray(0, prefix))).toBe("00".repeat(prefix));
        const passed = pieces.filter((p) => list.some((f) => f.payload === p));
        expect(passed.length).toBe(list.filter((f) => f.payload.byteLength >= copyBelow).length);
      }
    }
  });

  it("as pieces, merges a stream's DATA frames that follow a flagless one, up to the size given", () => {
    const a = new Uint8Array(40_000).fill(1);
    const b = new Uint8Array(30_000).fill(2);
    const tiny = new Uint8Array([9, 8, 7]);
    const list = [
      frame(FrameType.Data, 0, 1, a),
      frame(FrameType.Data, 0, 1, tiny),
      frame(FrameType.Data, Flag.FIN, 1, b),
      frame(FrameType.Data, 0, 3, b),
      frame(FrameType.WindowUpdate, 0, 3, encodeU32(5)),
      frame(FrameType.Data, 0, 3, a),
      frame(FrameType.Data, Flag.EOM, 3, a),
      frame(FrameType.Data, Flag.TEXT, 5, tiny),
      frame(FrameType.Data, Flag.TEXT | Flag.EOM, 5, tiny),
    ];
    const merged = [
      frame(FrameType.Data, Flag.FIN, 1, concat([a, tiny, b])),
      frame(FrameType.Data, 0, 3, b),
      frame(FrameType.WindowUpdate, 0, 3, encodeU32(5)),
      // Two payloads of `a` exceed 75,000 bytes: the second starts a frame of its own.
      frame(FrameType.Data, 0, 3, a),
      frame(FrameType.Data, Flag.EOM, 3, a),
      // A TEXT fragment carries a flag: nothing joins it.
      frame(FrameType.Data, Flag.TEXT, 5, tiny),
      frame(FrameType.Data, Flag.TEXT | Flag.EOM, 5, tiny),
    ];
    for (const copyBelow of [1024, 0, Infinity]) {
      const pieces = encodeFramePieces(list, copyBelow, 14, 75_000);
      expect(plain(decodeMessage(concat(pieces).subarray(14), 1 << 20))).toEqual(plain(merged));
    }
    // All copied, the message is one buffer of exactly its length: a transport may send its whole buffer.
    const [whole, ...rest] = encodeFramePieces(list, Infinity, 0, 75_000);
    expect(rest).toEqual([]);
    expect(whole.byteLength).toBe(whole.buffer.byteLength);
  });

  it("an empty list of frames is an empty message", () => {
    expect(encodeFrames([]).byteLength).toBe(0);
    expect(decodeMessage(new Uint8Array(0))).toEqual([]);
  });
});

describe("protocol errors", () => {
  it.each([
    ["type 0x8", "08 00 00000000 00000000"],
    ["type 0x9 on a stream", "09 00 00000001 00000000"],
    ["type 0xff", "ff 00 00000000 00000000"],
  ])("rejects unknown %s", (_name, fixture) => {
    expectProtocolError(() => decodeMessage(hex(fixture)), /unknown frame type/);
  });

  it.each([
    ["HELLO", "00 01 00000000 00000002 7b7d"],
    ["HEADERS with ACK", "01 02 00000001 00000002 0000"],
    ["HEADERS with 0x04", "01 04 00000001 00000002 0000"],
    ["DATA with ACK", "02 02 00000001 00000000"],
    ["DATA with 0x80", "02 80 00000001 00000000"],
    ["DATA with 0x10", "02 10 00000001 00000000"],
    ["CLOSE with FIN", "07 01 00000001 00000002 03e8"],
    ["WINDOW_UPDATE with FIN", "03 01 00000001 00000004 00000001"],
    ["RST_STREAM with FIN", "04 01 00000001 00000004 00000000"],
    ["PING with FIN", "05 01 00000000 00000008 0000000000000000"],
    ["PING with ACK|FIN", "05 03 00000000 00000008 0000000000000000"],
    ["GOAWAY with ACK", "06 02 00000000 00000004 00000000"],
  ])("rejects a disallowed flag on %s", (_name, fixture) => {
    expectProtocolError(() => decodeMessage(hex(fixture)), /not allowed/);
  });

  it.each([
    ["HEADERS", "01 00 00000000 00000002 0000"],
    ["DATA", "02 00 00000000 00000000"],
    ["WINDOW_UPDATE", "03 00 00000000 00000004 00000001"],
    ["RST_STREAM", "04 00 00000000 00000004 00000000"],
    ["CLOSE", "07 00 00000000 00000002 03e8"],
  ])("rejects %s on stream 0", (_name, fixture) => {
    expectProtocolError(() => decodeMessage(hex(fixture)), /on stream 0/);
  });

  it.each([
    ["HELLO", "00 00 00000001 00000002 7b7d"],
    ["PING", "05 00 00000003 00000008 0000000000000000"],
    ["GOAWAY", "06 00 80000000 00000004 00000000"],
  ])("rejects %s on a stream other than 0", (_name, fixture) => {
    expectProtocolError(() => decodeMessage(hex(fixture)), /on stream [1-9]/);
  });

  it("rejects DATA longer than maxPayload from its header alone, and accepts exactly maxPayload", () => {
    const decoder = new FrameDecoder(16);
    expectProtocolError(() => decoder.push(hex("02 00 00000001 00000011")), /exceeds 16/);
    const ok = encodeFrame(frame(FrameType.Data, 0, 1, new Uint8Array(16).fill(7)));
    expect(plain(decodeMessage(ok, 16))).toEqual(plain([frame(FrameType.Data, 0, 1, new Uint8Array(16).fill(7))]));
  });

  it("rejects HEADERS longer than MAX_HEADER_BLOCK whatever maxPayload is", () => {
    const header = new Uint8Array(10);
    new DataView(header.buffer).setUint32(2, 1);
    header[0] = FrameType.Headers;
    new DataView(header.buffer).setUint32(6, MAX_HEADER_BLOCK + 1);
    expectProtocolError(() => new FrameDecoder(MAX_HEADER_BLOCK * 4).push(header), /exceeds 262144/);
    // Exactly MAX_HEADER_BLOCK passes the header check: the decoder waits for the payload.
    new DataView(header.buffer).setUint32(6, MAX_HEADER_BLOCK);
    const decoder = new FrameDecoder(16);
    expect(decoder.push(header)).toEqual([]);
    expect(decoder.buffered).toBe(10);
  });

  it.each([0, 3, 5, 8])("rejects a WINDOW_UPDATE of %i bytes", (n) => {
    const f = encodeFrame(frame(FrameType.WindowUpdate, 0, 1, new Uint8Array(n)));
    expectProtocolError(() => decodeMessage(f), /must be 4 bytes/);
  });

  it.each([0, 4, 7, 9, 16])("rejects a PING of %i bytes", (n) => {
    const f = encodeFrame(frame(FrameType.Ping, 0, 0, new Uint8Array(n)));
    expectProtocolError(() => decodeMessage(f), /must be 8 bytes/);
  });

  it.each([
    [FrameType.RstStream, 1, 0],
    [FrameType.RstStream, 1, 3],
    [FrameType.GoAway, 0, 0],
    [FrameType.GoAway, 0, 3],
  ])("rejects type %i with a payload under 4 bytes (%i, %i)", (type, streamId, n) => {
    const f = encodeFrame(frame(type, 0, streamId, new Uint8Array(n)));
    expectProtocolError(() => decodeMessage(f), /4-byte error code/);
  });

  it.each([0, 1])("rejects a CLOSE of %i bytes", (n) => {
    const f = encodeFrame(frame(FrameType.Close, 0, 1, new Uint8Array(n)));
    expectProtocolError(() => decodeMessage(f), /2-byte close code/);
  });

  it("rejects a message that ends inside a frame header or payload", () => {
    const whole = hex("02 01 00000003 00000002 6869 02 00 00000003 00000001 ff");
    for (let end = 1; end < whole.byteLength; end++) {
      if (end === 12) continue; // the end of the first frame
      expectProtocolError(() => decodeMessage(whole.subarray(0, end)), /ends inside a frame/);
    }
    expect(decodeMessage(whole.subarray(0, 12))).toHaveLength(1);
    expect(decodeMessage(whole)).toHaveLength(2);
  });

  it("the decoder rejects a bad frame that follows good ones in the same push", () => {
    const decoder = new FrameDecoder();
    expectProtocolError(() => decoder.push(hex("02 00 00000001 00000001 aa 02 00 00000000 00000000")), /on stream 0/);
  });
});

describe("header block", () => {
  it("encodes an empty list as a zero count", () => {
    expect(toHex(encodeHeaderBlock([]))).toBe("0000");
    expect(decodeHeaderBlock(hex("0000"))).toEqual([]);
  });

  it("keeps repeated set-cookie fields apart and in order", () => {
    const list: HeaderList = [
      ["set-cookie", "a=1"],
      ["set-cookie", "b=2"],
    ];
    const fixture = "0002 000a 7365742d636f6f6b6965 00000003 613d31 000a 7365742d636f6f6b6965 00000003 623d32";
    expect(toHex(encodeHeaderBlock(list))).toBe(toHex(hex(fixture)));
    expect(decodeHeaderBlock(hex(fixture))).toEqual(list);
  });

  it("encodes values as UTF-8", () => {
    const list: HeaderList = [["x-u", "é☃"]];
    const fixture = "0001 0003 782d75 00000005 c3a9 e29883";
    expect(toHex(encodeHeaderBlock(list))).toBe(toHex(hex(fixture)));
    expect(decodeHeaderBlock(hex(fixture))).toEqual(list);
  });

  it("writes a Latin-1 character like é as its UTF-8 bytes, and rejects its raw Latin-1 byte", () => {
    expect(toHex(encodeHeaderBlock([["x", "café"]]))).toBe(toHex(hex("0001 0001 78 00000005 636166c3a9")));
    expectProtocolError(() => decodeHeaderBlock(hex("0001 0001 78 00000004 636166e9")), /invalid UTF-8/);
  });

  it("round-trips pseudo-fields, empty values, a byte-order mark and astral characters", () => {
    const list: HeaderList = [
      [":method", "GET"],
      [":path", "/r/x?a=%20&b=ü"],
      ["x-empty", ""],
      ["x-bom", "\ufeffvalue"],
      ["x-emoji", "🚀 launch"],
    ];
    expect(decodeHeaderBlock(encodeHeaderBlock(list))).toEqual(list);
  });

  it("round-trips a 16 KiB value with its u32 length", () => {
    const value = "v".repeat(16 * 1024);
    const block = encodeHeaderBlock([["x-big", value]]);
    expect(block.byteLength).toBe(2 + 2 + 5 + 4 + 16384);
    expect(toHex(block.subarray(9, 13))).toBe("00004000");
    expect(decodeHeaderBlock(block)).toEqual([["x-big", value]]);
  });

  it("round-trips a value longer than 64 KiB (the value length is a u32)", () => {
    const value = "ab".repeat(40_000);
    expect(decodeHeaderBlock(encodeHeaderBlock([["x-huge", value]]))).toEqual([["x-huge", value]]);
  });

  it("reads a block that is a view into a frame", () => {
    const message = encodeFrame(
      frame(
        FrameType.Headers,
        0,
        1,
        encodeHeaderBlock([
          ["a", "1"],
          ["b", "2"],
        ]),
      ),
    );
    const [f] = decodeMessage(message);
    expect(f.payload.byteOffset).toBeGreaterThan(0);
    expect(decodeHeaderBlock(f.payload)).toEqual([
      ["a", "1"],
      ["b", "2"],
    ]);
  });

  it("rejects every truncation of a block", () => {
    const block = encodeHeaderBlock([
      [":status", "200"],
      ["set-cookie", "a=1"],
    ]);
    for (let end = 0; end < block.byteLength; end++) {
      expectProtocolError(() => decodeHeaderBlock(block.subarray(0, end)), /truncated/);
    }
  });

  it("rejects a count larger than the fields present", () => {
    expectProtocolError(() => decodeHeaderBlock(hex("0002 0001 61 00000001 62")), /truncated/);
  });

  it("rejects trailing bytes", () => {
    expectProtocolError(() => decodeHeaderBlock(hex("0001 0001 61 00000001 62 00")), /1 trailing bytes/);
    expectProtocolError(() => decodeHeaderBlock(hex("0000 0000")), /2 trailing bytes/);
  });

  it.each([
    ["a lone continuation byte in a value", "0001 0001 61 00000001 80"],
    ["an overlong encoding in a value", "0001 0001 61 00000002 c0af"],
    ["a UTF-16 surrogate in a value", "0001 0001 61 00000003 eda080"],
    ["a truncated sequence in a value", "0001 0001 61 00000002 e298"],
    ["0xff in a name", "0001 0001 ff 00000000"],
  ])("rejects invalid UTF-8: %s", (_name, fixture) => {
    expectProtocolError(() => decodeHeaderBlock(hex(fixture)), /invalid UTF-8/);
  });
});

describe("hello", () => {
  const hello: Hello = { v: 1, software: "edge-relay-agent/0.1.0", id: "a-42", caps: ["http", "ws"], window: 1048576, maxFrame: 262144 };

  it("encodes as UTF-8 JSON", () => {
    const bytes = encodeHello(hello);
    expect(JSON.parse(new TextDecoder().decode(bytes))).toEqual(hello);
  });

  it("round-trips", () => {
    expect(decodeHello(encodeHello(hello))).toEqual(hello);
  });

  it("accepts a hand-written hello and keeps unknown fields", () => {
    const text = '{"v":1,"software":"x","id":"","caps":[],"window":16384,"maxFrame":1048576,"future":{"a":1}}';
    const decoded = decodeHello(ascii(text));
    expect(decoded).toMatchObject({ v: 1, software: "x", id: "", caps: [], window: 16384, maxFrame: 1048576 });
    expect((decoded as unknown as { future: unknown }).future).toEqual({ a: 1 });
  });

  it("accepts a version it does not speak (the session decides about versions)", () => {
    expect(decodeHello(encodeHello({ ...hello, v: 2 })).v).toBe(2);
  });

  it.each(["v", "software", "id", "caps", "window", "maxFrame"])("rejects a hello without %s, closing with 4400", (field) => {
    const partial: Record<string, unknown> = { ...hello };
    delete partial[field];
    const err = expectProtocolError(() => decodeHello(ascii(JSON.stringify(partial))), /hello lacks/);
    expect(err.closeCode).toBe(TunnelClose.BadHello);
  });

  it.each<[string, Record<string, unknown>]>([
    ["v as a string", { v: "1" }],
    ["v as null", { v: null }],
    ["software as a number", { software: 1 }],
    ["id as null", { id: null }],
    ["caps as a string", { caps: "http" }],
    ["window fractional", { window: 1.5 }],
    ["window as a string", { window: "65536" }],
    ["maxFrame as null", { maxFrame: null }],
  ])("rejects %s, closing with 4400", (_name, change) => {
    const err = expectProtocolError(() => decodeHello(ascii(JSON.stringify({ ...hello, ...change }))), /hello lacks/);
    expect(err.closeCode).toBe(TunnelClose.BadHello);
  });

  it.each<[string, Record<string, unknown>, RegExp]>([
    ["window 0", { window: 0 }, /^hello window 0 is outside 16384\.\.16777216$/],
    ["window negative", { window: -1 }, /hello window -1 is outside/],
    ["window one under the minimum", { window: MIN_WINDOW - 1 }, /hello window 16383 is outside/],
    ["window one over the maximum", { window: MAX_WINDOW + 1 }, /hello window 16777217 is outside/],
    ["window above 2^31-1", { window: 2 ** 31 }, /hello window \d+ is outside/],
    ["maxFrame 0", { maxFrame: 0 }, /hello maxFrame 0 is outside 16384\.\.1048576/],
    ["maxFrame 1", { maxFrame: 1 }, /hello maxFrame 1 is outside/],
    ["maxFrame one under the minimum", { maxFrame: MIN_MAX_FRAME - 1 }, /hello maxFrame 16383 is outside/],
    ["maxFrame one over the maximum", { maxFrame: MAX_MAX_FRAME + 1 }, /hello maxFrame 1048577 is outside/],
    ["maxFrame above 2^31-1", { maxFrame: 2 ** 31 }, /hello maxFrame \d+ is outside/],
    ["too many caps", { caps: Array.from({ length: MAX_HELLO_LIST + 1 }, (_, i) => `c${i}`) }, /hello caps has 33 entries \(at most 32\)/],
    ["a cap too long", { caps: ["x".repeat(MAX_HELLO_STRING + 1)] }, /hello caps holds a string over 256 chars/],
    ["caps holding a number", { caps: ["http", 1] }, /hello caps is not a list of strings/],
    ["software too long", { software: "s".repeat(MAX_HELLO_STRING + 1) }, /hello software is over 256 chars/],
    ["id too long", { id: "i".repeat(MAX_HELLO_STRING + 1) }, /hello id is over 256 chars/],
    ["targetProtocols not a list", { targetProtocols: "h2" }, /hello targetProtocols is not a list of strings/],
    ["too many targetProtocols", { targetProtocols: Array(MAX_HELLO_LIST + 1).fill("h2") }, /hello targetProtocols has 33 entries/],
  ])("rejects %s, closing with 4400 and naming the field", (_name, change, reason) => {
    const err = expectProtocolError(() => decodeHello(ascii(JSON.stringify({ ...hello, ...change }))), reason);
    expect(err.closeCode).toBe(TunnelClose.BadHello);
  });

  it("accepts every bound itself", () => {
    const edge = {
      ...hello,
      software: "s".repeat(MAX_HELLO_STRING),
      caps: Array.from({ length: MAX_HELLO_LIST }, (_, i) => `c${i}`),
      targetProtocols: ["h2"],
    };
    for (const [window, maxFrame] of [
      [MIN_WINDOW, MIN_MAX_FRAME],
      [MAX_WINDOW, MAX_MAX_FRAME],
    ]) {
      expect(decodeHello(encodeHello({ ...edge, window, maxFrame }))).toMatchObject({ window, maxFrame });
    }
  });

  it("rejects a payload over MAX_HELLO_BYTES, naming a field out of bounds first", () => {
    const big = encodeHello({ ...hello, padding: "p".repeat(60 * 1024) } as Hello);
    expect(expectProtocolError(() => decodeHello(big), /^hello of 61\d{3} bytes exceeds 4096$/).closeCode).toBe(TunnelClose.BadHello);
    const caps = encodeHello({ ...hello, caps: Array.from({ length: 5000 }, (_, i) => `capability-${i}`) });
    expect(expectProtocolError(() => decodeHello(caps), /^hello caps has 5000 entries \(at most 32\)$/).closeCode).toBe(
      TunnelClose.BadHello,
    );
    const atLimit = encodeHello({ ...hello, padding: "" } as Hello);
    const padded = encodeHello({ ...hello, padding: "p".repeat(MAX_HELLO_BYTES - atLimit.byteLength) } as Hello);
    expect(padded.byteLength).toBe(MAX_HELLO_BYTES);
    expect(decodeHello(padded)).toMatchObject(hello);
  });

  it("refuses a HELLO frame over the decoder's limit from its header alone, as a bad hello", () => {
    const header = encodeFrame(frame(FrameType.Hello, 0, 0, new Uint8Array(300 * 1024))).subarray(0, 10);
    const err = expectProtocolError(() => new FrameDecoder().push(header), /Hello payload of 307200 bytes exceeds 262144/);
    expect(err.closeCode).toBe(TunnelClose.BadHello);
  });

  it.each([
    ["an empty payload", ""],
    ["text that is not JSON", "hello"],
    ["truncated JSON", '{"v":1,'],
  ])("rejects %s, closing with 4400", (_name, text) => {
    const err = expectProtocolError(() => decodeHello(ascii(text)), /not UTF-8 JSON/);
    expect(err.closeCode).toBe(TunnelClose.BadHello);
  });

  it.each([["null"], ["[]"], ["1"], ['"hello"']])("rejects the JSON value %s", (text) => {
    expect(expectProtocolError(() => decodeHello(ascii(text))).closeCode).toBe(TunnelClose.BadHello);
  });

  it("rejects invalid UTF-8", () => {
    const bytes = new Uint8Array([...encodeHello(hello)]);
    bytes[bytes.indexOf(0x61)] = 0xff; // an "a" inside a string
    expect(expectProtocolError(() => decodeHello(bytes), /not UTF-8 JSON/).closeCode).toBe(TunnelClose.BadHello);
  });
});

describe("error payload", () => {
  it("encodes the code then the UTF-8 message", () => {
    expect(toHex(encodeError(ErrorCode.Cancel, "bye"))).toBe("00000006627965");
    expect(toHex(encodeError(ErrorCode.NoError))).toBe("00000000");
    expect(toHex(encodeError(0xfffffffe, "é"))).toBe("fffffffec3a9");
  });

  it.each<[number, string]>([
    [ErrorCode.NoError, ""],
    [ErrorCode.FlowControlError, "peer sent 10 bytes with 8 bytes of window left"],
    [ErrorCode.OriginReset, "réinitialisé ☃"],
    [0xffffffff, "unknown codes survive"],
  ])("round-trips code %i with message %j", (code, message) => {
    expect(decodeError(encodeError(code, message))).toEqual({ code, message });
  });

  it("reads a payload that is a view into a frame", () => {
    const [f] = decodeMessage(encodeFrame(frame(FrameType.RstStream, 0, 3, encodeError(ErrorCode.Timeout, "slow"))));
    expect(decodeError(f.payload)).toEqual({ code: 9, message: "slow" });
  });

  it("replaces invalid UTF-8 in the message rather than failing", () => {
    expect(decodeError(hex("00000001 61ff62"))).toEqual({ code: 1, message: "a\ufffdb" });
  });
});

describe("close payload", () => {
  it("encodes the u16 close code then the UTF-8 reason", () => {
    expect(toHex(encodeClose(1000, "bye"))).toBe("03e8627965");
    expect(toHex(encodeClose(1005))).toBe("03ed");
  });

  it.each<[number, string]>([
    [1000, ""],
    [1009, "message too big"],
    [4000, "fermé ☃"],
  ])("round-trips %i %j", (code, reason) => {
    expect(decodeClose(encodeClose(code, reason))).toEqual({ code, reason });
  });

  it("reads a payload that is a view into a frame", () => {
    const [f] = decodeMessage(encodeFrame(frame(FrameType.Close, 0, 3, encodeClose(1011, "reset"))));
    expect(decodeClose(f.payload)).toEqual({ code: 1011, reason: "reset" });
  });
});

describe("u32", () => {
  it("is big-endian", () => {
    expect(toHex(encodeU32(0x01020304))).toBe("01020304");
    expect(toHex(encodeU32(0xffffffff))).toBe("ffffffff");
    expect(decodeU32(hex("00008000"))).toBe(32768);
  });

  it("reads from a view with an offset", () => {
    expect(decodeU32(hex("aa 7fffffff").subarray(1))).toBe(0x7fffffff);
  });
});

describe("headerBlockSize", () => {
  it.each<[string, HeaderList]>([
    ["no fields", []],
    [
      "ASCII fields",
      [
        [":method", "GET"],
        [":path", "/a?b=c"],
        ["accept", "*/*"],
      ],
    ],
    [
      "Latin-1, BMP and astral chars",
      [
        ["x-a", "ÿé"],
        ["x-b", "\ufffd☃"],
        ["x-c", "😀a"],
      ],
    ],
    [
      "lone surrogates (written as U+FFFD)",
      [
        ["x-d", "\ud800"],
        ["x-e", "a\udc00b\ud83d"],
      ],
    ],
    ["a 90 KB value of U+FFFD", [["x-big", "\ufffd".repeat(90_000)]]],
  ])("is the byte length encodeHeaderBlock builds for %s", (_name, fields) => {
    expect(headerBlockSize(fields)).toBe(encodeHeaderBlock(fields).byteLength);
  });
});
