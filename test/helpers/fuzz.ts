// Shared pieces of the property-based (fast-check) fuzz tests: run settings from the environment
// and arbitraries for well-formed, random and mutated frames. Runtime-neutral (Node and workerd).
import fc from "fast-check";
import { encodeFrames } from "../../src/protocol/codec.ts";
import { ALLOWED_FLAGS, FrameType, type Frame } from "../../src/protocol/frame.ts";

/** Reads an environment variable where the runtime has one (Node; workerd has no process.env). */
function envVar(name: string): string | undefined {
  const proc = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process;
  return proc?.env?.[name] || undefined;
}

/**
 * fast-check parameters: `runs` unless FUZZ_RUNS says otherwise, and FUZZ_SEED / FUZZ_PATH to
 * replay a failure (fast-check prints both in the error of a failed property).
 */
export function fuzzParams(runs: number): { numRuns: number; seed?: number; path?: string } {
  const seed = envVar("FUZZ_SEED");
  const path = envVar("FUZZ_PATH");
  return {
    numRuns: Number(envVar("FUZZ_RUNS") ?? runs),
    ...(seed !== undefined ? { seed: Number(seed) } : {}),
    ...(path !== undefined ? { path } : {}),
  };
}

const SESSION_TYPES = new Set<FrameType>([FrameType.Hello, FrameType.Ping, FrameType.GoAway]);

/** Every bit set in `mask`, as a subset arbitrary. */
function flagsOf(mask: number): fc.Arbitrary<number> {
  return fc.integer({ min: 0, max: 0xff }).map((bits) => bits & mask);
}

/** A payload the spec allows for `type`: fixed sizes for WINDOW_UPDATE and PING, a code prefix for RST/GOAWAY/CLOSE. */
function payloadOf(type: FrameType, maxLength: number): fc.Arbitrary<Uint8Array> {
  if (type === FrameType.WindowUpdate) return fc.uint8Array({ minLength: 4, maxLength: 4 });
  if (type === FrameType.Ping) return fc.uint8Array({ minLength: 8, maxLength: 8 });
  const min = type === FrameType.RstStream || type === FrameType.GoAway ? 4 : type === FrameType.Close ? 2 : 0;
  return fc.uint8Array({ minLength: min, maxLength: Math.max(min, maxLength) });
}

/**
 * A frame the codec must accept: any type, allowed flags, a stream id of the right kind, a
 * payload of an allowed size. `streamIds` narrows the ids of stream frames (default: any u31).
 */
export function arbFrame(opts: { maxPayload?: number; streamIds?: fc.Arbitrary<number> } = {}): fc.Arbitrary<Frame> {
  const streamIds = opts.streamIds ?? fc.integer({ min: 1, max: 0x7fffffff });
  return fc.constantFrom(...(Object.values(FrameType).filter((v) => typeof v === "number") as FrameType[])).chain((type) =>
    fc.record({
      type: fc.constant(type),
      flags: flagsOf(ALLOWED_FLAGS[type]),
      streamId: SESSION_TYPES.has(type) ? fc.constant(0) : streamIds,
      payload: payloadOf(type, opts.maxPayload ?? 64),
    }),
  );
}

/** Changes to a message: a byte overwritten, bytes cut off, or bytes inserted. */
export type Mutation =
  | { kind: "set"; at: number; value: number }
  | { kind: "cut"; at: number }
  | { kind: "insert"; at: number; bytes: Uint8Array };

export const arbMutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant("set" as const), at: fc.nat(), value: fc.integer({ min: 0, max: 0xff }) }),
  fc.record({ kind: fc.constant("cut" as const), at: fc.nat() }),
  fc.record({ kind: fc.constant("insert" as const), at: fc.nat(), bytes: fc.uint8Array({ minLength: 1, maxLength: 12 }) }),
);

/** Applies mutations in order (positions taken modulo the current length). */
export function mutate(bytes: Uint8Array, mutations: readonly Mutation[]): Uint8Array {
  let out = bytes.slice();
  for (const m of mutations) {
    const at = out.byteLength === 0 ? 0 : m.at % out.byteLength;
    if (m.kind === "set" && out.byteLength > 0) out[at] = m.value;
    else if (m.kind === "cut") out = out.slice(0, at);
    else if (m.kind === "insert") {
      const next = new Uint8Array(out.byteLength + m.bytes.byteLength);
      next.set(out.subarray(0, at));
      next.set(m.bytes, at);
      next.set(out.subarray(at), at + m.bytes.byteLength);
      out = next;
    }
  }
  return out;
}

/** Well-formed frames back to back, then mutated: bytes that reach past the header checks. */
export function arbMutatedMessage(frame: fc.Arbitrary<Frame> = arbFrame()): fc.Arbitrary<Uint8Array> {
  return fc
    .tuple(fc.array(frame, { minLength: 1, maxLength: 4 }), fc.array(arbMutation, { minLength: 1, maxLength: 3 }))
    .map(([frames, mutations]) => mutate(encodeFrames(frames), mutations));
}
