// Session conformance suite (README "Hello", "Streams", "Flow"): a relay-role and an agent-role
// Session talking over a transport. Runs over every PairFactory in TRANSPORTS.
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { afterEach, describe, expect, it } from "vitest";
import {
  decodeError,
  decodeMessage,
  decodeU32,
  encodeError,
  encodeFrame,
  encodeFrames,
  encodeHeaderBlock,
  encodeHello,
  encodeU32,
} from "../../src/protocol/codec.ts";
import {
  ErrorCode,
  Flag,
  FrameType,
  MAX_MESSAGE_BYTES,
  type ProtocolError,
  TunnelClose,
  type Frame,
  type HeaderList,
  type Hello,
} from "../../src/protocol/frame.ts";
import {
  GATHER_BYTES,
  PING_ACK_BURST,
  PING_ACKS_PER_SECOND,
  Session,
  StreamReset,
  type SessionOptions,
  type Stream,
} from "../../src/protocol/session.ts";
import { StreamState } from "../../src/protocol/stream.ts";
import { concat } from "../../src/protocol/messages.ts";
import {
  disposePairs,
  memoryPair,
  type Pair,
  type PairFactory,
  type PairOptions,
  type Side,
  type WireEvent,
} from "../helpers/memory-pair.ts";
import { wsPair } from "../helpers/ws-pair.ts";
import { deferred, within, type Deferred } from "../helpers/wait.ts";

const TRANSPORTS: Array<[string, PairFactory]> = [
  ["an in-memory pair", memoryPair],
  ["a real WebSocket (ws)", wsPair],
];

const KiB = 1024;
const MiB = 1024 * KiB;
const REQUEST: HeaderList = [
  [":method", "POST"],
  [":path", "/upload"],
  [":scheme", "https"],
  [":authority", "demo.example.com"],
];
const OK: HeaderList = [[":status", "200"]];

// ---- waiting with a timeout -------------------------------------------------------------------

/** True if `promise` is still unsettled after `ms` (raced against a timer, not a blind sleep). */
async function stillPending(promise: Promise<unknown>, ms = 100): Promise<boolean> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<true>((resolve) => (timer = setTimeout(() => resolve(true), ms)));
  try {
    return await Promise.race([
      promise.then(
        () => false,
        () => false,
      ),
      timeout,
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** The rejection of `promise` (which must reject in time). */
async function rejection(promise: Promise<unknown>, label: string): Promise<unknown> {
  return within(
    promise.then(
      () => {
        throw new Error(`${label} resolved instead of rejecting`);
      },
      (err: unknown) => err,
    ),
    label,
  );
}

// ---- bodies -----------------------------------------------------------------------------------

/** Deterministic pseudo-random bytes (xorshift32), so a misplaced byte shows. */
function bytes(n: number, seed = 1): Uint8Array {
  const out = new Uint8Array(n);
  let x = seed || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}

/** Reads a stream's body: records chunks, calls consumed() as told, exposes end and reset. */
interface Reader {
  chunks: Uint8Array[];
  received: number;
  /** Bytes received but not yet passed to consumed(). */
  unconsumed: number;
  /** The most `unconsumed` ever was. */
  maxUnconsumed: number;
  head?: HeaderList;
  ended: Promise<Uint8Array>;
  reset: Promise<StreamReset>;
  /** Resolves once at least `n` bytes arrived. */
  until(n: number): Promise<void>;
  /** Hands on every unconsumed byte. */
  consumeAll(): void;
}

type Consume = "sync" | "later" | "never";

function read(stream: Stream, consume: Consume = "sync"): Reader {
  const ended = deferred<Uint8Array>();
  const reset = deferred<StreamReset>();
  const waits: Array<[number, () => void]> = [];
  const reader: Reader = {
    chunks: [],
    received: 0,
    unconsumed: 0,
    maxUnconsumed: 0,
    ended: ended.promise,
    reset: reset.promise,
    until(n) {
      if (reader.received >= n) return Promise.resolve();
      const d = deferred();
      waits.push([n, d.resolve]);
      return d.promise;
    },
    consumeAll() {
      const n = reader.unconsumed;
      reader.unconsumed = 0;
      stream.consumed(n);
    },
  };
  const hand = (n: number) => {
    reader.unconsumed -= n;
    stream.consumed(n);
  };
  stream.onHeaders = (head) => (reader.head = head);
  stream.onData = (chunk) => {
    reader.chunks.push(chunk.slice());
    reader.received += chunk.byteLength;
    reader.unconsumed += chunk.byteLength;
    reader.maxUnconsumed = Math.max(reader.maxUnconsumed, reader.unconsumed);
    if (consume === "sync") hand(chunk.byteLength);
    if (consume === "later") setImmediate(() => hand(chunk.byteLength));
    for (const [n, done] of waits.filter(([n]) => reader.received >= n)) {
      waits.splice(waits.indexOf(waits.find(([m]) => m === n)!), 1);
      done();
    }
  };
  stream.onEnd = () => ended.resolve(concat(reader.chunks));
  stream.onReset = (r) => reset.resolve(r);
  return reader;
}

// ---- the agent side ---------------------------------------------------------------------------

interface Accepted {
  stream: Stream;
  head: HeaderList;
  fin: boolean;
  reader: Reader;
}

/** An agent that records every stream the relay opens, and runs `handle` on it. */
function agentServer(handle: (a: Accepted) => void = () => {}, consume: Consume = "sync") {
  const accepted: Accepted[] = [];
  const waits: Array<[number, (a: Accepted[]) => void]> = [];
  return {
    accepted,
    /** Resolves once `n` streams have been accepted. */
    until(n: number): Promise<Accepted[]> {
      if (accepted.length >= n) return Promise.resolve(accepted);
      const d = deferred<Accepted[]>();
      waits.push([n, d.resolve]);
      return d.promise;
    },
    onStream(stream: Stream, head: HeaderList, fin: boolean) {
      const a: Accepted = { stream, head, fin, reader: read(stream, consume) };
      accepted.push(a);
      handle(a);
      for (const [n, done] of [...waits]) {
        if (accepted.length >= n) {
          waits.splice(waits.indexOf(waits.find(([m]) => m === n)!), 1);
          done(accepted);
        }
      }
    },
  };
}

/** Answers 200 and echoes the request body, handing each chunk on once its echo is sent. */
function echo(a: Accepted): void {
  const { stream } = a;
  stream.sendHeaders(OK);
  stream.onData = (chunk) => {
    void stream.write(chunk).then(
      () => stream.consumed(chunk.byteLength),
      () => {},
    );
  };
  stream.onEnd = () => void stream.end().catch(() => {});
  if (a.fin) void stream.end();
}

/** Frames of one type a side sent, across every message. */
function framesSent(pair: Pair, side: Side, type?: FrameType): Frame[] {
  return pair.sent[side].flatMap((e) => e.frames).filter((f) => type === undefined || f.type === type);
}

/** Resolves with the payload of the next PING ACK the relay receives. */
function relayPingAck(pair: Pair): Promise<Uint8Array> {
  const d = deferred<Uint8Array>();
  pair.tap((e) => {
    if (e.kind !== "deliver" || e.from !== "agent") return;
    for (const f of e.frames) if (f.type === FrameType.Ping && f.flags & Flag.ACK) d.resolve(f.payload);
  });
  return d.promise;
}

const SMALL: Partial<Hello> = { window: 64 * KiB, maxFrame: 16 * KiB };

/** V8's full collection, as `node --expose-gc` offers it. */
function fullGc(): void {
  setFlagsFromString("--expose-gc");
  (runInNewContext("gc") as () => void)();
}

/** Gives `stream` a CLOSE handler that closes over a fresh object; returns a weak reference to it. */
function closeOverExchange(stream: Stream): WeakRef<object> {
  const exchange = { body: new Uint8Array(64 * KiB) };
  stream.onClose = () => void exchange.body;
  return new WeakRef(exchange);
}

describe.each(TRANSPORTS)("session over %s", (_transport, makePair) => {
  afterEach(disposePairs);

  /** A pair whose agent serves streams with `handle`. */
  async function serve(handle: (a: Accepted) => void, options: PairOptions = {}, consume: Consume = "sync") {
    const server = agentServer(handle, consume);
    const errors: Record<Side, ProtocolError[]> = { relay: [], agent: [] };
    const pair = await makePair({
      ...options,
      relay: { onError: (e) => errors.relay.push(e), ...options.relay },
      agent: { onStream: server.onStream, onError: (e) => errors.agent.push(e), ...options.agent },
    });
    return { pair, server, errors };
  }

  describe("hello", () => {
    it("the agent speaks first, the relay answers, and both learn the other's hello", async () => {
      const heard: Record<Side, Hello[]> = { relay: [], agent: [] };
      const log: string[] = [];
      const pair = await makePair({
        handshake: false,
        agentHello: { id: "agent-xyz", caps: ["http", "tcp"] },
        relayHello: { id: "tunnel-7" },
        relay: { onHello: (h) => heard.relay.push(h) },
        agent: { onHello: (h) => heard.agent.push(h) },
      });
      pair.tap((e) => log.push(`${e.kind} ${e.from} ${e.frames.map((f) => FrameType[f.type]).join(",")}`));
      expect(pair.relay.ready).toBe(false);
      expect(pair.agent.ready).toBe(false);
      expect(() => pair.relay.open(REQUEST)).toThrow(/before the peer's hello/);

      await within(pair.handshake(), "the hello exchange");
      expect(log).toEqual(["send agent Hello", "deliver agent Hello", "send relay Hello", "deliver relay Hello"]);
      expect(heard.relay).toHaveLength(1);
      expect(heard.agent).toHaveLength(1);
      expect(heard.relay[0]).toMatchObject({ v: 1, id: "agent-xyz", caps: ["http", "tcp"] });
      expect(pair.relay.remoteHello).toEqual(heard.relay[0]);
      expect(pair.agent.remoteHello).toMatchObject({ v: 1, id: "tunnel-7" });
      expect(pair.relay.ready).toBe(true);
      expect(pair.agent.ready).toBe(true);
    });

    it("unknown hello fields are ignored", async () => {
      const pair = await makePair({ handshake: false });
      const hello = { v: 1, software: "future-agent/9", id: "a", caps: ["http", "quic"], window: 65536, maxFrame: 16384, color: "blue" };
      pair.inject("relay", encodeFrame({ type: FrameType.Hello, flags: 0, streamId: 0, payload: encodeHello(hello as Hello) }));
      await within(
        new Promise<void>((resolve) => pair.tap((e) => e.kind === "send" && e.from === "relay" && resolve())),
        "the relay's hello",
      );
      expect(pair.relay.ready).toBe(true);
      expect(pair.relay.remoteHello?.maxFrame).toBe(16384);
    });

    it.each<[string, Side, () => Uint8Array]>([
      ["a PING to the relay", "relay", () => encodeFrame({ type: FrameType.Ping, flags: 0, streamId: 0, payload: new Uint8Array(8) })],
      [
        "HEADERS to the relay",
        "relay",
        () => encodeFrame({ type: FrameType.Headers, flags: 0, streamId: 2, payload: encodeHeaderBlock(OK) }),
      ],
      [
        "HEADERS to the agent",
        "agent",
        () => encodeFrame({ type: FrameType.Headers, flags: 0, streamId: 1, payload: encodeHeaderBlock(REQUEST) }),
      ],
      ["a GOAWAY to the agent", "agent", () => encodeFrame({ type: FrameType.GoAway, flags: 0, streamId: 0, payload: encodeError(0) })],
    ])("a first frame that is not HELLO (%s) closes with 4400", async (_name, to, message) => {
      const errors: ProtocolError[] = [];
      const pair = await makePair({ handshake: false, [to]: { onError: (e: ProtocolError) => errors.push(e) } });
      pair.inject(to, message());
      const closed = await within(pair.closed, "the tunnel to close");
      expect(closed).toMatchObject({ by: to, code: TunnelClose.BadHello });
      expect(closed.reason).toMatch(/first frame must be HELLO/);
      expect(errors).toHaveLength(1);
      expect(errors[0].closeCode).toBe(4400);
      expect(pair[to].closed).toBe(true);
    });

    it.each<[string, Record<string, unknown>, RegExp]>([
      ["version 2", { v: 2 }, /version 2 is not supported/],
      ["version 0", { v: 0 }, /version 0 is not supported/],
      ["no window", { window: undefined }, /hello lacks/],
      ["maxFrame 0", { maxFrame: 0 }, /hello maxFrame 0 is outside 16384\.\.1048576/],
      ["window 1", { window: 1 }, /hello window 1 is outside 16384\.\.16777216/],
    ])("a hello with %s closes with 4400", async (_name, change, reason) => {
      const pair = await makePair({ handshake: false });
      const hello = { v: 1, software: "x", id: "a", caps: ["http"], window: 65536, maxFrame: 16384, ...change };
      pair.inject("relay", encodeFrame({ type: FrameType.Hello, flags: 0, streamId: 0, payload: encodeHello(hello as Hello) }));
      const closed = await within(pair.closed, "the tunnel to close");
      expect(closed).toMatchObject({ by: "relay", code: TunnelClose.BadHello });
      expect(closed.reason).toMatch(reason);
      expect(pair.relay.remoteHello).toBeUndefined();
      expect(framesSent(pair, "relay")).toEqual([]);
    });

    it("a first message that is not JSON closes with 4400", async () => {
      const pair = await makePair({ handshake: false });
      pair.inject("relay", encodeFrame({ type: FrameType.Hello, flags: 0, streamId: 0, payload: new TextEncoder().encode("hi") }));
      expect(await within(pair.closed, "the tunnel to close")).toMatchObject({ by: "relay", code: 4400 });
    });

    it("a second HELLO is a protocol error (1002)", async () => {
      const { pair, errors } = await serve(() => {});
      pair.inject("relay", encodeFrame({ type: FrameType.Hello, flags: 0, streamId: 0, payload: encodeHello(pair.relay.remoteHello!) }));
      expect(await within(pair.closed, "the tunnel to close")).toMatchObject({
        by: "relay",
        code: 1002,
        reason: expect.stringMatching(/only once/),
      });
      expect(errors.relay).toHaveLength(1);
    });

    it("a session rebuilt with the peer's hello needs no exchange and opens at firstStreamId", () => {
      const hello: Hello = { v: 1, software: "r", id: "t", caps: ["http"], window: 65536, maxFrame: 16384 };
      const sent: Uint8Array[] = [];
      const relay = new Session({ role: "relay", hello, remoteHello: hello, firstStreamId: 12345, send: (m) => sent.push(m) });
      expect(relay.ready).toBe(true);
      expect(relay.open(REQUEST).id).toBe(12345);
      expect(relay.open(REQUEST).id).toBe(12347);
      expect(() => new Session({ role: "relay", hello, firstStreamId: 2, send: () => {} })).toThrow(/wrong parity/);
      expect(() => new Session({ role: "agent", hello, firstStreamId: 3, send: () => {} })).toThrow(/wrong parity/);
    });
  });

  describe("streams", () => {
    it("a request and response with bodies both ways, FIN each way, then the stream is forgotten", async () => {
      const requestBody = bytes(3000, 7);
      const responseBody = bytes(5000, 9);
      let agentStream!: Stream;
      const { pair, server, errors } = await serve((a) => {
        agentStream = a.stream;
        a.stream.sendHeaders([
          [":status", "201"],
          ["set-cookie", "a=1"],
          ["set-cookie", "b=2"],
        ]);
        void a.stream.write(responseBody);
        a.reader.ended.then(() => a.stream.end());
      });

      const stream = pair.relay.open(REQUEST);
      expect(stream.id).toBe(1);
      expect(stream.state).toBe(StreamState.Open);
      const response = read(stream);
      const headers = deferred<HeaderList>();
      stream.onHeaders = (head, fin) => {
        expect(fin).toBe(false);
        headers.resolve(head);
      };
      await stream.write(requestBody.subarray(0, 1000));
      await stream.write(requestBody.subarray(1000));
      await stream.end();
      expect(stream.state).toBe(StreamState.HalfClosedLocal);

      const [accepted] = await within(server.until(1), "the agent to accept the stream");
      expect(accepted.head).toEqual(REQUEST);
      expect(accepted.fin).toBe(false);
      expect(await within(headers.promise, "the response head")).toEqual([
        [":status", "201"],
        ["set-cookie", "a=1"],
        ["set-cookie", "b=2"],
      ]);
      expect(sameBytes(await within(accepted.reader.ended, "the request body"), requestBody)).toBe(true);
      expect(sameBytes(await within(response.ended, "the response body"), responseBody)).toBe(true);

      expect(stream.state).toBe(StreamState.Closed);
      expect(agentStream.state).toBe(StreamState.Closed);
      expect(pair.relay.streams.size).toBe(0);
      expect(pair.agent.streams.size).toBe(0);
      expect(pair.relay.activeStreams).toBe(0);
      expect(errors).toEqual({ relay: [], agent: [] });
      const fins = framesSent(pair, "relay").filter((f) => f.flags & Flag.FIN);
      expect(fins).toEqual([expect.objectContaining({ type: FrameType.Data, streamId: 1, payload: new Uint8Array(0) })]);
    });

    it("a forgotten stream lets go of its handlers: what they close over is collectable while the Stream is still held", async () => {
      let agentStream!: Stream;
      let agentExchange!: WeakRef<object>;
      const { pair, server } = await serve((a) => {
        agentStream = a.stream;
        agentExchange = closeOverExchange(a.stream);
        a.stream.sendHeaders(OK);
        void a.stream.end(bytes(10));
      });
      const stream = pair.relay.open(REQUEST, true);
      const relayExchange = closeOverExchange(stream);
      const response = read(stream);
      expect(await within(response.ended, "the response body")).toHaveLength(10);
      await within(server.until(1), "the agent to accept the stream");
      expect(pair.relay.streams.size).toBe(0);
      expect(pair.agent.streams.size).toBe(0);
      // A WeakRef's target lives until the job that made it ends: collect in a later turn.
      await new Promise((resolve) => setImmediate(resolve));
      fullGc();
      expect(relayExchange.deref(), "the relay's handler still holds its exchange").toBeUndefined();
      expect(agentExchange.deref(), "the agent's handler still holds its exchange").toBeUndefined();
      // Both Streams are still held here.
      expect(stream.state).toBe(StreamState.Closed);
      expect(agentStream.state).toBe(StreamState.Closed);
    });

    it("a request without a body sets FIN on its HEADERS, and so can the response", async () => {
      const { pair, server } = await serve((a) => a.stream.sendHeaders([[":status", "204"]], true));
      const stream = pair.relay.open(REQUEST, true);
      expect(stream.state).toBe(StreamState.HalfClosedLocal);
      const response = read(stream);
      const fin = deferred<boolean>();
      stream.onHeaders = (_head, f) => fin.resolve(f);
      const [accepted] = await within(server.until(1), "the agent to accept the stream");
      expect(accepted.fin).toBe(true);
      expect(await within(accepted.reader.ended, "the agent to see the request end")).toHaveLength(0);
      expect(await within(fin.promise, "the response head")).toBe(true);
      expect(await within(response.ended, "the response end")).toHaveLength(0);
      expect(pair.relay.streams.size).toBe(0);
      expect(pair.agent.streams.size).toBe(0);
      const headers = framesSent(pair, "relay", FrameType.Headers);
      expect(headers).toHaveLength(1);
      expect(headers[0].flags).toBe(Flag.FIN);
      expect(framesSent(pair, "relay", FrameType.Data)).toEqual([]);
    });

    it("end(last) sends FIN on the DATA frame with the last bytes, even when they span frames", async () => {
      const small = bytes(22, 3);
      const big = bytes(40 * KiB, 4);
      const { pair, server } = await serve(
        (a) => {
          a.stream.sendHeaders(OK);
          void a.stream.end(a.head.some(([n]) => n === "x-big") ? big : small);
        },
        { relayHello: SMALL, agentHello: SMALL },
      );
      for (const [extra, body] of [
        [[] as HeaderList, small],
        [[["x-big", "1"]] as HeaderList, big],
      ] as const) {
        const stream = pair.relay.open([...REQUEST, ...extra], true);
        const response = read(stream);
        expect(sameBytes(await within(response.ended, "the response body"), body)).toBe(true);
        expect(stream.state).toBe(StreamState.Closed);
        const data = framesSent(pair, "agent", FrameType.Data).filter((f) => f.streamId === stream.id);
        // 16 KiB frames (the relay's maxFrame here): 22 bytes are one frame, 40 KiB three.
        expect(data.map((f) => [f.payload.byteLength, f.flags & Flag.FIN])).toEqual(
          body === small
            ? [[22, Flag.FIN]]
            : [
                [16 * KiB, 0],
                [16 * KiB, 0],
                [8 * KiB, Flag.FIN],
              ],
        );
      }
      expect(server.accepted).toHaveLength(2);
      expect(pair.agent.streams.size).toBe(0);
    });

    it("the relay opens odd ids in order", async () => {
      const { pair } = await serve(() => {});
      expect([1, 2, 3].map(() => pair.relay.open(REQUEST, true).id)).toEqual([1, 3, 5]);
    });

    it("200 concurrent streams each get their own body back", async () => {
      const { pair, errors } = await serve(echo);
      const n = 200;
      const results = Array.from({ length: n }, (_, i) => {
        const body = bytes(1000 + i * 37, i + 1);
        const stream = pair.relay.open([...REQUEST, ["x-i", String(i)]]);
        const reader = read(stream);
        void stream.write(body);
        void stream.end();
        return { stream, body, reader };
      });
      expect(pair.relay.activeStreams).toBe(n);
      expect(new Set(results.map((r) => r.stream.id)).size).toBe(n);
      const bodies = await within(Promise.all(results.map((r) => r.reader.ended)), "200 responses");
      for (const [i, body] of bodies.entries()) expect(sameBytes(body, results[i].body), `stream ${i}`).toBe(true);
      expect(results.every((r) => r.reader.head?.[0][1] === "200")).toBe(true);
      expect(pair.relay.streams.size).toBe(0);
      expect(pair.agent.streams.size).toBe(0);
      expect(errors).toEqual({ relay: [], agent: [] });
    });
  });

  describe("flow control", () => {
    /** Per stream: DATA bytes each side has in flight (sent, not yet credited back by a delivered WINDOW_UPDATE). */
    function inFlight(pair: Pair, streamId: number) {
      const now = { relay: 0, agent: 0 };
      const max = { relay: 0, agent: 0 };
      const largestFrame = { relay: 0, agent: 0 };
      pair.tap((e: WireEvent) => {
        for (const f of e.frames) {
          if (f.streamId !== streamId) continue;
          if (e.kind === "send" && f.type === FrameType.Data) {
            now[e.from] += f.payload.byteLength;
            max[e.from] = Math.max(max[e.from], now[e.from]);
            largestFrame[e.from] = Math.max(largestFrame[e.from], f.payload.byteLength);
          }
          if (e.kind === "deliver" && f.type === FrameType.WindowUpdate)
            now[e.from === "relay" ? "agent" : "relay"] -= decodeU32(f.payload);
        }
      });
      return { now, max, largestFrame };
    }

    it("a 5 MiB body each way through a 64 KiB window arrives byte-exact, never over the window in flight", async () => {
      const body = bytes(5 * MiB, 42);
      let agentReceived = 0;
      const { pair, errors } = await serve(
        (a) => {
          echo(a);
          const echoData = a.stream.onData;
          a.stream.onData = (chunk, flags) => {
            agentReceived += chunk.byteLength;
            echoData(chunk, flags);
          };
        },
        { relayHello: SMALL, agentHello: SMALL },
      );
      const stream = pair.relay.open(REQUEST);
      const flight = inFlight(pair, stream.id);
      const response = read(stream, "later");
      for (let at = 0; at < body.byteLength; at += 100_000) void stream.write(body.subarray(at, at + 100_000));
      const ended = stream.end();

      const echoed = await within(response.ended, "the 5 MiB echo", 60_000);
      await within(ended, "the request FIN");
      expect(echoed.byteLength).toBe(body.byteLength);
      expect(sameBytes(echoed, body)).toBe(true);
      expect(agentReceived).toBe(body.byteLength);

      // Each writer fills the window exactly and never goes past it.
      expect(flight.max).toEqual({ relay: 64 * KiB, agent: 64 * KiB });
      expect(flight.largestFrame).toEqual({ relay: 16 * KiB, agent: 16 * KiB });
      expect(response.maxUnconsumed).toBeLessThanOrEqual(64 * KiB);
      expect(errors).toEqual({ relay: [], agent: [] });
      expect(pair.relay.streams.size).toBe(0);
      expect(pair.agent.streams.size).toBe(0);
    });

    it("a receiver that does not consume stalls the writer at one window; consuming resumes it", async () => {
      const { pair, server } = await serve((a) => a.stream.sendHeaders(OK), { relayHello: SMALL, agentHello: SMALL }, "never");
      const stream = pair.relay.open(REQUEST);
      const body = bytes(160 * KiB, 3);
      const write = stream.write(body);
      const [accepted] = await within(server.until(1), "the stream to open");
      await within(accepted.reader.until(64 * KiB), "one window of data");

      expect(await stillPending(write)).toBe(true);
      expect(accepted.reader.received).toBe(64 * KiB);
      expect(stream.sendWindow.available).toBe(0);
      expect(framesSent(pair, "agent", FrameType.WindowUpdate)).toEqual([]);

      accepted.reader.consumeAll(); // 64 KiB handed on: one update returns it all
      await within(accepted.reader.until(128 * KiB), "the second window");
      expect(await stillPending(write)).toBe(true);
      expect(accepted.reader.received).toBe(128 * KiB);

      accepted.reader.consumeAll();
      await within(write, "the write to finish");
      await within(accepted.reader.until(160 * KiB), "the rest of the body");
      expect(sameBytes(concat(accepted.reader.chunks), body)).toBe(true);
      expect(framesSent(pair, "agent", FrameType.WindowUpdate).map((f) => decodeU32(f.payload))).toEqual([64 * KiB, 64 * KiB]);
    });

    it("credit goes back in batches of half a window, at most one WINDOW_UPDATE per turn", async () => {
      const { pair, server } = await serve(
        (a) => {
          a.reader.ended.then(() => a.stream.sendHeaders(OK, true));
        },
        { relayHello: SMALL, agentHello: SMALL },
      );
      const stream = pair.relay.open(REQUEST);
      const response = read(stream);
      void stream.write(bytes(1 * MiB));
      void stream.end();
      await within(response.ended, "the response");
      const [accepted] = server.accepted;
      expect(accepted.reader.received).toBe(1 * MiB);
      const updates = framesSent(pair, "agent", FrameType.WindowUpdate);
      // Half windows; two returned in one turn leave as one WINDOW_UPDATE (README "Control replies").
      expect(updates.length).toBeGreaterThan(1);
      expect(updates.length).toBeLessThanOrEqual(MiB / (32 * KiB));
      expect(updates.every((f) => f.streamId === stream.id && decodeU32(f.payload) % (32 * KiB) === 0)).toBe(true);
      expect(updates.reduce((n, f) => n + decodeU32(f.payload), 0)).toBe(MiB);
      // The relay's DATA frames were all maxFrame-sized.
      const data = framesSent(pair, "relay", FrameType.Data).filter((f) => f.payload.byteLength > 0);
      expect(data).toHaveLength(MiB / (16 * KiB));
    });

    it("a DATA frame over the window resets the stream with FLOW_CONTROL_ERROR", async () => {
      const { pair, server, errors } = await serve((a) => a.stream.sendHeaders(OK), {
        agentHello: { window: 16 * KiB, maxFrame: 32 * KiB },
      });
      const stream = pair.relay.open(REQUEST);
      const relayReader = read(stream);
      const [accepted] = await within(server.until(1), "the stream to open");
      // A misbehaving relay: 20 KiB of DATA against a 16 KiB window.
      pair.inject("agent", encodeFrames([{ type: FrameType.Data, flags: 0, streamId: stream.id, payload: new Uint8Array(20 * KiB) }]));

      const agentReset = await within(accepted.reader.reset, "the agent to reset the stream");
      expect(agentReset.code).toBe(ErrorCode.FlowControlError);
      expect(agentReset.message).toMatch(/20480 bytes with 16384 bytes of window left/);
      expect(accepted.reader.received).toBe(0);
      const relayReset = await within(relayReader.reset, "the relay to see the reset");
      expect(relayReset).toMatchObject({ code: ErrorCode.FlowControlError, tunnelLost: false });
      const rst = framesSent(pair, "agent", FrameType.RstStream);
      expect(rst).toHaveLength(1);
      expect(decodeError(rst[0].payload).code).toBe(ErrorCode.FlowControlError);
      expect(pair.agent.streams.size).toBe(0);
      expect(pair.relay.streams.size).toBe(0);
      expect(errors).toEqual({ relay: [], agent: [] });
      expect(pair.agent.ready).toBe(true);
    });

    it("DATA frames that together overrun the window reset the stream at the frame that overruns", async () => {
      const { pair, server } = await serve(
        (a) => a.stream.sendHeaders(OK),
        { agentHello: { window: 16 * KiB, maxFrame: 16 * KiB } },
        "never",
      );
      const stream = pair.relay.open(REQUEST);
      const [accepted] = await within(server.until(1), "the stream to open");
      const frame = (n: number): Frame => ({ type: FrameType.Data, flags: 0, streamId: stream.id, payload: new Uint8Array(n) });
      pair.inject("agent", encodeFrames([frame(8 * KiB), frame(8 * KiB), frame(1)]));
      expect((await within(accepted.reader.reset, "the reset")).code).toBe(ErrorCode.FlowControlError);
      expect(accepted.reader.received).toBe(16 * KiB);
    });

    it("a DATA frame over the receiver's maxFrame is a protocol error", async () => {
      const { pair, server } = await serve((a) => a.stream.sendHeaders(OK), { agentHello: { window: MiB, maxFrame: 16 * KiB } });
      const stream = pair.relay.open(REQUEST);
      await within(server.until(1), "the stream to open");
      pair.inject("agent", encodeFrame({ type: FrameType.Data, flags: 0, streamId: stream.id, payload: new Uint8Array(16 * KiB + 1) }));
      const closed = await within(pair.closed, "the tunnel to close");
      expect(closed).toMatchObject({ by: "agent", code: TunnelClose.ProtocolError });
      expect(closed.reason).toMatch(/exceeds/);
    });

    it.each<[string, number]>([
      ["of 0", 0],
      ["that overflows the window", 0x7fffffff],
    ])("a WINDOW_UPDATE %s is a protocol error", async (_name, credit) => {
      const { pair, server } = await serve((a) => a.stream.sendHeaders(OK));
      const stream = pair.relay.open(REQUEST);
      await within(server.until(1), "the stream to open");
      pair.inject("relay", encodeFrame({ type: FrameType.WindowUpdate, flags: 0, streamId: stream.id, payload: encodeU32(credit) }));
      expect(await within(pair.closed, "the tunnel to close")).toMatchObject({ by: "relay", code: 1002 });
    });
  });

  describe("resets", () => {
    /** An open stream whose writers on both sides are parked on credit (neither side consumes). */
    async function stalled() {
      const { pair, server, errors } = await serve(
        (a) => {
          a.stream.sendHeaders(OK);
        },
        { relayHello: SMALL, agentHello: SMALL },
        "never",
      );
      const stream = pair.relay.open(REQUEST);
      const relayReader = read(stream, "never");
      const relayWrite = stream.write(bytes(100 * KiB));
      const [accepted] = await within(server.until(1), "the stream to open");
      const agentWrite = accepted.stream.write(bytes(100 * KiB));
      await within(Promise.all([accepted.reader.until(64 * KiB), relayReader.until(64 * KiB)]), "both windows to fill");
      expect(await stillPending(relayWrite)).toBe(true);
      expect(await stillPending(agentWrite)).toBe(true);
      return { pair, stream, relayReader, relayWrite, accepted, agentWrite, errors };
    }

    it("a RST from the relay reaches the agent's onReset and rejects pending writes on both sides", async () => {
      const s = await stalled();
      s.stream.reset(ErrorCode.Cancel, "the client went away");
      expect(s.stream.state).toBe(StreamState.Closed);
      expect(s.pair.relay.streams.size).toBe(0);

      const relayWriteError = await rejection(s.relayWrite, "the relay's write");
      expect(relayWriteError).toBeInstanceOf(StreamReset);
      expect(relayWriteError).toMatchObject({ code: ErrorCode.Cancel, message: "the client went away", tunnelLost: false });

      const agentReset = await within(s.accepted.reader.reset, "the agent's onReset");
      expect(agentReset).toBeInstanceOf(StreamReset);
      expect(agentReset).toMatchObject({ code: ErrorCode.Cancel, message: "the client went away", tunnelLost: false });
      const agentWriteError = await rejection(s.agentWrite, "the agent's write");
      expect(agentWriteError).toMatchObject({ code: ErrorCode.Cancel, message: "the client went away" });
      expect(s.pair.agent.streams.size).toBe(0);
      expect(s.errors).toEqual({ relay: [], agent: [] });
      await expect(s.stream.write(bytes(1))).rejects.toBeInstanceOf(StreamReset);
    });

    it("a RST from the agent reaches the relay's onReset and rejects pending writes on both sides", async () => {
      const s = await stalled();
      s.accepted.stream.reset(ErrorCode.OriginReset, "backend hung up");
      const relayReset = await within(s.relayReader.reset, "the relay's onReset");
      expect(relayReset).toMatchObject({ code: ErrorCode.OriginReset, message: "backend hung up", tunnelLost: false });
      const relayWriteError = await rejection(s.relayWrite, "the relay's write");
      expect(relayWriteError).toBeInstanceOf(StreamReset);
      expect(relayWriteError).toMatchObject({ code: ErrorCode.OriginReset, message: "backend hung up" });
      expect(await rejection(s.agentWrite, "the agent's write")).toMatchObject({ code: ErrorCode.OriginReset });
      await expect(s.stream.end()).rejects.toBeInstanceOf(StreamReset);
      expect(s.pair.relay.streams.size).toBe(0);
      expect(s.pair.agent.streams.size).toBe(0);
      expect(s.errors).toEqual({ relay: [], agent: [] });
    });

    it("a stream refused before its response head reports REFUSED_STREAM to the relay", async () => {
      const { pair } = await serve((a) => a.stream.reset(ErrorCode.RefusedStream, "draining"));
      const reader = read(pair.relay.open(REQUEST, true));
      expect(await within(reader.reset, "the reset")).toMatchObject({ code: ErrorCode.RefusedStream, message: "draining" });
      expect(reader.head).toBeUndefined();
    });

    it("frames that cross a RST are dropped silently", async () => {
      const { pair, server, errors } = await serve((a) => {
        a.stream.sendHeaders(OK);
        void a.stream.write(bytes(256 * KiB)).catch(() => {});
      });
      const stream = pair.relay.open(REQUEST);
      const reader = read(stream);
      await within(reader.until(1), "the first response bytes");
      stream.reset(ErrorCode.Cancel);
      // What the agent may have sent before it saw the RST, arriving after the relay forgot the stream.
      pair.inject(
        "relay",
        encodeFrames([
          { type: FrameType.Data, flags: 0, streamId: stream.id, payload: bytes(100) },
          { type: FrameType.Data, flags: Flag.FIN, streamId: stream.id, payload: new Uint8Array(0) },
          { type: FrameType.WindowUpdate, flags: 0, streamId: stream.id, payload: encodeU32(1000) },
          { type: FrameType.RstStream, flags: 0, streamId: stream.id, payload: encodeError(ErrorCode.Cancel) },
        ]),
      );
      const [accepted] = await within(server.until(1), "the accepted stream");
      await within(accepted.reader.reset, "the agent to see the reset");
      const ack = relayPingAck(pair);
      pair.relay.ping(new Uint8Array(8));
      await within(ack, "a ping round trip after the reset");
      expect(errors).toEqual({ relay: [], agent: [] });
      expect(pair.relay.ready && pair.agent.ready).toBe(true);
    });
  });

  describe("the tunnel", () => {
    it("destroy() fails every stream with tunnelLost, rejects pending writes, and refuses new streams", async () => {
      const { pair, server } = await serve((a) => a.stream.sendHeaders(OK), { agentHello: SMALL }, "never");
      const streams = [pair.relay.open(REQUEST), pair.relay.open(REQUEST), pair.relay.open(REQUEST)];
      const readers = streams.map((s) => read(s));
      const writes = streams.map((s) => s.write(bytes(100 * KiB)));
      const agentSide = await within(server.until(3), "three streams");
      expect(await stillPending(writes[0])).toBe(true);

      pair.relay.destroy("test over");
      expect(pair.relay.streams.size).toBe(0);
      expect(pair.relay.ready).toBe(false);
      for (const r of readers) expect(await within(r.reset, "onReset")).toMatchObject({ code: ErrorCode.Cancel, tunnelLost: true });
      for (const w of writes) {
        const err = await rejection(w, "a pending write");
        expect(err).toBeInstanceOf(StreamReset);
        expect(err).toMatchObject({ tunnelLost: true });
      }
      expect(() => pair.relay.open(REQUEST)).toThrow(StreamReset);

      // The agent learns when the transport closes.
      pair.close("relay", 1000, "bye");
      for (const a of agentSide) expect(await within(a.reader.reset, "the agent's onReset")).toMatchObject({ tunnelLost: true });
      expect(pair.agent.closed).toBe(true);
    });

    it("GOAWAY makes the receiver not ready, while streams in flight go on", async () => {
      const goaway = deferred<[number, string]>();
      const { pair } = await serve(echo, { agent: { onGoAway: (code, reason) => goaway.resolve([code, reason]) } });
      const stream = pair.relay.open(REQUEST);
      const reader = read(stream);
      pair.relay.goAway(ErrorCode.NoError, "relay draining");
      expect(pair.relay.ready).toBe(false);
      expect(pair.relay.localGoingAway).toBe(true);
      expect(await within(goaway.promise, "onGoAway")).toEqual([0, "relay draining"]);
      expect(pair.agent.ready).toBe(false);
      expect(pair.agent.remoteGoingAway).toBe(true);

      await stream.write(bytes(10, 5));
      await stream.end();
      expect(sameBytes(await within(reader.ended, "the in-flight stream"), bytes(10, 5))).toBe(true);
      expect(framesSent(pair, "relay", FrameType.GoAway)).toHaveLength(1);
    });

    it("a GOAWAY from the agent makes the relay not ready", async () => {
      const goaway = deferred<number>();
      const { pair } = await serve(() => {}, { relay: { onGoAway: (code) => goaway.resolve(code) } });
      pair.agent.goAway(ErrorCode.InternalError, "shutting down");
      pair.agent.goAway(ErrorCode.InternalError, "again"); // only the first is sent
      expect(await within(goaway.promise, "onGoAway")).toBe(ErrorCode.InternalError);
      expect(pair.relay.ready).toBe(false);
      expect(framesSent(pair, "agent", FrameType.GoAway)).toHaveLength(1);
    });

    it("a PING comes back with ACK and the same payload, from either side", async () => {
      const acks: Record<Side, Deferred<Uint8Array>> = { relay: deferred(), agent: deferred() };
      const { pair } = await serve(() => {}, {
        relay: { onPingAck: (p) => acks.relay.resolve(p.slice()) },
        agent: { onPingAck: (p) => acks.agent.resolve(p.slice()) },
      });
      const payload = Uint8Array.from([1, 2, 3, 4, 5, 6, 7, 8]);
      pair.relay.ping(payload);
      pair.agent.ping(Uint8Array.from([8, 7, 6, 5, 4, 3, 2, 1]));
      expect(await within(acks.relay.promise, "the relay's ack")).toEqual(payload);
      expect(await within(acks.agent.promise, "the agent's ack")).toEqual(Uint8Array.from([8, 7, 6, 5, 4, 3, 2, 1]));
      const agentPings = framesSent(pair, "agent", FrameType.Ping);
      expect(agentPings).toContainEqual({ type: FrameType.Ping, flags: Flag.ACK, streamId: 0, payload });
      expect(framesSent(pair, "relay", FrameType.Ping).filter((f) => f.flags === 0)).toHaveLength(1);
    });

    it("frames for an unknown relay-opened id are dropped silently, on both sides", async () => {
      const { pair, server, errors } = await serve(() => {});
      const junk = (id: number) =>
        encodeFrames([
          { type: FrameType.Data, flags: Flag.FIN, streamId: id, payload: bytes(10) },
          { type: FrameType.WindowUpdate, flags: 0, streamId: id, payload: encodeU32(100) },
          { type: FrameType.RstStream, flags: 0, streamId: id, payload: encodeError(ErrorCode.Cancel, "x") },
        ]);
      pair.inject("agent", junk(99));
      pair.inject("relay", junk(101));
      pair.inject("relay", encodeFrame({ type: FrameType.Headers, flags: 0, streamId: 103, payload: encodeHeaderBlock(OK) }));
      const ack = relayPingAck(pair);
      pair.relay.ping(new Uint8Array(8));
      await within(ack, "a ping round trip after the junk");
      expect(errors).toEqual({ relay: [], agent: [] });
      expect(server.accepted).toEqual([]);
      expect(pair.relay.streams.size + pair.agent.streams.size).toBe(0);
      expect(pair.relay.ready && pair.agent.ready).toBe(true);
    });

    it("a stream opened by the agent (even id) is a protocol error at the relay", async () => {
      const { pair, server, errors } = await serve(() => {});
      const open = pair.relay.open(REQUEST);
      const reader = read(open);
      await within(server.until(1), "the relay's stream to open");
      pair.inject("relay", encodeFrame({ type: FrameType.Headers, flags: 0, streamId: 2, payload: encodeHeaderBlock(REQUEST) }));
      const closed = await within(pair.closed, "the tunnel to close");
      expect(closed).toMatchObject({ by: "relay", code: TunnelClose.ProtocolError, reason: expect.stringMatching(/stream 2/) });
      expect(errors.relay).toHaveLength(1);
      expect(await within(reader.reset, "the relay's stream to fail")).toMatchObject({ tunnelLost: true });
      expect(await within(server.accepted[0].reader.reset, "the agent's stream to fail")).toMatchObject({ tunnelLost: true });
      expect(pair.agent.closed).toBe(true);
    });

    it("DATA before the response HEADERS is a protocol error", async () => {
      const { pair, server } = await serve(() => {});
      const stream = pair.relay.open(REQUEST);
      await within(server.until(1), "the stream to open");
      pair.inject("relay", encodeFrame({ type: FrameType.Data, flags: 0, streamId: stream.id, payload: bytes(3) }));
      const closed = await within(pair.closed, "the tunnel to close");
      expect(closed).toMatchObject({ by: "relay", code: 1002, reason: expect.stringMatching(/before its headers/) });
    });

    it("a malformed frame closes the tunnel with 1002", async () => {
      const { pair } = await serve(() => {});
      pair.inject("agent", Uint8Array.from([0x09, 0, 0, 0, 0, 0, 0, 0, 0, 0]));
      expect(await within(pair.closed, "the tunnel to close")).toMatchObject({
        by: "agent",
        code: 1002,
        reason: expect.stringMatching(/unknown frame type/),
      });
    });
  });

  describe("coalescing", () => {
    /** Messages `side` sends from now on. */
    function watch(pair: Pair, side: Side): WireEvent[] {
      const seen: WireEvent[] = [];
      pair.tap((e) => e.kind === "send" && e.from === side && seen.push(e));
      return seen;
    }

    it("10 small writes in one tick go out as one message, in one DATA frame", async () => {
      const { pair, server } = await serve((a) => a.stream.sendHeaders(OK));
      const stream = pair.relay.open(REQUEST);
      const [accepted] = await within(server.until(1), "the stream to open");
      const messages = watch(pair, "relay");
      for (let i = 0; i < 10; i++) void stream.write(Uint8Array.of(i));
      await within(accepted.reader.until(10), "ten bytes");
      expect(messages).toHaveLength(1);
      // Small DATA joins the stream's DATA frame still waiting (README "Transport").
      expect(messages[0].frames.map((f) => [f.type, [...f.payload]])).toEqual([[FrameType.Data, Array.from({ length: 10 }, (_, i) => i)]]);
      expect(concat(accepted.reader.chunks)).toEqual(Uint8Array.from({ length: 10 }, (_, i) => i));
    });

    it("a request's HEADERS, body and FIN produced in one tick go out as one message", async () => {
      const { pair, server } = await serve(echo);
      const messages = watch(pair, "relay");
      const stream = pair.relay.open(REQUEST);
      void stream.write(bytes(100));
      void stream.write(bytes(200));
      void stream.end();
      const reader = read(stream);
      await within(reader.ended, "the echo");
      await within(server.until(1), "the stream");
      expect(messages).toHaveLength(1);
      expect(messages[0].frames.map((f) => [f.type, f.flags, f.payload.byteLength])).toEqual([
        [FrameType.Headers, 0, expect.any(Number)],
        [FrameType.Data, 0, 300],
        [FrameType.Data, Flag.FIN, 0],
      ]);
    });

    it("open(head, false, body) sends a body that fits as one DATA frame with FIN, in the HEADERS' message", async () => {
      const { pair, server } = await serve(echo);
      const messages = watch(pair, "relay");
      const body = bytes(300, 7);
      const stream = pair.relay.open(REQUEST, false, body);
      // Sent in the same turn: this side is done at once.
      expect(stream.state).toBe(StreamState.HalfClosedLocal);
      const reader = read(stream);
      expect(sameBytes(await within(reader.ended, "the echo"), body)).toBe(true);
      await within(server.until(1), "the stream");
      expect(messages).toHaveLength(1);
      expect(messages[0].frames.map((f) => [f.type, f.flags, f.payload.byteLength])).toEqual([
        [FrameType.Headers, 0, expect.any(Number)],
        [FrameType.Data, Flag.FIN, 300],
      ]);
    });

    it("open(head, false, body) sends a body larger than the peer's window under credit, FIN on its last frame", async () => {
      const { pair, server } = await serve(echo, { relayHello: SMALL, agentHello: SMALL });
      const body = bytes(100 * KiB, 9);
      const stream = pair.relay.open(REQUEST, false, body);
      const reader = read(stream);
      expect(sameBytes(await within(reader.ended, "the echo"), body)).toBe(true);
      await within(server.until(1), "the stream");
      const data = framesSent(pair, "relay", FrameType.Data).filter((f) => f.streamId === stream.id);
      // The peer's 16 KiB frames (SMALL): 100 KiB is six full frames and a 4 KiB one with FIN.
      expect(data.map((f) => [f.payload.byteLength, f.flags & Flag.FIN])).toEqual([
        ...Array.from({ length: 6 }, () => [16 * KiB, 0]),
        [4 * KiB, Flag.FIN],
      ]);
      expect(pair.relay.streams.size).toBe(0);
    });

    it("writes on 10 streams in one tick go out as one message", async () => {
      const { pair, server } = await serve((a) => a.stream.sendHeaders(OK));
      const streams = Array.from({ length: 10 }, () => pair.relay.open(REQUEST));
      const accepted = await within(server.until(10), "ten streams");
      const messages = watch(pair, "relay");
      streams.forEach((s, i) => void s.write(bytes(50, i + 1)));
      await within(Promise.all(accepted.map((a) => a.reader.until(50))), "every stream's bytes");
      expect(messages).toHaveLength(1);
      expect(new Set(messages[0].frames.map((f) => f.streamId)).size).toBe(10);
    });

    it("more than MAX_MESSAGE_BYTES in one tick is split into messages of at most MAX_MESSAGE_BYTES", async () => {
      const { pair, server } = await serve((a) => a.stream.sendHeaders(OK), { agentHello: { window: 4 * MiB } });
      const messages = watch(pair, "relay");
      const stream = pair.relay.open(REQUEST);
      const body = bytes(3 * MiB, 11);
      void stream.write(body);
      const [accepted] = await within(server.until(1), "the stream");
      await within(accepted.reader.until(body.byteLength), "3 MiB");
      expect(sameBytes(concat(accepted.reader.chunks), body)).toBe(true);
      expect(messages.length).toBeGreaterThanOrEqual(3);
      for (const m of messages) expect(m.bytes.byteLength).toBeLessThanOrEqual(MAX_MESSAGE_BYTES);
    });

    it("frame headers count toward the message cap", async () => {
      // Four DATA frames whose payloads total just under 1 MiB, but over it with their headers.
      const payload = 262_139;
      expect(4 * payload).toBeLessThan(MAX_MESSAGE_BYTES);
      expect(4 * (payload + 10)).toBeGreaterThan(MAX_MESSAGE_BYTES);
      const { pair, server } = await serve((a) => a.stream.sendHeaders(OK));
      const streams = Array.from({ length: 4 }, () => pair.relay.open(REQUEST));
      const accepted = await within(server.until(4), "four streams");
      const messages = watch(pair, "relay");
      streams.forEach((s, i) => void s.write(bytes(payload, i + 1)));
      await within(Promise.all(accepted.map((a) => a.reader.until(payload))), "every stream's bytes");
      expect(messages).toHaveLength(2);
      for (const m of messages) expect(m.bytes.byteLength).toBeLessThanOrEqual(MAX_MESSAGE_BYTES);
      for (const [i, a] of accepted.entries()) expect(sameBytes(concat(a.reader.chunks), bytes(payload, i + 1))).toBe(true);
    });
  });
});

describe("flush scheduling (no transport: the session's own choice)", () => {
  const hello: Hello = { v: 1, software: "t/0", id: "t", caps: ["http"], window: 64 * KiB, maxFrame: 16 * KiB };

  /** A relay session that records the messages it sends and the flushes it schedules, running none. */
  function recording(options: Partial<SessionOptions>) {
    const sent: Frame[][] = [];
    const timers: Array<() => void> = [];
    const session = new Session({
      role: "relay",
      hello,
      remoteHello: hello,
      send: (m) => sent.push(decodeMessage(m)),
      schedule: (flush) => timers.push(flush),
      ...options,
    });
    return { session, sent, timers };
  }

  it("sends a lone stream's frames with scheduleAlone, and coalesces with schedule while more streams are open", () => {
    const alone: Array<() => void> = [];
    const { session, sent, timers } = recording({ scheduleAlone: (flush) => alone.push(flush) });
    const first = session.open(REQUEST, true);
    expect([alone.length, timers.length]).toEqual([1, 0]);
    alone.shift()!();
    expect(sent.map((m) => m.map((f) => f.streamId))).toEqual([[first.id]]);
    // The first stream still waits for its response: two, then three streams are open.
    const second = session.open(REQUEST, true);
    const third = session.open(REQUEST, true);
    expect([alone.length, timers.length]).toEqual([0, 1]);
    timers.shift()!();
    expect(sent.map((m) => m.map((f) => f.streamId))).toEqual([[first.id], [second.id, third.id]]);
  });

  it("sends waiting HEADERS at once when headsPerMessage of them wait, or a quarter of the open streams if more", () => {
    const { session, sent, timers } = recording({ headsPerMessage: 3 });
    const opened = Array.from({ length: 7 }, () => session.open(REQUEST, true).id);
    // Three, then three more left with the event that queued them; the seventh waits for the timer.
    expect(sent.map((m) => m.map((f) => f.streamId))).toEqual([opened.slice(0, 3), opened.slice(3, 6)]);
    for (const flush of timers.splice(0)) flush();
    expect(sent.map((m) => m.map((f) => f.streamId))).toEqual([opened.slice(0, 3), opened.slice(3, 6), [opened[6]]]);
    // As more streams open (none answered), a message waits for a quarter of them: 3 at 10 and
    // 13 streams, 4 at 17, 5 at 22, 7 at 29; the 30th and 31st wait for the timer.
    sent.length = 0;
    const more = Array.from({ length: 24 }, () => session.open(REQUEST, true).id);
    expect(sent.map((m) => m.length)).toEqual([3, 3, 4, 5, 7]);
    expect(sent.flat().map((f) => f.streamId)).toEqual(more.slice(0, 22));
    for (const flush of timers.splice(0)) flush();
    expect(sent.at(-1)!.map((f) => f.streamId)).toEqual(more.slice(22));
  });

  it("gathers 1-byte writes into DATA frames of GATHER_BYTES, with frame headers counted toward a message", () => {
    const { session, sent, timers } = recording({});
    const stream = session.open(REQUEST);
    const n = 3 * GATHER_BYTES + 5;
    for (let i = 0; i < n; i++) void stream.write(Uint8Array.of(i & 0xff));
    return Promise.resolve().then(async () => {
      while (stream.sendWindow.available > hello.window - n) await new Promise((r) => setTimeout(r, 0));
      for (const flush of timers.splice(0)) flush();
      const data = sent.flat().filter((f) => f.type === FrameType.Data);
      expect(data.map((f) => f.payload.byteLength)).toEqual([GATHER_BYTES, GATHER_BYTES, GATHER_BYTES, 5]);
      expect(concat(data.map((f) => f.payload))).toEqual(Uint8Array.from({ length: n }, (_, i) => i & 0xff));
    });
  });

  describe('control replies to a peer that sends many (README "Control replies")', () => {
    const ping = (i: number): Frame => ({ type: FrameType.Ping, flags: 0, streamId: 0, payload: new Uint8Array(8).fill(i) });
    const acks = (sent: Frame[][]) => sent.flat().filter((f) => f.type === FrameType.Ping && f.flags & Flag.ACK);

    it("answers a message of 1,000 PINGs with one ACK carrying the latest payload", () => {
      const { session, sent, timers } = recording({});
      session.receive(encodeFrames(Array.from({ length: 1000 }, (_, i) => ping(i % 256))));
      expect(timers).toHaveLength(1);
      timers.shift()!();
      expect(acks(sent).map((f) => [...f.payload])).toEqual([new Array(8).fill(999 % 256)]);
    });

    it("answers PINGs past the budget not at all until time refills it", () => {
      let now = 1_000_000;
      const { session, sent, timers } = recording({ now: () => now });
      // One PING per flush: each could get its own ACK, but only the burst does.
      for (let i = 0; i < PING_ACK_BURST * 3; i++) {
        session.receive(encodeFrame(ping(i % 256)));
        for (const flush of timers.splice(0)) flush();
      }
      expect(acks(sent)).toHaveLength(PING_ACK_BURST);
      now += 1000;
      for (let i = 0; i < PING_ACK_BURST; i++) {
        session.receive(encodeFrame(ping(i % 256)));
        for (const flush of timers.splice(0)) flush();
      }
      expect(acks(sent)).toHaveLength(PING_ACK_BURST + PING_ACKS_PER_SECOND);
    });

    it("sends one WINDOW_UPDATE per stream per message, with the credit of every return in between", () => {
      const { session, sent, timers } = recording({});
      const stream = session.open(REQUEST, true);
      session.receive(encodeFrames([{ type: FrameType.Headers, flags: 0, streamId: stream.id, payload: encodeHeaderBlock(OK) }]));
      const chunks = Array.from({ length: 500 }, () => ({
        type: FrameType.Data,
        flags: 0,
        streamId: stream.id,
        payload: new Uint8Array(64),
      }));
      stream.onData = (chunk) => stream.consumed(chunk.byteLength, true);
      for (const flush of timers.splice(0)) flush();
      sent.length = 0;
      session.receive(encodeFrames(chunks));
      for (const flush of timers.splice(0)) flush();
      const updates = sent.flat().filter((f) => f.type === FrameType.WindowUpdate);
      expect(updates).toHaveLength(1);
      expect(decodeU32(updates[0].payload)).toBe(500 * 64);
    });

    it("counts frame headers toward the message size: 1-byte frames still flush at MAX_MESSAGE_BYTES", () => {
      const { session, sent, timers } = recording({});
      const stream = session.open(REQUEST);
      const frames = Math.ceil(MAX_MESSAGE_BYTES / 11) + 10;
      for (let i = 0; i < frames; i++) session.queue(FrameType.Data, 0, stream.id, new Uint8Array(1));
      // Sent by size, before any timer ran; no message over the cap with its headers counted.
      expect(sent.length).toBeGreaterThan(0);
      for (const m of sent) expect(m.reduce((n, f) => n + 10 + f.payload.byteLength, 0)).toBeLessThanOrEqual(MAX_MESSAGE_BYTES);
      for (const flush of timers.splice(0)) flush();
      expect(sent.flat().filter((f) => f.type === FrameType.Data)).toHaveLength(frames);
    });
  });
});
