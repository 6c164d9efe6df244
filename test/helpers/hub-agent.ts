// Plays an agent against the BackendHub Durable Object inside workerd: a real WebSocket through
// the real Worker, a real Session and real frames. Shared by the workerd tests in test/relay/.
import { runInDurableObject } from "cloudflare:test";
import { env, exports } from "cloudflare:workers";
import { expect } from "vitest";
import { mintToken } from "../../src/auth.ts";
import type { BackendHub } from "../../src/hub/backend-hub.ts";
import { DEFAULT_MAX_FRAME, DEFAULT_WINDOW, FrameType, type HeaderList, type Hello } from "../../src/protocol/frame.ts";
import { decodeRequestHead, encodeResponseHead, type RequestHead } from "../../src/protocol/head.ts";
import { Session, type Stream } from "../../src/protocol/session.ts";
import { concat } from "../../src/protocol/messages.ts";
import { encodeFrame } from "../../src/protocol/codec.ts";
import { within } from "./wait.ts";

/** Kept for the workerd tests that import it from here; the one definition is in ./wait.ts. */
export { within };
export const BASE = "http://relay.test";

/** A fresh backend name per test, so tests never share a Durable Object. */
export function backendName(): string {
  return `t-${crypto.randomUUID().slice(0, 8)}`;
}

export function stubFor(backend: string): DurableObjectStub<BackendHub> {
  return env.BACKEND_HUB.get(env.BACKEND_HUB.idFromName(backend));
}

/** A stream the test agent accepted: its request head, and the whole body once it ended. */
export interface Incoming {
  stream: Stream;
  head: RequestHead;
  body: Promise<Uint8Array>;
}

export interface TestAgent {
  ws: WebSocket;
  session: Session;
  /** The hello this agent sent. */
  hello: Hello;
  /** The relay's HELLO. */
  relayHello: Promise<Hello>;
  /** The close the relay sent: code and reason. */
  closed: Promise<{ code: number; reason: string }>;
  /** Text messages received (heartbeat answers); `nextText()` waits for the next one. */
  texts: string[];
  nextText(): Promise<string>;
  /** Payloads of PING ACKs, as they arrive. */
  onPingAck?: (payload: Uint8Array) => void;
  /** Called after each stream the relay opened was queued in `incoming`. */
  onIncoming?: () => void;
  /** Streams the relay opened, in order; `next()` waits for the next one. */
  incoming: Incoming[];
  /** Every binary message the relay sent, as received. */
  messages: Uint8Array[];
  next(): Promise<Incoming>;
}

/** Opens the agent WebSocket without speaking the protocol yet. */
export async function openSocket(backend: string): Promise<WebSocket> {
  const token = await mintToken(env.RELAY_SECRET, backend);
  const resp = await exports.default.fetch(`${BASE}/_relay/connect?backend=${backend}`, {
    headers: { Upgrade: "websocket", Authorization: `Bearer ${token}` },
  });
  expect(resp.status).toBe(101);
  const ws = resp.webSocket!;
  expect(ws).toBeTruthy();
  ws.accept();
  // At this compatibility date a client WebSocket's binaryType defaults to "blob" (the standard).
  ws.binaryType = "arraybuffer";
  return ws;
}

/** Plays the agent: WebSocket, Session, HELLO; every opened stream is queued in `incoming`. */
export async function connectAgent(
  backend: string,
  opts: { hello?: Partial<Hello>; sendHello?: boolean; ordered?: boolean } = {},
): Promise<TestAgent> {
  const ws = await openSocket(backend);
  const incoming: Incoming[] = [];
  const waiters: Array<() => void> = [];
  const texts: string[] = [];
  const messages: Uint8Array[] = [];
  const textWaiters: Array<(text: string) => void> = [];
  const hello: Hello = {
    v: 1,
    software: "test-agent/0",
    id: `agent-${crypto.randomUUID()}`,
    caps: ["http"],
    window: DEFAULT_WINDOW,
    maxFrame: DEFAULT_MAX_FRAME,
    ...opts.hello,
  };
  let onRelayHello!: (h: Hello) => void;
  const relayHello = new Promise<Hello>((resolve) => (onRelayHello = resolve));
  const closed = new Promise<{ code: number; reason: string }>((resolve) =>
    ws.addEventListener("close", (ev) => resolve({ code: ev.code, reason: ev.reason })),
  );
  const ordered = opts.ordered ? orderedSender(ws) : undefined;
  const session = new Session({
    role: "agent",
    hello,
    send: ordered ? ordered.send : (m) => ws.send(m),
    onHello: onRelayHello,
    onPingAck: (payload) => {
      if (!ordered?.acked(payload)) agent.onPingAck?.(payload);
    },
    onStream: (stream, list) => {
      const chunks: Uint8Array[] = [];
      const body = new Promise<Uint8Array>((resolve, reject) => {
        stream.onData = (chunk) => {
          chunks.push(chunk.slice());
          stream.consumed(chunk.byteLength);
        };
        stream.onEnd = () => resolve(concat(chunks));
        stream.onReset = reject;
      });
      body.catch(() => {});
      incoming.push({ stream, head: decodeRequestHead(list), body });
      for (const w of waiters.splice(0)) w();
      agent.onIncoming?.();
    },
  });
  ws.addEventListener("message", (ev) => {
    if (typeof ev.data === "string") {
      texts.push(ev.data);
      textWaiters.shift()?.(ev.data);
    } else {
      messages.push(new Uint8Array(ev.data as ArrayBuffer));
      session.receive(new Uint8Array(ev.data as ArrayBuffer));
    }
  });
  closed.then(() => session.destroy());
  if (opts.sendHello !== false) session.sendHello();
  let taken = 0;
  const next = async (): Promise<Incoming> => {
    while (incoming.length <= taken) await within(new Promise<void>((r) => waiters.push(r)), "a stream from the relay");
    return incoming[taken++];
  };
  const nextText = () => within(new Promise<string>((resolve) => textWaiters.push(resolve)), "a text message");
  const agent: TestAgent = { ws, session, hello, relayHello, closed, texts, nextText, incoming, messages, next };
  return agent;
}

/** First payload byte of the PINGs orderedSender adds; a test's own PINGs use others. */
const ORDER_PING = 0xa5;

/**
 * Sends an agent's messages one at a time: each carries a PING after its frames, and the next
 * leaves once the relay has answered it, so the object has handled the message before. The
 * runtime's in-process client may hand the object a burst of sends out of order (a DATA frame
 * before its stream's HEADERS, which the relay must refuse as a protocol error); over TCP the
 * order holds (test/e2e/websocket.test.ts).
 */
function orderedSender(ws: WebSocket) {
  const queue: Uint8Array[] = [];
  let waiting = -1;
  let count = 0;
  const next = () => {
    const message = queue.shift();
    if (!message || ws.readyState !== WebSocket.OPEN) return;
    waiting = count++ & 0xffff;
    const payload = Uint8Array.of(ORDER_PING, 0, 0, 0, 0, 0, waiting >> 8, waiting & 0xff);
    ws.send(concat([message, encodeFrame({ type: FrameType.Ping, flags: 0, streamId: 0, payload })]));
  };
  return {
    send(message: Uint8Array) {
      queue.push(message);
      if (waiting < 0) next();
    },
    /** Whether `payload` answers this sender's PING (then the next message leaves). */
    acked(payload: Uint8Array): boolean {
      if (payload[0] !== ORDER_PING || ((payload[6] << 8) | payload[7]) !== waiting) return false;
      waiting = -1;
      next();
      return true;
    },
  };
}

/** A connected agent whose hello exchange is complete (`ordered`: its messages one at a time, orderedSender). */
export async function readyAgent(backend: string, hello?: Partial<Hello>, opts: { ordered?: boolean } = {}): Promise<TestAgent> {
  const agent = await connectAgent(backend, { hello, ordered: opts.ordered });
  await within(agent.relayHello, "the relay's HELLO");
  return agent;
}

/** Answers a stream with a status, headers and an optional body. */
export async function respond(stream: Stream, status: number, headers: HeaderList = [], body?: string | Uint8Array): Promise<void> {
  if (body === undefined) return stream.sendHeaders(encodeResponseHead({ status, headers }), true);
  stream.sendHeaders(encodeResponseHead({ status, headers }));
  await stream.write(typeof body === "string" ? new TextEncoder().encode(body) : body);
  await stream.end();
}

/** Sends a PING and waits for its ACK: every frame sent before it has been processed. */
export function roundTrip(agent: TestAgent): Promise<void> {
  const payload = crypto.getRandomValues(new Uint8Array(8));
  const acked = new Promise<void>((resolve) => {
    agent.onPingAck = (p) => {
      if (p.every((b, i) => b === payload[i])) resolve();
    };
  });
  agent.session.ping(payload);
  return within(acked, "the PING ACK");
}

export function publicFetch(backend: string, path = "/", init?: RequestInit): Promise<Response> {
  return exports.default.fetch(`${BASE}/r/${backend}${path}`, init);
}

export async function expectError(resp: Response, status: number, error: string, backend: string): Promise<void> {
  expect(resp.status).toBe(status);
  expect(resp.headers.get("content-type")).toMatch(/^application\/json/);
  const body = (await resp.json()) as { error: string; backend?: string; message: string };
  expect(body).toMatchObject({ error, backend });
  expect(body.message).toEqual(expect.any(String));
}

/** Closes an agent socket and waits for the relay's answering close. */
export async function closeAgent(agent: TestAgent): Promise<void> {
  try {
    agent.ws.close(1000, "test done");
  } catch {
    // Already closed.
  }
  await within(agent.closed, "the tunnel close").catch(() => {});
}

/** Binary messages the object behind a stub took from its sockets of one tag, in the order its handler got them. */
export interface MessageTap {
  /** Each message, and whether its socket was still open once the object had handled it. */
  taken: Array<{ bytes: Uint8Array; open?: boolean }>;
  /** Resolves once `count` messages were handled, or as soon as a socket is no longer open after one. */
  handled(count: number, what: string): Promise<void>;
}

/**
 * Taps the WebSocket message handler of the object behind `stub`, which still runs unchanged, for
 * the messages of sockets tagged `tag` (TUNNEL_TAG, CLIENT_TAG). The runtime's in-process client
 * may hand the object a burst of sends out of order, so a test that needs an order either compares
 * with the order tapped here or sends one message at a time and waits for it to be handled. The
 * tap lasts as long as the instance: an eviction drops it.
 */
export async function tapMessages(stub: DurableObjectStub<BackendHub>, tag: string): Promise<MessageTap> {
  const taken: MessageTap["taken"] = [];
  const waiters: Array<() => void> = [];
  const done = (count: number) => taken.filter((t) => t.open !== undefined).length >= count || taken.some((t) => t.open === false);
  await runInDurableObject(stub, (instance, state) => {
    const handler = instance.webSocketMessage.bind(instance);
    instance.webSocketMessage = async (ws, message) => {
      const tapped = typeof message !== "string" && state.getTags(ws).includes(tag);
      const entry: MessageTap["taken"][number] | undefined = tapped ? { bytes: new Uint8Array(message.slice(0)) } : undefined;
      if (entry) taken.push(entry);
      try {
        await handler(ws, message);
      } finally {
        if (entry) entry.open = ws.readyState === WebSocket.OPEN;
        for (const w of waiters.splice(0)) w();
      }
    };
  });
  // The wait runs inside the object and its answer comes back as a response: a promise settled
  // by the object's handler would resume the test in the object's I/O context.
  const handled = (count: number, what: string) =>
    within(
      runInDurableObject(stub, async () => {
        while (!done(count)) await new Promise<void>((r) => waiters.push(r));
      }),
      what,
    );
  return { taken, handled };
}
