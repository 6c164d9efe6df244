// Sends a captured request to its target again, through an in-process pair of protocol sessions,
// so the replay takes the same path as a tunnelled request (ingress rules, rewrites, observers).
import { DEFAULT_MAX_FRAME, DEFAULT_WINDOW, ErrorCode, type HeaderList, type Hello, PROTOCOL_VERSION } from "../../src/protocol/frame.ts";
import { decodeRequestHead, encodeRequestHead } from "../../src/protocol/head.ts";
import { Session, type SessionOptions } from "../../src/protocol/session.ts";
import { exchangeOf, type Exchange, type Observer } from "./observer.ts";

/** How long a replayed request may take before it is reset. */
export const REPLAY_TIMEOUT_MS = 30_000;

/** What a replay got: the new exchange's id, and the status or the error. */
export interface ReplayResult {
  id: string;
  status?: number;
  error?: string;
}

/** Replays `x` with `body` (its whole request body) to the target that served it. */
export function replayExchange(observer: Observer, x: Exchange, body: Uint8Array): Promise<ReplayResult> {
  const hello: Hello = {
    v: PROTOCOL_VERSION,
    software: "edge-relay-replay/0",
    id: "replay",
    caps: x.via.caps,
    window: DEFAULT_WINDOW,
    maxFrame: DEFAULT_MAX_FRAME,
  };
  let id = "";
  const { client, close } = localPair(hello, (stream, list, fin) => {
    const head = decodeRequestHead(list);
    const watched = observer.watch(stream, head, x.backend, "replay", x.via, x.id);
    id = exchangeOf(watched)?.id ?? "";
    x.via.serve(watched, head, !fin);
  });
  const head: HeaderList = encodeRequestHead({
    method: x.method,
    path: x.path,
    scheme: "https",
    authority: x.authority,
    headers: x.requestHeaders,
  });
  return new Promise<ReplayResult>((resolve) => {
    let status: number | undefined;
    const stream = client.open(head, body.byteLength === 0, body.byteLength ? body : undefined);
    const timer = setTimeout(() => stream.reset(ErrorCode.Cancel, "the replay took too long"), REPLAY_TIMEOUT_MS);
    const done = (error?: string) => {
      clearTimeout(timer);
      // The last frames go out on the next turns before both sessions are dropped.
      setTimeout(() => {
        close("the replay is over");
      }, 100).unref();
      resolve({ id, ...(status !== undefined ? { status } : {}), ...(error ? { error } : {}) });
    };
    stream.handle({
      onHeaders: (list, fin) => {
        const s = list.find(([name]) => name === ":status");
        if (s) status = Number(s[1]);
        if (fin) done();
      },
      onData: (chunk) => stream.consumed(chunk.byteLength),
      onEnd: () => done(),
      onReset: (reset) => done(reset.message),
    });
  });
}

/**
 * A relay-role session (`client`) and an agent-role one (`server`, handing streams to
 * `onStream`) joined in process: each side's messages reach the other on a later turn, as over a
 * socket, copied as the sender may reuse its buffer. `close` destroys both.
 */
export function localPair(
  hello: Hello,
  onStream: NonNullable<SessionOptions["onStream"]>,
): { client: Session; server: Session; close(reason: string): void } {
  const side = (role: "relay" | "agent", peer: () => Session, streams?: SessionOptions["onStream"]) =>
    new Session({
      role,
      hello,
      remoteHello: hello,
      schedule: (flush) => setImmediate(flush),
      send: (message) => {
        const copy = message.slice();
        setImmediate(() => peer().receive(copy));
      },
      ...(streams ? { onStream: streams } : {}),
    });
  const client: Session = side("relay", () => server);
  const server: Session = side("agent", () => client, onStream);
  return {
    client,
    server,
    close(reason) {
      client.destroy(reason);
      server.destroy(reason);
    },
  };
}
