// hbone:// targets: tunnelled requests (plain HTTP, streaming, WebSocket upgrades) run over
// HTTP/2 CONNECT streams to the mesh proxy, speaking HTTP/1.1 inside them (seed 000). A CONNECT
// stream is one connection to the workload, so plain requests reuse it as HTTP/1.1 keep-alive.
import http from "node:http";
import type { Duplex } from "node:stream";
import type { RequestHead } from "../../src/protocol/head.ts";
import type { TargetSpec } from "../config.ts";
import { HbonePool } from "../hbone/pool.ts";
import { H2Sessions } from "./h2.ts";
import { HttpTarget, POOL_IDLE_MS, type HttpTargetDialer, type OriginProtocol } from "./http.ts";
import { ConnectionPool } from "./pool.ts";

/** Client addresses with a keep-alive pool of their own before the empty pools are dropped. */
const CLIENT_POOLS_BEFORE_PRUNE = 256;

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
  // Kept-alive CONNECT streams, one pool per public client address: a CONNECT's `forwarded`
  // names the client whose requests it carries, so a client never rides another's stream. The
  // CONNECT carries the traceparent and baggage of the request that opened it; every request
  // inside carries its own (docs/hbone.md). A stream whose HTTP/2 connection got GOAWAY is not
  // lent again. Empty pools go once there are many.
  const keepAlive = new Map<string, ConnectionPool<Array<[string, string]>>>();
  const live = (stream: Duplex) => pool.carries(stream);
  const pooled = (head: RequestHead) => {
    const dial = connectHeaders(head);
    const client = dial.find(([name]) => name === "forwarded")?.[1] ?? "";
    let agent = keepAlive.get(client);
    if (!agent) {
      if (keepAlive.size >= CLIENT_POOLS_BEFORE_PRUNE) for (const [k, p] of keepAlive) if (p.size === 0) keepAlive.delete(k);
      agent = new ConnectionPool((headers) => pool.connect(target.authority, headers), POOL_IDLE_MS, live);
      keepAlive.set(client, agent);
    }
    return { agent: agent as unknown as http.Agent, dial };
  };
  const closeAll = () => {
    for (const agent of keepAlive.values()) agent.destroy();
    keepAlive.clear();
    pool.close();
  };
  const dialer: HttpTargetDialer = {
    request: http.request,
    host: target.authority,
    // A retry after a reused stream broke gets a fresh CONNECT of its own, not kept alive.
    connection: (head, fresh) => (fresh ? { agent: undefined, createConnection: createConnection(head) as never } : pooled(head)),
    websocket: { base: `ws://${target.authority}`, connection: (head) => createConnection(head) as never },
    protocols: async () => ["hbone", h2 ? "h2" : "http/1.1"],
    close: closeAll,
  };
  const h2 = protocol === "h2" || protocol === "h2c";
  if (h2) {
    // The session's CONNECT carries no per-request headers: it serves many requests.
    const sessions = new H2Sessions(`http://${target.authority}`, () => pool.connect(target.authority));
    dialer.h2 = async () => ({ session: await sessions.get(), scheme: "http" });
    dialer.close = () => (sessions.close(), closeAll());
  }
  return new HttpTarget(dialer, preserveHost, ["http", "ws", "hbone"]);
}
