// HTTP semantics end to end: real relay in workerd, real agent process, real backend, and
// raw HTTP, fetch and curl as clients.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { agentArgs, startAgent, type AgentProcess } from "../helpers/agent.ts";
import { startBackend, type Backend } from "../helpers/backend.ts";
import { curl, headerValues, rawRequest } from "../helpers/client.ts";
import { RELAY_RUNTIMES, startRelay, type RelayHandle } from "../helpers/relay.ts";

let relay: RelayHandle;
let backend: Backend;
let agent: AgentProcess;
const NAME = "web";

describe.each(RELAY_RUNTIMES)("on %s", (runtime) => {
  beforeAll(async () => {
    [relay, backend] = await Promise.all([startRelay({ runtime }), startBackend()]);
    agent = await startAgent(agentArgs(relay.url, NAME, await relay.token(NAME), backend.url), { waitUp: 1 });
  });

  afterAll(async () => {
    await agent?.stop();
    await Promise.all([relay?.stop(), backend?.stop()]);
  });

  interface Echo {
    method: string;
    url: string;
    rawHeaders: string[];
    sha256: string;
    length: number;
  }

  const echoed = async (path: string, init: Parameters<typeof rawRequest>[1] extends infer T ? Partial<T> : never = {}) => {
    const res = await rawRequest(relay.url, { path: `/r/${NAME}${path}`, ...init });
    expect(res.status).toBe(200);
    return JSON.parse(res.body.toString()) as Echo;
  };

  const headerOf = (echo: Echo, name: string) => {
    const out: string[] = [];
    for (let i = 0; i < echo.rawHeaders.length; i += 2) if (echo.rawHeaders[i].toLowerCase() === name) out.push(echo.rawHeaders[i + 1]);
    return out;
  };

  describe("methods and statuses", () => {
    it.each(["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"])("%s reaches the backend as is", async (method) => {
      const body = method === "GET" || method === "OPTIONS" ? undefined : `payload for ${method}`;
      const echo = await echoed("/echo", { method, body });
      expect(echo.method).toBe(method);
      expect(echo.length).toBe(body ? body.length : 0);
    });

    it("HEAD answers headers and no body", async () => {
      const res = await rawRequest(relay.url, { method: "HEAD", path: `/r/${NAME}/bytes?n=1000` });
      expect(res.status).toBe(200);
      expect(headerValues(res, "content-length")).toEqual(["1000"]);
      expect(res.body.length).toBe(0);
    });

    it.each([200, 201, 204, 302, 304, 404, 418, 500, 503])("status %i passes through", async (code) => {
      const res = await rawRequest(relay.url, { path: `/r/${NAME}/status?code=${code}` });
      expect(res.status).toBe(code);
      if (code === 204 || code === 304) expect(res.body.length).toBe(0);
      else expect(res.body.toString()).toBe(`status ${code}`);
      if (code === 302) expect(headerValues(res, "location")).toEqual(["/elsewhere"]);
    });

    it("redirects are passed to the client, not followed (fetch with redirect: manual)", async () => {
      const res = await fetch(`${relay.url}/r/${NAME}/status?code=301`, { redirect: "manual" });
      expect(res.status).toBe(301);
      expect(res.headers.get("location")).toBe("/elsewhere");
      expect(backend.hits.get("/elsewhere")).toBeUndefined();
    });
  });

  describe("paths", () => {
    it.each([
      "/echo",
      "/echo/a//b",
      "/echo/a%2Fb/c",
      "/echo;matrix=1;x",
      "/echo/%E2%9C%93/%F0%9F%98%80",
      "/echo?x=1&x=2&y=%20+&z",
      "/echo?q=%26%3D%3F",
      "/echo/with%20space?empty=",
      "/echo/~user/a.b-c_d",
    ])("%s reaches the backend byte for byte (path form)", async (path) => {
      const echo = await echoed(path);
      expect(echo.url).toBe(path);
    });

    it("host form keeps the whole path", async () => {
      const res = await rawRequest(relay.url, { path: "/echo/x//y?z=%41", headers: [["host", `${NAME}.localhost:${relay.port}`]] });
      expect(JSON.parse(res.body.toString()).url).toBe("/echo/x//y?z=%41");
    });

    it("header form keeps the whole path", async () => {
      const res = await rawRequest(relay.url, { path: "/echo/hdr?a=1", headers: [["x-relay-backend", NAME]] });
      expect(JSON.parse(res.body.toString()).url).toBe("/echo/hdr?a=1");
    });

    it("/r/<name> without a slash redirects to /r/<name>/", async () => {
      const res = await rawRequest(relay.url, { path: `/r/${NAME}?a=1` });
      expect(res.status).toBe(308);
      expect(headerValues(res, "location")).toEqual([`/r/${NAME}/?a=1`]);
    });

    it("curl reaches the demo URL", async () => {
      const out = await curl([`${relay.url}/r/${NAME}/echo?via=curl`]);
      expect(JSON.parse(out).url).toBe("/echo?via=curl");
    });
  });

  describe("headers", () => {
    it("keeps several Set-Cookie apart and repeated response headers in order", async () => {
      backend.route("/cookies", (_req, res) => {
        res.setHeader("set-cookie", ["a=1; Path=/", "b=2, c=3; HttpOnly", "d=4"]);
        res.setHeader("x-multi", ["one", "two"]);
        res.end("ok");
      });
      const res = await rawRequest(relay.url, { path: `/r/${NAME}/cookies` });
      expect(headerValues(res, "set-cookie")).toEqual(["a=1; Path=/", "b=2, c=3; HttpOnly", "d=4"]);
      expect(headerValues(res, "x-multi").join(", ")).toBe("one, two");
    });

    it("passes repeated request headers", async () => {
      const echo = await echoed("/echo", {
        headers: [
          ["x-rep", "1"],
          ["x-rep", "2"],
          ["accept", "a/b"],
          ["accept", "c/d"],
        ],
      });
      expect(headerOf(echo, "x-rep").join(", ")).toBe("1, 2");
      expect(headerOf(echo, "accept").join(", ")).toBe("a/b, c/d");
    });

    it("carries 16 KiB of headers both ways", async () => {
      const big = "v".repeat(4000);
      const sent: Array<[string, string]> = [0, 1, 2, 3].map((i) => [`x-big-${i}`, big]);
      backend.route("/bigheaders", (req, res) => {
        for (let i = 0; i < 4; i++) res.setHeader(`x-back-${i}`, String(req.headers[`x-big-${i}`]));
        res.end("ok");
      });
      const res = await rawRequest(relay.url, { path: `/r/${NAME}/bigheaders`, headers: sent });
      expect(res.status).toBe(200);
      for (let i = 0; i < 4; i++) expect(headerValues(res, `x-back-${i}`)).toEqual([big]);
    });

    it("drops hop-by-hop headers and what Connection names, both ways", async () => {
      // The Workers runtime removes a request's Connection header before the relay sees it, so
      // what it names cannot be told apart on the way in (README "HTTP semantics").
      const echo = await echoed("/echo", {
        headers: [
          ["keep-alive", "timeout=5"],
          ["te", "trailers"],
          ["proxy-authorization", "Basic eA=="],
          ["x-kept", "yes"],
        ],
      });
      for (const name of ["keep-alive", "te", "proxy-authorization"]) expect(headerOf(echo, name)).toEqual([]);
      expect(headerOf(echo, "x-kept")).toEqual(["yes"]);

      backend.route("/hop", (_req, res) => {
        res.setHeader("connection", "x-hop");
        res.setHeader("x-hop", "1");
        res.setHeader("keep-alive", "timeout=9");
        res.setHeader("proxy-authenticate", "Basic");
        res.setHeader("x-end", "2");
        res.end("ok");
      });
      const res = await rawRequest(relay.url, { path: `/r/${NAME}/hop` });
      expect(headerValues(res, "x-hop")).toEqual([]);
      expect(headerValues(res, "proxy-authenticate")).toEqual([]);
      expect(headerValues(res, "x-end")).toEqual(["2"]);
    });

    it("adds X-Forwarded-For, -Proto and -Host (replacing the client's), and never takes x-relay- headers from the public side", async () => {
      const echo = await echoed("/echo", {
        headers: [
          ["host", `127.0.0.1:${relay.port}`],
          ["x-relay-path", "/admin"],
          ["x-relay-op", "connect"],
          ["x-relay-route", JSON.stringify({ op: "drain", backend: NAME, path: "/admin" })],
          ["x-relay-anything", "1"],
          ["x-forwarded-proto", "gopher"],
          ["x-forwarded-host", "spoofed.example"],
        ],
      });
      expect(echo.url).toBe("/echo");
      expect(headerOf(echo, "x-forwarded-for")).toEqual(["127.0.0.1"]);
      expect(headerOf(echo, "x-forwarded-proto")).toEqual(["http"]);
      expect(headerOf(echo, "x-forwarded-host")).toEqual([`127.0.0.1:${relay.port}`]);
      expect(echo.rawHeaders.filter((h, i) => i % 2 === 0 && h.toLowerCase().startsWith("x-relay-"))).toEqual([]);
    });

    it("sends the target's own host by default", async () => {
      const echo = await echoed("/echo");
      expect(headerOf(echo, "host")).toEqual([`127.0.0.1:${backend.port}`]);
    });
  });

  describe("concurrency", () => {
    it("answers 200 requests in flight at once on one tunnel", async () => {
      const results = await Promise.all(
        Array.from({ length: 200 }, async (_, i) => {
          const res = await fetch(`${relay.url}/r/${NAME}/echo?i=${i}`, { method: "POST", body: `body-${i}` });
          const echo = (await res.json()) as Echo;
          return echo.url === `/echo?i=${i}` && echo.length === `body-${i}`.length;
        }),
      );
      expect(results.filter(Boolean).length).toBe(200);
    });
  });
});
