// Flow-control windows (README "Flow"): send credit spent and granted, writers parked until credit
// arrives; receive windows that reject overruns and return credit in half-window batches.
import { describe, expect, it } from "vitest";
import { ProtocolError } from "../../src/protocol/frame.ts";
import { ReceiveWindow, SendWindow } from "../../src/protocol/flow.ts";

/** Resolves "pending" if `promise` has not settled within `ms` (a bounded wait, not a sleep). */
async function settledWithin(promise: Promise<unknown>, ms = 50): Promise<"settled" | "pending"> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<"pending">((resolve) => (timer = setTimeout(() => resolve("pending"), ms)));
  try {
    return await Promise.race([promise.then(() => "settled" as const), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

describe("SendWindow", () => {
  it("starts with the peer's window as credit", () => {
    expect(new SendWindow(65536).available).toBe(65536);
    expect(new SendWindow(0).available).toBe(0);
  });

  it("consume spends credit down to zero", () => {
    const w = new SendWindow(100);
    w.consume(40);
    expect(w.available).toBe(60);
    w.consume(60);
    expect(w.available).toBe(0);
    w.consume(0);
    expect(w.available).toBe(0);
  });

  it("consuming more than the credit is a plain error (a bug on this side) and spends nothing", () => {
    const w = new SendWindow(10);
    expect(() => w.consume(11)).toThrow(/spent 11 bytes with only 10 of credit/);
    expect(() => w.consume(11)).not.toThrow(ProtocolError);
    expect(w.available).toBe(10);
  });

  it("grant adds credit", () => {
    const w = new SendWindow(0);
    w.grant(5);
    w.grant(7);
    expect(w.available).toBe(12);
  });

  it("a grant that takes the window past 2^31-1 is a protocol error and changes nothing", () => {
    const w = new SendWindow(0x7fffffff - 10);
    w.grant(10);
    expect(w.available).toBe(0x7fffffff);
    expect(() => w.grant(1)).toThrow(ProtocolError);
    expect(() => w.grant(1)).toThrow(/overflows/);
    expect(w.available).toBe(0x7fffffff);
  });

  it("waitForCredit stays pending until a grant", async () => {
    const w = new SendWindow(0);
    const waiting = w.waitForCredit();
    expect(await settledWithin(waiting)).toBe("pending");
    w.grant(1);
    expect(await settledWithin(waiting)).toBe("settled");
    expect(w.available).toBe(1);
  });

  it("a grant wakes every waiter at once", async () => {
    const w = new SendWindow(0);
    const waiters = [w.waitForCredit(), w.waitForCredit(), w.waitForCredit()];
    w.grant(3);
    expect(await settledWithin(Promise.all(waiters))).toBe("settled");
  });

  it("wake releases waiters without adding credit (the stream ended)", async () => {
    const w = new SendWindow(0);
    const waiting = w.waitForCredit();
    w.wake();
    expect(await settledWithin(waiting)).toBe("settled");
    expect(w.available).toBe(0);
  });

  it("a waiter registered after a grant waits for the next one", async () => {
    const w = new SendWindow(0);
    w.grant(4);
    w.consume(4);
    const late = w.waitForCredit();
    expect(await settledWithin(late)).toBe("pending");
    w.grant(4);
    expect(await settledWithin(late)).toBe("settled");
  });
});

describe("ReceiveWindow", () => {
  it("accepts exactly the window", () => {
    const w = new ReceiveWindow(1000);
    w.receive(600);
    w.receive(400);
    expect(() => w.receive(1)).toThrow(ProtocolError);
  });

  it("an overrun is a ProtocolError naming the bytes and the window left", () => {
    const w = new ReceiveWindow(1000);
    w.receive(990);
    expect(() => w.receive(11)).toThrow(/peer sent 11 bytes with 10 bytes of window left/);
    w.receive(10); // the failed receive took nothing
    expect(() => w.receive(1)).toThrow(ProtocolError);
  });

  it("returns no credit until half the window is consumed, then all of it at once", () => {
    const w = new ReceiveWindow(1000);
    w.receive(1000);
    expect(w.consumed(100)).toBe(0);
    expect(w.consumed(200)).toBe(0);
    expect(w.consumed(199)).toBe(0);
    expect(w.consumed(1)).toBe(500);
    expect(w.consumed(499)).toBe(0);
    expect(w.consumed(1)).toBe(500);
  });

  it("returns a batch larger than half when one hand-off crosses the mark", () => {
    const w = new ReceiveWindow(1000);
    w.receive(1000);
    expect(w.consumed(499)).toBe(0);
    expect(w.consumed(300)).toBe(799);
  });

  it("consumed(n, true) returns whatever is unreturned at once, and nothing when nothing is", () => {
    const w = new ReceiveWindow(1000);
    w.receive(300);
    expect(w.consumed(100)).toBe(0);
    expect(w.consumed(50, true)).toBe(150);
    expect(w.consumed(0, true)).toBe(0);
    expect(w.consumed(150)).toBe(0);
  });

  it("returned credit reopens the window for exactly that many bytes", () => {
    const w = new ReceiveWindow(1000);
    w.receive(1000);
    expect(w.consumed(600)).toBe(600);
    w.receive(600);
    expect(() => w.receive(1)).toThrow(ProtocolError);
  });

  it("consumed-but-unreturned bytes do not reopen the window", () => {
    const w = new ReceiveWindow(1000);
    w.receive(1000);
    expect(w.consumed(499)).toBe(0);
    expect(() => w.receive(1)).toThrow(ProtocolError);
  });

  it("a sender and receiver that follow the rules never overrun, with one update per half window", () => {
    const size = 64 * 1024;
    const send = new SendWindow(size);
    const recv = new ReceiveWindow(size);
    let updates = 0;
    let moved = 0;
    const total = 5 * 1024 * 1024;
    while (moved < total) {
      const n = Math.min(send.available, 16 * 1024, total - moved);
      expect(n, "the sender never stalls for good").toBeGreaterThan(0);
      send.consume(n);
      recv.receive(n);
      moved += n;
      const credit = recv.consumed(n);
      if (credit > 0) {
        updates++;
        expect(credit).toBeGreaterThanOrEqual(size / 2);
        send.grant(credit);
      }
    }
    expect(updates).toBe(total / (size / 2));
  });
});
