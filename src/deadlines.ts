// Many deadlines of the same length on one timer. A timer per request cost the relay about as
// much as decoding the response head, and arming and clearing the shared one for each request
// (at concurrency 1 nothing else waits) cost ~15 µs more (`npm run bench`). So the timer is never
// cleared: it wakes at a deadline or after IDLE_CHECK_MS, whichever is first, and re-arms only
// while something waits. An idle Durable Object is free to hibernate within IDLE_CHECK_MS of its
// last request, which is about when the runtime evicts idle objects anyway.

/** The longest the timer sleeps: how long it can outlive the last deadline. */
export const IDLE_CHECK_MS = 10_000;

/** Deadlines of one fixed length, fired in the order they were added. */
export class Deadlines {
  /** Insertion order is deadline order: every entry waits the same time. */
  private readonly waiting = new Map<number, { at: number; fire: () => void }>();
  private nextKey = 0;
  private armed = false;

  constructor(
    readonly ms: number,
    private readonly now: () => number = Date.now,
  ) {}

  /** Calls `fire` after the fixed time unless cancel(key) runs first; returns the key. */
  add(fire: () => void): number {
    const key = this.nextKey++;
    const at = this.now() + this.ms;
    this.waiting.set(key, { at, fire });
    if (!this.armed) this.arm(at);
    return key;
  }

  cancel(key: number): void {
    this.waiting.delete(key);
  }

  /** Deadlines not yet fired or cancelled. */
  get size(): number {
    return this.waiting.size;
  }

  private arm(at: number): void {
    this.armed = true;
    const now = this.now();
    setTimeout(() => this.sweep(), Math.max(0, Math.min(at, now + IDLE_CHECK_MS) - now));
  }

  private sweep(): void {
    this.armed = false;
    const now = this.now();
    for (const [key, entry] of this.waiting) {
      if (entry.at > now) return this.arm(entry.at);
      this.waiting.delete(key);
      entry.fire();
    }
  }
}
