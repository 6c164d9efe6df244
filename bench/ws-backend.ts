// The ws row's backend, run as its own process (`node --import tsx bench/ws-backend.ts`): the
// tests' `ws` echo server (test/helpers/ws-backend.ts, path /echo). Prints its port.
import { startWsBackend } from "../test/helpers/ws-backend.ts";

const backend = await startWsBackend();
// The helper keeps every connection for the tests' assertions; the bench does not need them.
setInterval(() => {
  for (const [id, c] of backend.conns) if (c.ws.readyState > 1) backend.conns.delete(id);
}, 1000).unref();
process.stdout.write(JSON.stringify({ port: backend.port }) + "\n");
process.on("SIGTERM", () => void backend.stop().then(() => process.exit(0)));
