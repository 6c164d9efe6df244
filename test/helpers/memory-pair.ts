// A relay-role and an agent-role Session joined by a transport. `linkedPair` is the one
// implementation (sessions, hello exchange, recording, tap, inject, closing); a Link only moves
// bytes and close notices between the sides. `memoryPair` uses an in-memory link that delivers
// each message asynchronously, like a socket; ws-pair.ts a real WebSocket. The session
// conformance suite runs over any PairFactory.
import { decodeMessage } from "../../src/protocol/codec.ts";
import { DEFAULT_MAX_FRAME, DEFAULT_WINDOW, PROTOCOL_VERSION, type Frame, type Hello } from "../../src/protocol/frame.ts";
import { Session, type SessionOptions } from "../../src/protocol/session.ts";

export type Side = "relay" | "agent";

/** Callbacks a test may give either side; the pair wires the hello exchange and closing itself. */
export type SessionHooks = Pick<SessionOptions, "onHello" | "onStream" | "onGoAway" | "onPingAck" | "onError">;

export interface PairOptions {
  relayHello?: Partial<Hello>;
  agentHello?: Partial<Hello>;
  relay?: SessionHooks;
  agent?: SessionHooks;
  /** Exchange hellos before returning (default true). When false, nothing has been sent yet. */
  handshake?: boolean;
}

/** One binary message as it left a side ("send") or reached the other ("deliver"). */
export interface WireEvent {
  kind: "send" | "deliver";
  from: Side;
  bytes: Uint8Array;
  /** Decoded frames; empty for bytes that do not decode (injected garbage). */
  frames: Frame[];
}

/** How the transport closed: which side closed it, with what code and reason. */
export interface CloseInfo {
  by: Side;
  code: number;
  reason: string;
}

export interface Pair {
  readonly relay: Session;
  readonly agent: Session;
  /** Every message each side sent, in order. */
  readonly sent: Record<Side, WireEvent[]>;
  /** Called synchronously on every send and every delivery. */
  tap(listener: (event: WireEvent) => void): void;
  /** Delivers raw bytes to `to`, in order with real traffic, as if the other side had sent them. */
  inject(to: Side, bytes: Uint8Array): void;
  /** Sends the agent's HELLO and resolves once both hellos have arrived. */
  handshake(): Promise<void>;
  /** Resolves when the transport closes (a side's onError, or `close`). */
  readonly closed: Promise<CloseInfo>;
  /** Closes the transport from one side; the other side's session is destroyed when its end sees the close. */
  close(by: Side, code?: number, reason?: string): void;
}

export type PairFactory = (options?: PairOptions) => Promise<Pair>;

const other = (side: Side): Side => (side === "relay" ? "agent" : "relay");

function decodeQuietly(bytes: Uint8Array): Frame[] {
  try {
    return decodeMessage(bytes, 0x7fffffff);
  } catch {
    return [];
  }
}

/** Moves messages and close notices between the two sides; everything else is the pair's. */
export interface Link {
  /** Sends one binary message from `from` to the other side. */
  send(from: Side, bytes: Uint8Array): void;
  /** Closes the transport from `by` with a close code and reason. */
  close(by: Side, code: number, reason: string): void;
  /** Releases what the link holds (sockets, servers); see `disposePairs`. */
  dispose?(): Promise<void>;
}

/** What a link reports to its pair. */
export interface LinkEvents {
  /** A message arrived at `to`. */
  deliver(to: Side, bytes: Uint8Array): void;
  /** `at`'s end of the transport saw it close, with this code and reason. */
  closed(at: Side, code: number, reason: string): void;
}

export type LinkFactory = (events: LinkEvents) => Link | Promise<Link>;

/** Disposers of pairs whose link holds resources, until `disposePairs` runs them. */
const undisposed = new Set<() => Promise<void>>();

/** Destroys every pair made since the last call and releases its link (call it in afterEach). */
export async function disposePairs(): Promise<void> {
  const all = [...undisposed];
  undisposed.clear();
  await Promise.all(all.map((dispose) => dispose()));
}

/** Two sessions joined by the link `connect` makes. */
export async function linkedPair(connect: LinkFactory, options: PairOptions = {}): Promise<Pair> {
  const listeners: Array<(event: WireEvent) => void> = [];
  const sent: Record<Side, WireEvent[]> = { relay: [], agent: [] };
  let closedInfo: CloseInfo | undefined;
  let disposed = false;
  let resolveClosed!: (info: CloseInfo) => void;
  const closed = new Promise<CloseInfo>((resolve) => (resolveClosed = resolve));
  let relayHello!: () => void;
  let agentHello!: () => void;
  const helloArrived = {
    relay: new Promise<void>((resolve) => (relayHello = resolve)),
    agent: new Promise<void>((resolve) => (agentHello = resolve)),
  };

  const emit = (event: WireEvent) => {
    for (const l of listeners) l(event);
  };

  const link = await connect({
    deliver: (to, bytes) => {
      if (disposed) return;
      emit({ kind: "deliver", from: other(to), bytes, frames: decodeQuietly(bytes) });
      sessions[to].receive(bytes);
    },
    closed: (at, code, reason) => {
      if (disposed) return;
      // No closedInfo: the transport closed under the pair (a dropped socket), not through `close`.
      closedInfo ??= { by: other(at), code, reason };
      sessions[at].destroy(`the peer closed the tunnel (${code} ${reason})`);
      if (at !== closedInfo.by) resolveClosed({ by: closedInfo.by, code, reason });
    },
  });

  /** Sends a copy of `bytes` from `from`, recorded unless injected. */
  const transmit = (from: Side, bytes: Uint8Array, record: boolean) => {
    if (closedInfo || disposed) return;
    const copy = bytes.slice();
    if (record) {
      const event: WireEvent = { kind: "send", from, bytes: copy, frames: decodeQuietly(copy) };
      sent[from].push(event);
      emit(event);
    }
    link.send(from, copy);
  };

  const close = (by: Side, code = 1000, reason = "") => {
    if (closedInfo || disposed) return;
    closedInfo = { by, code, reason };
    sessions[by].destroy("the transport closed");
    link.close(by, code, reason);
  };

  const hello = (side: Side): Hello => ({
    v: PROTOCOL_VERSION,
    software: `edge-relay-test-${side}/0`,
    id: `${side}-1`,
    caps: ["http"],
    window: DEFAULT_WINDOW,
    maxFrame: DEFAULT_MAX_FRAME,
    ...(side === "relay" ? options.relayHello : options.agentHello),
  });

  const make = (side: Side): Session => {
    const hooks = options[side] ?? {};
    return new Session({
      role: side,
      hello: hello(side),
      send: (message) => transmit(side, message, true),
      onHello: (h) => {
        // The relay answers the agent's hello with its own (README "Hello").
        if (side === "relay") sessions.relay.sendHello();
        (side === "relay" ? relayHello : agentHello)();
        hooks.onHello?.(h);
      },
      onStream: hooks.onStream,
      onGoAway: hooks.onGoAway,
      onPingAck: hooks.onPingAck,
      onError: (error) => {
        hooks.onError?.(error);
        close(side, error.closeCode, error.message);
      },
    });
  };

  const sessions: Record<Side, Session> = { relay: make("relay"), agent: make("agent") };
  if (link.dispose) {
    const dispose = link.dispose.bind(link);
    undisposed.add(async () => {
      disposed = true;
      sessions.relay.destroy("the test is over");
      sessions.agent.destroy("the test is over");
      await dispose();
    });
  }

  const pair: Pair = {
    relay: sessions.relay,
    agent: sessions.agent,
    sent,
    closed,
    close,
    tap: (listener) => void listeners.push(listener),
    inject: (to, bytes) => transmit(other(to), bytes, false),
    handshake: async () => {
      sessions.agent.sendHello();
      await Promise.all([helloArrived.relay, helloArrived.agent]);
    },
  };
  if (options.handshake ?? true) await pair.handshake();
  return pair;
}

/** An in-memory link: each message is delivered on a later macrotask; a close drops what is still in flight. */
const memoryLink: LinkFactory = (events) => {
  let closed = false;
  return {
    send: (from, bytes) => setImmediate(() => closed || events.deliver(other(from), bytes)),
    close: (by, code, reason) => {
      closed = true;
      setImmediate(() => events.closed(other(by), code, reason));
    },
  };
};

/** Two sessions over an in-memory transport. */
export const memoryPair: PairFactory = (options) => linkedPair(memoryLink, options);
