// A hostile agent inside workerd: thousands of random and mutated frames from an authenticated
// agent of backend A, while backend B's agent keeps answering. FUZZ_SEED / FUZZ_RUNS: docs/testing.md.
import { env } from "cloudflare:workers";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { decodeMessage, encodeFrame, encodeFrames, encodeHeaderBlock } from "../../src/protocol/codec.ts";
import { Flag, FrameType, HEARTBEAT_PING, TunnelClose, type Frame } from "../../src/protocol/frame.ts";
import { encodeResponseHead } from "../../src/protocol/head.ts";
import { TUNNEL_TAG } from "../../src/hub/tunnels.ts";
import { arbFrame, arbMutatedMessage } from "../helpers/fuzz.ts";
import { fromHex, toHex } from "../helpers/hex.ts";
import {
  backendName,
  stubFor,
  tapMessages,
  closeAgent,
  connectAgent,
  expectError,
  publicFetch,
  readyAgent,
  respond,
  roundTrip,
  within,
  type TestAgent,
} from "../helpers/hub-agent.ts";

/** Frames the fuzzing agent sends in all, unless FUZZ_RUNS (a vitest binding) asks for more. */
const FRAMES = Number((env as { FUZZ_RUNS?: string }).FUZZ_RUNS || 0) * 10 || 2000;
/** FUZZ_SEED replays a run; else a fresh seed, printed with any failure. */
const SEED = Number((env as { FUZZ_SEED?: string }).FUZZ_SEED || 0) || Math.floor(Math.random() * 0x7fffffff);
/** Public requests to A kept in flight, so the fuzzer's frames hit streams the relay opened. */
const REQUESTS_IN_FLIGHT = 4;
/** Messages sent between two probes of the relay (a PING it must answer). */
const BATCH = 4;

/** The ids the relay opens first (odd), where the fuzzer's frames meet real streams. */
const relayIds = fc.integer({ min: 0, max: 8 }).map((n) => 2 * n + 1);

/** A response HEADERS on one of the first stream ids the relay opens: a random status and fields. */
const arbResponseHeaders: fc.Arbitrary<Frame> = fc.record({
  type: fc.constant(FrameType.Headers),
  flags: fc.constantFrom(0, Flag.FIN),
  streamId: relayIds,
  payload: fc
    .tuple(
      fc.integer({ min: 0, max: 1000 }),
      fc.array(fc.tuple(fc.string({ maxLength: 12 }), fc.string({ maxLength: 40 })), { maxLength: 4 }),
    )
    .map(([status, fields]) => encodeHeaderBlock([[":status", String(status)], ...fields])),
});

/** Frames the relay should take without closing the tunnel, mostly: pings, credit, resets, heads, body bytes. */
const arbMild: fc.Arbitrary<Frame> = fc.oneof(
  fc.record({
    type: fc.constant(FrameType.Ping),
    flags: fc.constantFrom(0, Flag.ACK),
    streamId: fc.constant(0),
    payload: fc.uint8Array({ minLength: 8, maxLength: 8 }),
  }),
  fc.record({
    type: fc.constant(FrameType.WindowUpdate),
    flags: fc.constant(0),
    streamId: relayIds,
    payload: fc.integer({ min: 1, max: 1 << 20 }).map((n) => Uint8Array.of(n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff)),
  }),
  fc.record({
    type: fc.constant(FrameType.RstStream),
    flags: fc.constant(0),
    streamId: relayIds,
    payload: fc.uint8Array({ minLength: 4, maxLength: 20 }),
  }),
  fc.record({
    type: fc.constant(FrameType.Data),
    flags: fc.constantFrom(0, Flag.FIN),
    streamId: fc.integer({ min: 1, max: 40 }),
    payload: fc.uint8Array({ maxLength: 300 }),
  }),
  arbResponseHeaders,
);

/** One message from the fuzzing agent: mostly mild frames, sometimes any frame or mutated bytes. */
const arbMessage: fc.Arbitrary<{ bytes: Uint8Array; frames: number }> = fc.oneof(
  {
    weight: 12,
    arbitrary: fc.array(arbMild, { minLength: 1, maxLength: 8 }).map((frames) => ({ bytes: encodeFrames(frames), frames: frames.length })),
  },
  {
    weight: 1,
    arbitrary: fc
      .array(arbFrame({ streamIds: fc.integer({ min: 1, max: 17 }) }), { minLength: 1, maxLength: 4 })
      .map((frames) => ({ bytes: encodeFrames(frames), frames: frames.length })),
  },
  {
    weight: 1,
    arbitrary: arbMutatedMessage(arbFrame({ streamIds: fc.integer({ min: 1, max: 17 }) })).map((bytes) => ({ bytes, frames: 1 })),
  },
);

/** Resolves once the relay answered a raw PING sent now (everything before it was processed), or the tunnel closed. */
function probe(agent: TestAgent, n: number): Promise<"acked" | "closed"> {
  const payload = new Uint8Array(8);
  new DataView(payload.buffer).setUint32(4, n);
  return within(
    new Promise<"acked" | "closed">((resolve) => {
      const onMessage = (ev: MessageEvent) => {
        if (typeof ev.data === "string") return;
        let frames: Frame[] = [];
        try {
          frames = decodeMessage(new Uint8Array(ev.data as ArrayBuffer), 0x7fffffff);
        } catch {
          return;
        }
        const acked = frames.some((f) => f.type === FrameType.Ping && f.flags & Flag.ACK && f.payload.every((b, i) => b === payload[i]));
        if (acked) {
          agent.ws.removeEventListener("message", onMessage);
          resolve("acked");
        }
      };
      agent.ws.addEventListener("message", onMessage);
      agent.closed.then(() => resolve("closed"));
      try {
        agent.ws.send(encodeFrame({ type: FrameType.Ping, flags: 0, streamId: 0, payload }));
      } catch {
        resolve("closed");
      }
    }),
    `the relay to process fuzz message ${n} (seed ${SEED})`,
  );
}

describe("a fuzzing agent", () => {
  it("is refused with 1002 on every bad frame, while another backend keeps answering and its own backend recovers", {
    timeout: 240_000,
  }, async () => {
    const a = backendName();
    const b = backendName();
    const messages = fc.sample(arbMessage, { seed: SEED, numRuns: FRAMES });

    // Backend B: an honest agent answering every request, and a client asking it throughout.
    const honest = await readyAgent(b);
    let fuzzing = true;
    const answering = (async () => {
      while (fuzzing) {
        const next = await honest.next().catch(() => undefined);
        if (next) await respond(next.stream, 200, [], `b:${next.head.path}`);
      }
    })();
    const bResults: string[] = [];
    const asking = (async () => {
      for (let i = 0; fuzzing; i++) {
        // B's heartbeat, as a real agent sends it: a long run must not outlast the relay's deadline.
        if (i % 20 === 0) honest.ws.send(HEARTBEAT_PING);
        const resp = await within(publicFetch(b, `/${i}`), `B's request ${i} (seed ${SEED})`);
        bResults.push(`${resp.status} ${await resp.text()}` === `200 b:/${i}` ? "ok" : `${resp.status}`);
      }
    })();

    // Backend A: the fuzzer, reconnecting each time the relay closes its tunnel. A's public
    // requests must each be answered once the tunnel they were on is gone.
    const pendingA = new Set<Promise<void>>();
    const aStatuses: number[] = [];
    const aFailures: string[] = [];
    const askA = () => {
      const p = publicFetch(a, `/fuzz/${aStatuses.length + pendingA.size}`).then(
        async (resp) => {
          aStatuses.push(resp.status);
          await resp.arrayBuffer().catch(() => {}); // a body cut short by the tunnel's end
        },
        (err) => void aFailures.push(String(err)),
      );
      pendingA.add(p);
      void p.finally(() => pendingA.delete(p));
    };
    const closes: Array<{ code: number; reason: string; last: string }> = [];
    let fuzzer: TestAgent | undefined;
    // What A's object takes from the fuzzing tunnel, as it handles it.
    const tap = await tapMessages(stubFor(a), TUNNEL_TAG);
    let handled = 0;
    let frames = 0;
    for (let n = 0; n < messages.length && frames < FRAMES; n += BATCH) {
      if (!fuzzer) {
        await within(Promise.all(pendingA), `A's requests to be answered after their tunnel closed (seed ${SEED})`);
        fuzzer = await connectAgent(a);
        await within(fuzzer.relayHello, "the relay's HELLO");
        // Only this tunnel's fuzz messages count from here (the earlier tunnels are closed).
        tap.taken.length = 0;
        handled = 0;
        for (let i = 0; i < REQUESTS_IN_FLIGHT; i++) askA();
        await fuzzer.next();
      }
      const batch = messages.slice(n, n + BATCH);
      // One message at a time, each handled by the relay before the next is sent: the runtime's
      // in-process client may reorder a burst, and the seed must replay the same order.
      let refused = false;
      for (const message of batch) {
        try {
          fuzzer.ws.send(message.bytes);
        } catch {
          refused = true; // the socket already saw the relay's close
          break;
        }
        await tap.handled(++handled, `the relay to take fuzz message ${n} (seed ${SEED})`);
        refused = tap.taken.some((t) => t.open === false);
        if (refused) break;
      }
      for (const message of batch) frames += message.frames;
      // Still open: the tunnel must answer a PING sent after the batch.
      if (refused || (await probe(fuzzer, n)) === "closed") {
        const { code, reason } = await within(fuzzer.closed, `the close of the tunnel the relay refused (seed ${SEED})`);
        // Answer the close as a real agent's WebSocket does, so the relay can let the socket go.
        await closeAgent(fuzzer);
        const hex = batch.map((m) => toHex(m.bytes));
        closes.push({ code, reason, last: hex.join(" ") });
        if (code !== TunnelClose.ProtocolError && code !== TunnelClose.BadHello) {
          console.error(
            `fuzz (seed ${SEED}): messages ${n}-${n + batch.length - 1} closed the tunnel with ${code} ${reason}:\n${hex.join("\n")}`,
          );
        }
        fuzzer = undefined;
      }
    }
    if (fuzzer) await closeAgent(fuzzer);
    await within(Promise.all(pendingA), `A's requests to be answered after the last fuzzing tunnel closed (seed ${SEED})`);
    fuzzing = false;
    await asking;
    await closeAgent(honest);
    await answering;

    // Every tunnel the relay closed, it closed as a protocol error (1002, 4400), never as its own failure (1011).
    const unexpected = closes.filter((c) => c.code !== TunnelClose.ProtocolError && c.code !== TunnelClose.BadHello);
    expect(unexpected, `seed ${SEED}`).toEqual([]);
    expect(frames).toBeGreaterThanOrEqual(FRAMES);
    // B answered every request while A was fuzzed.
    expect(bResults.length).toBeGreaterThan(0);
    expect(
      bResults.filter((r) => r !== "ok"),
      `seed ${SEED}`,
    ).toEqual([]);
    // Every public client of A got a response (a status, never a failed fetch).
    expect(aFailures, `seed ${SEED}`).toEqual([]);
    expect(aStatuses.length).toBeGreaterThan(0);

    // A's object still works: a new tunnel serves a request.
    const fresh = await readyAgent(a);
    const pending = publicFetch(a, "/after");
    const incoming = await fresh.next();
    expect(incoming.head.path).toBe("/after");
    await respond(incoming.stream, 200, [], "recovered");
    const resp = await within(pending, "A's request after the fuzzing");
    expect(resp.status).toBe(200);
    expect(await resp.text()).toBe("recovered");
    await closeAgent(fresh);
  });
});

describe("what the fuzzer found", () => {
  // Seed 12345, message 6: a PING ACK, then response heads with :status 866 (stream 7), 869
  // (stream 3) and 906 with FIN (stream 17). The runtime refuses to build a Response outside
  // 200-599; that threw out of the tunnel's message handler (close 1011, every request on the
  // tunnel lost) and left the client of stream 7 waiting for ever.
  const STATUS_866 =
    "05020000000000000008639b554006c17f54" +
    "01000000000700000012000100073a737461747573000000033836360" +
    "100000000030000001b000200073a7374617475730000000338363900016e00000002386e" +
    "01010000001100000018000200073a73746174757300000003393036000000000000";
  // The same failure with a header name the runtime refuses ("bad name"), in its smallest form.
  const BAD_NAME = "01000000000100000021000200073a737461747573000000033230300008626164206e616d650000000178";

  it("answers 502 protocol_error to requests whose heads the runtime refuses, and keeps the tunnel", async () => {
    const backend = backendName();
    const agent = await readyAgent(backend);
    // The relay numbers streams in the order the requests reach it: map each id to its request.
    const requests = [0, 1, 2, 3].map((i) => publicFetch(backend, `/${i}`));
    const streams = await Promise.all(requests.map(() => agent.next()));
    expect(streams.map((s) => s.stream.id).sort()).toEqual([1, 3, 5, 7]);
    const requestOn = (id: number) => requests[Number(streams.find((s) => s.stream.id === id)!.head.path.slice(1))];

    agent.ws.send(fromHex(STATUS_866));
    for (const id of [3, 7]) await expectError(await within(requestOn(id), `the request on stream ${id}`), 502, "protocol_error", backend);
    agent.ws.send(fromHex(BAD_NAME));
    await expectError(await within(requestOn(1), "the request on stream 1"), 502, "protocol_error", backend);

    // The tunnel is still up: it answers a PING and serves the request left on it.
    await roundTrip(agent);
    await respond(streams.find((s) => s.stream.id === 5)!.stream, 200, [], "still here");
    const resp = await within(requestOn(5), "the request on stream 5");
    expect(resp.status).toBe(200);
    expect(await resp.text()).toBe("still here");
    await closeAgent(agent);
  });
});

describe("what the fuzzer found: CLOSE on an HTTP stream", () => {
  // Seed 1206753254: a response head with :status 340, then a CLOSE frame (message streams only)
  // on that HTTP stream. It was taken as a FIN that nothing read, and the public client's body
  // waited for ever, even after the tunnel closed.
  it("errors the public response body at once, and the tunnel serves on", { timeout: 30_000 }, async () => {
    const backend = backendName();
    const agent = await readyAgent(backend);
    const pending = publicFetch(backend, "/held");
    const req = await agent.next();
    req.stream.sendHeaders(encodeResponseHead({ status: 340, headers: [] }));
    const resp = await within(pending, "the response head");
    const close = new Uint8Array([0, 0, 0x03, 0xe8, 0x61, 0x62, 0x63, 0x64]);
    agent.ws.send(encodeFrame({ type: FrameType.Close, flags: 0, streamId: req.stream.id, payload: close }));
    const settled = await within(
      resp.arrayBuffer().then(
        () => "ended",
        () => "errored",
      ),
      "the body to settle",
      5000,
    );
    expect(settled).toBe("errored");
    const next = publicFetch(backend, "/next");
    await respond((await agent.next()).stream, 200, [], "still serving");
    expect(await (await within(next, "the next response")).text()).toBe("still serving");
    await closeAgent(agent);
  });
});
