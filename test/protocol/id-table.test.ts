import { describe, expect, it } from "vitest";
import { IdTable } from "../../src/protocol/id-table.ts";

describe("IdTable", () => {
  it("keeps values by id and counts them", () => {
    const t = new IdTable<{ n: number }>();
    const a = { n: 1 };
    t.set(1, a);
    t.set(3, { n: 3 });
    t.set(1, a);
    expect(t.size).toBe(2);
    expect(t.get(1)).toBe(a);
    expect(t.has(3)).toBe(true);
    expect(t.get(2)).toBeUndefined();
    expect(t.delete(3)).toBe(true);
    expect(t.delete(3)).toBe(false);
    expect(t.size).toBe(1);
    t.clear();
    expect(t.size).toBe(0);
    expect(t.get(1)).toBeUndefined();
  });

  it("lists values by ascending id, then ids of 2^32 - 1 and more in the order they came", () => {
    const t = new IdTable<{ id: number }>();
    for (const id of [2 ** 32 + 5, 7, 2 ** 32 - 1, 1, 4000, 2 ** 40]) t.set(id, { id });
    expect(t.values().map((v) => v.id)).toEqual([1, 7, 4000, 2 ** 32 + 5, 2 ** 32 - 1, 2 ** 40]);
  });

  it("keeps the right entries through churn: one in, one out, a hundred thousand times", () => {
    const t = new IdTable<{ id: number }>();
    for (let id = 0; id < 32; id++) t.set(id, { id });
    for (let id = 32; id < 100_032; id++) {
      t.delete(id - 32);
      t.set(id, { id });
    }
    expect(t.size).toBe(32);
    expect(t.values().map((v) => v.id)).toEqual(Array.from({ length: 32 }, (_, i) => 100_000 + i));
  });
});
