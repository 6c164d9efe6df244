// The counters of one backend's Durable Object for /_relay/metrics: responses by status class,
// relay errors by code and tunnel bytes each way. Counting is a few additions in memory; the
// sums reach the object's SQLite storage a second later, so they outlive hibernation.
import { relayErrorOf } from "../errors.ts";

/** How long counts wait in memory before they are added to storage. */
const FLUSH_MS = 1000;
const TABLE = "relay_counters";

/** What one backend's object counted since it was created (storage included). */
export interface CounterSnapshot {
  /** Responses by status class ("2xx" ...), relay errors included. */
  requests: Record<string, number>;
  /** Relay error responses by code (src/errors.ts). */
  errors: Record<string, number>;
  /** Tunnel bytes (frames as sent on the WebSocket) relay -> agent and agent -> relay. */
  bytes: { toAgent: number; fromAgent: number };
}

export class HubCounters {
  /** Responses by status / 100, not yet in storage. */
  private classes = [0, 0, 0, 0, 0, 0];
  private errors = new Map<string, number>();
  private toAgent = 0;
  private fromAgent = 0;
  private timer?: ReturnType<typeof setTimeout>;
  private tableReady = false;

  constructor(private readonly storage: DurableObjectStorage) {}

  /**
   * Counts a public request's answer; resolves with it unchanged. A then(), not an async
   * function: every public request passes here, and each promise between the answer and the
   * runtime costs the object a turn of its microtask queue.
   */
  response(answer: Promise<Response>): Promise<Response> {
    return answer.then(
      (response) => {
        this.add(Math.floor(response.status / 100), relayErrorOf(response));
        return response;
      },
      (err: unknown) => {
        this.add(5, "internal_error");
        throw err;
      },
    );
  }

  /** Counts bytes the relay sent on a tunnel. */
  sent(bytes: number): void {
    this.toAgent += bytes;
    this.schedule();
  }

  /** Counts bytes an agent sent on a tunnel. */
  received(bytes: number): void {
    this.fromAgent += bytes;
    this.schedule();
  }

  /** Everything counted so far, storage and memory together. */
  snapshot(): CounterSnapshot {
    this.flush();
    const snapshot: CounterSnapshot = { requests: {}, errors: {}, bytes: { toAgent: 0, fromAgent: 0 } };
    for (const row of this.storage.sql.exec<{ name: string; value: number }>(`SELECT name, value FROM ${TABLE}`)) {
      const [kind, key] = row.name.split(":");
      if (kind === "requests") snapshot.requests[key] = row.value;
      else if (kind === "errors") snapshot.errors[key] = row.value;
      else if (key === "toAgent" || key === "fromAgent") snapshot.bytes[key] = row.value;
    }
    return snapshot;
  }

  private add(statusClass: number, error: string | undefined): void {
    this.classes[statusClass < 1 || statusClass > 5 ? 0 : statusClass]++;
    if (error) this.errors.set(error, (this.errors.get(error) ?? 0) + 1);
    this.schedule();
  }

  private schedule(): void {
    this.timer ??= setTimeout(() => this.flush(), FLUSH_MS);
  }

  /** Adds what memory holds to storage (synchronous SQLite, so no count is lost in between). */
  private flush(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    const sql = this.storage.sql;
    if (!this.tableReady) {
      sql.exec(`CREATE TABLE IF NOT EXISTS ${TABLE} (name TEXT PRIMARY KEY, value INTEGER NOT NULL)`);
      this.tableReady = true;
    }
    const deltas: Array<[string, number]> = [
      ["bytes:toAgent", this.toAgent],
      ["bytes:fromAgent", this.fromAgent],
    ];
    for (const [c, n] of this.classes.entries()) deltas.push([`requests:${c === 0 ? "other" : `${c}xx`}`, n]);
    for (const [code, n] of this.errors) deltas.push([`errors:${code}`, n]);
    for (const [name, n] of deltas) {
      if (n === 0) continue;
      sql.exec(`INSERT INTO ${TABLE} (name, value) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET value = value + excluded.value`, name, n);
    }
    this.classes = [0, 0, 0, 0, 0, 0];
    this.errors.clear();
    this.toAgent = 0;
    this.fromAgent = 0;
  }
}
