// Per-stream flow-control windows (README "Flow"): what we may send, what we must give back.
import { ProtocolError } from "./frame.ts";

/** Credit we hold for sending DATA on one stream. */
export class SendWindow {
  private waiters: Array<() => void> = [];

  constructor(private credit: number) {}

  /** Bytes we may send now. */
  get available(): number {
    return this.credit;
  }

  /** Spends credit for bytes just framed. */
  consume(n: number): void {
    if (n > this.credit) throw new Error(`spent ${n} bytes with only ${this.credit} of credit`);
    this.credit -= n;
  }

  /** Adds credit from a WINDOW_UPDATE and wakes writers waiting for it. */
  grant(n: number): void {
    if (this.credit + n > 0x7fffffff) throw new ProtocolError(`window update of ${n} overflows the send window`);
    this.credit += n;
    this.wake();
  }

  /** Resolves once some credit is available (or the stream ended: see wake). */
  waitForCredit(): Promise<void> {
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** Wakes every waiting writer; they re-check the stream's state and the credit. */
  wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }
}

/** What the peer may still send us on one stream, and the credit we owe back. */
export class ReceiveWindow {
  private remaining: number;
  private unreturned = 0;

  constructor(private readonly size: number) {
    this.remaining = size;
  }

  /** Accounts for received DATA; an overrun is a flow-control error. */
  receive(n: number): void {
    if (n > this.remaining) {
      throw new ProtocolError(`peer sent ${n} bytes with ${this.remaining} bytes of window left`);
    }
    this.remaining -= n;
  }

  /**
   * Records bytes handed on. Returns the credit to send in a WINDOW_UPDATE now, or 0 while the
   * unreturned amount is below half the window (updates go out in batches); `all` returns
   * whatever is unreturned.
   */
  consumed(n: number, all = false): number {
    this.unreturned += n;
    if (this.unreturned === 0 || (!all && this.unreturned < this.size / 2)) return 0;
    const credit = this.unreturned;
    this.unreturned = 0;
    this.remaining += credit;
    return credit;
  }
}
