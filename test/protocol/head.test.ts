// Request and response heads as header lists (README "Header block"): pseudo-fields first,
// repeated fields kept in order, malformed heads rejected as protocol errors.
import { describe, expect, it } from "vitest";
import { decodeHeaderBlock, encodeHeaderBlock } from "../../src/protocol/codec.ts";
import { MAX_HEAD_BYTES, MAX_HEAD_FIELDS, MAX_HEADER_BLOCK, ProtocolError, type HeaderList } from "../../src/protocol/frame.ts";
import {
  decodeRequestHead,
  decodeResponseHead,
  encodeRequestHead,
  encodeResponseHead,
  headSizeProblem,
  type RequestHead,
  type ResponseHead,
} from "../../src/protocol/head.ts";

const REQUEST: RequestHead = {
  method: "POST",
  path: "/api/items?x=1&y=%2F",
  scheme: "https",
  authority: "demo.relay.example.com",
  headers: [
    ["content-type", "application/json"],
    ["cookie", "a=1"],
    ["cookie", "b=2"],
    ["x-note", "café ☃"],
  ],
};

const RESPONSE: ResponseHead = {
  status: 201,
  headers: [
    ["set-cookie", "a=1; Path=/"],
    ["set-cookie", "b=2; Path=/"],
    ["content-length", "0"],
  ],
};

describe("request head", () => {
  it("encodes pseudo-fields first, in the spec's order, then the regular fields in order", () => {
    expect(encodeRequestHead(REQUEST)).toEqual([
      [":method", "POST"],
      [":path", "/api/items?x=1&y=%2F"],
      [":scheme", "https"],
      [":authority", "demo.relay.example.com"],
      ["content-type", "application/json"],
      ["cookie", "a=1"],
      ["cookie", "b=2"],
      ["x-note", "café ☃"],
    ]);
  });

  it("round-trips through the list and through the header block", () => {
    expect(decodeRequestHead(encodeRequestHead(REQUEST))).toEqual(REQUEST);
    expect(decodeRequestHead(decodeHeaderBlock(encodeHeaderBlock(encodeRequestHead(REQUEST))))).toEqual(REQUEST);
  });

  it("round-trips a head without regular fields", () => {
    const head: RequestHead = { method: "GET", path: "/", scheme: "http", authority: "localhost:8787", headers: [] };
    expect(decodeRequestHead(encodeRequestHead(head))).toEqual(head);
  });

  it("accepts pseudo-fields in any order among themselves", () => {
    const list: HeaderList = [
      [":authority", "h"],
      [":path", "/p"],
      [":scheme", "https"],
      [":method", "GET"],
      ["accept", "*/*"],
    ];
    expect(decodeRequestHead(list)).toEqual({ method: "GET", path: "/p", scheme: "https", authority: "h", headers: [["accept", "*/*"]] });
  });

  it.each([":method", ":path", ":scheme", ":authority"])("rejects a head without %s", (name) => {
    const list = encodeRequestHead(REQUEST).filter(([n]) => n !== name);
    expect(() => decodeRequestHead(list)).toThrow(ProtocolError);
    expect(() => decodeRequestHead(list)).toThrow(`request head lacks ${name}`);
  });

  it("rejects an empty list", () => {
    expect(() => decodeRequestHead([])).toThrow(ProtocolError);
  });

  it("rejects a pseudo-field after a regular field", () => {
    const list: HeaderList = [
      [":method", "GET"],
      [":path", "/"],
      [":scheme", "https"],
      ["accept", "*/*"],
      [":authority", "h"],
    ];
    expect(() => decodeRequestHead(list)).toThrow(ProtocolError);
    expect(() => decodeRequestHead(list)).toThrow(/pseudo-fields must come before regular fields/);
  });
});

describe("response head", () => {
  it("encodes :status first as a decimal string", () => {
    expect(encodeResponseHead(RESPONSE)).toEqual([[":status", "201"], ...RESPONSE.headers]);
  });

  it("round-trips through the list and through the header block", () => {
    expect(decodeResponseHead(encodeResponseHead(RESPONSE))).toEqual(RESPONSE);
    expect(decodeResponseHead(decodeHeaderBlock(encodeHeaderBlock(encodeResponseHead(RESPONSE))))).toEqual(RESPONSE);
  });

  it.each([101, 200, 204, 302, 404, 502, 599])("round-trips status %i", (status) => {
    expect(decodeResponseHead(encodeResponseHead({ status, headers: [] }))).toEqual({ status, headers: [] });
  });

  it.each([100, 103, 150, 199, 600, 999])("rejects status %i, which no public client can be given", (status) => {
    expect(() => decodeResponseHead(encodeResponseHead({ status, headers: [] }))).toThrow(
      new RegExp(`status ${status} is outside 200-599`),
    );
  });

  it.each<[string, [string, string], RegExp]>([
    ["a space in a name", ["bad name", "v"], /header name "bad name" is not a valid HTTP field name/],
    ["an empty name", ["", "v"], /header name "" is not a valid HTTP field name/],
    ["a colon inside a name", ["a:b", "v"], /not a valid HTTP field name/],
    ["CR LF in a value", ["x-a", "a\r\nset-cookie: b"], /value of header "x-a" holds a character HTTP does not allow/],
    ["a lone LF in a value", ["x-a", "a\nb"], /value of header "x-a"/],
    ["NUL in a value", ["x-a", "a\0b"], /value of header "x-a"/],
    ["DEL in a value", ["x-a", "a\x7fb"], /value of header "x-a"/],
    ["a char above U+00FF in a value", ["x-a", "\u20ac"], /value of header "x-a"/],
    ["a 200 KB value", ["x-a", "v".repeat(200_000)], /header block of 200\d+ bytes exceeds the limit of 65536/],
  ])("rejects %s", (_name, field, reason) => {
    expect(() => decodeResponseHead([[":status", "200"], field])).toThrow(reason);
  });

  it("rejects more than MAX_HEAD_FIELDS fields and accepts exactly that many", () => {
    const fields = (n: number): HeaderList => Array.from({ length: n }, (_, i) => [`x-${i}`, "v"]);
    expect(decodeResponseHead([[":status", "200"], ...fields(MAX_HEAD_FIELDS)]).headers).toHaveLength(MAX_HEAD_FIELDS);
    expect(() => decodeResponseHead([[":status", "200"], ...fields(MAX_HEAD_FIELDS + 1)])).toThrow(
      /1001 header fields exceed the limit of 1000/,
    );
  });

  it("accepts tabs, spaces, visible ASCII and Latin-1 (obs-text) in values", () => {
    const headers: HeaderList = [
      ["x-a", "a\tb c~!"],
      ["x-b", "caf\u00e9 \u00ff"],
      ["x-c", ""],
    ];
    expect(decodeResponseHead([[":status", "200"], ...headers]).headers).toEqual(headers);
  });

  it("rejects a head without :status", () => {
    expect(() => decodeResponseHead([["content-type", "text/plain"]])).toThrow(ProtocolError);
    expect(() => decodeResponseHead([])).toThrow(/bad :status/);
  });

  it.each(["", "abc", "20x", "99", "0", "-200", "1000", "200.5", "NaN"])("rejects :status %j", (status) => {
    expect(() => decodeResponseHead([[":status", status]])).toThrow(ProtocolError);
  });

  it("rejects :status after a regular field", () => {
    expect(() =>
      decodeResponseHead([
        ["date", "today"],
        [":status", "200"],
      ]),
    ).toThrow(/pseudo-fields must come before regular fields/);
  });
});

describe("head size", () => {
  it("the sender's limit is strictly below what a receiver accepts", () => {
    expect(MAX_HEAD_BYTES).toBe(64 * 1024);
    expect(MAX_HEAD_BYTES).toBeLessThan(MAX_HEADER_BLOCK);
    // Even MAX_HEAD_FIELDS empty fields fit in MAX_HEAD_BYTES, and the u16 field count.
    expect(2 + 6 * MAX_HEAD_FIELDS).toBeLessThan(MAX_HEAD_BYTES);
    expect(MAX_HEAD_FIELDS).toBeLessThan(0x10000);
  });

  it("measures UTF-8 bytes: a 30,000-char U+FFFD value is 90,000 bytes and too large", () => {
    expect(headSizeProblem([["x-a", "\ufffd".repeat(30_000)]])).toMatch(/header block of 90011 bytes exceeds the limit of 65536/);
    expect(headSizeProblem([["x-a", "a".repeat(30_000)]])).toBeUndefined();
  });

  it("is exact at the limit", () => {
    const pad = (n: number): HeaderList => [["x-ab", "\u00e9".repeat(n)]];
    // 2 + 6 + 4 + 2n bytes.
    const fits = (MAX_HEAD_BYTES - 12) / 2;
    expect(headSizeProblem(pad(fits))).toBeUndefined();
    expect(encodeHeaderBlock(pad(fits)).byteLength).toBe(MAX_HEAD_BYTES);
    expect(headSizeProblem([...pad(fits), ["b", ""]])).toMatch(/65543 bytes/);
  });
});
