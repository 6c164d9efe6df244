// Many deadlines of the same length on one timer, so a request costs no timer of its own. The
// timer is cleared whenever nothing waits: a pending timer delays the runtime's delivery of
// WebSocket closes and keeps an idle object from hibernating (docs/platform-notes.md "Timers keep
// an object awake and delay closes"). Figures: docs/performance.md.

import { IdTable } from "../protocol/id-table.ts";

/** Deadlines of one fixed length, fired in the order they were added. */
export class Deadlines {
  /** Key order is deadline order: keys only grow, and every entry waits the same time. */
  private readonly waiting = new IdTable<{ key: number; at: number; fire: () => void }>();
  private nextKey = 0;
  private timer?: ReturnType<typeof setTimeout>;

  constructor(
    readonly ms: number,
    private readonly now: () => number = Date.now,
  ) {}

  /** Calls `fire` after the fixed time unless cancel(key) runs first; returns the key. */
  add(fire: () => void): number {
    const key = this.nextKey++;
    this.waiting.set(key, { key, at: this.now() + this.ms, fire });
    if (!this.timer) this.arm(this.ms);
    return key;
  }

  cancel(key: number): void {
    this.waiting.delete(key);
    if (this.waiting.size === 0 && this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
  }

  /** Deadlines not yet fired or cancelled. */
  get size(): number {
    return this.waiting.size;
  }

  private arm(ms: number): void {
    this.timer = setTimeout(() => this.sweep(), Math.max(0, ms));
  }

  private sweep(): void {
    this.timer = undefined;
    const now = this.now();
    for (const entry of this.waiting.values()) {
      // A deadline fired before this one may have cancelled it (one added meanwhile armed a timer).
      if (this.waiting.get(entry.key) !== entry) continue;
      if (entry.at > now) return this.arm(entry.at - now);
      this.waiting.delete(entry.key);
      entry.fire();
    }
  }
}
