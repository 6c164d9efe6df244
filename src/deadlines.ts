// Many deadlines of the same length on one timer: a timer per request cost the relay about as
// much as decoding the response head (`npm run bench`). The timer is cleared whenever nothing
// waits, so it never keeps an idle Durable Object from hibernating.

/** Deadlines of one fixed length, fired in the order they were added. */
export class Deadlines {
  /** Insertion order is deadline order: every entry waits the same time. */
  private readonly waiting = new Map<symbol, { at: number; fire: () => void }>();
  private timer?: ReturnType<typeof setTimeout>;

  constructor(
    readonly ms: number,
    private readonly now: () => number = Date.now,
  ) {}

  /** Calls `fire` after the fixed time unless the returned cancel runs first. */
  add(fire: () => void): () => void {
    const key = Symbol();
    this.waiting.set(key, { at: this.now() + this.ms, fire });
    if (!this.timer) this.arm(this.ms);
    return () => {
      this.waiting.delete(key);
      if (this.waiting.size === 0 && this.timer) {
        clearTimeout(this.timer);
        this.timer = undefined;
      }
    };
  }

  private arm(ms: number): void {
    this.timer = setTimeout(() => this.sweep(), Math.max(0, ms));
  }

  private sweep(): void {
    this.timer = undefined;
    const now = this.now();
    for (const [key, entry] of this.waiting) {
      if (entry.at > now) return this.arm(entry.at - now);
      this.waiting.delete(key);
      entry.fire();
    }
  }
}
