// The relay-hbone row's mesh proxy, run as its own process (`node --import tsx bench/hbone-proxy.ts`):
// a throwaway PKI (test/helpers/certs.ts) and the in-repo HBONE server (HTTP/2 CONNECT over mutual
// TLS). Prints its port and the PKI's file paths as one JSON line.
import { rmSync } from "node:fs";
import { makePki } from "../test/helpers/certs.ts";
import { startHboneServer } from "../test/helpers/hbone-server.ts";

const pki = makePki();
const server = await startHboneServer(pki);
process.stdout.write(JSON.stringify({ port: server.port, files: pki.files }) + "\n");
process.on(
  "SIGTERM",
  () =>
    void server.stop().finally(() => {
      rmSync(pki.dir, { recursive: true, force: true });
      process.exit(0);
    }),
);
