// A stand-in agent in Node for end-to-end tests: a `ws` WebSocket to the real relay speaking the
// real protocol through the shared Session, answering every request with `200 <answer>`.
// (test/helpers/hub-agent.ts is its counterpart inside workerd.)
import { randomUUID } from "node:crypto";
import WebSocket from "ws";
import { DEFAULT_MAX_FRAME, DEFAULT_WINDOW, PROTOCOL_VERSION } from "../../src/protocol/frame.ts";
import { decodeRequestHead, encodeResponseHead, type RequestHead } from "../../src/protocol/head.ts";
import { Session } from "../../src/protocol/session.ts";
import { within } from "./wait.ts";

export interface FakeAgent {
  ws: WebSocket;
  /** The close the relay sent (or the socket's own end): code and reason. */
  closed: Promise<{ code: number; reason: string }>;
  /** Requests answered so far. */
  served: number;
  /** Stops pinging and drops the socket. */
  stop(): void;
}

export interface FakeAgentOptions {
  /** The hello's `software` field. */
  software?: string;
  /** The body of the 200 answer to a request (default `fake <path>`). */
  answer?: (head: RequestHead) => string;
  /** Sends a text "ping" heartbeat this often; none when unset. */
  pingEveryMs?: number;
}

/**
 * Speaks the agent side of the protocol on an open socket; resolves once the relay's HELLO
 * arrived. Use `fakeAgent` unless the test made the handshake itself.
 */
export async function speakAgent(ws: WebSocket, opts: FakeAgentOptions = {}): Promise<FakeAgent> {
  const closed = new Promise<{ code: number; reason: string }>((resolve) => {
    if (ws.readyState === WebSocket.CLOSED) resolve({ code: 1006, reason: "" });
    ws.on("close", (code, reason) => resolve({ code, reason: reason.toString() }));
  });
  let timer: NodeJS.Timeout | undefined;
  const agent: FakeAgent = {
    ws,
    closed,
    served: 0,
    stop: () => {
      clearInterval(timer);
      ws.terminate();
    },
  };
  const answer = opts.answer ?? ((head: RequestHead) => `fake ${head.path}`);
  const ready = new Promise<void>((resolve) => {
    const session = new Session({
      role: "agent",
      hello: {
        v: PROTOCOL_VERSION,
        software: opts.software ?? "fake-agent",
        id: randomUUID(),
        caps: ["http"],
        window: DEFAULT_WINDOW,
        maxFrame: DEFAULT_MAX_FRAME,
      },
      send: (message) => ws.send(message),
      onHello: () => resolve(),
      onStream: (stream, list) => {
        const head = decodeRequestHead(list);
        agent.served++;
        stream.sendHeaders(encodeResponseHead({ status: 200, headers: [["content-type", "text/plain"]] }));
        void stream.write(new TextEncoder().encode(answer(head))).then(() => stream.end());
      },
    });
    ws.on("message", (data, isBinary) => {
      if (isBinary) session.receive(data as Buffer);
    });
    ws.on("close", () => session.destroy());
    session.sendHello();
  });
  await within(ready, "the relay's HELLO");
  if (opts.pingEveryMs) {
    timer = setInterval(() => ws.readyState === WebSocket.OPEN && ws.send("ping"), opts.pingEveryMs);
    void closed.then(() => clearInterval(timer));
  }
  return agent;
}

/** Connects a fake agent for `backend` to `relay` with a fresh token; resolves once it is ready. */
export async function fakeAgent(
  relay: { url: string; token(backend: string): Promise<string> },
  backend: string,
  opts: FakeAgentOptions = {},
): Promise<FakeAgent> {
  const url = `${relay.url.replace(/^http/, "ws")}/_relay/connect?backend=${backend}`;
  const ws = new WebSocket(url, { headers: { authorization: `Bearer ${await relay.token(backend)}` }, perMessageDeflate: false });
  await within(
    new Promise((resolve, reject) => {
      ws.once("open", resolve);
      ws.once("error", reject);
    }),
    "the fake agent's socket to open",
  );
  return speakAgent(ws, opts);
}
