// Pins every wire constant of the tunnel protocol to the numbers in src/protocol/README.md, and
// checks the README's own tables against the enums so the spec and the code cannot drift apart.
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import {
  ALLOWED_FLAGS,
  DEFAULT_MAX_FRAME,
  DEFAULT_WINDOW,
  ErrorCode,
  Flag,
  FrameType,
  HEADER_BYTES,
  HEARTBEAT_PING,
  HEARTBEAT_PONG,
  MAX_HEAD_BYTES,
  MAX_HEAD_FIELDS,
  MAX_HEADER_BLOCK,
  MAX_HELLO_BYTES,
  MAX_HELLO_LIST,
  MAX_HELLO_STRING,
  MAX_MAX_FRAME,
  MAX_MESSAGE_BYTES,
  MAX_WINDOW,
  MIN_MAX_FRAME,
  MIN_WINDOW,
  MAX_WS_MESSAGE,
  PROTOCOL_VERSION,
  ProtocolError,
  TunnelClose,
} from "../../src/protocol/frame.ts";

const README = readFileSync(new URL("../../src/protocol/README.md", import.meta.url), "utf8");

/** Numeric members of a TypeScript enum, without the reverse mapping. */
function members(e: Record<string, string | number>): Record<string, number> {
  return Object.fromEntries(Object.entries(e).filter(([, v]) => typeof v === "number")) as Record<string, number>;
}

/** Rows of the first markdown table after `heading` whose first cell matches `cell`. */
function tableRows(heading: string, cell: RegExp): string[][] {
  const start = README.indexOf(heading);
  expect(start, `README has "${heading}"`).toBeGreaterThanOrEqual(0);
  const rows: string[][] = [];
  let inTable = false;
  for (const line of README.slice(start).split("\n")) {
    if (line.startsWith("|")) {
      inTable = true;
      const cells = line
        .split("|")
        .slice(1, -1)
        .map((c) => c.trim());
      if (cell.test(cells[0])) rows.push(cells);
    } else if (inTable) break;
  }
  return rows;
}

// Written by hand from README "Frame layout".
const SPEC_TYPES: Array<[string, FrameType, number]> = [
  ["HELLO", FrameType.Hello, 0x0],
  ["HEADERS", FrameType.Headers, 0x1],
  ["DATA", FrameType.Data, 0x2],
  ["WINDOW_UPDATE", FrameType.WindowUpdate, 0x3],
  ["RST_STREAM", FrameType.RstStream, 0x4],
  ["PING", FrameType.Ping, 0x5],
  ["GOAWAY", FrameType.GoAway, 0x6],
  ["CLOSE", FrameType.Close, 0x7],
];

// README "Error codes".
const SPEC_CODES: Array<[string, ErrorCode, number]> = [
  ["NO_ERROR", ErrorCode.NoError, 0],
  ["PROTOCOL_ERROR", ErrorCode.ProtocolError, 1],
  ["INTERNAL_ERROR", ErrorCode.InternalError, 2],
  ["FLOW_CONTROL_ERROR", ErrorCode.FlowControlError, 3],
  ["STREAM_CLOSED", ErrorCode.StreamClosed, 4],
  ["REFUSED_STREAM", ErrorCode.RefusedStream, 5],
  ["CANCEL", ErrorCode.Cancel, 6],
  ["ORIGIN_UNREACHABLE", ErrorCode.OriginUnreachable, 7],
  ["ORIGIN_RESET", ErrorCode.OriginReset, 8],
  ["TIMEOUT", ErrorCode.Timeout, 9],
  ["MESSAGE_TOO_BIG", ErrorCode.MessageTooBig, 10],
  ["BRIDGE_ERROR", ErrorCode.BridgeError, 11],
  ["MESH_DENIED", ErrorCode.MeshDenied, 12],
  ["MESH_IDENTITY", ErrorCode.MeshIdentity, 13],
  ["MESH_REFUSED", ErrorCode.MeshRefused, 14],
];

describe("frame types", () => {
  it.each(SPEC_TYPES)("%s is %i", (_name, actual, expected) => {
    expect(actual).toBe(expected);
  });

  it("has exactly the eight types of version 1", () => {
    expect(members(FrameType)).toEqual({
      Hello: 0,
      Headers: 1,
      Data: 2,
      WindowUpdate: 3,
      RstStream: 4,
      Ping: 5,
      GoAway: 6,
      Close: 7,
    });
  });

  it("matches the README's type table", () => {
    const rows = tableRows("## Frame layout", /^0x[0-9a-f]+$/i);
    const fromReadme = rows.map(([hex, name]) => [name.replaceAll("`", ""), Number.parseInt(hex, 16)]);
    expect(fromReadme).toEqual(SPEC_TYPES.map(([name, , value]) => [name, value]));
  });
});

describe("flags", () => {
  it("FIN is 0x01, ACK 0x02, EOM 0x04 and TEXT 0x08, and there are no others", () => {
    expect(Flag.FIN).toBe(0x01);
    expect(Flag.ACK).toBe(0x02);
    expect(Flag.EOM).toBe(0x04);
    expect(Flag.TEXT).toBe(0x08);
    expect(Object.keys(Flag).sort()).toEqual(["ACK", "EOM", "FIN", "TEXT"]);
  });

  it("ALLOWED_FLAGS: FIN on HEADERS and DATA, EOM and TEXT on DATA, ACK on PING, nothing elsewhere", () => {
    expect(ALLOWED_FLAGS).toEqual({
      [FrameType.Hello]: 0,
      [FrameType.Headers]: 0x01,
      [FrameType.Data]: 0x01 | 0x04 | 0x08,
      [FrameType.WindowUpdate]: 0,
      [FrameType.RstStream]: 0,
      [FrameType.Ping]: 0x02,
      [FrameType.GoAway]: 0,
      [FrameType.Close]: 0,
    });
  });

  it("matches the README's flag table, including which types carry each flag", () => {
    const rows = tableRows("| flag |", /^0x[0-9a-f]+$/i);
    expect(rows).toHaveLength(4);
    const byName = new Map(SPEC_TYPES.map(([name, type]) => [name, type]));
    const allowed = new Map<FrameType, number>();
    for (const [hex, name, on] of rows) {
      const value = Number.parseInt(hex, 16);
      expect(Flag[name.replaceAll("`", "") as keyof typeof Flag]).toBe(value);
      for (const typeName of on
        .replaceAll("`", "")
        .split(",")
        .map((s) => s.trim())) {
        const type = byName.get(typeName);
        expect(type, `README names type ${typeName}`).toBeDefined();
        allowed.set(type!, (allowed.get(type!) ?? 0) | value);
      }
    }
    for (const [, type] of SPEC_TYPES) expect(ALLOWED_FLAGS[type]).toBe(allowed.get(type) ?? 0);
  });
});

describe("error codes", () => {
  it.each(SPEC_CODES)("%s is %i", (_name, actual, expected) => {
    expect(actual).toBe(expected);
  });

  it("has exactly the codes pinned above, no more", () => {
    expect(Object.values(members(ErrorCode)).sort((a, b) => a - b)).toEqual(SPEC_CODES.map(([, , value]) => value).sort((a, b) => a - b));
  });

  it("matches the README's error code table", () => {
    const rows = tableRows("### Error codes", /^\d+$/);
    const fromReadme = rows.map(([code, name]) => [name.replaceAll("`", ""), Number(code)]);
    expect(fromReadme).toEqual(SPEC_CODES.map(([name, , value]) => [name, value]));
  });
});

describe("tunnel close codes", () => {
  it("pins 1000, 1002, 1011, 4400 and 4401", () => {
    expect(TunnelClose.Normal).toBe(1000);
    expect(TunnelClose.ProtocolError).toBe(1002);
    expect(TunnelClose.InternalError).toBe(1011);
    expect(TunnelClose.BadHello).toBe(4400);
    expect(TunnelClose.TokenRevoked).toBe(4401);
    expect(Object.values(members(TunnelClose)).sort((a, b) => a - b)).toEqual([1000, 1002, 1011, 4400, 4401]);
  });

  it("matches the README's close code table", () => {
    const codes = tableRows("## Tunnel close codes", /^\d+$/).map(([code]) => Number(code));
    expect(codes).toEqual([1000, 1002, 1011, 4400, 4401]);
  });
});

describe("sizes and other constants", () => {
  it("the frame header is 10 bytes", () => {
    expect(HEADER_BYTES).toBe(10);
    expect(README).toContain("10-byte header");
  });

  it("MAX_HEADER_BLOCK is 256 KiB", () => {
    expect(MAX_HEADER_BLOCK).toBe(262_144);
    expect(README).toContain("`MAX_HEADER_BLOCK`\n(256 KiB");
  });

  it("a sender's head is at most MAX_HEAD_BYTES, 64 KiB, and MAX_HEAD_FIELDS, 1000 fields", () => {
    expect(MAX_HEAD_BYTES).toBe(65_536);
    expect(MAX_HEAD_FIELDS).toBe(1000);
    expect(README).toContain("`MAX_HEAD_BYTES` (64 KiB) or `MAX_HEAD_FIELDS` (1000 fields");
  });

  it("hello bounds: 4 KiB, 32 entries, 256 chars, window 16 KiB..16 MiB, maxFrame 16 KiB..1 MiB", () => {
    expect([MAX_HELLO_BYTES, MAX_HELLO_LIST, MAX_HELLO_STRING]).toEqual([4096, 32, 256]);
    expect([MIN_WINDOW, MAX_WINDOW]).toEqual([16_384, 16_777_216]);
    expect([MIN_MAX_FRAME, MAX_MAX_FRAME]).toEqual([16_384, 1_048_576]);
    expect(README).toMatch(/`MAX_HELLO_BYTES` +\| at most 4 KiB/);
    expect(README).toMatch(/`MAX_HELLO_LIST` +\| at most 32 /);
    expect(README).toMatch(/`MAX_HELLO_STRING` +\| at most 256 chars/);
    expect(README).toMatch(/`MIN_WINDOW` \.\. `MAX_WINDOW` +\| 16 KiB \.\. 16 MiB/);
    expect(README).toMatch(/`MIN_MAX_FRAME` \.\. `MAX_MAX_FRAME` +\| 16 KiB \.\. 1 MiB/);
    // The defaults each side announces lie inside the bounds.
    expect(DEFAULT_WINDOW).toBeGreaterThanOrEqual(MIN_WINDOW);
    expect(DEFAULT_WINDOW).toBeLessThanOrEqual(MAX_WINDOW);
    expect(DEFAULT_MAX_FRAME).toBeGreaterThanOrEqual(MIN_MAX_FRAME);
    expect(DEFAULT_MAX_FRAME).toBeLessThanOrEqual(MAX_MAX_FRAME);
  });

  it("MAX_MESSAGE_BYTES is 1 MiB", () => {
    expect(MAX_MESSAGE_BYTES).toBe(1_048_576);
    expect(README).toContain("`MAX_MESSAGE_BYTES`, 1 MiB");
  });

  it("the default window is 1 MiB and the default maxFrame 256 KiB", () => {
    expect(DEFAULT_WINDOW).toBe(1_048_576);
    expect(DEFAULT_MAX_FRAME).toBe(262_144);
    expect(README).toContain("Defaults: `window` 1 MiB, `maxFrame` 256 KiB");
  });

  it("MAX_WS_MESSAGE, the largest message on a message stream, is 16 MiB", () => {
    expect(MAX_WS_MESSAGE).toBe(16_777_216);
    expect(README).toMatch(/over the limit \(16 MiB\)/);
  });

  it("the protocol version is 1", () => {
    expect(PROTOCOL_VERSION).toBe(1);
    expect(README).toContain("# edge-relay tunnel protocol, version 1");
  });

  it("heartbeats are the text messages ping and pong", () => {
    expect(HEARTBEAT_PING).toBe("ping");
    expect(HEARTBEAT_PONG).toBe("pong");
  });
});

describe("ProtocolError", () => {
  it("defaults to close code 1002 and keeps a given one", () => {
    const plain = new ProtocolError("bad frame");
    expect(plain).toBeInstanceOf(Error);
    expect(plain.name).toBe("ProtocolError");
    expect(plain.message).toBe("bad frame");
    expect(plain.closeCode).toBe(1002);
    expect(new ProtocolError("no hello", TunnelClose.BadHello).closeCode).toBe(4400);
  });
});
