// Public request -> backend: host, path and header forms, their precedence, redirects and bad
// names, table-driven against the pure route() and pathAndQuery().
import { describe, expect, it } from "vitest";
import { RelayError } from "../../src/errors.ts";
import { pathAndQuery, route, schemeAndHost, type Route } from "../../src/worker/routing.ts";

const DOMAIN = "relay.example.com";

describe("pathAndQuery", () => {
  it.each([
    ["http://h", "/"],
    ["http://h/", "/"],
    ["http://h?x=1", "/?x=1"],
    ["http://h:8080/p", "/p"],
    ["https://h/a/b?c=d&e", "/a/b?c=d&e"],
    ["http://h/a?next=/b/c", "/a?next=/b/c"],
    ["http://h//a//b", "//a//b"],
    ["http://h/a%20b?q=%2F%3F", "/a%20b?q=%2F%3F"],
    ["http://h/?", "/?"],
    ["http://h/#frag", "/#frag"],
  ])("%s -> %s", (url, expected) => {
    expect(pathAndQuery(url)).toBe(expected);
  });
});

describe("schemeAndHost", () => {
  it.each([
    ["http://h", "http", "h"],
    ["https://h:8443/p?q", "https", "h:8443"],
    ["http://[::1]:8787/r/x/", "http", "[::1]:8787"],
    ["http://h?x=1", "http", "h"],
    ["http://h#f", "http", "h"],
  ])("%s -> %s %s", (url, scheme, host) => {
    expect(schemeAndHost(url)).toEqual({ scheme, host });
  });
});

interface Case {
  name: string;
  url: string;
  host?: string | null;
  header?: string | null;
  domain?: string;
  want: Route;
}

const CASES: Case[] = [
  // Host form.
  {
    name: "host form",
    url: "https://demo.relay.example.com/a?b=1",
    host: "demo.relay.example.com",
    domain: DOMAIN,
    want: { kind: "backend", backend: "demo", path: "/a?b=1", via: "host" },
  },
  {
    name: "host form with a port",
    url: "http://demo.relay.example.com:8787/",
    host: "demo.relay.example.com:8787",
    domain: DOMAIN,
    want: { kind: "backend", backend: "demo", path: "/", via: "host" },
  },
  {
    name: "host form in any case",
    url: "http://demo.relay.example.com/X",
    host: "DEMO.Relay.Example.COM",
    domain: "Relay.Example.com",
    want: { kind: "backend", backend: "demo", path: "/X", via: "host" },
  },
  {
    name: "host form keeps a /r/ path whole",
    url: "http://demo.relay.example.com/r/other/x",
    host: "demo.relay.example.com",
    domain: DOMAIN,
    want: { kind: "backend", backend: "demo", path: "/r/other/x", via: "host" },
  },
  {
    name: "the relay domain itself is not a backend",
    url: "http://relay.example.com/",
    host: "relay.example.com",
    domain: DOMAIN,
    want: { kind: "relay" },
  },
  {
    name: "a host outside the relay domain",
    url: "http://demo.elsewhere.com/",
    host: "demo.elsewhere.com",
    domain: DOMAIN,
    want: { kind: "relay" },
  },
  {
    name: "a look-alike suffix is not the relay domain",
    url: "http://demo.evilrelay.example.com/",
    host: "demo.evilrelay.example.com",
    domain: DOMAIN,
    want: { kind: "relay" },
  },
  {
    name: "RELAY_DOMAIN unset: host form off",
    url: "http://demo.relay.example.com/a",
    host: "demo.relay.example.com",
    want: { kind: "relay" },
  },
  {
    name: "RELAY_DOMAIN unset: path form still works",
    url: "http://demo.relay.example.com/r/demo/a",
    host: "demo.relay.example.com",
    want: { kind: "backend", backend: "demo", path: "/a", via: "path" },
  },
  {
    name: "no Host header",
    url: "http://relay.test/r/demo/",
    host: null,
    domain: DOMAIN,
    want: { kind: "backend", backend: "demo", path: "/", via: "path" },
  },
  // Path form.
  {
    name: "path form with query",
    url: "http://relay.test/r/demo/x/y?q=1&r=/s",
    want: { kind: "backend", backend: "demo", path: "/x/y?q=1&r=/s", via: "path" },
  },
  { name: "path form root", url: "http://relay.test/r/demo/", want: { kind: "backend", backend: "demo", path: "/", via: "path" } },
  {
    name: "path form root with query",
    url: "http://relay.test/r/demo/?a=b",
    want: { kind: "backend", backend: "demo", path: "/?a=b", via: "path" },
  },
  {
    name: "path form keeps double slashes",
    url: "http://relay.test/r/demo//a//b",
    want: { kind: "backend", backend: "demo", path: "//a//b", via: "path" },
  },
  {
    name: "path form keeps percent-encoding",
    url: "http://relay.test/r/my-app-2/a%2Fb?x=%20",
    want: { kind: "backend", backend: "my-app-2", path: "/a%2Fb?x=%20", via: "path" },
  },
  { name: "/r/<name> redirects to the slash", url: "http://relay.test/r/demo", want: { kind: "redirect", location: "/r/demo/" } },
  {
    name: "/r/<name>?q redirects keeping the query",
    url: "http://relay.test/r/demo?a=1&b=/c",
    want: { kind: "redirect", location: "/r/demo/?a=1&b=/c" },
  },
  { name: "/rx/ is not the path form", url: "http://relay.test/rx/demo/", want: { kind: "relay" } },
  // Header form.
  {
    name: "header form",
    url: "http://relay.test/a/b?c",
    header: "demo",
    want: { kind: "backend", backend: "demo", path: "/a/b?c", via: "header" },
  },
  {
    name: "header form trims",
    url: "http://relay.test/",
    header: "  demo ",
    want: { kind: "backend", backend: "demo", path: "/", via: "header" },
  },
  {
    name: "header form on a relay path",
    url: "http://relay.test/_relay/health",
    header: "demo",
    want: { kind: "backend", backend: "demo", path: "/_relay/health", via: "header" },
  },
  // Precedence: host > path > header.
  {
    name: "host beats path and header",
    url: "http://one.relay.example.com/r/two/x",
    host: "one.relay.example.com",
    header: "three",
    domain: DOMAIN,
    want: { kind: "backend", backend: "one", path: "/r/two/x", via: "host" },
  },
  {
    name: "path beats header",
    url: "http://relay.test/r/two/x",
    host: "relay.test",
    header: "three",
    domain: DOMAIN,
    want: { kind: "backend", backend: "two", path: "/x", via: "path" },
  },
  // The relay's own paths.
  { name: "health", url: "http://relay.test/_relay/health", want: { kind: "relay" } },
  { name: "connect", url: "http://relay.test/_relay/connect?backend=demo", host: "relay.test", domain: DOMAIN, want: { kind: "relay" } },
  { name: "root", url: "http://relay.test/", want: { kind: "relay" } },
];

describe("route", () => {
  it.each(CASES)("$name", ({ url, host, header, domain, want }) => {
    expect(route(url, host ?? new URL(url).host, header ?? null, domain)).toEqual(want);
  });
});

const BAD: Array<Omit<Case, "want">> = [
  { name: "nested subdomain", url: "http://a.b.relay.example.com/", host: "a.b.relay.example.com", domain: DOMAIN },
  { name: "underscore in a host label", url: "http://bad_name.relay.example.com/", host: "bad_name.relay.example.com", domain: DOMAIN },
  { name: "leading hyphen in a host label", url: "http://-x.relay.example.com/", host: "-x.relay.example.com", domain: DOMAIN },
  { name: "/r/Bad_Name/", url: "http://relay.test/r/Bad_Name/" },
  { name: "/r/Bad_Name without slash (no redirect to a bad name)", url: "http://relay.test/r/Bad_Name" },
  { name: "/r/ with an empty name", url: "http://relay.test/r//x" },
  { name: "/r/ with a 64-character name", url: `http://relay.test/r/${"a".repeat(64)}/` },
  { name: "/r/ with an encoded name", url: "http://relay.test/r/de%6Do/" },
  { name: "bad header", url: "http://relay.test/", header: "Demo!" },
  { name: "empty header", url: "http://relay.test/", header: " " },
];

describe("route rejects malformed names", () => {
  it.each(BAD)("$name", ({ url, host, header, domain }) => {
    let caught: unknown;
    try {
      route(url, host ?? new URL(url).host, header ?? null, domain);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(RelayError);
    expect((caught as RelayError).code).toBe("bad_backend_name");
    expect((caught as RelayError).status).toBe(400);
    expect((caught as RelayError).message).toMatch(/is not a backend name/);
  });

  it("accepts the longest valid name", () => {
    const name = "a".repeat(63);
    expect(route(`http://relay.test/r/${name}/`, "relay.test", null)).toEqual({ kind: "backend", backend: name, path: "/", via: "path" });
  });
});
