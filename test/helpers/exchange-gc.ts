// `node --import tsx --expose-gc --trace-gc --trace-gc-nvp test/helpers/exchange-gc.ts <url> <seconds> [ingress]`:
// small GETs through the agent's HTTP target and a pair of tunnel sessions in this one process
// (relay side and agent side, frames passed between them in memory), 32 in flight, with a full
// collection every second. With `ingress`, through a config file's rule instead: a path prefix
// stripped, a request header set and a response header set. V8 prints a line per collection; the last line this prints is JSON:
// the requests answered while measuring. test/agent/old-generation.test.ts reads both.
import { DEFAULT_MAX_FRAME, DEFAULT_WINDOW, type Hello, PROTOCOL_VERSION } from "../../src/protocol/frame.ts";
import { decodeRequestHead, encodeRequestHead } from "../../src/protocol/head.ts";
import { Session } from "../../src/protocol/session.ts";
import { mintToken } from "../../src/auth.ts";
import { buildAgentConfig } from "../../agent/config.ts";
import { IngressTable, createTarget } from "../../agent/target.ts";

const [url, seconds, via] = [process.argv[2], Number(process.argv[3] ?? 3), process.argv[4]];
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error("run with --expose-gc");

const hello = (software: string): Hello => ({
  v: PROTOCOL_VERSION,
  software,
  id: software,
  caps: [],
  window: DEFAULT_WINDOW,
  maxFrame: DEFAULT_MAX_FRAME,
});
const RULES = `relay: http://127.0.0.1:1
token: ${await mintToken("exchange-gc", "gc")}
ingress:
  - backend: gc
    path: /api/
    stripPrefix: true
    service: ${url}
    headers:
      request: { set: { x-env: gc } }
      response: { set: { x-tag: gc } }
`;
const target =
  via === "ingress"
    ? new IngressTable(buildAgentConfig({ config: "/edge.yaml" }, {}, () => RULES).rules, () => {}).forBackend("gc")
    : createTarget({ target: { kind: "http", url: new URL(url) }, preserveHost: false, originProtocol: "auto" });
const path = via === "ingress" ? "/api/small" : "/small";
/** One side of the tunnel; its messages reach `peer()` on a later turn, as through a socket. */
function side(role: "relay" | "agent", peer: () => Session, more: Partial<ConstructorParameters<typeof Session>[0]>): Session {
  return new Session({
    role,
    hello: hello(role),
    remoteHello: hello(role === "relay" ? "agent" : "relay"),
    send: (m) => setImmediate(() => peer().receive(m.slice())),
    schedule: (flush) => setImmediate(flush),
    ...more,
  });
}
const relay: Session = side("relay", () => agent, { scheduleAlone: (flush) => queueMicrotask(flush), headsPerMessage: 8 });
const agent: Session = side("agent", () => relay, { onStream: (stream, list, fin) => target.serve(stream, decodeRequestHead(list), !fin) });

function get(): Promise<void> {
  return new Promise((done, fail) => {
    const stream = relay.open(
      encodeRequestHead({ method: "GET", path, scheme: "http", authority: "gc.example", headers: [["user-agent", "gc"]] }),
      true,
    );
    let status = "";
    stream.handle({
      onHeaders: (list) => (status = list[0][1]),
      onData: (chunk) => stream.consumed(chunk.byteLength),
      onEnd: () => (status === "200" ? done() : fail(new Error(`status ${status}`))),
      onReset: fail,
    });
  });
}

let answered = 0;
async function load(ms: number): Promise<void> {
  const until = Date.now() + ms;
  const worker = async () => {
    while (Date.now() < until) {
      await get();
      answered++;
    }
  };
  await Promise.all(Array.from({ length: 32 }, worker));
}

await load(1000);
gc();
answered = 0;
console.log("=== measuring");
const collect = setInterval(gc, 1000);
await load(seconds * 1000);
clearInterval(collect);
console.log(JSON.stringify({ requests: answered }));
process.exit(0);
