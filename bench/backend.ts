// The benchmark's backend, run as its own process (`node --import tsx bench/backend.ts`): the test
// backend (pattern /bytes, hashing /echo) plus /small, /hold?ms=, /stats and a WebSocket echo on
// any path. Prints its port.
import { WebSocketServer } from "ws";
import { BENCH_SMALL_BODY } from "./do-responder.ts";
import { startBackend } from "../test/helpers/backend.ts";

const backend = await startBackend();
let inFlight = 0;
let maxInFlight = 0;

backend.route("/small", (_req, res) => {
  res.writeHead(200, { "content-type": "text/plain", "content-length": Buffer.byteLength(BENCH_SMALL_BODY) });
  res.end(BENCH_SMALL_BODY);
});
// Answers after ?ms= milliseconds: many of these at once prove streams were concurrent.
backend.route("/hold", (req, res) => {
  const ms = Number(new URL(req.url!, "http://x").searchParams.get("ms") ?? 1000);
  maxInFlight = Math.max(maxInFlight, ++inFlight);
  setTimeout(() => {
    inFlight--;
    res.writeHead(200, { "content-type": "text/plain" });
    res.end(BENCH_SMALL_BODY);
  }, ms);
});
// The most /hold requests seen at once since the last /stats.
backend.route("/stats", (_req, res) => {
  res.writeHead(200, { "content-type": "application/json" });
  res.end(JSON.stringify({ maxInFlight, webSockets: wss.clients.size }));
  maxInFlight = inFlight;
});

const wss = new WebSocketServer({ noServer: true });
backend.server.on("upgrade", (req, socket, head) =>
  wss.handleUpgrade(req, socket, head, (ws) => ws.on("message", (data, binary) => ws.send(data, { binary }))),
);

process.stdout.write(JSON.stringify({ port: backend.port }) + "\n");
process.on("SIGTERM", () => void backend.stop().then(() => process.exit(0)));
