// RESP2 codec: every reply type from fixtures, fed whole, split at every byte, byte by byte and
// several at once; protocol errors; the command encoder.
import { describe, expect, it } from "vitest";
import {
  decodeReply,
  encodeCommand,
  MAX_DEPTH,
  RespDecoder,
  RespErrorReply,
  RespProtocolError,
  type RespReply,
} from "../../../agent/bridge/resp-codec.ts";

const bytes = (text: string) => new Uint8Array(Buffer.from(text, "latin1"));
const hex = (text: string) => new Uint8Array(Buffer.from(text.replace(/\s+/g, ""), "hex"));

// Wire bytes (latin1 text, or hex) and the value they decode to.
const FIXTURES: Array<[string, Uint8Array, RespReply]> = [
  ["simple string", bytes("+OK\r\n"), "OK"],
  ["empty simple string", bytes("+\r\n"), ""],
  [
    "error",
    bytes("-WRONGTYPE Operation against a key holding the wrong kind of value\r\n"),
    new RespErrorReply("WRONGTYPE Operation against a key holding the wrong kind of value"),
  ],
  ["integer", bytes(":1000\r\n"), 1000],
  ["negative integer", bytes(":-42\r\n"), -42],
  ["largest safe integer", bytes(":9007199254740991\r\n"), 9007199254740991],
  ["integer past 2^53", bytes(":9223372036854775807\r\n"), 9223372036854775807n],
  ["smallest int64", bytes(":-9223372036854775808\r\n"), -9223372036854775808n],
  ["bulk string", bytes("$5\r\nhello\r\n"), bytes("hello")],
  ["empty bulk string", bytes("$0\r\n\r\n"), bytes("")],
  ["bulk string holding CRLF", bytes("$4\r\na\r\nb\r\n"), bytes("a\r\nb")],
  ["binary bulk string", hex("24 33 0d 0a 00 ff 80 0d 0a"), hex("00 ff 80")],
  ["null bulk string", bytes("$-1\r\n"), null],
  ["null array", bytes("*-1\r\n"), null],
  ["empty array", bytes("*0\r\n"), []],
  ["array", bytes("*3\r\n$3\r\nfoo\r\n:7\r\n+bar\r\n"), [bytes("foo"), 7, "bar"]],
  ["nested arrays with nulls and errors", bytes("*2\r\n*1\r\n+a\r\n*2\r\n$-1\r\n-ERR x\r\n"), [["a"], [null, new RespErrorReply("ERR x")]]],
];

describe("decodeReply", () => {
  it.each(FIXTURES)("decodes a %s whole", (_name, wire, value) => {
    expect(decodeReply(wire)).toEqual({ value, end: wire.byteLength });
  });

  it.each(FIXTURES)("asks for more at every proper prefix of a %s", (_name, wire) => {
    for (let n = 0; n < wire.byteLength; n++) {
      const result = decodeReply(wire.subarray(0, n));
      expect(result, `prefix of ${n} bytes`).toHaveProperty("need");
      const { need } = result as { need: number };
      expect(need).toBeGreaterThan(n);
      expect(need).toBeLessThanOrEqual(wire.byteLength);
    }
  });

  it("decodes at an offset", () => {
    const wire = bytes("+skip\r\n:5\r\n");
    expect(decodeReply(wire, 7)).toEqual({ value: 5, end: wire.byteLength });
  });

  it("knows a bulk string's whole length from its header", () => {
    expect(decodeReply(bytes("$10\r\nabc"))).toEqual({ need: 5 + 10 + 2 });
  });

  it.each([
    ["a RESP3 type", "%1\r\n+a\r\n+b\r\n", /RESP3 reply \(type "%"\); only RESP2/],
    ["an unknown type byte", "?x\r\n", /byte 0x3f cannot start a RESP2 reply/],
    ["a bad integer", ":12a\r\n", /"12a" is not a valid integer/],
    ["an integer past 64 bits", ":9223372036854775808\r\n", /does not fit a 64-bit integer/],
    ["a negative bulk length", "$-2\r\n", /-2 is not a valid bulk string length/],
    ["a bulk string past the limit", "$536870913\r\n", /not a valid bulk string length/],
    ["LF without CR", "+OK\n", /LF without CR/],
    ["a CR inside a line", "+O\rK\r\n", /holds a CR/],
    ["a bulk string without its CRLF", "$3\r\nabcXY", /not followed by CRLF/],
  ])("rejects %s", (_name, wire, message) => {
    expect(() => decodeReply(bytes(wire))).toThrow(RespProtocolError);
    expect(() => decodeReply(bytes(wire))).toThrow(message);
  });

  it(`rejects arrays nested more than ${MAX_DEPTH} deep`, () => {
    expect(decodeReply(bytes(`${"*1\r\n".repeat(MAX_DEPTH)}:1\r\n`))).toHaveProperty("value");
    expect(() => decodeReply(bytes(`${"*1\r\n".repeat(MAX_DEPTH + 1)}:1\r\n`))).toThrow(/nested more than/);
  });
});

describe("RespDecoder", () => {
  it.each(FIXTURES)("gives back a %s split at every byte", (_name, wire, value) => {
    for (let at = 0; at <= wire.byteLength; at++) {
      const decoder = new RespDecoder();
      const got = [...decoder.push(wire.slice(0, at)), ...decoder.push(wire.slice(at))];
      expect(got, `split at ${at}`).toEqual([value]);
      expect(decoder.pending).toBe(0);
    }
  });

  it.each(FIXTURES)("gives back a %s fed byte by byte", (_name, wire, value) => {
    const decoder = new RespDecoder();
    const got: RespReply[] = [];
    for (const byte of wire) got.push(...decoder.push(Uint8Array.of(byte)));
    expect(got).toEqual([value]);
  });

  it("gives back several replies from one chunk, and from every split of it", () => {
    const all = new Uint8Array(Buffer.concat(FIXTURES.map(([, wire]) => wire)));
    const values = FIXTURES.map(([, , value]) => value);
    expect(new RespDecoder().push(all)).toEqual(values);
    for (let at = 0; at <= all.byteLength; at++) {
      const decoder = new RespDecoder();
      expect([...decoder.push(all.slice(0, at)), ...decoder.push(all.slice(at))]).toEqual(values);
    }
  });

  it("gathers a 5 MiB bulk string from 64 KiB chunks", () => {
    const value = new Uint8Array(5 * 1024 * 1024).map((_, i) => i % 251);
    const wire = new Uint8Array(Buffer.concat([bytes(`$${value.byteLength}\r\n`), value, bytes("\r\n")]));
    const decoder = new RespDecoder();
    const got: RespReply[] = [];
    for (let at = 0; at < wire.byteLength; at += 65536) got.push(...decoder.push(wire.subarray(at, at + 65536)));
    expect(got).toHaveLength(1);
    expect(Buffer.from(got[0] as Uint8Array).equals(Buffer.from(value))).toBe(true);
  });

  it("does not keep a view of a chunk the caller may reuse", () => {
    const decoder = new RespDecoder();
    const chunk = bytes("$5\r\nhel");
    expect(decoder.push(chunk)).toEqual([]);
    chunk.fill(0);
    expect(decoder.push(bytes("lo\r\n"))).toEqual([bytes("hello")]);
  });
});

describe("encodeCommand", () => {
  it.each([
    [["PING"], "*1\r\n$4\r\nPING\r\n"],
    [["SET", "k", "v"], "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n"],
    [["SET", "k", ""], "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n"],
    // Lengths count UTF-8 bytes: "ключ" is 8, "é" is 2.
    [["SET", "ключ", "é"], "*3\r\n$3\r\nSET\r\n$8\r\nключ\r\n$2\r\né\r\n"],
  ])("encodes %j", (args, wire) => {
    expect(Buffer.from(encodeCommand(args)).toString("utf8")).toBe(wire);
  });

  it("takes bytes as they are", () => {
    expect(encodeCommand(["SET", "k", hex("00 ff")])).toEqual(hex("2a330d0a 24330d0a 534554 0d0a 24310d0a 6b 0d0a 24320d0a 00ff 0d0a"));
  });
});
