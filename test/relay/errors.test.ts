// Every relay error code: its status and its JSON body (test/docs.test.ts checks the README's
// table of them); and the choice of tunnel for a new stream (pickTunnel).
import { describe, expect, it } from "vitest";
import { ERROR_STATUS, RelayError, type ErrorName } from "../../src/errors.ts";
import { pickTunnel } from "../../src/hub/tunnels.ts";

const CODES = Object.keys(ERROR_STATUS) as ErrorName[];

describe("RelayError", () => {
  it.each(CODES)("%s answers its status with a JSON body", async (code) => {
    const err = new RelayError(code, `Something about ${code}.`, "demo");
    expect(err.status).toBe(ERROR_STATUS[code]);
    const resp = err.toResponse();
    expect(resp.status).toBe(ERROR_STATUS[code]);
    expect(resp.headers.get("content-type")).toMatch(/^application\/json(;|$)/);
    expect(resp.headers.get("cache-control")).toBe("no-store");
    expect(await resp.json()).toEqual({ error: code, message: `Something about ${code}.`, backend: "demo" });
  });

  it("leaves backend out when unknown", async () => {
    const resp = new RelayError("not_found", "No route.").toResponse();
    expect(await resp.json()).toEqual({ error: "not_found", message: "No route." });
  });

  it("is an Error named RelayError carrying its code", () => {
    const err = new RelayError("timeout", "Too slow.", "demo");
    expect(err).toBeInstanceOf(Error);
    expect(err.name).toBe("RelayError");
    expect(err).toMatchObject({ code: "timeout", backend: "demo", message: "Too slow." });
  });

  it("adds extra headers but keeps its own content-type", async () => {
    const resp = new RelayError("overloaded", "Busy.").toResponse({ "retry-after": "5", "content-type": "text/plain" });
    expect(resp.headers.get("retry-after")).toBe("5");
    expect(resp.headers.get("content-type")).toMatch(/^application\/json/);
  });

  it("uses only error statuses", () => {
    for (const code of CODES) expect(ERROR_STATUS[code]).toBeGreaterThanOrEqual(400);
  });
});

/** A stand-in for a Tunnel: pickTunnel reads only `load` and `session.ready`. */
function fake(name: string, load: number, ready = true) {
  return { name, load, session: { ready } };
}

describe("pickTunnel", () => {
  it("returns undefined with no tunnels", () => {
    expect(pickTunnel([])).toBeUndefined();
  });

  it("returns undefined when no tunnel is ready", () => {
    expect(pickTunnel([fake("a", 0, false), fake("b", 0, false)])).toBeUndefined();
  });

  it("picks the fewest streams in flight", () => {
    expect(pickTunnel([fake("a", 3), fake("b", 1), fake("c", 2)])?.name).toBe("b");
    expect(pickTunnel([fake("a", 0), fake("b", 5)])?.name).toBe("a");
  });

  it("skips tunnels that are not ready, however idle", () => {
    expect(pickTunnel([fake("a", 0, false), fake("b", 7), fake("c", 9)])?.name).toBe("b");
  });

  it("breaks ties among the least loaded at random", () => {
    const tunnels = [fake("a", 2), fake("b", 1), fake("c", 4), fake("d", 1), fake("e", 1, false), fake("f", 1)];
    expect(pickTunnel(tunnels, () => 0)?.name).toBe("b");
    expect(pickTunnel(tunnels, () => 0.34)?.name).toBe("d");
    expect(pickTunnel(tunnels, () => 0.9999)?.name).toBe("f");
  });

  it("calls the random source only once per choice", () => {
    let calls = 0;
    pickTunnel([fake("a", 0), fake("b", 0)], () => (calls++, 0.5));
    expect(calls).toBe(1);
  });

  it("spreads ties over every tied tunnel", () => {
    const seen = new Set<string>();
    const tunnels = [fake("a", 0), fake("b", 0), fake("c", 0)];
    for (const r of [0, 0.4, 0.8]) seen.add(pickTunnel(tunnels, () => r)!.name);
    expect(seen).toEqual(new Set(["a", "b", "c"]));
  });
});
