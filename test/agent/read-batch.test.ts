// Socket reads joined per turn of the event loop (agent/read-batch.ts): one message for the reads
// of one turn, never more than the limit, nothing lost or reordered, FIN after the data.
import { describe, expect, it } from "vitest";
import { READ_BATCH_BYTES, ReadBatch } from "../../agent/read-batch.ts";
import { within } from "../helpers/wait.ts";

const turn = () => new Promise<void>((resolve) => setImmediate(resolve));
const bytes = (n: number, seed: number) => Buffer.from(Array.from({ length: n }, (_, i) => (i * 7 + seed) & 255));

describe("ReadBatch", () => {
  it("sends the reads of one turn as one message at the end of the turn", async () => {
    const sent: Buffer[] = [];
    const batch = new ReadBatch((data) => sent.push(data));
    const reads = [bytes(100, 1), bytes(65536, 2), bytes(3, 3)];
    for (const r of reads) batch.push(r);
    expect(sent).toEqual([]);
    await within(turn(), "the end of the turn");
    expect(sent).toHaveLength(1);
    expect(sent[0].equals(Buffer.concat(reads))).toBe(true);
    batch.push(bytes(10, 4));
    await within(turn(), "the next turn");
    expect(sent.map((s) => s.byteLength)).toEqual([65639, 10]);
  });

  it("cuts messages at the limit exactly and keeps every byte in order", async () => {
    const sent: Buffer[] = [];
    const batch = new ReadBatch((data) => sent.push(Buffer.from(data)), 1000);
    const reads = [bytes(600, 1), bytes(600, 2), bytes(2500, 3), bytes(1, 4)];
    for (const r of reads) batch.push(r);
    expect(sent.map((s) => s.byteLength)).toEqual([1000, 1000, 1000]);
    await within(turn(), "the end of the turn");
    expect(sent.map((s) => s.byteLength)).toEqual([1000, 1000, 1000, 701]);
    expect(Buffer.concat(sent).equals(Buffer.concat(reads))).toBe(true);
  });

  it("flush sends what waits at once, so a FIN sent next follows the data", async () => {
    const order: string[] = [];
    const batch = new ReadBatch((data) => order.push(`data ${data.byteLength}`));
    batch.push(bytes(5, 1));
    batch.flush();
    order.push("fin");
    await within(turn(), "the end of the turn");
    expect(order).toEqual(["data 5", "fin"]);
  });

  it("makes messages that fit one DATA frame of the default maxFrame, four to a tunnel message", () => {
    expect(READ_BATCH_BYTES + 10).toBe(256 * 1024);
  });
});
