// A bounded map with a time to live, for verification results: the oldest entry goes first when
// it is full, so no stream of distinct credentials can grow the relay's memory.

export class BoundedCache<V> {
  private readonly entries = new Map<string, { value: V; until: number }>();

  constructor(
    private readonly max: number,
    private readonly ttlMs: number,
  ) {}

  get(key: string, now = Date.now()): V | undefined {
    const entry = this.entries.get(key);
    if (!entry) return undefined;
    if (entry.until <= now) {
      this.entries.delete(key);
      return undefined;
    }
    return entry.value;
  }

  /** Keeps `value` until `now + ttl` (or `until`, when sooner). */
  set(key: string, value: V, until?: number, now = Date.now()): void {
    this.entries.delete(key);
    if (this.entries.size >= this.max) this.entries.delete(this.entries.keys().next().value!);
    this.entries.set(key, { value, until: Math.min(until ?? Infinity, now + this.ttlMs) });
  }

  get size(): number {
    return this.entries.size;
  }
}
