// The compiled access table, pure: which rules' policies a request meets, bypass paths, anyOf's
// choice of refusal and challenges, rate-limit windows, and basic credentials parsing.
import { describe, expect, it } from "vitest";
import { basicCredentials } from "../../src/access/basic-auth.ts";
import { AccessTable } from "../../src/access/compose.ts";
import { RateLimit } from "../../src/access/rate-limit.ts";
import type { Outcome, Visitor } from "../../src/access/verdict.ts";

const visitor = (path: string, more: Partial<Visitor> = {}): Visitor => ({
  path,
  headers: new Headers(),
  accessToken: false,
  backend: "shop",
  method: "GET",
  scheme: "https",
  authority: "shop.example",
  base: "",
  secret: "s",
  ...more,
});
const code = (o: Outcome) => o.refused?.code ?? "admitted";

describe("AccessTable", () => {
  const table = new AccessTable([
    { path: "/admin", policies: [{ ip: { allow: ["203.0.113.0/24"] } }] },
    { path: "/hooks", policies: [{ bypass: ["/hooks/github/"] }, { accessToken: {} }] },
    { policies: [] },
  ]);

  it.each([
    ["/admin/x", undefined, "forbidden_ip"],
    ["/admin/x", "203.0.113.1", "admitted"],
    ["/public", undefined, "admitted"],
    ["/public/..%2fadmin", undefined, "forbidden_ip"],
    ["/hooks/github/push", undefined, "admitted"],
    ["/hooks/gitlab/push", undefined, "access_denied"],
    ["/hooks/github/..%2f..%2fadmin", undefined, "access_denied"],
    ["/hooks/github/..%2f..%2fadmin", "203.0.113.1", "access_denied"],
  ])("%s from %s: %s", async (path, clientIp, expected) => {
    expect(code(await table.admit(visitor(path, { clientIp })))).toBe(expected);
  });

  it("answers anyOf with the telling refusal and every challenge", async () => {
    const anyOf = new AccessTable([
      {
        policies: [
          {
            anyOf: [{ jwt: { keys: [{ kty: "EC", crv: "P-256", x: "x", y: "y" }], audience: "shop" } }, { accessToken: {} }],
          },
        ],
      },
    ]);
    const none = await anyOf.admit(visitor("/"));
    expect(code(none)).toBe("access_denied");
    expect(await anyOf.admit(visitor("/", { accessToken: true }))).toEqual({});
  });
});

describe("RateLimit", () => {
  it("counts per address within the window and starts again after it", () => {
    const limit = new RateLimit({ requests: 2, perSeconds: 10 });
    const from = (ip: string, now: number) => code(limit.check(visitor("/", { clientIp: ip }), now));
    expect([from("a", 0), from("a", 1000), from("a", 2000), from("b", 2000)]).toEqual(["admitted", "admitted", "rate_limited", "admitted"]);
    const refused = limit.check(visitor("/", { clientIp: "a" }), 2500);
    expect(refused.refused && "headers" in refused ? refused.headers : undefined).toEqual({ "retry-after": "8" });
    expect(from("a", 10_000)).toBe("admitted");
  });
});

describe("basicCredentials", () => {
  const b64 = (s: string) => Buffer.from(s).toString("base64");
  it.each([
    [`Basic ${b64("ann:pw")}`, { name: "ann", password: "pw" }],
    [`basic ${b64("ann:a:b")}`, { name: "ann", password: "a:b" }],
    [`Basic ${b64("ann:")}`, { name: "ann", password: "" }],
    [`Basic ${b64("ann")}`, undefined],
    ["Basic", undefined],
    ["Basic !!!", undefined],
    [`Bearer ${b64("ann:pw")}`, undefined],
    [null, undefined],
  ])("reads %j as %j", (header, expected) => expect(basicCredentials(header)).toEqual(expected));
});
