// Property-based tests of the session (README "Streams", "Flow") over an in-memory pair whose
// transport regroups messages at random frame boundaries: random operations on both sides and
// random or mutated frames, checked against invariants. FUZZ_SEED / FUZZ_RUNS: docs/testing.md.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { encodeFrame, encodeFrames } from "../../src/protocol/codec.ts";
import { ErrorCode, FrameType, HEADER_BYTES, ProtocolError, type Frame, type HeaderList } from "../../src/protocol/frame.ts";
import { concat } from "../../src/protocol/messages.ts";
import { StreamReset, type Session, type Stream } from "../../src/protocol/session.ts";
import { StreamState } from "../../src/protocol/stream.ts";
import { linkedPair, type LinkFactory, type Pair, type Side } from "../helpers/memory-pair.ts";
import { arbFrame, arbMutation, fuzzParams, mutate, type Mutation } from "../helpers/fuzz.ts";

const RUNS = 150;
/** How long the streams get to end once both sides finished, before the run counts as hung. */
const SETTLE_MS = 2_000;
const REQUEST: HeaderList = [
  [":method", "POST"],
  [":path", "/fuzz"],
  [":scheme", "https"],
  [":authority", "fuzz.example"],
];
const OK: HeaderList = [[":status", "200"]];
const sides: Side[] = ["relay", "agent"];
const other = (side: Side): Side => (side === "relay" ? "agent" : "relay");

/** A small deterministic PRNG (mulberry32) for the transport's choices, seeded by the property. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Cuts a message at some of its frame boundaries; bytes that are not whole frames stay one piece. */
function splitAtFrames(bytes: Uint8Array, random: () => number): Uint8Array[] {
  const cuts: number[] = [];
  let at = 0;
  while (bytes.byteLength - at >= HEADER_BYTES) {
    at += HEADER_BYTES + new DataView(bytes.buffer, bytes.byteOffset + at + 6, 4).getUint32(0);
    if (at < bytes.byteLength && random() < 0.5) cuts.push(at);
  }
  if (at !== bytes.byteLength) return [bytes];
  return [0, ...cuts].map((from, i) => bytes.subarray(from, cuts[i] ?? bytes.byteLength));
}

/**
 * An in-memory transport that joins up to three queued messages and splits the result at random
 * frame boundaries before delivering, so frames reach the session in other groupings than they
 * were sent in. An exception a delivery throws is recorded in `escapes`.
 */
function regroupingLink(random: () => number, escapes: unknown[]): LinkFactory {
  return (events) => {
    let closed = false;
    const queues: Record<Side, Uint8Array[]> = { relay: [], agent: [] };
    const pump = (to: Side) => {
      const queue = queues[to];
      if (closed || queue.length === 0) return;
      const joined = concat(queue.splice(0, 1 + Math.floor(random() * Math.min(3, queue.length))));
      for (const piece of splitAtFrames(joined, random)) {
        try {
          events.deliver(to, piece);
        } catch (err) {
          escapes.push(err);
        }
      }
    };
    return {
      send: (from, bytes) => {
        queues[other(from)].push(bytes);
        setImmediate(() => pump(other(from)));
      },
      close: (by, code, reason) => {
        closed = true;
        setImmediate(() => events.closed(other(by), code, reason));
      },
    };
  };
}

type Op =
  | { op: "open"; side: Side; fin: boolean; body?: number }
  | { op: "write"; pick: number; size: number }
  | { op: "end"; pick: number }
  | { op: "reset"; pick: number; code: number }
  | { op: "hold"; side: Side; on: boolean }
  | { op: "consume"; pick: number }
  | { op: "goaway"; side: Side }
  | { op: "ping"; side: Side }
  | { op: "overrun"; pick: number }
  | { op: "inject"; to: Side; frame: Frame }
  | { op: "mutate"; to: Side; pick: number; mutations: Mutation[] }
  | { op: "tick"; turns: number };

const arbSide = fc.constantFrom<Side>("relay", "agent");
const arbOp: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({
      op: fc.constant("open" as const),
      side: arbSide,
      fin: fc.boolean(),
      body: fc.option(fc.nat(100_000), { nil: undefined }),
    }),
  },
  { weight: 6, arbitrary: fc.record({ op: fc.constant("write" as const), pick: fc.nat(), size: fc.nat(100_000) }) },
  { weight: 3, arbitrary: fc.record({ op: fc.constant("end" as const), pick: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("reset" as const), pick: fc.nat(), code: fc.integer({ min: 0, max: 14 }) }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant("hold" as const), side: arbSide, on: fc.boolean() }) },
  { weight: 3, arbitrary: fc.record({ op: fc.constant("consume" as const), pick: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("goaway" as const), side: arbSide }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("ping" as const), side: arbSide }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("overrun" as const), pick: fc.nat() }) },
  {
    weight: 1,
    arbitrary: fc.record({
      op: fc.constant("inject" as const),
      to: arbSide,
      frame: arbFrame({ streamIds: fc.integer({ min: 1, max: 12 }) }),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      op: fc.constant("mutate" as const),
      to: arbSide,
      pick: fc.nat(),
      mutations: fc.array(arbMutation, { minLength: 1, maxLength: 2 }),
    }),
  },
  { weight: 5, arbitrary: fc.record({ op: fc.constant("tick" as const), turns: fc.integer({ min: 1, max: 4 }) }) },
);

/** Window and frame size one side announces: small, so that writers wait for credit, within the bounds a hello may announce. */
const arbLimits = fc.record({
  window: fc.integer({ min: 16 * 1024, max: 64 * 1024 }),
  maxFrame: fc.integer({ min: 16 * 1024, max: 32 * 1024 }),
});

/** One side's view of one stream, kept by the test independently of the session. */
interface Tracked {
  side: Side;
  stream: Stream;
  /** Bytes handed to onData. */
  received: number;
  /** Credit this side queued in WINDOW_UPDATEs for the stream. */
  credit: number;
  /** Bytes received and not yet consumed. */
  held: number;
  /** This side called end() or opened with FIN. */
  ended: boolean;
}

/** Runs `ops` over a fresh pair and checks every invariant; throws on the first broken one. */
async function run(ops: Op[], limits: Record<Side, { window: number; maxFrame: number }>, transportSeed: number): Promise<void> {
  const escapes: unknown[] = [];
  const violations: string[] = [];
  const errors: unknown[] = [];
  const tracked: Tracked[] = [];
  const bySession = new Map<Session, Map<number, Tracked>>();
  const hold: Record<Side, boolean> = { relay: false, agent: false };
  const writes: Promise<void>[] = [];
  let forged = false;

  const settleWrite = (p: Promise<void>) =>
    writes.push(
      p.catch((err) => {
        if (!(err instanceof StreamReset)) escapes.push(err);
      }),
    );

  const track = (side: Side, stream: Stream, ended: boolean): Tracked => {
    const t: Tracked = { side, stream, received: 0, credit: 0, held: 0, ended };
    tracked.push(t);
    bySession.get(pair[side])!.set(stream.id, t);
    stream.onData = (chunk) => {
      t.received += chunk.byteLength;
      if (t.received > limits[side].window + t.credit) {
        violations.push(
          `${side} stream ${stream.id} handed on ${t.received} bytes with a window of ${limits[side].window} + ${t.credit} credit`,
        );
      }
      if (hold[side]) t.held += chunk.byteLength;
      else stream.consumed(chunk.byteLength);
    };
    return t;
  };

  const hooks = (side: Side) => ({
    onStream: (stream: Stream, _head: HeaderList, fin: boolean) => {
      track(side, stream, false);
      stream.sendHeaders(OK, false);
      void fin;
    },
    onError: (error: ProtocolError) => errors.push(error),
  });

  const pair: Pair = await linkedPair(regroupingLink(prng(transportSeed), escapes), {
    relayHello: limits.relay,
    agentHello: limits.agent,
    relay: hooks("relay"),
    agent: hooks("agent"),
  });
  for (const side of sides) {
    // Counts the credit each side queues, as the peer will see it in WINDOW_UPDATEs.
    const session = pair[side];
    bySession.set(session, new Map());
    const queue = session.queue.bind(session);
    session.queue = (type, flags, streamId, payload) => {
      const t = bySession.get(session)!.get(streamId);
      if (type === FrameType.WindowUpdate && t) t.credit += new DataView(payload.buffer, payload.byteOffset, 4).getUint32(0);
      return queue(type, flags, streamId, payload);
    };
  }

  const check = (when: string) => {
    for (const side of sides) {
      for (const s of pair[side].streams.values()) {
        if (s.sendWindow.available < 0) violations.push(`${when}: ${side} stream ${s.id} has a send window of ${s.sendWindow.available}`);
        if (s.state === StreamState.Closed) violations.push(`${when}: ${side} keeps closed stream ${s.id} in its map`);
      }
    }
  };
  const turn = () => new Promise<void>((resolve) => setTimeout(resolve, 0));
  const pick = (n: number): Tracked | undefined => (tracked.length ? tracked[n % tracked.length] : undefined);

  for (const [i, op] of ops.entries()) {
    switch (op.op) {
      case "open": {
        const session = pair[op.side];
        if (!session.ready) break;
        const body = op.fin || op.body === undefined ? undefined : new Uint8Array(op.body).fill(i & 0xff);
        const stream = session.open(REQUEST, op.fin, body);
        track(op.side, stream, op.fin || body !== undefined);
        break;
      }
      case "write": {
        const t = pick(op.pick);
        if (t && t.stream.writable && !t.ended) settleWrite(t.stream.write(new Uint8Array(op.size).fill(i & 0xff)));
        break;
      }
      case "end": {
        const t = pick(op.pick);
        if (t && t.stream.writable && !t.ended) {
          t.ended = true;
          settleWrite(t.stream.end());
        }
        break;
      }
      case "reset":
        pick(op.pick)?.stream.reset(op.code as ErrorCode, "fuzz");
        break;
      case "hold":
        hold[op.side] = op.on;
        break;
      case "consume": {
        const t = pick(op.pick);
        if (t && t.held > 0) {
          t.stream.consumed(t.held);
          t.held = 0;
        }
        break;
      }
      case "goaway":
        pair[op.side].goAway(ErrorCode.NoError, "fuzz");
        break;
      case "ping":
        pair[op.side].ping(new Uint8Array(8).fill(i & 0xff));
        break;
      case "overrun": {
        // The peer sends one byte more than the window left: the receiver resets the stream with
        // FLOW_CONTROL_ERROR and hands none of it on.
        const t = pick(op.pick);
        const session = t && pair[t.side];
        if (!t || !session || session.closed || session.streams.get(t.stream.id) !== t.stream) break;
        if (!t.stream.status.remoteHeaders || (t.stream.state !== StreamState.Open && t.stream.state !== StreamState.HalfClosedLocal))
          break;
        let left = limits[t.side].window + t.credit - t.received + 1;
        const frames: Frame[] = [];
        for (; left > 0; left -= limits[t.side].maxFrame) {
          frames.push({
            type: FrameType.Data,
            flags: 0,
            streamId: t.stream.id,
            payload: new Uint8Array(Math.min(left, limits[t.side].maxFrame)),
          });
        }
        const before = t.received;
        // Held, not consumed, while it arrives: credit returned mid-message would widen the window.
        const holding = hold[t.side];
        hold[t.side] = true;
        session.receive(encodeFrames(frames));
        hold[t.side] = holding;
        if (t.stream.error?.code !== ErrorCode.FlowControlError) {
          violations.push(`overrun of ${t.side} stream ${t.stream.id} ended with ${t.stream.error?.code} in state ${t.stream.state}`);
        }
        if (t.received > before + limits[t.side].window) violations.push(`overrun of ${t.side} stream ${t.stream.id} was handed on`);
        break;
      }
      case "inject":
        forged = true;
        pair.inject(op.to, encodeFrame(op.frame));
        break;
      case "mutate": {
        const sent = pair.sent[other(op.to)];
        if (sent.length === 0) break;
        forged = true;
        pair.inject(op.to, mutate(sent[op.pick % sent.length].bytes, op.mutations));
        break;
      }
      case "tick":
        for (let n = 0; n < op.turns; n++) await turn();
        break;
    }
    check(`after op ${i} (${op.op})`);
  }

  // Both sides finish: nothing held back, every direction ended. Without forged frames every
  // stream must then close on its own; forged ones may leave streams the peer never knew of.
  hold.relay = hold.agent = false;
  const finish = () => {
    // Again on every turn: streams the peer opened late are accepted meanwhile.
    for (const t of tracked) {
      if (t.held > 0 && t.stream.state !== StreamState.Closed) t.stream.consumed(t.held);
      t.held = 0;
      if (t.stream.writable && !t.ended) {
        t.ended = true;
        settleWrite(t.stream.end());
      }
    }
  };
  const quiet = () => sides.every((side) => pair[side].closed || pair[side].streams.size === 0);
  const deadline = Date.now() + SETTLE_MS;
  for (finish(); !quiet() && Date.now() < deadline; finish()) await turn();
  check("after both sides finished");
  if (!forged && !quiet()) {
    const open = tracked.filter((t) => t.stream.state !== StreamState.Closed).map((t) => `${t.side} ${t.stream.id} ${t.stream.state}`);
    violations.push(`streams still open after both sides finished: ${open.join(", ")}`);
  }

  pair.close("relay", 1000, "fuzz over");
  const closedBy = Date.now() + SETTLE_MS;
  while (!sides.every((side) => pair[side].closed) && Date.now() < closedBy) await turn();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const hung = await Promise.race([
    Promise.all(writes).then(() => false),
    new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(true), SETTLE_MS))),
  ]);
  clearTimeout(timer);
  if (hung) violations.push("a write never settled after the tunnel closed");
  for (const side of sides) {
    if (!pair[side].closed) violations.push(`${side} session not destroyed after the transport closed`);
    if (pair[side].streams.size > 0) violations.push(`${side} keeps ${pair[side].streams.size} streams after destroy`);
  }
  for (const t of tracked)
    if (t.stream.state !== StreamState.Closed) violations.push(`${t.side} stream ${t.stream.id} is ${t.stream.state} after destroy`);

  expect(escapes.map(String)).toEqual([]);
  expect(errors.filter((e) => !(e instanceof ProtocolError)).map(String)).toEqual([]);
  expect(violations).toEqual([]);
}

describe("session under random operations", () => {
  it("keeps its invariants over random streams, flow control, resets, goaways and forged frames", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(arbOp, { minLength: 1, maxLength: 40 }), arbLimits, arbLimits, fc.integer(), (ops, relay, agent, seed) =>
        run(ops, { relay, agent }, seed),
      ),
      fuzzParams(RUNS),
    );
  });

  it("ends every stream with well-behaved peers only (no forged frames)", async () => {
    const honest = arbOp.filter((op) => op.op !== "inject" && op.op !== "mutate");
    await fc.assert(
      fc.asyncProperty(fc.array(honest, { minLength: 1, maxLength: 40 }), arbLimits, arbLimits, fc.integer(), (ops, relay, agent, seed) =>
        run(ops, { relay, agent }, seed),
      ),
      fuzzParams(RUNS),
    );
  });
});
