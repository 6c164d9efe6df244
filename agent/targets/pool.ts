// Kept-alive connections to one plain-HTTP target (TCP or a unix socket), lent to node:http's
// ClientRequest in place of an http.Agent: the same reuse, with less work per request.
import type http from "node:http";
import net from "node:net";

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
 * closes, so the agent drops it before the target does. Idle connections do not keep the process
 * alive.
 */
export class ConnectionPool {
  /** ClientRequest asks for keep-alive (and frames requests for reuse) when its agent says so. */
  readonly keepAlive = true;
  readonly maxSockets = Number.POSITIVE_INFINITY;
  private readonly idle: net.Socket[] = [];
  private readonly all = new Set<net.Socket>();

  constructor(
    private readonly connectTo: net.NetConnectOpts,
    private readonly idleMs: number,
  ) {}

  /** Connections open, idle or in use. */
  get size(): number {
    return this.all.size;
  }

  /** Called by ClientRequest: gives `req` a connection. */
  addRequest(req: http.ClientRequest): void {
    let socket = this.idle.pop();
    while (socket?.destroyed) socket = this.idle.pop();
    if (socket) {
      socket.ref();
      (req as { reusedSocket: boolean }).reusedSocket = true;
    } else socket = this.open();
    req.onSocket(socket);
  }

  /** Closes every connection, idle or in use. */
  destroy(): void {
    this.idle.length = 0;
    for (const socket of this.all) socket.destroy();
    this.all.clear();
  }

  private open(): net.Socket {
    // TCP keep-alive probes on idle connections, as node:http's Agent sets them.
    const socket = net.connect({ ...this.connectTo, noDelay: true, keepAlive: true, keepAliveInitialDelay: 1000 });
    socket.setTimeout(this.idleMs);
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
  private release(socket: net.Socket): void {
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
    if (socket.timeout !== timeout) socket.setTimeout(timeout);
    // Forget the finished exchange, so the idle connection does not hold it.
    (socket as { _httpMessage?: unknown })._httpMessage = null;
    socket.unref();
    this.idle.push(socket);
  }
}
