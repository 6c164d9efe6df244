// A relay-role and an agent-role Session over a real WebSocket in Node (`ws`): a server on
// 127.0.0.1 whose accepted socket carries the relay, a client socket carrying the agent. Binary
// messages only, no compression. Each pair has its own server; `disposePairs` closes it.
import { once } from "node:events";
import type { AddressInfo } from "node:net";
import { WebSocket, WebSocketServer } from "ws";
import { closeReason } from "../../src/protocol/messages.ts";
import { linkedPair, type Link, type LinkEvents, type PairFactory, type Side } from "./memory-pair.ts";

async function wsLink(events: LinkEvents): Promise<Link> {
  const server = new WebSocketServer({ host: "127.0.0.1", port: 0, perMessageDeflate: false });
  await once(server, "listening");
  const { port } = server.address() as AddressInfo;
  const client = new WebSocket(`ws://127.0.0.1:${port}`, { perMessageDeflate: false });
  const [[accepted]] = (await Promise.all([once(server, "connection"), once(client, "open")])) as [[WebSocket], unknown];
  const sockets: Record<Side, WebSocket> = { relay: accepted, agent: client };
  for (const side of ["relay", "agent"] as const) {
    const socket = sockets[side];
    socket.binaryType = "nodebuffer";
    socket.on("message", (data, isBinary) => {
      if (!isBinary) throw new Error(`the ${side}'s socket got a text message`);
      const buffer = data as Buffer;
      events.deliver(side, new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength));
    });
    socket.on("close", (code, reason) => events.closed(side, code, reason.toString()));
  }
  return {
    send: (from, bytes) => sockets[from].send(bytes, { binary: true }),
    // A close reason is at most 123 bytes; `ws` throws on a longer one.
    close: (by, code, reason) => sockets[by].close(code, closeReason(reason)),
    dispose: async () => {
      client.terminate();
      accepted.terminate();
      await new Promise<void>((resolve, reject) => server.close((err) => (err ? reject(err) : resolve())));
    },
  };
}

/** Two sessions over a real WebSocket on loopback. */
export const wsPair: PairFactory = (options) => linkedPair(wsLink, options);
