// Ingress rules, pure: first match by backend and path prefix, stripPrefix, header rewrites that
// keep repeated fields in order, rule conflicts, and the agent's 404 for a request no rule takes.
import { describe, expect, it } from "vitest";
import type { HeaderList } from "../../src/protocol/frame.ts";
import {
  matchRule,
  noRuleResponse,
  normalizePathPrefix,
  NO_HEADER_EDITS,
  rewriteHeaders,
  ruleConflicts,
  stripPrefix,
  type IngressRule,
} from "../../agent/ingress.ts";

function rule(name: string, backend: string, path?: string, strip = false): IngressRule {
  return {
    name,
    backend,
    ...(path !== undefined ? { path } : {}),
    stripPrefix: strip,
    service: "http://127.0.0.1:1",
    target: { kind: "http", url: new URL("http://127.0.0.1:1") },
    preserveHost: false,
    originProtocol: "auto",
    headers: NO_HEADER_EDITS,
  };
}

const RULES = [
  rule("api", "shop", "/api", true),
  rule("static", "shop", "/static"),
  rule("rest", "shop"),
  rule("cache", "cache"),
  rule("blog-admin", "blog", "/admin"),
];

describe("matchRule", () => {
  it.each([
    ["shop", "/api/v1/x", "api", "/v1/x"],
    ["shop", "/api", "api", "/"],
    ["shop", "/api?q=1", "api", "/?q=1"],
    ["shop", "/api/?q=1", "api", "/?q=1"],
    ["shop", "/apix", "rest", "/apix"],
    ["shop", "/static/a.css", "static", "/static/a.css"],
    ["shop", "/", "rest", "/"],
    ["cache", "/anything", "cache", "/anything"],
    ["blog", "/admin/users", "blog-admin", "/admin/users"],
  ])("%s %s -> %s, sent as %s", (backend, path, name, sent) => {
    const match = matchRule(RULES, backend, path);
    expect(match?.rule.name).toBe(name);
    expect(match?.path).toBe(sent);
  });

  it.each([
    ["blog", "/"],
    ["blog", "/administrator"],
    ["other", "/api"],
  ])("%s %s matches no rule", (backend, path) => {
    expect(matchRule(RULES, backend, path)).toBeUndefined();
  });
});

describe("normalizePathPrefix and stripPrefix", () => {
  it.each([
    ["/api/", { prefix: "/api" }],
    ["/api", { prefix: "/api" }],
    ["/", {}],
    ["api", { problem: 'must start with "/", like /api' }],
    ["/a?b", { problem: "must be a path only, with no query, fragment or spaces" }],
  ])("%s -> %j", (text, expected) => {
    expect(normalizePathPrefix(text)).toEqual(expected);
  });

  it("keeps the stripped path absolute", () => {
    expect(stripPrefix("/api", "/api/v1")).toBe("/v1");
    expect(stripPrefix("/api", "/api")).toBe("/");
  });
});

describe("rewriteHeaders", () => {
  const list: HeaderList = [
    [":status", "200"],
    ["set-cookie", "a=1"],
    ["x-debug", "1"],
    ["set-cookie", "b=2"],
    ["x-env", "dev"],
    ["set-cookie", "c=3"],
  ];

  it("removes and sets, keeping every other field, repeated ones included, in order", () => {
    expect(
      rewriteHeaders(list, {
        set: [
          ["x-env", ["prod"]],
          ["x-tag", ["a", "b"]],
        ],
        remove: ["x-debug"],
      }),
    ).toEqual([
      [":status", "200"],
      ["set-cookie", "a=1"],
      ["set-cookie", "b=2"],
      ["set-cookie", "c=3"],
      ["x-env", "prod"],
      ["x-tag", "a"],
      ["x-tag", "b"],
    ]);
  });

  it("matches names whatever their case, and returns the list itself when there is nothing to do", () => {
    expect(
      rewriteHeaders(
        [
          ["X-Debug", "1"],
          ["a", "b"],
        ],
        { set: [], remove: ["x-debug"] },
      ),
    ).toEqual([["a", "b"]]);
    expect(rewriteHeaders(list, { set: [], remove: [] })).toBe(list);
  });
});

describe("ruleConflicts", () => {
  it.each([
    [
      [rule("ingress[0]", "shop", "/api"), rule("ingress[1]", "shop", "/api")],
      1,
      "repeats ingress[0] (backend shop, path /api): the first one always wins, so remove one",
    ],
    [
      [rule("ingress[0]", "shop"), rule("ingress[1]", "shop")],
      1,
      "repeats ingress[0] (backend shop): the first one always wins, so remove one",
    ],
    [
      [rule("ingress[0]", "shop"), rule("ingress[1]", "cache"), rule("ingress[2]", "shop", "/x")],
      2,
      "can never match: ingress[0] before it is the catch-all of shop (no path); move the catch-all last",
    ],
    [
      [rule("ingress[0]", "shop", "/api"), rule("ingress[1]", "shop", "/api/v1")],
      1,
      "can never match: ingress[0] before it takes every shop request under /api; put the longer path first",
    ],
  ])("finds the conflict in %#", (rules, index, message) => {
    expect(ruleConflicts(rules)).toEqual([{ index, message }]);
  });

  it("accepts a longer path first, other backends, and a catch-all last", () => {
    expect(
      ruleConflicts([
        rule("a", "shop", "/api/v1"),
        rule("b", "shop", "/api"),
        rule("c", "shop", "/apix"),
        rule("d", "cache"),
        rule("e", "shop"),
      ]),
    ).toEqual([]);
  });
});

describe("noRuleResponse", () => {
  it("is a JSON 404 naming the backend and the path without its query", () => {
    const res = noRuleResponse("blog", "/nope?token=x");
    expect(res.status).toBe(404);
    expect(res.headers).toContainEqual(["content-length", String(res.body.byteLength)]);
    expect(JSON.parse(new TextDecoder().decode(res.body))).toEqual({
      error: "no_ingress_rule",
      message: 'No ingress rule of backend "blog" takes /nope; add a rule for it or a catch-all.',
      backend: "blog",
    });
  });
});
