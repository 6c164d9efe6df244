// Whether a port can be listened on, and if not, who holds it: npm start and npm run serve say so
// in one line instead of starting a runtime that fails on it.
import net from "node:net";

/**
 * Why `host`:`port` cannot be listened on (something holds it), or undefined when it is free.
 * `command` names what the user ran, for when another relay holds it.
 */
export async function portTaken(port: number, host = "127.0.0.1", command = "npm start"): Promise<string | undefined> {
  const server = net.createServer();
  const error = await new Promise<NodeJS.ErrnoException | undefined>((resolve) => {
    server.once("error", resolve);
    server.listen(port, host, () => resolve(undefined));
  });
  if (!error) {
    await new Promise<void>((resolve) => server.close(() => resolve()));
    return undefined;
  }
  if (error.code !== "EADDRINUSE") return `${error.code ?? error.message}`;
  const loopback = host === "0.0.0.0" || host === "::" ? "127.0.0.1" : host.includes(":") ? `[${host}]` : host;
  const health = fetch(`http://${loopback}:${port}/_relay/health`, { signal: AbortSignal.timeout(2000) });
  const relay = await health.then(
    (res) => res.ok,
    () => false,
  );
  return relay ? `an edge-relay relay already answers there (another \`${command}\`?)` : "another program listens there";
}
