// Loopback ports for tests: one nothing listens on, to start a server on later or to be refused.
import net from "node:net";

/** A loopback port nothing listens on now (bound to port 0, read back, released). */
export async function freePort(): Promise<number> {
  const probe = net.createServer();
  await new Promise<void>((resolve) => probe.listen(0, "127.0.0.1", resolve));
  const { port } = probe.address() as net.AddressInfo;
  await new Promise((resolve) => probe.close(resolve));
  return port;
}
