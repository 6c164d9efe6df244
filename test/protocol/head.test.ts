// Request and response heads as header lists (README "Header block"): pseudo-fields first,
// repeated fields kept in order, malformed heads rejected as protocol errors.
import { describe, expect, it } from "vitest";
import { decodeHeaderBlock, encodeHeaderBlock } from "../../src/protocol/codec.ts";
import { ProtocolError, type HeaderList } from "../../src/protocol/frame.ts";
import {
  decodeRequestHead,
  decodeResponseHead,
  encodeRequestHead,
  encodeResponseHead,
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

  it.each([100, 101, 200, 204, 302, 404, 502, 599, 999])("round-trips status %i", (status) => {
    expect(decodeResponseHead(encodeResponseHead({ status, headers: [] }))).toEqual({ status, headers: [] });
  });

  it("rejects a head without :status", () => {
    expect(() => decodeResponseHead([["content-type", "text/plain"]])).toThrow(ProtocolError);
    expect(() => decodeResponseHead([])).toThrow(/bad :status/);
  });

  it.each(["", "abc", "20x", "99", "0", "-200", "1000", "200.5", "NaN"])("rejects :status %j", (status) => {
    expect(() => decodeResponseHead([[":status", status]])).toThrow(ProtocolError);
  });

  it("rejects :status after a regular field", () => {
    expect(() => decodeResponseHead([["date", "today"], [":status", "200"]])).toThrow(/pseudo-fields must come before regular fields/);
  });
});
