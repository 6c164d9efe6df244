// Paths as access policies read them: bypass entries match only the normalised path, so
// traversal and encoding tricks fall back to the policies; a request falls under every rule
// its raw and normalised paths take.
import { describe, expect, it } from "vitest";
import { bypassEntryProblem, bypassed, normalisedPath, scopesFor } from "../../src/access/path.ts";

describe("normalisedPath", () => {
  it.each([
    ["/healthz", "/healthz"],
    ["/healthz?x=1", "/healthz"],
    ["/a/./b", "/a/b"],
    ["/a/b/../c", "/a/c"],
    ["/a//b", "/a/b"],
    ["/a/%2e%2e/b", "/b"],
    ["/%68ealthz", "/healthz"],
    ["/a/b/..", "/a/"],
  ])("%s reads as %s", (path, normal) => expect(normalisedPath(path)).toBe(normal));

  it.each(["/a/..%2fb", "/a%2fb", "/a\\b", "/healthz;/../admin", "/%252e%252e/", "/..", "/a/../../b", "relative"])(
    "%s has no single reading",
    (path) => expect(normalisedPath(path)).toBeUndefined(),
  );
});

describe("bypass", () => {
  const entries = ["/healthz", "/webhooks/"];
  it.each([
    ["/healthz", true],
    ["/healthz/", true],
    ["/healthz?probe=1", true],
    ["/webhooks/github", true],
    ["/webhooks/a/b", true],
    ["/webhooks", false],
    ["/healthzz", false],
    ["/healthz/more", false],
    ["/healthz/../admin", false],
    ["/healthz/%2e%2e/admin", false],
    ["/healthz/..%2fadmin", false],
    ["/webhooks/..%2f..%2fadmin", false],
    ["/webhooks/%2e%2e/admin", false],
    ["/webhooks/..;/admin", false],
    ["/webhooks\\..\\admin", false],
    ["/webhooks/%252e%252e/admin", false],
    ["//healthz/../admin", false],
    ["/HEALTHZ", false],
  ])("%s bypasses: %s", (path, expected) => expect(bypassed(entries, path)).toBe(expected));

  it.each([
    ["healthz", /start with/],
    ["/", /every path/],
    ["/a/../b", /plain path/],
    ["/a//b", /plain path/],
    ["/a%2fb", /plain path/],
  ])("refuses the entry %j", (entry, problem) => expect(bypassEntryProblem(entry)).toMatch(problem));
});

describe("scopesFor", () => {
  const prefixes = ["/admin", "/public", undefined];
  it.each([
    ["/admin/x", [0]],
    ["/public/x", [1]],
    ["/other", [2]],
    ["/public/..%2fadmin/users", [1, 0]],
    ["/public/%2e%2e/admin", [1, 0]],
    ["/public/..;/admin", [1, 0]],
    ["/public\\..\\admin", [2, 0]],
  ])("%s falls under rules %j", (path, expected) => expect(scopesFor(prefixes, path)).toEqual(expected));

  it("puts an undecodable path under every rule", () => expect(scopesFor(prefixes, "/public/%ff/..%2fadmin")).toEqual([0, 1, 2]));
  it("leaves a path no rule takes under none", () => expect(scopesFor(["/api"], "/other")).toEqual([]));
});
