// Property-based tests of the codec (README "Frame layout", "Header block"): random frames
// round-trip whole, split anywhere and back to back; random and mutated bytes either decode or
// throw ProtocolError, never another exception. FUZZ_SEED / FUZZ_RUNS: docs/testing.md.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  FrameDecoder,
  decodeClose,
  decodeError,
  decodeHeaderBlock,
  decodeHello,
  decodeMessage,
  decodeU32,
  encodeFrame,
  encodeFrames,
  encodeHeaderBlock,
} from "../../src/protocol/codec.ts";
import { FrameType, MAX_HEADER_BLOCK, ProtocolError, type Frame, type HeaderList } from "../../src/protocol/frame.ts";
import { decodeRequestHead, decodeResponseHead, encodeRequestHead, encodeResponseHead } from "../../src/protocol/head.ts";
import { MessageAssembler } from "../../src/protocol/messages.ts";
import { arbFrame, arbMutatedMessage, fuzzParams } from "../helpers/fuzz.ts";

const RUNS = 300;

/** Frames as plain values (payload views become arrays) for deep comparison. */
const plain = (frames: readonly Frame[]) => frames.map((f) => ({ ...f, payload: Array.from(f.payload) }));

/** Pushes `bytes` into a fresh decoder in pieces cut at `cuts`; returns the frames and what is left over. */
function decodeInPieces(bytes: Uint8Array, cuts: readonly number[]): { frames: Frame[]; buffered: number } {
  const decoder = new FrameDecoder();
  const frames: Frame[] = [];
  let from = 0;
  for (const cut of [...new Set(cuts)].sort((a, b) => a - b)) {
    frames.push(...decoder.push(bytes.subarray(from, cut)));
    from = cut;
  }
  frames.push(...decoder.push(bytes.subarray(from)));
  return { frames, buffered: decoder.buffered };
}

/** Runs `decode`; passes when it returns or throws ProtocolError, fails on any other exception. */
function decodesOrRefuses(decode: () => unknown): void {
  try {
    decode();
  } catch (err) {
    if (!(err instanceof ProtocolError)) throw new Error(`expected a ProtocolError, got ${String(err)}`, { cause: err });
  }
}

/** Every decoder a received frame can reach, as the session and the relay apply them. */
function decodeEverything(bytes: Uint8Array): void {
  for (const frame of decodeMessage(bytes)) {
    switch (frame.type) {
      case FrameType.Hello:
        decodeHello(frame.payload);
        break;
      case FrameType.Headers: {
        const list = decodeHeaderBlock(frame.payload);
        decodesOrRefuses(() => decodeRequestHead(list));
        decodesOrRefuses(() => decodeResponseHead(list));
        break;
      }
      case FrameType.WindowUpdate:
        decodeU32(frame.payload);
        break;
      case FrameType.RstStream:
      case FrameType.GoAway:
        decodeError(frame.payload);
        break;
      case FrameType.Close:
        decodeClose(frame.payload);
        break;
      case FrameType.Data:
        new MessageAssembler(64).push(frame.payload, frame.flags);
        break;
    }
  }
}

/** Header names and values: any Unicode scalar values (ASCII and UTF-8 paths both). */
const arbText = (maxLength: number) => fc.oneof(fc.string({ unit: "binary-ascii", maxLength }), fc.string({ unit: "binary", maxLength }));
const arbHeaderList: fc.Arbitrary<HeaderList> = fc.array(fc.tuple(arbText(40), arbText(200)), { maxLength: 20 });

describe("frames round-trip", () => {
  it("one frame, encoded then decoded whole", () => {
    fc.assert(
      fc.property(arbFrame({ maxPayload: 300 }), (frame) => {
        expect(plain(decodeMessage(encodeFrame(frame)))).toEqual(plain([frame]));
      }),
      fuzzParams(RUNS),
    );
  });

  it("several frames back to back in one message", () => {
    fc.assert(
      fc.property(fc.array(arbFrame(), { maxLength: 12 }), (frames) => {
        expect(plain(decodeMessage(encodeFrames(frames)))).toEqual(plain(frames));
      }),
      fuzzParams(RUNS),
    );
  });

  it("several frames pushed one byte at a time", () => {
    fc.assert(
      fc.property(fc.array(arbFrame({ maxPayload: 24 }), { minLength: 1, maxLength: 4 }), (frames) => {
        const bytes = encodeFrames(frames);
        const cuts = Array.from({ length: bytes.byteLength }, (_, i) => i);
        expect(decodeInPieces(bytes, cuts)).toEqual({ frames: expect.anything(), buffered: 0 });
        expect(plain(decodeInPieces(bytes, cuts).frames)).toEqual(plain(frames));
      }),
      fuzzParams(RUNS / 3),
    );
  });

  it("several frames pushed in pieces cut at random points", () => {
    fc.assert(
      fc.property(fc.array(arbFrame(), { minLength: 1, maxLength: 8 }), fc.array(fc.nat(), { maxLength: 10 }), (frames, points) => {
        const bytes = encodeFrames(frames);
        const { frames: decoded, buffered } = decodeInPieces(
          bytes,
          points.map((p) => p % (bytes.byteLength + 1)),
        );
        expect(buffered).toBe(0);
        expect(plain(decoded)).toEqual(plain(frames));
      }),
      fuzzParams(RUNS),
    );
  });
});

describe("random and mutated bytes decode or throw ProtocolError", () => {
  it("random bytes as one message, through every payload decoder", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => decodesOrRefuses(() => decodeEverything(bytes))),
      fuzzParams(RUNS * 3),
    );
  });

  it("mutated well-formed messages, through every payload decoder", () => {
    fc.assert(
      fc.property(arbMutatedMessage(arbFrame({ maxPayload: 80 })), (bytes) => decodesOrRefuses(() => decodeEverything(bytes))),
      fuzzParams(RUNS * 3),
    );
  });

  it("mutated messages pushed in random pieces: the same frames as whole, or refused both ways", () => {
    fc.assert(
      fc.property(arbMutatedMessage(), fc.array(fc.nat(), { maxLength: 6 }), (bytes, points) => {
        let whole: Frame[] | ProtocolError;
        try {
          whole = new FrameDecoder().push(bytes);
        } catch (err) {
          if (!(err instanceof ProtocolError)) throw err;
          whole = err;
        }
        const decoder = new FrameDecoder();
        const got: Frame[] = [];
        let from = 0;
        try {
          for (const cut of [...points.map((p) => p % (bytes.byteLength + 1)), bytes.byteLength].sort((a, b) => a - b)) {
            got.push(...decoder.push(bytes.subarray(from, cut)));
            from = cut;
          }
        } catch (err) {
          if (!(err instanceof ProtocolError)) throw err;
          // Split or whole, the same bytes are refused (a split may refuse before the rest arrives).
          expect(whole).toBeInstanceOf(ProtocolError);
          return;
        }
        expect(whole).not.toBeInstanceOf(ProtocolError);
        expect(plain(got)).toEqual(plain(whole as Frame[]));
      }),
      fuzzParams(RUNS),
    );
  });

  it("random header blocks decode or throw ProtocolError", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 120 }), (bytes) => decodesOrRefuses(() => decodeHeaderBlock(bytes))),
      fuzzParams(RUNS * 3),
    );
  });

  it("random hellos decode or throw ProtocolError", () => {
    const arbJson = fc.oneof(
      fc.json(),
      fc.jsonValue().map((v) => JSON.stringify({ v: 1, software: "x", id: "y", caps: [], window: 1, maxFrame: 1, extra: v })),
    );
    fc.assert(
      fc.property(
        fc.oneof(
          arbJson.map((s) => new TextEncoder().encode(s)),
          fc.uint8Array({ maxLength: 60 }),
        ),
        (bytes) => decodesOrRefuses(() => decodeHello(bytes)),
      ),
      fuzzParams(RUNS),
    );
  });
});

describe("header blocks round-trip", () => {
  it("any header list, encoded then decoded", () => {
    fc.assert(
      fc.property(arbHeaderList, (list) => {
        const block = encodeHeaderBlock(list);
        expect(block.byteLength).toBeLessThanOrEqual(MAX_HEADER_BLOCK);
        expect(decodeHeaderBlock(block)).toEqual(list);
      }),
      fuzzParams(RUNS),
    );
  });

  it("request and response heads, encoded then decoded", () => {
    const regular = arbHeaderList.map((list) => list.filter(([name]) => !name.startsWith(":")));
    const arbRequest = fc.record(
      {
        method: arbText(10),
        path: arbText(60),
        scheme: arbText(8),
        authority: arbText(30),
        protocol: arbText(10).filter((p) => p !== ""),
        headers: regular,
      },
      { requiredKeys: ["method", "path", "scheme", "authority", "headers"] },
    );
    // Response fields as HTTP allows them (token names, visible ASCII values), with a final status.
    const arbResponseFields: fc.Arbitrary<HeaderList> = fc.array(
      fc.tuple(fc.stringMatching(/^[a-z0-9-]{1,20}$/), fc.stringMatching(/^[\x21-\x7e]{0,40}$/)),
      { maxLength: 10 },
    );
    fc.assert(
      fc.property(arbRequest, fc.integer({ min: 200, max: 599 }), arbResponseFields, (request, status, headers) => {
        expect(decodeRequestHead(decodeHeaderBlock(encodeHeaderBlock(encodeRequestHead(request))))).toEqual(request);
        expect(decodeResponseHead(decodeHeaderBlock(encodeHeaderBlock(encodeResponseHead({ status, headers }))))).toEqual({
          status,
          headers,
        });
      }),
      fuzzParams(RUNS),
    );
  });
});
