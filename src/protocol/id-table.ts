// Values by integer id, for a table that lives as long as its owner and gains and loses an entry
// per request: a session's streams, the relay's response deadlines.
//
// Not a Map. V8 replaces a Map's (or Set's) hash table whenever deletions have filled it, and on
// clear(), and the replaced table keeps its entries and a link to its successor, for iterators
// still walking it. Once a full collection has moved one of these tables to the old generation,
// the chain from it keeps every later table, and every value those tables held, reachable for
// young-generation collections (they take a dead old object's pointers for roots) until the next
// full collection: every value the Map ever held gets promoted. An object's integer-keyed
// properties (a number dictionary) are rehashed without such links. Measured in
// docs/performance.md, "Closures assigned to properties", item 3.
export class IdTable<V extends object> {
  private entries: Record<number, V> = Object.create(null);
  private count = 0;

  /** Entries in the table. */
  get size(): number {
    return this.count;
  }

  get(id: number): V | undefined {
    return this.entries[id];
  }

  has(id: number): boolean {
    return this.entries[id] !== undefined;
  }

  set(id: number, value: V): void {
    if (this.entries[id] === undefined) this.count++;
    this.entries[id] = value;
  }

  /** Removes `id`'s entry; false when there was none. */
  delete(id: number): boolean {
    if (this.entries[id] === undefined) return false;
    delete this.entries[id];
    this.count--;
    return true;
  }

  clear(): void {
    if (this.count === 0) return;
    this.entries = Object.create(null);
    this.count = 0;
  }

  /**
   * The values, ids below 2^32 - 1 in ascending order first (the order of a table whose ids only
   * grow), then any larger ids in the order they were added.
   */
  values(): V[] {
    return Object.values(this.entries);
  }
}
