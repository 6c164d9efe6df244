// The stream transition table (README "States"): every (status, event) pair, written out by hand,
// plus the scenarios the spec names: data before headers, FIN twice, RST from any state.
import { describe, expect, it } from "vitest";
import { ProtocolError } from "../../src/protocol/frame.ts";
import { StreamEvent, StreamState, idleStatus, transition, type StreamStatus } from "../../src/protocol/stream.ts";

const { Idle, Open, HalfClosedLocal: HCL, HalfClosedRemote: HCR, Closed } = StreamState;
const E = StreamEvent;

/** A status: state, and whether this side (local) and the peer (remote) have sent HEADERS. */
const st = (state: StreamState, localHeaders: boolean, remoteHeaders: boolean): StreamStatus => ({ state, localHeaders, remoteHeaders });

/** Send events throw a plain Error (our bug); receive events a ProtocolError (the peer's). */
const SEND_FAIL = "send-fail" as const;
const RECV_FAIL = "recv-fail" as const;
type Outcome = StreamStatus | typeof SEND_FAIL | typeof RECV_FAIL;

// Every status a stream can reach, with what each event does to it.
const TABLE: Array<[name: string, from: StreamStatus, outcomes: Record<StreamEvent, Outcome>]> = [
  [
    "idle",
    st(Idle, false, false),
    {
      [E.SendHeaders]: st(Open, true, false),
      [E.RecvHeaders]: st(Open, false, true),
      [E.SendData]: SEND_FAIL,
      [E.RecvData]: RECV_FAIL,
      [E.SendFin]: SEND_FAIL,
      [E.RecvFin]: RECV_FAIL,
      [E.SendRst]: st(Closed, false, false),
      [E.RecvRst]: st(Closed, false, false),
    },
  ],
  [
    "open, our headers sent (the relay awaiting a response)",
    st(Open, true, false),
    {
      [E.SendHeaders]: SEND_FAIL,
      [E.RecvHeaders]: st(Open, true, true),
      [E.SendData]: st(Open, true, false),
      [E.RecvData]: RECV_FAIL,
      [E.SendFin]: st(HCL, true, false),
      [E.RecvFin]: RECV_FAIL,
      [E.SendRst]: st(Closed, true, false),
      [E.RecvRst]: st(Closed, true, false),
    },
  ],
  [
    "open, their headers received (the agent before responding)",
    st(Open, false, true),
    {
      [E.SendHeaders]: st(Open, true, true),
      [E.RecvHeaders]: RECV_FAIL,
      [E.SendData]: SEND_FAIL,
      [E.RecvData]: st(Open, false, true),
      [E.SendFin]: SEND_FAIL,
      [E.RecvFin]: st(HCR, false, true),
      [E.SendRst]: st(Closed, false, true),
      [E.RecvRst]: st(Closed, false, true),
    },
  ],
  [
    "open, both heads exchanged",
    st(Open, true, true),
    {
      [E.SendHeaders]: SEND_FAIL,
      [E.RecvHeaders]: RECV_FAIL,
      [E.SendData]: st(Open, true, true),
      [E.RecvData]: st(Open, true, true),
      [E.SendFin]: st(HCL, true, true),
      [E.RecvFin]: st(HCR, true, true),
      [E.SendRst]: st(Closed, true, true),
      [E.RecvRst]: st(Closed, true, true),
    },
  ],
  [
    "half-closed local before their headers",
    st(HCL, true, false),
    {
      [E.SendHeaders]: SEND_FAIL,
      [E.RecvHeaders]: st(HCL, true, true),
      [E.SendData]: SEND_FAIL,
      [E.RecvData]: RECV_FAIL,
      [E.SendFin]: SEND_FAIL,
      [E.RecvFin]: RECV_FAIL,
      [E.SendRst]: st(Closed, true, false),
      [E.RecvRst]: st(Closed, true, false),
    },
  ],
  [
    "half-closed local after their headers",
    st(HCL, true, true),
    {
      [E.SendHeaders]: SEND_FAIL,
      [E.RecvHeaders]: RECV_FAIL,
      [E.SendData]: SEND_FAIL,
      [E.RecvData]: st(HCL, true, true),
      [E.SendFin]: SEND_FAIL,
      [E.RecvFin]: st(Closed, true, true),
      [E.SendRst]: st(Closed, true, true),
      [E.RecvRst]: st(Closed, true, true),
    },
  ],
  [
    "half-closed remote before our headers",
    st(HCR, false, true),
    {
      [E.SendHeaders]: st(HCR, true, true),
      [E.RecvHeaders]: RECV_FAIL,
      [E.SendData]: SEND_FAIL,
      [E.RecvData]: RECV_FAIL,
      [E.SendFin]: SEND_FAIL,
      [E.RecvFin]: RECV_FAIL,
      [E.SendRst]: st(Closed, false, true),
      [E.RecvRst]: st(Closed, false, true),
    },
  ],
  [
    "half-closed remote after our headers",
    st(HCR, true, true),
    {
      [E.SendHeaders]: SEND_FAIL,
      [E.RecvHeaders]: RECV_FAIL,
      [E.SendData]: st(HCR, true, true),
      [E.RecvData]: RECV_FAIL,
      [E.SendFin]: st(Closed, true, true),
      [E.RecvFin]: RECV_FAIL,
      [E.SendRst]: st(Closed, true, true),
      [E.RecvRst]: st(Closed, true, true),
    },
  ],
  [
    "closed after both FINs",
    st(Closed, true, true),
    {
      [E.SendHeaders]: SEND_FAIL,
      [E.RecvHeaders]: RECV_FAIL,
      [E.SendData]: SEND_FAIL,
      [E.RecvData]: RECV_FAIL,
      [E.SendFin]: SEND_FAIL,
      [E.RecvFin]: RECV_FAIL,
      [E.SendRst]: st(Closed, true, true),
      [E.RecvRst]: st(Closed, true, true),
    },
  ],
  [
    "closed by a reset before any headers",
    st(Closed, false, false),
    {
      [E.SendHeaders]: SEND_FAIL,
      [E.RecvHeaders]: RECV_FAIL,
      [E.SendData]: SEND_FAIL,
      [E.RecvData]: RECV_FAIL,
      [E.SendFin]: SEND_FAIL,
      [E.RecvFin]: RECV_FAIL,
      [E.SendRst]: st(Closed, false, false),
      [E.RecvRst]: st(Closed, false, false),
    },
  ],
];

const CASES = TABLE.flatMap(([name, from, outcomes]) =>
  Object.values(StreamEvent).map((event) => [name, event, from, outcomes[event]] as const),
);

/** Applies events from idle; the status they lead to. */
function run(...events: StreamEvent[]): StreamStatus {
  return events.reduce(transition, idleStatus());
}

describe("transition table", () => {
  it("lists every event for every status", () => {
    for (const [name, , outcomes] of TABLE) {
      expect(Object.keys(outcomes).sort(), name).toEqual(Object.values(StreamEvent).sort());
    }
    expect(CASES).toHaveLength(TABLE.length * 8);
  });

  it.each(CASES)("%s + %s", (_name, event, from, outcome) => {
    const before = { ...from };
    if (outcome === SEND_FAIL) {
      let caught: unknown;
      try {
        transition(from, event);
      } catch (err) {
        caught = err;
      }
      expect(caught).toBeInstanceOf(Error);
      expect(caught).not.toBeInstanceOf(ProtocolError);
      expect((caught as Error).message).toContain(event);
    } else if (outcome === RECV_FAIL) {
      expect(() => transition(from, event)).toThrow(ProtocolError);
    } else {
      expect(transition(from, event)).toEqual(outcome);
    }
    expect(from, "the input status is not changed").toEqual(before);
  });

  it("every status in the table is reachable from idle", () => {
    const reachable = [
      run(),
      run(E.SendHeaders),
      run(E.RecvHeaders),
      run(E.SendHeaders, E.RecvHeaders),
      run(E.SendHeaders, E.SendFin),
      run(E.SendHeaders, E.SendFin, E.RecvHeaders),
      run(E.RecvHeaders, E.RecvFin),
      run(E.RecvHeaders, E.RecvFin, E.SendHeaders),
      run(E.SendHeaders, E.SendFin, E.RecvHeaders, E.RecvFin),
      run(E.SendRst),
    ];
    expect(reachable).toEqual(TABLE.map(([, from]) => from));
  });
});

describe("scenarios from the spec", () => {
  it("a fresh stream is idle with no headers either way", () => {
    expect(idleStatus()).toEqual(st(Idle, false, false));
    expect(idleStatus()).not.toBe(idleStatus());
  });

  it("a whole request and response closes the stream (relay's view)", () => {
    expect(run(E.SendHeaders, E.SendData, E.SendFin, E.RecvHeaders, E.RecvData, E.RecvData, E.RecvFin)).toEqual(st(Closed, true, true));
  });

  it("a whole request and response closes the stream (agent's view)", () => {
    expect(run(E.RecvHeaders, E.RecvData, E.RecvFin, E.SendHeaders, E.SendData, E.SendFin)).toEqual(st(Closed, true, true));
  });

  it("the response may start before the request body ends", () => {
    expect(run(E.RecvHeaders, E.SendHeaders, E.SendData, E.RecvData, E.SendFin, E.RecvFin)).toEqual(st(Closed, true, true));
  });

  it("receiving DATA before the peer's HEADERS is a protocol error naming the headers", () => {
    expect(() => run(E.RecvData)).toThrow(ProtocolError);
    expect(() => run(E.RecvData)).toThrow(/before its headers/);
    expect(() => run(E.SendHeaders, E.RecvData)).toThrow(ProtocolError);
    expect(() => run(E.SendHeaders, E.SendFin, E.RecvData)).toThrow(ProtocolError);
  });

  it("sending DATA before our HEADERS is a plain error", () => {
    expect(() => run(E.SendData)).toThrow(/before its headers/);
    expect(() => run(E.RecvHeaders, E.SendData)).toThrow(Error);
    expect(() => run(E.RecvHeaders, E.SendData)).not.toThrow(ProtocolError);
  });

  it("a second HEADERS in one direction is an error", () => {
    expect(() => run(E.RecvHeaders, E.RecvHeaders)).toThrow(ProtocolError);
    expect(() => run(E.SendHeaders, E.SendHeaders)).toThrow(Error);
  });

  it("FIN twice is an error in either direction", () => {
    expect(() => run(E.RecvHeaders, E.RecvFin, E.RecvFin)).toThrow(ProtocolError);
    expect(() => run(E.SendHeaders, E.SendFin, E.SendFin)).toThrow(Error);
    expect(() => run(E.SendHeaders, E.SendFin, E.SendFin)).not.toThrow(ProtocolError);
  });

  it("HEADERS or DATA after the peer's FIN is a protocol error", () => {
    expect(() => run(E.RecvHeaders, E.RecvFin, E.RecvData)).toThrow(ProtocolError);
    expect(() => run(E.RecvHeaders, E.RecvFin, E.SendHeaders, E.RecvHeaders)).toThrow(ProtocolError);
  });

  it("a FIN before the HEADERS of its direction is an error", () => {
    expect(() => run(E.RecvFin)).toThrow(ProtocolError);
    expect(() => run(E.SendFin)).toThrow(Error);
  });

  it.each(TABLE.map(([name, from]) => [name, from] as const))("RST from %s closes the stream, sent or received", (_name, from) => {
    expect(transition(from, E.SendRst).state).toBe(Closed);
    expect(transition(from, E.RecvRst).state).toBe(Closed);
  });

  it("nothing but RST is allowed after a reset", () => {
    const reset = run(E.SendHeaders, E.RecvHeaders, E.RecvRst);
    for (const event of [E.SendHeaders, E.SendData, E.SendFin]) expect(() => transition(reset, event)).toThrow(Error);
    for (const event of [E.RecvHeaders, E.RecvData, E.RecvFin]) expect(() => transition(reset, event)).toThrow(ProtocolError);
    expect(transition(reset, E.SendRst).state).toBe(Closed);
  });
});
