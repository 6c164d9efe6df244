// A relay-role and an agent-role Session joined by an in-memory transport that delivers each
// message asynchronously, like a socket. The session conformance suite runs over any PairFactory.
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
  /** Closes the transport from one side; the other side's session is destroyed on delivery. */
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

/** Two sessions over an in-memory transport: each message is copied and delivered on a later macrotask. */
export const memoryPair: PairFactory = async (options = {}) => {
  const listeners: Array<(event: WireEvent) => void> = [];
  const sent: Record<Side, WireEvent[]> = { relay: [], agent: [] };
  let closedInfo: CloseInfo | undefined;
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

  /** Delivers `bytes` from `from` to the other side on a later macrotask, as a socket would. */
  const transmit = (from: Side, bytes: Uint8Array, record: boolean) => {
    if (closedInfo) return;
    const copy = bytes.slice();
    const event: WireEvent = { kind: "send", from, bytes: copy, frames: decodeQuietly(copy) };
    if (record) {
      sent[from].push(event);
      emit(event);
    }
    setImmediate(() => {
      if (closedInfo) return;
      emit({ ...event, kind: "deliver" });
      sessions[other(from)].receive(copy);
    });
  };

  const close = (by: Side, code = 1000, reason = "") => {
    if (closedInfo) return;
    closedInfo = { by, code, reason };
    sessions[by].destroy("the transport closed");
    setImmediate(() => {
      sessions[other(by)].destroy(`the peer closed the tunnel (${code} ${reason})`);
      resolveClosed(closedInfo!);
    });
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

  const sessions: Record<Side, Session> = { relay: undefined!, agent: undefined! };
  sessions.relay = make("relay");
  sessions.agent = make("agent");

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
};
