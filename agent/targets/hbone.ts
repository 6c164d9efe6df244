// hbone:// targets: every tunnelled request (plain HTTP, streaming, WebSocket upgrade) runs over
// its own HTTP/2 CONNECT stream to the mesh proxy, speaking HTTP/1.1 inside it (seed 000).
import http from "node:http";
import type { Duplex } from "node:stream";
import type { RequestHead } from "../../src/protocol/head.ts";
import type { TargetSpec } from "../config.ts";
import { HbonePool } from "../hbone/pool.ts";
import { H2Sessions } from "./h2.ts";
import { HttpTarget, type HttpTargetDialer, type OriginProtocol } from "./http.ts";

type Oncreate = (err: Error | null, socket: Duplex) => void;

/**
 * Headers a CONNECT carries from the public request: `baggage` and `traceparent` when present,
 * and `forwarded: for="<client ip>"` (the last X-Forwarded-For entry, which the relay set).
 */
export function connectHeaders(head: RequestHead): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  for (const [name, value] of head.headers) if (name === "baggage" || name === "traceparent") out.push([name, value]);
  const xff = head.headers
    .filter(([name]) => name === "x-forwarded-for")
    .map(([, v]) => v)
    .join(",");
  const client = xff
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean)
    .pop();
  if (client) out.push(["forwarded", `for="${client.includes(":") ? `[${client}]` : client}"`]);
  return out;
}

/**
 * The HttpTarget for an hbone:// target; its pool closes with it. With --origin-protocol h2 (or
 * h2c) the agent speaks HTTP/2 inside the CONNECT streams (one session per stream, reused).
 */
export function hboneTarget(
  target: Extract<TargetSpec, { kind: "hbone" }>,
  preserveHost: boolean,
  protocol: OriginProtocol = "auto",
  pool = new HbonePool(target.hbone),
): HttpTarget {
  const createConnection = (head: RequestHead) => (_options: unknown, oncreate: Oncreate) => {
    pool.connect(target.authority, connectHeaders(head)).then(
      (stream) => oncreate(null, stream),
      (err: Error) => oncreate(err, undefined as unknown as Duplex),
    );
    return undefined;
  };
  const dialer: HttpTargetDialer = {
    request: http.request,
    host: target.authority,
    // No agent: each request brings its own connection, a fresh CONNECT stream.
    connection: (head) => ({ agent: undefined, createConnection: createConnection(head) as never }),
    websocket: { base: `ws://${target.authority}`, connection: (head) => createConnection(head) as never },
    protocols: async () => ["hbone", h2 ? "h2" : "http/1.1"],
    close: () => pool.close(),
  };
  const h2 = protocol === "h2" || protocol === "h2c";
  if (h2) {
    // The session's CONNECT carries no per-request headers: it serves many requests.
    const sessions = new H2Sessions(`http://${target.authority}`, () => pool.connect(target.authority));
    dialer.h2 = async () => ({ session: await sessions.get(), scheme: "http" });
    dialer.close = () => (sessions.close(), pool.close());
  }
  return new HttpTarget(dialer, preserveHost, ["http", "ws", "hbone"]);
}
