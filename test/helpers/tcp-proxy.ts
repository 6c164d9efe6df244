// A loopback TCP proxy for tests that need a network path that goes silent: `freeze()` stops
// forwarding on the connections open now, without closing them (like a dead NAT mapping).
import net, { type AddressInfo } from "node:net";

export interface TcpProxy {
  port: number;
  /** http://127.0.0.1:<port> */
  url: string;
  /** Connections accepted so far. */
  accepted: number;
  /** Stops forwarding both ways on every connection open now; later connections flow normally. */
  freeze(): void;
  close(): Promise<void>;
}

interface Pair {
  down: net.Socket;
  up: net.Socket;
  frozen: boolean;
}

/** Forwards every connection on a free loopback port to 127.0.0.1:`targetPort`. */
export async function startTcpProxy(targetPort: number): Promise<TcpProxy> {
  const pairs = new Set<Pair>();
  const server = net.createServer((down) => {
    proxy.accepted++;
    const up = net.connect(targetPort, "127.0.0.1");
    const pair: Pair = { down, up, frozen: false };
    pairs.add(pair);
    const forward = (from: net.Socket, to: net.Socket) =>
      from.on("data", (chunk) => {
        // Frozen: the bytes are swallowed, as on a path that silently drops packets.
        if (!pair.frozen) to.write(chunk);
      });
    forward(down, up);
    forward(up, down);
    const end = () => {
      pairs.delete(pair);
      down.destroy();
      up.destroy();
    };
    for (const s of [down, up]) {
      s.on("error", end);
      s.on("close", end);
    }
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  const proxy: TcpProxy = {
    port,
    url: `http://127.0.0.1:${port}`,
    accepted: 0,
    freeze: () => {
      for (const pair of pairs) pair.frozen = true;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const pair of pairs) {
          pair.down.destroy();
          pair.up.destroy();
        }
        server.close(() => resolve());
      }),
  };
  return proxy;
}
