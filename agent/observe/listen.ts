// Serves one of the agent's local pages (metrics, the inspector) on the address a flag names.
import http from "node:http";
import type { AddressInfo } from "node:net";
import type { ListenAddress } from "../config.ts";

export interface LocalServer {
  /** http://host:port, with the port actually bound. */
  url: string;
  close(): Promise<void>;
}

/** Listens on `at` with `handler`; rejects with a sentence naming `flag` when the address cannot be bound. */
export function serveLocal(at: ListenAddress, flag: string, handler: http.RequestListener): Promise<LocalServer> {
  const server = http.createServer(handler);
  return new Promise((resolve, reject) => {
    server.once("error", (err: NodeJS.ErrnoException) =>
      reject(new Error(`--${flag} ${at.host}:${at.port}: cannot listen there (${err.code ?? err.message}).`)),
    );
    server.listen(at.port, at.host, () => {
      const { port } = server.address() as AddressInfo;
      const host = at.host.includes(":") ? `[${at.host}]` : at.host;
      resolve({
        url: `http://${host}:${port}`,
        close: () =>
          new Promise<void>((done) => {
            server.closeAllConnections();
            server.close(() => done());
          }),
      });
    });
  });
}
