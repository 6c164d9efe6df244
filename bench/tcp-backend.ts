// The tcp row's backend, run as its own process (`node --import tsx bench/tcp-backend.ts`): a TCP
// echo server on loopback that sends every byte back. Prints its port.
import net from "node:net";

const server = net.createServer({ allowHalfOpen: true, noDelay: true }, (socket) => {
  socket.on("error", () => socket.destroy());
  socket.pipe(socket);
});
server.listen(0, "127.0.0.1", () => {
  process.stdout.write(JSON.stringify({ port: (server.address() as net.AddressInfo).port }) + "\n");
});
process.on("SIGTERM", () => server.close(() => process.exit(0)));
