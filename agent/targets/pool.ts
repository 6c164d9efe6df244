// Kept-alive connections to one plain-HTTP target (TCP, a unix socket, or HBONE CONNECT streams
// to one workload), lent to node:http's ClientRequest in place of an http.Agent: the same reuse,
// with less work per request.
import type http from "node:http";
import net from "node:net";
import type { Duplex } from "node:stream";

/**
 * How a pool opens a connection: a socket at once, or a stream once it is ready (an HBONE
 * CONNECT stream, after the proxy's 200). A rejection fails the request that asked for it.
 * `dial` is what the request's options carried for it (the CONNECT's headers, say).
 */
export type Connector<D> = (dial: D | undefined) => net.Socket | Promise<Duplex>;

/** A server's Keep-Alive `timeout=` hint, in seconds. */
const KEEP_ALIVE_HINT = /(?:^|[\s,])timeout=(\d+)/i;

/** How long before a target's announced keep-alive timeout the pool lets a connection go. */
const HINT_MARGIN_MS = 1000;

/** The target's Keep-Alive header in a response's rawHeaders, or undefined. */
function keepAliveHeader(raw: readonly string[]): string | undefined {
  for (let i = 0; i + 1 < raw.length; i += 2) if (raw[i].length === 10 && raw[i].toLowerCase() === "keep-alive") return raw[i + 1];
  return undefined;
}

/**
 * An agent for ClientRequest (`agent:` option): a free connection is reused newest first, else a
 * new one opens. A connection whose response completed comes back (ClientRequest emits `free`
 * on it); idle for `idleMs`, or for a second less than the target's Keep-Alive `timeout=`, it
 * closes, so the agent drops it before the target does. Idle sockets do not keep the process
 * alive (an idle CONNECT stream cannot be unref'd: its HTTP/2 connection holds the process).
 */
export class ConnectionPool<D = never> {
  /** ClientRequest asks for keep-alive (and frames requests for reuse) when its agent says so. */
  readonly keepAlive = true;
  readonly maxSockets = Number.POSITIVE_INFINITY;
  private readonly idle: Duplex[] = [];
  private readonly all = new Set<Duplex>();
  private readonly connect: Connector<D>;

  /**
   * `connectTo`: TCP or unix socket options, or a Connector. `reusable` may turn an idle
   * connection down when a request would take it (its HTTP/2 connection got GOAWAY, say).
   */
  constructor(
    connectTo: net.NetConnectOpts | Connector<D>,
    private readonly idleMs: number,
    private readonly reusable: (connection: Duplex) => boolean = () => true,
  ) {
    // TCP keep-alive probes on idle connections, as node:http's Agent sets them.
    this.connect =
      typeof connectTo === "function"
        ? connectTo
        : () => net.connect({ ...connectTo, noDelay: true, keepAlive: true, keepAliveInitialDelay: 1000 });
  }

  /** Connections open, idle or in use. */
  get size(): number {
    return this.all.size;
  }

  /** Called by ClientRequest with the request's options: gives `req` a connection. */
  addRequest(req: http.ClientRequest, options?: { dial?: D }): void {
    let socket = this.idle.pop();
    while (socket && (socket.destroyed || !this.reusable(socket))) {
      if (!socket.destroyed) socket.destroy();
      socket = this.idle.pop();
    }
    if (socket) {
      (socket as Partial<net.Socket>).ref?.();
      (req as { reusedSocket: boolean }).reusedSocket = true;
      return req.onSocket(socket as net.Socket);
    }
    const made = this.connect(options?.dial);
    if (!(made instanceof Promise)) return req.onSocket(this.adopt(made) as net.Socket);
    // As node:http's Agent does, the request gets its connection or its error even when it was
    // given up on meanwhile: ClientRequest then ends itself (and a connection it never used
    // comes back through "free" with no exchange, and is closed).
    made.then(
      (connection) => req.onSocket(this.adopt(connection) as net.Socket),
      (err: Error) => (req as unknown as { onSocket(socket: undefined, err: Error): void }).onSocket(undefined, err),
    );
  }

  /** Closes every connection, idle or in use. */
  destroy(): void {
    this.idle.length = 0;
    for (const socket of this.all) socket.destroy();
    this.all.clear();
  }

  /** Takes a new connection into the pool's care: its idle timer, its return, its end. */
  private adopt(socket: Duplex & Partial<Pick<net.Socket, "setTimeout">>): Duplex {
    socket.setTimeout?.(this.idleMs);
    this.all.add(socket);
    socket.on("free", () => this.release(socket));
    // An idle connection has no request to report its errors to; `close` follows.
    socket.on("error", () => {});
    socket.on("timeout", () => {
      if (this.idle.includes(socket)) socket.destroy();
    });
    socket.once("close", () => {
      this.all.delete(socket);
      const at = this.idle.indexOf(socket);
      if (at >= 0) this.idle.splice(at, 1);
    });
    // ClientRequest takes a connection out of the pool for good on an upgrade.
    socket.once("agentRemove", () => this.all.delete(socket));
    return socket;
  }

  /** A connection whose exchange completed and that may be reused. */
  private release(socket: Duplex & Partial<Pick<net.Socket, "setTimeout" | "timeout" | "unref">>): void {
    const req = (socket as { _httpMessage?: (http.ClientRequest & { res?: http.IncomingMessage }) | null })._httpMessage;
    if (!socket.writable || !req?.shouldKeepAlive) return void socket.destroy();
    let timeout = this.idleMs;
    const hint = req.res ? keepAliveHeader(req.res.rawHeaders) : undefined;
    const seconds = hint && KEEP_ALIVE_HINT.exec(hint)?.[1];
    if (seconds) {
      const ms = Number(seconds) * 1000 - HINT_MARGIN_MS;
      if (ms <= 0) return void socket.destroy();
      timeout = Math.min(timeout, ms);
    }
    if (socket.timeout !== timeout) socket.setTimeout?.(timeout);
    // Forget the finished exchange, so the idle connection does not hold it.
    (socket as { _httpMessage?: unknown })._httpMessage = null;
    socket.unref?.();
    this.idle.push(socket);
  }
}
