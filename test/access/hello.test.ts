// The hello's `access` field: validated by decodeHello with the shared policy validator, bounded
// on its own (MAX_ACCESS_BYTES) so a large but valid policy list does not count against the hello.
import { describe, expect, it } from "vitest";
import { MAX_ACCESS_BYTES, type AccessScope } from "../../src/access/policy.ts";
import { decodeHello, encodeHello } from "../../src/protocol/codec.ts";
import { DEFAULT_MAX_FRAME, DEFAULT_WINDOW, MAX_HELLO_BYTES, ProtocolError, type Hello } from "../../src/protocol/frame.ts";

const HASH = `pbkdf2-sha256$100000$${"A".repeat(22)}==$${"B".repeat(43)}=`;
const hello = (access?: unknown): Hello =>
  ({
    v: 1,
    software: "t",
    id: "a",
    caps: ["http"],
    window: DEFAULT_WINDOW,
    maxFrame: DEFAULT_MAX_FRAME,
    ...(access ? { access } : {}),
  }) as Hello;
const users = (n: number) => Array.from({ length: n }, (_, i) => ({ name: `user${i}`, passwordHash: HASH }));

describe("hello access", () => {
  it("accepts policies far larger than MAX_HELLO_BYTES and returns them validated", () => {
    const access: AccessScope[] = [{ path: "/admin", policies: [{ basicAuth: { users: users(100) } }] }, { policies: [] }];
    const bytes = encodeHello(hello(access));
    expect(bytes.byteLength).toBeGreaterThan(MAX_HELLO_BYTES * 2);
    expect(decodeHello(bytes).access).toEqual(access);
  });

  it("refuses an access list over MAX_ACCESS_BYTES, naming its size", () => {
    const access = Array.from({ length: 6 }, (_, i) => ({ path: `/p${i}`, policies: [{ basicAuth: { users: users(100) } }] }));
    expect(JSON.stringify(access).length).toBeGreaterThan(MAX_ACCESS_BYTES);
    expect(() => decodeHello(encodeHello(hello(access)))).toThrow(/hello access of \d+ bytes exceeds 49152/);
  });

  it("refuses a malformed policy with close code 4400 and the key path", () => {
    let caught: unknown;
    try {
      decodeHello(encodeHello(hello([{ policies: [{ rateLimit: { requests: 0, perSeconds: 1 } }] }])));
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(ProtocolError);
    expect((caught as ProtocolError).closeCode).toBe(4400);
    expect((caught as ProtocolError).message).toMatch(/^hello access\[0\]\.policies\[0\]\.rateLimit\.requests must be/);
  });
});
